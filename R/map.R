# mirai: mapping a function over data ------------------------------------------------

#' mirai Map
#'
#' Asynchronous parallel map of a function over a list or vector, or over the
#' rows of a data frame or matrix, using [mirai()] on [daemons()]. Returns
#' at once a 'mirai_map', a list of 'mirai', one for each element or row.
#'
#' Daemons must have been set for the compute profile (see
#' [require_daemons()]); tasks are distributed over them by the dispatcher
#' (or round-robin with `dispatcher = FALSE`).
#'
#' A data frame or a matrix is mapped over its rows: the elements of a row
#' are passed to `.f` as arguments, named by the column names, so
#' `.f(a = x$a[i], b = x$b[i])` for a data frame `x` with columns `a` and
#' `b`. A matrix without column names passes its rows' elements by position.
#'
#' @section Collecting Results:
#'
#' `x[]` waits for and returns the results as a list, in the order of `.x`
#' (keeping its names). Options go between the brackets, alone or together:
#' \itemize{
#'   \item `x[.flat]` combines the results into a vector, as
#'   `unlist(results, recursive = FALSE)` does: results of any length are
#'   concatenated, lists are flattened by one level, and attributes such as
#'   classes are dropped (factors are combined into a factor), as in the
#'   original \pkg{mirai}. The results are checked first, in order: a result
#'   that is an error, or whose type ([typeof()]) differs from the first's,
#'   cancels the tasks still in progress and raises an error.
#'   \item `x[.progress]` shows a progress bar while waiting: from the
#'   \pkg{cli} package if installed, else a simple text bar.
#'   \item `x[.stop]` stops at the first result that is an error: the tasks
#'   still in progress are cancelled (see [stop_mirai()]) and an R error
#'   names the failing element and its message.
#' }
#' For example `x[.stop, .progress]`. The options are also exported objects
#' (see [.flat]), so that `x[mirai::.flat]` works without attaching the
#' package. [collect_mirai()] takes the same options as a character vector:
#' `collect_mirai(x, c(".stop", ".progress"))`.
#' An error value in the results (without `.stop`) is returned in its place.
#'
#' @param .x a list or atomic vector (mapped over its elements), or a data
#'   frame or matrix (mapped over its rows).
#' @param .f a function to apply to each element (or row) of `.x`.
#' @param ... (optional) named objects (name = value pairs), or a single
#'   environment, placed in the global environment of the daemons for the
#'   evaluations, as for [mirai()]: for example, helper functions that `.f`
#'   calls.
#' @param .args (optional) a list of further constant arguments to `.f`,
#'   passed after the element (or the row's elements), by name if named.
#' @param .promise (optional) a function, or a list of two functions, that
#'   are attached to the promise of each 'mirai' with [promises::then()]: the
#'   first on fulfilment, the second on rejection. Requires the \pkg{promises}
#'   package.
#' @param .compute \[default NULL\] character value for the compute profile
#'   to use, or NULL for the current default profile ('default' unless changed
#'   by [with_daemons()] or [local_daemons()]).
#'
#' @return A 'mirai_map' (a list of 'mirai' objects).
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' daemons(2)
#'
#' mp <- mirai_map(1:3, function(x) x * 2)
#' mp
#' mp[]
#' mp[.flat]
#'
#' df <- data.frame(a = 1:3, b = c("x", "y", "z"))
#' mirai_map(df, function(a, b) paste(b, a))[.flat]
#'
#' mirai_map(list(a = 1, b = 2), function(x, y) x + y, .args = list(y = 10))[]
#'
#' ml <- mirai_map(1:10, function(x) {Sys.sleep(0.2); x}, .compute = NULL)
#' ml[.progress]
#'
#' daemons(0)
#'
#' }
#'
#' @export
#'
mirai_map <- function(.x, .f, ..., .args = list(), .promise = NULL, .compute = NULL) {
  call <- sys.call()
  if (missing(.x) || !(is.list(.x) || is.atomic(.x)) || is.null(.x))
    stop_arg(._[["map_x"]], call)
  if (missing(.f) || !is.function(.f)) stop_arg(._[["map_f"]], call)
  globals <- if (...length()) mirai_dots(list(...), call)
  if (!is.list(.args)) stop_arg(._[["map_args"]], call)
  .promise <- check_promise(.promise, call)
  .compute <- compute_profile(.compute, call)
  require_daemons(.compute, call = call)
  envir <- ..[[.compute]]

  rows <- is.data.frame(.x) || is.matrix(.x)
  n <- if (rows) nrow(.x) else length(.x)
  element <- if (is.data.frame(.x)) {
    columns <- as.list(.x)
    function(i) lapply(columns, function(column) column[[i]])
  } else if (is.matrix(.x)) {
    function(i) as.list(.x[i, , drop = TRUE])
  } else if (is.list(.x)) {
    function(i) list(.subset2(.x, i))
  } else {
    function(i) list(.x[[i]])
  }
  keys <- if (is.data.frame(.x)) {
    if (.row_names_info(.x) > 0L) row.names(.x)
  } else if (is.matrix(.x)) {
    rownames(.x)
  } else {
    names(.x)
  }

  # Arguments are quoted only where they must be (language objects), so that
  # an error's call reads `.f(2L)` rather than `.f(base::quote(2L))`.
  expr <- quote(do.call(".f", .a, quote = .q))
  out <- vector("list", n)
  sync <- isTRUE(envir[["sync"]])
  seeded <- envir[["seeded"]]
  for (i in seq_len(n)) {
    a <- c(element(i), .args)
    quoted <- if (length(a) == 1L) is.language(.subset2(a, 1L)) else
      any(vapply(a, is.language, logical(1L)))
    task <- list(expr, globals, list(.f = .f, .a = a, .q = quoted),
                 if (seeded) nextstream(.compute))
    out[[i]] <- if (sync) settled_mirai(sync_evaluate(envir, task)) else
      new_mirai(submit_task(envir, task, NULL))
  }
  names(out) <- keys
  if (!is.null(.promise)) for (m in out) attach_promise(m, .promise)
  `class<-`(out, "mirai_map")
}

check_promise <- function(.promise, call) {
  if (is.null(.promise)) return(NULL)
  if (is.function(.promise)) .promise <- list(.promise)
  if (!is.list(.promise) || !length(.promise) || length(.promise) > 2L ||
      !all(vapply(.promise, function(f) is.null(f) || is.function(f), logical(1L))))
    stop_arg(._[["map_promise"]], call)
  if (!requireNamespace("promises", quietly = TRUE))
    stop_arg(sprintf(._[["needs_package"]], "promises", "'.promise'"), call)
  .promise
}

attach_promise <- function(m, .promise) {
  promises::then(as_promise_mirai(m), onFulfilled = .promise[[1L]],
                 onRejected = if (length(.promise) > 1L) .promise[[2L]])
  invisible(m)
}

# Collecting -----------------------------------------------------------------------

#' @rdname collect_mirai
#' @param ... for `x[...]` on a 'mirai_map' `x`: any of the collection
#'   options `.flat`, `.progress` and `.stop`, or none (see [mirai_map()]).
#' @export
#'
`[.mirai_map` <- function(x, ...) {
  env <- parent.frame()
  options <- as.list(match.call(expand.dots = FALSE)[["..."]])
  options <- Filter(function(o) !identical(o, quote(expr = )), options)
  options <- unlist(lapply(options, function(o) {
    if (is.symbol(o) && as.character(o) %in% map_options) return(as.character(o))
    value <- tryCatch(eval(o, env), error = function(e) NULL)
    if (!is.character(value) || !length(value)) return(NA_character_)
    value
  }), use.names = FALSE)
  call <- sys.call()
  call[[1L]] <- as.name("[")
  collect_map(x, as.character(options), call)
}

#' mirai Map Options
#'
#' The collection options of a 'mirai_map', as objects: `x[.flat]` may also
#' be written `x[mirai::.flat]`, and `c(.stop, .progress)` is a character
#' vector of options for [collect_mirai()]. Each is its own name as a
#' character string.
#'
#' @inheritSection mirai_map Collecting Results
#'
#' @examples
#' .flat
#' c(.stop, .progress)
#'
#' @keywords internal
#' @export
#'
.flat <- ".flat"

#' @rdname dot-flat
#' @export
#'
.progress <- ".progress"

#' @rdname dot-flat
#' @export
#'
.stop <- ".stop"

map_options <- c(".flat", ".progress", ".stop")

# The collection options of collect_mirai(): a character vector of option
# names, or a list or vector whose names are the options, where the value of
# `.progress` configures the cli progress bar (a name, or a list of
# arguments to cli::cli_progress_bar()).
collect_options <- function(x, options, call) {
  if (length(names(options))) {
    progress <- if (".progress" %in% names(options)) options[[".progress"]]
    return(collect_map(x, names(options), call,
                       if (is.character(progress) || is.list(progress)) progress))
  }
  collect_map(x, options, call)
}

# Wait for and return the values of list `x` (of mirai and other objects), in
# order, applying the collection `options`. With `.stop`, the elements after
# the one awaited are looked at between slices of the wait, so an error is
# seen as soon as it arrives, whichever element it is. With `.flat`, each
# value is checked as it is collected: an error, or a type other than the
# first value's, ends the collection.
collect_map <- function(x, options, call, progress = NULL) {
  if (!is.character(options) || anyNA(options) || !all(options %in% map_options))
    stop_arg(._[["map_options"]], call)
  flat <- ".flat" %in% options
  stop_early <- ".stop" %in% options
  n <- length(x)
  bar <- if (".progress" %in% options && n) progress_bar(n, environment(), progress)
  fail <- function(msg) {
    if (!is.null(bar)) bar$done()
    stop_mirai(unclass(x))
    stop_arg(msg, call)
  }
  element <- function(i) {
    name <- names(x)[i]
    if (length(name) && !is.na(name) && nzchar(name)) sprintf("%d ('%s')", i, name) else i
  }
  scan <- function(from) {
    for (j in seq.int(from, length.out = max(0L, n - from + 1L))) {
      item <- .subset2(x, j)
      if (!is_mirai(item)) next
      handle <- .subset2(item, ".handle")
      if (!is.null(handle) && !task_ready(handle)) next
      value <- item[["data"]]
      if (is_error_value(value))
        fail(sprintf(._[["map_stopped"]], element(j), error_text(value)))
    }
  }
  values <- vector("list", n)
  type <- NULL
  for (i in seq_len(n)) {
    item <- .subset2(x, i)
    if (inherits(item, "mirai")) {
      handle <- .subset2(item, ".handle")
      if (stop_early && !is.null(handle) && is.null(.subset2(item, ".process"))) {
        while (!task_wait(handle, 200L)) {
          scan(i + 1L)
          autoscale_tick()
          Sys.sleep(0)
        }
      }
      value <- wait_mirai(item)[["data"]]
    } else {
      value <- item
    }
    if (stop_early && is_error_value(value))
      fail(sprintf(._[["map_stopped"]], element(i), error_text(value)))
    if (flat) {
      if (is_error_value(value))
        fail(sprintf(._[["map_flat_error"]], element(i), error_text(value)))
      if (is.null(type)) {
        type <- typeof(value)
      } else if (typeof(value) != type) {
        fail(sprintf(._[["map_flat"]], type, typeof(value), element(i)))
      }
    }
    if (!is.null(value)) values[[i]] <- value
    if (!is.null(bar)) bar$update(i)
  }
  if (!is.null(bar)) bar$done()
  names(values) <- names(x)
  if (flat) values <- unlist(values, recursive = FALSE)
  values
}

# The message of an error value, for the errors raised by `.stop` and `.flat`.
error_text <- function(value) {
  if (is_mirai_error(value)) return(as.character(value))
  if (is_mirai_interrupt(value)) return("interrupted")
  code <- as.integer(unclass(value))
  msg <- error_messages[as.character(code)]
  sprintf("errorValue %d (%s)", code, if (is.na(msg)) "Unknown error" else msg)
}

# A progress bar over `total` steps: cli's when installed (named `options`
# if a string, or made with the arguments in `options` if a list), else
# plain text. The bar is closed when `frame` exits, if not before.
progress_bar <- function(total, frame, options = NULL) {
  if (requireNamespace("cli", quietly = TRUE)) {
    args <- if (is.list(options)) options else list(name = options)
    args <- c(args, list(total = total, clear = FALSE, .envir = frame))
    id <- do.call(cli::cli_progress_bar, args[!duplicated(names(args))])
    list(
      update = function(i) cli::cli_progress_update(id = id, set = i, .envir = frame),
      done = function() cli::cli_progress_done(id = id, .envir = frame)
    )
  } else {
    width <- 40L
    finished <- FALSE
    draw <- function(i) {
      filled <- floor(width * i / total)
      cat(sprintf("\r[%s%s] %d/%d", strrep("=", filled), strrep(" ", width - filled),
                  i, total), file = stderr())
    }
    list(
      update = draw,
      done = function() if (!finished) {
        finished <<- TRUE
        cat("\n", file = stderr())
      }
    )
  }
}

#' @export
#'
print.mirai_map <- function(x, ...) {
  done <- sum(!vapply(x, unresolved, logical(1L)))
  cat(sprintf("< mirai map [%d/%d] >\n", done, length(x)))
  invisible(x)
}
