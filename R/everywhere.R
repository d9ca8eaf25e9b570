# mirai: evaluating on every daemon ------------------------------------------------

#' Evaluate Everywhere
#'
#' Evaluates an expression once on every daemon of a compute profile: those
#' connected now, and those that connect later (before they take any other
#' task). What it sets up persists on the daemons: packages it loads, objects
#' it places in the global environment (including those passed as `...`) and
#' options it sets become part of the state that the daemons' cleanup after
#' each task returns to. Use it to load packages, define helper functions or
#' set options for all later tasks.
#'
#' Daemons must have been set for the compute profile (see
#' [require_daemons()]). The value returned is a 'mirai_map' with one 'mirai'
#' for each daemon connected when `everywhere()` was called (or for at least
#' `.min` daemons): collect it, for example with `[]`, to wait until the
#' set-up has run on them and to see an error on any of them. The daemons
#' that connect later run the expression too, but are not part of it.
#'
#' @inheritParams mirai
#' @param ... (optional) **either** named objects (name = value pairs) to be
#'   placed in the global environment of every daemon, where they stay,
#'   **or** a single environment whose objects are taken.
#' @param .args (optional) **either** a named list of objects, a list of
#'   objects given by their symbols, **or** an environment: these are local to
#'   the evaluation and do not stay.
#' @param .min \[default 1L\] the minimum number of daemons the returned
#'   'mirai_map' covers: when fewer are connected, it also holds a 'mirai'
#'   for each of the next daemons to connect, until there are `.min`. Waiting
#'   on it is then a point of synchronization, for example once remote
#'   daemons are launched.
#' @param .compute \[default NULL\] character value for the compute profile
#'   to use, or NULL for the current default profile ('default' unless changed
#'   by [with_daemons()] or [local_daemons()]).
#'
#' @return Invisibly, a 'mirai_map' (a list of 'mirai'), one for each daemon
#'   the expression was sent to, which resolves to that daemon's value (or
#'   error).
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' daemons(2)
#' everywhere(library(tools))
#' mirai("package:tools" %in% search())[]
#'
#' everywhere({}, helper = function(x) x + 1)
#' mirai(helper(1))[]
#'
#' # wait for the set-up, and see any error
#' everywhere(stop("the set-up failed"))[]
#' daemons(0)
#'
#' }
#'
#' @export
#'
everywhere <- function(.expr, ..., .args = list(), .min = 1L, .compute = NULL) {
  call <- sys.call()
  if (missing(.expr)) stop_arg(._[["expr_missing"]], call)
  expr <- substitute(.expr)
  if (is.symbol(expr)) expr <- held_language(expr, parent.frame())
  globals <- if (...length()) mirai_dots(list(...), call)
  args <- if (length(.args)) mirai_args(.args, substitute(.args), call) else list()
  if (!(is_count(.min) && .min <= .Machine$integer.max)) stop_arg(._[["everywhere_min"]], call)
  .compute <- compute_profile(.compute, call)
  require_daemons(.compute, call = call)
  envir <- ..[[.compute]]
  task <- list(expr, globals, args, NULL, everywhere = TRUE)
  out <- if (isTRUE(envir[["sync"]])) {
    list(settled_mirai(sync_evaluate(envir, task)))
  } else {
    lapply(host_everywhere(envir[["host"]], task, as.integer(.min)), new_mirai)
  }
  invisible(`class<-`(out, "mirai_map"))
}
