# mirai: compute profiles, cancellation, racing, queue and serialization --------

# The compute profile that `.compute = NULL` stands for: 'default', unless
# with_daemons() or local_daemons() made another the default for a while.
current_profile <- function() {
  profile <- .state[["compute"]]
  if (is.null(profile)) "default" else profile
}

# Validate `.compute` and resolve NULL to the current default profile.
compute_profile <- function(.compute, call) {
  if (is.null(.compute)) return(current_profile())
  if (!is_string(.compute)) stop_arg(._[["compute"]], call)
  .compute
}

# Profiles and daemons -------------------------------------------------------------

#' Information on Daemons
#'
#' `info()` returns the numbers that describe a compute profile at a glance:
#' its daemons and its tasks.
#'
#' @param .compute \[default NULL\] character value for the compute profile
#'   to query, or NULL for the current default profile ('default' unless
#'   changed by [with_daemons()] or [local_daemons()]).
#'
#' @return A named integer vector: `connections` (daemons connected now),
#'   `cumulative` (daemons that have ever connected), `awaiting` (tasks
#'   queued), `executing` (tasks at a daemon) and `completed` (tasks done);
#'   or NULL if daemons are not set for the compute profile.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' daemons(2)
#' info()
#' daemons(0)
#'
#' }
#'
#' @export
#'
info <- function(.compute = NULL) {
  .compute <- compute_profile(.compute, sys.call())
  envir <- ..[[.compute]]
  if (is.null(envir)) return(NULL)
  s <- host_status(envir[["host"]])
  c(connections = as.integer(s[["connections"]]),
    cumulative = length(s[["online"]]),
    awaiting = as.integer(s[["awaiting"]]),
    executing = as.integer(s[["executing"]]),
    completed = as.integer(s[["completed"]]))
}

#' Query if Daemons are Set
#'
#' `daemons_set()` tells whether daemons are set for a compute profile;
#' `require_daemons()` raises an error if they are not, for use at the start
#' of functions that need them.
#'
#' @inheritParams info
#' @param call \[default environment()\] the execution environment of a
#'   running function, whose call the error then names: pass `environment()`
#'   from within your function. The default names `require_daemons()` itself.
#'   A call, or NULL, is also accepted.
#'
#' @return `daemons_set()`: logical TRUE or FALSE. `require_daemons()`:
#'   invisible TRUE, or else an error.
#'
#' @examples
#' daemons_set()
#' try(require_daemons())
#'
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' daemons(1)
#' daemons_set()
#' require_daemons()
#' daemons(0)
#'
#' }
#'
#' @export
#'
daemons_set <- function(.compute = NULL) {
  .compute <- compute_profile(.compute, sys.call())
  !is.null(..[[.compute]])
}

#' @rdname daemons_set
#' @export
#'
require_daemons <- function(.compute = NULL, call = environment()) {
  .compute <- compute_profile(.compute, sys.call())
  if (!is.null(..[[.compute]])) return(invisible(TRUE))
  if (is.environment(call)) call <- frame_call(call)
  if (!is.null(call) && !is.call(call)) call <- NULL
  profile <- if (.compute == "default") "" else sprintf(", .compute = \"%s\"", .compute)
  stop_arg(sprintf(._[["no_daemons"]], .compute, profile), call)
}

# The call of the function whose evaluation frame is `frame`, if any.
frame_call <- function(frame) {
  frames <- sys.frames()
  for (i in rev(seq_along(frames))) if (identical(frames[[i]], frame)) return(sys.call(i))
  NULL
}

#' Is the Code Running on a Daemon
#'
#' `on_daemon()` tells whether the code calling it runs inside a [mirai()]
#' evaluation on a daemon (including the single-use daemon of a mirai sent
#' with no daemons set), rather than in the host session.
#'
#' @return Logical TRUE or FALSE.
#'
#' @examples
#' on_daemon()
#'
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' mirai(mirai::on_daemon())[]
#'
#' }
#'
#' @export
#'
on_daemon <- function() isTRUE(.state[["daemon"]])

#' With Daemons
#'
#' Make a compute profile the default one: for the duration of `expr`
#' (`with_daemons()`), or until the function calling `local_daemons()`
#' returns. Within, [mirai()], [mirai_map()], [everywhere()], [daemons()],
#' [status()], [info()] and the other functions whose `.compute` is left at
#' NULL use this profile. An explicit `.compute` (including `"default"`)
#' still names a profile directly.
#'
#' @param .compute character value for the compute profile to make the
#'   default.
#' @param expr an expression to evaluate.
#' @param frame \[default parent.frame()\] the frame (environment) of the
#'   function whose exit restores the previous default.
#'
#' @return `with_daemons()`: the value of `expr`. `local_daemons()`: the
#'   previous default profile, invisibly.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' daemons(1, .compute = "cpu")
#' with_daemons("cpu", mirai(Sys.getpid())[])
#'
#' f <- function() {
#'   local_daemons("cpu")
#'   mirai(Sys.getpid())[]
#' }
#' f()
#' daemons(0, .compute = "cpu")
#'
#' }
#'
#' @export
#'
with_daemons <- function(.compute, expr) {
  if (!is_string(.compute)) stop_arg(._[["compute_set"]], sys.call())
  previous <- .state[["compute"]]
  .state[["compute"]] <- .compute
  on.exit(.state[["compute"]] <- previous)
  expr
}

#' @rdname with_daemons
#' @export
#'
local_daemons <- function(.compute, frame = parent.frame()) {
  call <- sys.call()
  if (!is_string(.compute)) stop_arg(._[["compute_set"]], call)
  if (!is.environment(frame)) stop_arg(._[["frame"]], call)
  previous <- .state[["compute"]]
  .state[["compute"]] <- .compute
  restore <- function() .state[["compute"]] <- previous
  do.call(base::on.exit, list(as.call(list(restore)), TRUE, FALSE), envir = frame)
  invisible(if (is.null(previous)) "default" else previous)
}

# Cancelling and racing ------------------------------------------------------------

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
#'   cancelled, FALSE if it had already resolved (or is not a 'mirai').
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
  if (!is.list(x)) stop_arg(._[["stop_mirai"]], sys.call())
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
#'
#' @return The integer index of a resolved 'mirai' (the first, if several
#'   have resolved), or 0L if `x` holds no 'mirai'.
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
race_mirai <- function(x) {
  if (is_mirai(x)) x <- list(x)
  if (!is.list(x)) stop_arg(._[["race_mirai"]], sys.call())
  repeat {
    i <- wait_any(x, 200L)
    if (i >= 0L) return(i)
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

# A bounded queue ------------------------------------------------------------------

# Submit `task` to the profile's host (serialized once). With a memory cap
# set on the profile, a full queue makes this wait for room in short
# interruptible slices, or, for try_mirai(), return NULL at once.
submit_task <- function(envir, task, timeout, wait = TRUE) {
  handle <- host_submit(envir[["host"]], task, timeout, wait)
  if (wait && !is.null(envir[["memory"]]))
    while (!task_wait_room(handle, 200L)) Sys.sleep(0)
  handle
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
  expr <- substitute(.expr)
  if (is.symbol(expr)) expr <- held_language(expr, parent.frame())
  send_mirai(expr, if (...length()) mirai_dots(list(...), sys.call()),
             if (length(.args)) mirai_args(.args, substitute(.args), sys.call()) else list(),
             .timeout, .compute, sys.call(), wait = FALSE)
}

# Custom serialization -------------------------------------------------------------

#' Custom Serialization Functions
#'
#' Returns a configuration for custom serialization and unserialization of
#' non-system reference objects (such as an external pointer of a class that
#' R itself cannot serialize), to be supplied as the `serial` argument of
#' [daemons()]. Objects of the classes named travel between host and daemons
#' through these functions, both ways.
#'
#' @param class character string (or vector) of the class(es) of object that
#'   the functions apply to, e.g. `"ArrowTabular"` or
#'   `c("torch_tensor", "ArrowTabular")`.
#' @param sfunc a function (or list of functions, one for each class) that
#'   takes an object of the class and returns a raw vector.
#' @param ufunc a function (or list of functions, one for each class) that
#'   takes a raw vector and returns the object again.
#'
#' @return A list of `class` (a character vector), `sfunc` and `ufunc` (each
#'   a list of functions of the same length as `class`).
#'
#' @examples
#' cfg <- serial_config("test_cls", function(x) serialize(x, NULL), unserialize)
#' str(cfg)
#'
#' @export
#'
serial_config <- function(class, sfunc, ufunc) {
  call <- sys.call()
  if (!is.character(class) || !length(class) || anyNA(class) || !all(nzchar(class)))
    stop_arg(._[["serial_class"]], call)
  n <- length(class)
  as_functions <- function(f, name) {
    if (is.function(f)) f <- list(f)
    if (!is.list(f) || length(f) != n || !all(vapply(f, is.function, logical(1L))))
      stop_arg(sprintf(._[["serial_func"]], name), call)
    unname(f)
  }
  list(class = class, sfunc = as_functions(sfunc, "sfunc"),
       ufunc = as_functions(ufunc, "ufunc"))
}

is_serial_config <- function(x) {
  is.list(x) && identical(names(x), c("class", "sfunc", "ufunc")) &&
    is.character(x[["class"]]) && length(x[["class"]]) > 0L &&
    is.list(x[["sfunc"]]) && is.list(x[["ufunc"]]) &&
    length(x[["sfunc"]]) == length(x[["class"]]) &&
    length(x[["ufunc"]]) == length(x[["class"]]) &&
    all(vapply(c(x[["sfunc"]], x[["ufunc"]]), is.function, logical(1L)))
}

# The hooks of R's serializer for a serial_config(): `out` is called on each
# reference object serialized (external pointers, environments) and returns
# NULL to serialize it as usual, or the index of its class and the ASCII
# serialization of what that class's sfunc made of it; `inp` reverses it.
serial_hooks <- function(cfg) {
  class <- cfg[["class"]]
  sfunc <- cfg[["sfunc"]]
  ufunc <- cfg[["ufunc"]]
  out <- function(x) {
    for (i in seq_along(class)) if (inherits(x, class[i]))
      return(c(as.character(i), rawToChar(serialize(sfunc[[i]](x), NULL, ascii = TRUE))))
    NULL
  }
  inp <- function(s) ufunc[[as.integer(s[1L])]](unserialize(charToRaw(s[2L])))
  list(out = out, inp = inp)
}

# Custom serialization for a profile: at the host now, and at each daemon
# (through everywhere(), so also those that connect later) before its tasks.
set_serial <- function(envir, cfg) {
  hooks <- serial_hooks(cfg)
  host_serial(envir[["host"]], hooks[["out"]], hooks[["inp"]])
  expr <- as.call(list(set_daemon_serial, cfg))
  host_everywhere(envir[["host"]], list(expr, NULL, list(), NULL, everywhere = TRUE))
  invisible()
}

# Evaluated at a daemon, by the task that set_serial() sends.
set_daemon_serial <- function(cfg) {
  hooks <- serial_hooks(cfg)
  daemon_serial(.state[["link"]], hooks[["out"]], hooks[["inp"]])
  invisible()
}
