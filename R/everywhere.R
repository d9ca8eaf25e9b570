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
#' [require_daemons()]). The values of the evaluations are discarded: an
#' error in one of them is not reported, so check the set-up with a [mirai()]
#' afterwards if needed.
#'
#' @inheritParams mirai
#' @param ... (optional) **either** named objects (name = value pairs) to be
#'   placed in the global environment of every daemon, where they stay,
#'   **or** a single environment whose objects are taken.
#' @param .args (optional) **either** a named list of objects, a list of
#'   objects given by their symbols, **or** an environment: these are local to
#'   the evaluation and do not stay.
#' @param .compute \[default NULL\] character value for the compute profile
#'   to use, or NULL for the current default profile ('default' unless changed
#'   by [with_daemons()] or [local_daemons()]).
#'
#' @return Invisible NULL.
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
#' daemons(0)
#'
#' }
#'
#' @export
#'
everywhere <- function(.expr, ..., .args = list(), .compute = NULL) {
  call <- sys.call()
  if (missing(.expr)) stop_arg(._[["expr_missing"]], call)
  expr <- substitute(.expr)
  if (is.symbol(expr)) {
    obj <- get0(as.character(expr), envir = parent.frame())
    if (is.language(obj)) expr <- obj
  }
  globals <- if (...length()) mirai_dots(list(...), call)
  args <- if (length(.args)) mirai_args(.args, substitute(.args), call) else list()
  .compute <- compute_profile(.compute, call)
  require_daemons(.compute, call = call)
  envir <- ..[[.compute]]
  task <- list(expr, globals, args, NULL, everywhere = TRUE)
  host_everywhere(envir[["host"]], task)
  invisible()
}
