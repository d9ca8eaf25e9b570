# mirai: the asynchronous evaluation --------------------------------------------

#' mirai (Evaluate Async)
#'
#' Evaluate an expression asynchronously in a new background R process or
#' persistent daemon (local or remote). This function will return immediately
#' with a 'mirai', which will resolve to the evaluated result once complete.
#'
#' This function will return a 'mirai' object immediately.
#'
#' The value of a mirai may be accessed at any time at `$data`, and if yet to
#' resolve, an 'unresolved' logical NA will be returned instead.
#'
#' [unresolved()] may be used on a mirai, returning TRUE if a 'mirai' has yet
#' to resolve and FALSE otherwise. This is suitable for use in control flow
#' statements such as `while` or `if`.
#'
#' Alternatively, to call (and wait for) the result, use [call_mirai()] on the
#' returned 'mirai'. This will block until the result is returned, or use
#' `m[]` to wait for and return the value directly.
#'
#' Specify `.compute` to send the mirai using a specific compute profile (if
#' previously created by [daemons()]), otherwise leave as `"default"`.
#'
#' @section Evaluation:
#'
#' The expression `.expr` will be evaluated in a separate R process in a clean
#' environment (not the global environment), consisting only of the objects
#' supplied to `.args`, with the objects passed as `...` assigned to the
#' global environment of that process.
#'
#' As evaluation occurs in a clean environment, all undefined objects must be
#' supplied through `...` and/or `.args`, including self-defined functions.
#' Functions from a package should use namespaced calls such as
#' `mirai::mirai()`, or else the package should be loaded beforehand as part of
#' `.expr`.
#'
#' For evaluation to occur *as if* in your global environment, supply objects
#' to `...` rather than `.args`: functions supplied there can see each other,
#' as they are placed in the same (global) environment.
#'
#' @section Errors:
#'
#' If an error occurs in evaluation, the error message is returned as a
#' character string of class 'miraiError' and 'errorValue' (such as
#' `"Error in f(): boom"`). [is_mirai_error()] may be used to test for this.
#' The elements of the original condition are accessible via `$` on the
#' error object: `$message`, `$call` and any other fields the condition had
#' (those of a custom condition class or of \pkg{rlang}), `$condition.class`
#' (the class of the condition) and `$stack.trace` (a list of the calls
#' leading to the error, most recent first). [conditionMessage()] and
#' [conditionCall()] work on it as on the condition.
#'
#' If a daemon is interrupted during evaluation, the value is a
#' 'miraiInterrupt' ([is_mirai_interrupt()]).
#'
#' Otherwise an integer 'errorValue' is returned for outcomes of the transport:
#' `5` timed out (see `.timeout`), `7` object closed (daemons were reset while
#' the mirai was pending), `19` connection reset (its daemon died mid-task),
#' `20` operation canceled, `24` message too large (the value exceeded
#' `max_message`, see [daemons()]). [is_error_value()] tests for all of these.
#'
#' @param .expr an expression to evaluate asynchronously (of arbitrary length,
#'   wrapped in `{ }` where necessary), **or else** a pre-constructed language
#'   object held in a variable of the calling environment.
#' @param ... (optional) **either** named objects (name = value pairs) to be
#'   placed in the global environment of the evaluation process, where they
#'   can see each other, **or** a single environment whose objects are taken.
#' @param .args (optional) **either** a named list of objects (name = value
#'   pairs), or a named vector such as `c(a = 1, b = 2)`, a list of objects
#'   given by their symbols such as `list(x, y)` (names are taken from the
#'   symbols), **or** an environment: these remain local to the evaluation
#'   environment (whose parent is the global environment).
#' @param .timeout \[default NULL\] for no timeout, or an integer value in
#'   milliseconds. A mirai will resolve to an 'errorValue' 5 (timed out) if
#'   evaluation exceeds this limit.
#' @param .compute \[default NULL\] character value for the compute profile
#'   to use (each compute profile has its own independent set of daemons), or
#'   NULL for the current default profile: 'default', unless changed by
#'   [with_daemons()] or [local_daemons()].
#'
#' @return A 'mirai' object.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' m <- mirai(x + y + 1, x = 2, y = 3)
#' m
#' m$data
#' Sys.sleep(0.2)
#' m$data
#'
#' m <- mirai({Sys.sleep(0.5); 3 * x}, .args = list(x = 2))
#' m[]
#'
#' # language object held in a variable
#' expr <- quote(a + b)
#' m <- mirai(expr, a = 1, b = 2)
#' m[]
#'
#' # functions in '...' see each other
#' f <- function(x) g(x) + 1
#' g <- function(x) x * 2
#' m <- mirai(f(3), f = f, g = g)
#' m[]
#'
#' }
#'
#' @export
#'
mirai <- function(.expr, ..., .args = list(), .timeout = NULL, .compute = NULL) {
  if (missing(.expr)) stop_arg(._[["expr_missing"]], sys.call())
  invisible(send_mirai(substitute(.expr), parent.frame(), if (...length()) list(...), .args,
                       substitute(.args), .timeout, .compute, sys.call(), wait = TRUE))
}

#' mirai (Try Without Waiting)
#'
#' `try_mirai()` is [mirai()] for a compute profile whose queue is bounded
#' (see the `memory` argument of [daemons()]): where `mirai()` waits for room
#' in a full queue, `try_mirai()` returns NULL at once, and the task is not
#' sent. Without a bound, it is the same as `mirai()`.
#'
#' @inheritParams mirai
#'
#' @return A 'mirai' object, or NULL if the queue was full.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' m <- try_mirai(1 + 1)
#' if (!is.null(m)) m[]
#'
#' }
#'
#' @export
#'
try_mirai <- function(.expr, ..., .args = list(), .timeout = NULL, .compute = NULL) {
  if (missing(.expr)) stop_arg(._[["expr_missing"]], sys.call())
  invisible(send_mirai(substitute(.expr), parent.frame(), if (...length()) list(...), .args,
                       substitute(.args), .timeout, .compute, sys.call(), wait = FALSE))
}

# The language object held in the variable `symbol` names, if it holds one;
# else the symbol itself (the expression is then just that variable).
held_language <- function(symbol, envir) {
  obj <- get0(as.character(symbol), envir = envir)
  if (is.language(obj)) obj else symbol
}

# Sends the task of mirai() and try_mirai(), given their arguments as the
# caller wrote them (`expr` and `args_expr`) and as values (`dots` is NULL for
# none), the caller's frame and the call: NULL when `wait` is FALSE and a
# bounded queue is full (the profile's random number stream is then left as
# it was).
send_mirai <- function(expr, frame, dots, args, args_expr, timeout, compute, call, wait) {
  if (is.symbol(expr)) expr <- held_language(expr, frame)
  globals <- if (!is.null(dots)) mirai_dots(dots, call)
  args <- if (length(args)) mirai_args(args, args_expr, call) else list()
  if (!is.null(timeout) && !(is_limit(timeout) && is.finite(timeout)))
    stop_arg(._[["timeout"]], call)
  if (!is.null(timeout)) timeout <- as.double(timeout)
  compute <- compute_profile(compute, call)
  envir <- ..[[compute]]
  if (is.null(envir)) return(ephemeral_mirai(list(expr, globals, args, NULL), timeout))
  stream <- envir[["stream"]]
  rs <- if (envir[["seeded"]]) nextstream(compute)
  task <- list(expr, globals, args, rs)
  if (isTRUE(envir[["sync"]])) return(settled_mirai(sync_evaluate(envir, task)))
  handle <- submit_task(envir, task, timeout, wait)
  if (is.null(handle)) {
    envir[["stream"]] <- stream
    return(NULL)
  }
  new_mirai(handle)
}

# Submit `task` to the profile's host (serialized once). With a memory cap
# set on the profile, a full queue makes this wait for room in short
# interruptible slices, or, for try_mirai(), return NULL at once.
submit_task <- function(envir, task, timeout, wait = TRUE) {
  handle <- .Call(direct__host_submit, envir[["host"]], task, timeout, wait)
  if (wait && !is.null(envir[["memory"]]))
    while (!task_wait_room(handle, 200L)) {
      autoscale_tick()
      Sys.sleep(0)
    }
  if (!is.null(envir[["autoscale"]])) autoscale_submitted(envir)
  handle
}

mirai_dots <- function(dots, call) {
  nm <- names(dots)
  if (is.null(nm)) {
    if (length(dots) == 1L && is.environment(dots[[1L]]))
      return(as.list.environment(dots[[1L]], all.names = TRUE))
    stop_arg(._[["dots"]], call)
  }
  if (!all(nzchar(nm))) stop_arg(._[["dots"]], call)
  dots
}

mirai_args <- function(.args, sym, call) {
  if (is.environment(.args)) return(as.list.environment(.args, all.names = TRUE))
  nm <- names(.args)
  if (is.atomic(.args) && !is.null(nm) && !anyNA(nm) && all(nzchar(nm)))
    return(as.list(.args))
  if (!is.list(.args)) stop_arg(._[["args"]], call)
  if (is.null(nm) || !all(nzchar(nm))) {
    if (!is.call(sym) || length(sym) != length(.args) + 1L) stop_arg(._[["args"]], call)
    elements <- as.list(sym)[-1L]
    if (is.null(nm)) nm <- character(length(.args))
    missing_names <- !nzchar(nm)
    if (!all(vapply(elements[missing_names], is.symbol, logical(1L))))
      stop_arg(._[["args"]], call)
    nm[missing_names] <- vapply(elements[missing_names], as.character, character(1L))
    names(.args) <- nm
  }
  .args
}

# A mirai is an environment holding the task handle (and, for a mirai sent
# with no daemons set, the ephemeral host and its process); `data` is an
# active binding until the value is taken, then an ordinary binding to it.
# The binding calls a copy of mirai_data() enclosed by the mirai itself.
# Only an ephemeral mirai has its own `.host` and `.process`; the others see
# the namespace's NULLs.
.host <- NULL
.process <- NULL

# Every mirai of the session has its own integer `id`, in order of creation.
new_mirai <- function(handle, host = NULL, process = NULL) {
  m <- .Call(direct__mirai_object, handle, mirai_data, "mirai")
  if (!is.null(host)) {
    assign(".host", host, envir = m)
    assign(".process", process, envir = m)
  }
  id <- .state[["mirai_id"]] + 1L
  .state[["mirai_id"]] <- id
  attr(m, "id") <- id
  m
}

# A mirai whose value is already known (evaluated synchronously): it has no
# task handle, and `data` is an ordinary binding.
settled_mirai <- function(value) {
  m <- new.env(parent = emptyenv())
  m[["data"]] <- value
  id <- .state[["mirai_id"]] + 1L
  .state[["mirai_id"]] <- id
  attr(m, "id") <- id
  `class<-`(m, "mirai")
}

mirai_data <- function() {
  if (!.Call(direct__task_ready, .handle)) {
    if (!is.null(.process)) ephemeral_check(.handle, .host, .process)
    return(unresolved_value)
  }
  value <- .Call(direct__task_settle, .handle, parent.env(environment()))
  if (!is.null(.host)) {
    host_close(.host, FALSE)
    .host <<- NULL
    .process <<- NULL
  }
  value
}

# No daemons set: a single-use host and a new R process for this mirai alone.
ephemeral_mirai <- function(task, timeout) {
  url <- local_url()
  token <- random_hex(16L)
  host <- host_listen(url, FALSE, token, .state[["max_bytes"]], .state[["version"]],
                      NULL, 0L, 0)
  process <- tryCatch(
    launch_daemon(url, list(maxtasks = 1L), rs = NULL, token = token),
    error = function(e) {
      host_close(host, FALSE)
      stop(e)
    }
  )
  new_mirai(submit_task(list(host = host), task, timeout), host, process)
}

# An ephemeral daemon that exited without returning a value would leave the
# mirai pending forever: close its host so the mirai resolves to an
# errorValue instead.
ephemeral_check <- function(handle, host, process) {
  if (!is.null(process_exit_status(process)) && !task_wait(handle, 500L))
    host_close(host, FALSE)
}

wait_mirai <- function(x) {
  handle <- .subset2(x, ".handle")
  if (is.null(handle)) return(invisible(x))
  process <- .subset2(x, ".process")
  while (!task_wait(handle, 200L)) {
    if (!is.null(process)) ephemeral_check(handle, .subset2(x, ".host"), process)
    autoscale_tick()
    Sys.sleep(0)
  }
  invisible(x)
}

# Waiting and collecting ---------------------------------------------------------

#' mirai (Call Value)
#'
#' Waits for the 'mirai' to resolve if still in progress, and returns it
#' invisibly: its value is then available at `$data`.
#'
#' This function will wait for the asynchronous operation(s) to complete if
#' still in progress (blocking). The wait may be interrupted with Ctrl-C (the
#' mirai carries on and can be waited for again).
#'
#' `x[]` may also be used to wait for and return the value of a mirai `x`.
#'
#' @param x a 'mirai' object, or a list of 'mirai' objects (other elements are
#'   left alone).
#'
#' @return The passed object (invisibly). For a 'mirai', the retrieved value
#'   is stored at `$data`.
#'
#' @section Alternatively:
#'
#' The value of a 'mirai' may be accessed at any time at `$data`, and if yet to
#' resolve, an 'unresolved' logical NA will be returned instead. Using
#' [unresolved()] on a 'mirai' returns TRUE only if it has yet to resolve and
#' FALSE otherwise.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' m <- mirai({Sys.sleep(0.2); x + 1}, x = 2)
#' call_mirai(m)$data
#'
#' ms <- list(a = mirai(1), b = mirai(2))
#' call_mirai(ms)
#' collect_mirai(ms)
#'
#' }
#'
#' @export
#'
call_mirai <- function(x) {
  if (is_mirai(x)) {
    wait_mirai(x)
  } else if (is.list(x)) {
    for (item in x) if (is_mirai(item)) wait_mirai(item)
  }
  invisible(x)
}

#' mirai (Collect Value)
#'
#' Waits for the 'mirai' to resolve if still in progress, and returns its
#' value directly; for a list of 'mirai', a list of their values (keeping the
#' names).
#'
#' The wait may be interrupted with Ctrl-C.
#'
#' For a list of 'mirai' (or a 'mirai_map'), the collection `options` of
#' [mirai_map()] apply: `".flat"`, `".progress"` and `".stop"`; with `x[]` on
#' a 'mirai_map', they go between the brackets, as in `x[.stop, .progress]`.
#'
#' @inheritParams call_mirai
#' @param options \[default NULL\] (for a list of 'mirai') a character vector
#'   of collection options: any of `".flat"`, `".progress"` and `".stop"`
#'   (see [mirai_map()]). A list or vector whose names are the options is
#'   also accepted, as in `list(.stop = TRUE, .progress = "bar name")`: the
#'   value of `.progress` names the \pkg{cli} progress bar, or, as a list,
#'   gives the arguments of [cli::cli_progress_bar()].
#'
#' @return An object (the return value of the 'mirai'), or a list of such
#'   objects (a vector with `".flat"`).
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' m <- mirai(x + 1, x = 2)
#' collect_mirai(m)
#'
#' collect_mirai(list(a = mirai(1), b = mirai(2)))
#'
#' }
#'
#' @export
#'
collect_mirai <- function(x, options = NULL) {
  if (is_mirai(x)) return(wait_mirai(x)[["data"]])
  if (!is.list(x)) return(x)
  if (length(options)) return(collect_options(x, options, sys.call()))
  call_mirai(x)
  lapply(x, function(item) if (is_mirai(item)) item[["data"]] else item)
}

#' @rdname collect_mirai
#' @param i not used.
#' @return For `x[]`: the value of the 'mirai' `x`, after waiting for it.
#' @export
#'
`[.mirai` <- function(x, i) wait_mirai(x)[["data"]]

#' Query if a mirai is Unresolved
#'
#' Query whether a 'mirai', 'mirai' value or list of 'mirai' remains
#' unresolved. Unlike [call_mirai()], this function does not wait for
#' completion.
#'
#' Suitable for use in control flow statements such as `while` or `if`.
#'
#' Note: querying resolution may cause a previously unresolved 'mirai' to
#' resolve.
#'
#' @param x a 'mirai' object or list of 'mirai' objects, or a 'mirai' value
#'   stored at `$data`.
#'
#' @return Logical TRUE if `x` is an unresolved 'mirai' or 'mirai' value or
#'   the list contains at least one unresolved 'mirai', or FALSE otherwise.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' m <- mirai(Sys.sleep(0.1))
#' unresolved(m)
#' Sys.sleep(1)
#' unresolved(m)
#'
#' }
#'
#' @export
#'
unresolved <- function(x) {
  autoscale_tick()
  is_unresolved(x)
}

is_unresolved <- function(x) {
  if (is_mirai(x)) return(inherits(x[["data"]], "unresolvedValue"))
  if (is.list(x)) {
    for (item in x) if (is_unresolved(item)) return(TRUE)
    return(FALSE)
  }
  inherits(x, "unresolvedValue")
}

# Stopping and racing --------------------------------------------------------------

#' mirai (Stop)
#'
#' Stops a 'mirai' if still in progress: a task still queued is dropped and
#' never runs; a task being evaluated is interrupted at its daemon, which
#' then carries on with its next task. The value of the 'mirai' becomes an
#' 'errorValue' 20 (Operation canceled).
#'
#' @param x a 'mirai' object, or a list of 'mirai' objects.
#'
#' @return Invisibly, a logical value for each 'mirai': TRUE if it was
#'   cancelled, FALSE if it had already resolved (or is not a 'mirai'). For
#'   `x` neither a 'mirai' nor a list, FALSE.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' m <- mirai(Sys.sleep(60))
#' stop_mirai(m)
#' m$data
#'
#' }
#'
#' @export
#'
stop_mirai <- function(x) {
  if (is_mirai(x)) return(invisible(cancel_mirai(x)))
  if (!is.list(x)) return(invisible(FALSE))
  invisible(vapply(x, function(m) is_mirai(m) && cancel_mirai(m), logical(1L),
                   USE.NAMES = FALSE))
}

cancel_mirai <- function(m) {
  handle <- .subset2(m, ".handle")
  if (is.null(handle)) return(FALSE)
  task_cancel(handle)
}

#' mirai (Race)
#'
#' Waits until at least one 'mirai' of a list has resolved, and returns its
#' index. The wait may be interrupted with Ctrl-C.
#'
#' @param x a list of 'mirai' objects (other elements are ignored), or a
#'   'mirai_map'.
#' @param .compute \[default NULL\] character value for the compute profile
#'   the 'mirai' belong to, or NULL for the current default profile. It
#'   matters only when `x` holds no 'mirai': with no daemons set for the
#'   profile, that is an error, as from [require_daemons()].
#'
#' @return Invisibly, the integer index of a resolved 'mirai' (the first, if
#'   several have resolved), or 0L if `x` holds no 'mirai'.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' daemons(2)
#' ms <- list(mirai({Sys.sleep(2); "slow"}), mirai({Sys.sleep(0.1); "fast"}))
#' i <- race_mirai(ms)
#' ms[[i]][]
#' daemons(0)
#'
#' }
#'
#' @export
#'
race_mirai <- function(x, .compute = NULL) {
  call <- sys.call()
  .compute <- compute_profile(.compute, call)
  if (is_mirai(x)) x <- list(x)
  if (!is.list(x)) stop_arg(._[["race_mirai"]], call)
  repeat {
    i <- wait_any(x, 200L)
    if (i == 0L && is.null(..[[.compute]])) require_daemons(.compute, call = call)
    if (i >= 0L) return(invisible(i))
    autoscale_tick()
    Sys.sleep(0)
  }
}

# Wait up to `ms` for any mirai of list `x` to resolve: its index, 0L when `x`
# holds no mirai, -1L when none resolved in time.
wait_any <- function(x, ms) {
  handles <- list()
  index <- integer()
  for (i in seq_along(x)) {
    m <- x[[i]]
    if (!is_mirai(m)) next
    handle <- .subset2(m, ".handle")
    if (is.null(handle) || task_ready(handle)) return(i)
    if (!is.null(.subset2(m, ".process"))) {
      ephemeral_check(handle, .subset2(m, ".host"), .subset2(m, ".process"))
      if (task_ready(handle)) return(i)
    }
    handles[[length(handles) + 1L]] <- handle
    index <- c(index, i)
  }
  if (!length(handles)) return(0L)
  j <- tasks_wait_any(handles, as.integer(ms))
  if (j > 0L) index[j] else -1L
}

# Predicates ----------------------------------------------------------------------

#' Is mirai / mirai_map
#'
#' Is the object a 'mirai', or a 'mirai_map' (made by [mirai_map()]).
#'
#' @param x an object.
#'
#' @return Logical TRUE if `x` is of class 'mirai' (for `is_mirai()`) or
#'   'mirai_map' (for `is_mirai_map()`), FALSE otherwise.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' m <- mirai(5)
#' is_mirai(m)
#' is_mirai(m$data)
#'
#' daemons(1)
#' mp <- mirai_map(1:3, function(x) x + 1)
#' is_mirai_map(mp)
#' is_mirai_map(mp[])
#' daemons(0)
#'
#' }
#'
#' @export
#'
is_mirai <- function(x) inherits(x, "mirai")

#' @rdname is_mirai
#' @export
#'
is_mirai_map <- function(x) inherits(x, "mirai_map")

#' Error Validators
#'
#' Validator functions for error value types created by \pkg{mirai}.
#'
#' Is the object a 'miraiError'. When execution in a 'mirai' process fails,
#' the error message is returned as a character string of class 'miraiError'
#' and 'errorValue'. The elements of the original condition are accessible
#' via `$` on the error object, including `$stack.trace` (a list of the calls
#' leading to the error, most recent first) and `$condition.class`.
#'
#' Is the object a 'miraiInterrupt'. When an ongoing 'mirai' is sent a user
#' interrupt, it will resolve to an empty character string classed as
#' 'miraiInterrupt' and 'errorValue'.
#'
#' Is the object an 'errorValue', such as a 'mirai' timeout (5), a 'miraiError'
#' or a 'miraiInterrupt'. This is a catch-all condition that includes all
#' returned error values.
#'
#' @param x an object.
#'
#' @return Logical value TRUE or FALSE.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' m <- mirai(stop("this is an error"))
#' call_mirai(m)
#' is_mirai_error(m$data)
#' is_mirai_interrupt(m$data)
#' is_error_value(m$data)
#' m$data$stack.trace
#'
#' m2 <- mirai(Sys.sleep(1L), .timeout = 100)
#' call_mirai(m2)
#' is_mirai_error(m2$data)
#' is_mirai_interrupt(m2$data)
#' is_error_value(m2$data)
#'
#' }
#'
#' @export
#'
is_mirai_error <- function(x) inherits(x, "miraiError")

#' @rdname is_mirai_error
#' @export
#'
is_mirai_interrupt <- function(x) inherits(x, "miraiInterrupt")

#' @rdname is_mirai_error
#' @export
#'
is_error_value <- function(x) inherits(x, "errorValue")

# Error values --------------------------------------------------------------------

# A 'miraiError' for condition `e`, with the calls that led to it: the text
# R would print, carrying every field of the condition (its `call` without
# attributes such as a srcref), its class as `condition.class` and the calls
# as `stack.trace`.
mk_mirai_error <- function(e, calls = list()) {
  call <- conditionCall(e)
  if (identical(call, eval_call)) call <- NULL
  msg <- conditionMessage(e)
  text <- if (is.null(call)) {
    sprintf("Error: %s", msg)
  } else {
    sprintf("Error in %s: %s", paste(deparse(call, nlines = 1L), collapse = ""), msg)
  }
  fields <- condition_fields(e)
  if (!is.character(fields[["message"]])) fields[["message"]] <- msg
  fields[["call"]] <- if (!is.null(call)) `attributes<-`(call, NULL)
  attributes(text) <- c(fields, list(condition.class = class(e), stack.trace = calls,
                                     class = c("miraiError", "errorValue", "try-error")))
  text
}

# The named fields of condition `e` that can be attributes of a character
# string: not NULL, and not named as an attribute R gives a meaning to.
condition_fields <- function(e) {
  fields <- if (is.list(e)) unclass(e) else list()
  nm <- names(fields)
  if (is.null(nm)) return(list())
  keep <- nzchar(nm) & !is.na(nm) & !nm %in% reserved_attributes &
    !vapply(fields, is.null, logical(1L))
  fields[keep & !duplicated(nm)]
}

reserved_attributes <- c("class", "names", "dim", "dimnames", "row.names", "levels",
                         "tsp", "comment", "condition.class", "stack.trace")

mk_mirai_interrupt <- function()
  structure("", class = c("miraiInterrupt", "errorValue", "try-error"))

#' @export
#'
`$.miraiError` <- function(x, name) attr(x, name, exact = TRUE)

#' @importFrom utils .DollarNames
#' @export
#'
.DollarNames.miraiError <- function(x, pattern = "")
  grep(pattern, setdiff(names(attributes(x)), "class"), value = TRUE, fixed = TRUE)

#' @export
#'
conditionMessage.miraiError <- function(c) {
  msg <- attr(c, "message", exact = TRUE)
  if (is.character(msg)) msg else as.character(c)
}

#' @export
#'
conditionCall.miraiError <- function(c) attr(c, "call", exact = TRUE)

# Print methods -------------------------------------------------------------------

#' @export
#'
print.mirai <- function(x, ...) {
  cat(if (unresolved(x)) "< mirai [] >\n" else "< mirai [$data] >\n")
  invisible(x)
}

#' @export
#'
print.miraiError <- function(x, ...) {
  cat(sprintf("'miraiError' chr %s\n", x))
  invisible(x)
}

#' @export
#'
print.miraiInterrupt <- function(x, ...) {
  cat("'miraiInterrupt' chr \"\"\n")
  invisible(x)
}

#' @export
#'
print.errorValue <- function(x, ...) {
  msg <- error_messages[as.character(unclass(x))]
  if (is.na(msg)) msg <- "Unknown error"
  cat(sprintf("'errorValue' int %d | %s\n", as.integer(unclass(x)), msg))
  invisible(x)
}

#' @export
#'
print.unresolvedValue <- function(x, ...) {
  cat("unresolved value\n")
  invisible(x)
}
