#' mirai: Minimalist Async Evaluation Framework for R
#'
#' Designed for simplicity, a 'mirai' evaluates an R expression asynchronously
#' in a parallel process, locally or distributed over the network, with the
#' result automatically available upon completion. Daemons dial into the
#' host, which hands out tasks through an in-process dispatcher written in
#' Rust, with first-in first-out scheduling, timeouts and per-daemon status.
#'
#' @section Notes:
#'
#'  For local mirai requests, the default transport for inter-process
#'  communications is an abstract Unix socket (Linux), see [local_url()].
#'
#'  Remote daemons dial into the host over TCP or WebSockets, optionally
#'  secured with TLS, see the `url` argument of [daemons()] and [daemon()],
#'  and [host_url()].
#'
#' @section Key Functions:
#'
#'  - [mirai()]: evaluate an expression asynchronously.
#'  - [daemons()]: set up persistent daemons, locally or for remote daemons
#'    to dial into.
#'  - [daemon()]: the persistent executor run by each daemon process.
#'  - [call_mirai()], [collect_mirai()], [unresolved()]: wait for and query
#'    results.
#'  - [status()]: connections and task counts.
#'
#' @useDynLib mirai, .registration = TRUE
#'
#' @docType package
#' @name mirai-package
#' @keywords internal
NULL

# Package state shared by the host and daemon sides: the version string sent
# on connecting, and the message size limit.
.state <- new.env(parent = emptyenv())

# The task handle of each mirai environment, read by the copy of
# mirai_data() that it encloses.
utils::globalVariables(".handle")

# The value a daemon's handler returns from eval_task(), assigned into its
# frame (see return_from_task()).
utils::globalVariables(".mirai_value")

.onLoad <- function(libname, pkgname) {
  .state[["version"]] <- as.character(getNamespaceVersion(pkgname))
  .state[["max_bytes"]] <- 2^40
  .state[["max_message"]] <- 2^34
  .state[["mirai_id"]] <- 0L
}

.onUnload <- function(libpath) {
  for (.compute in names(..)) reset_profile(.compute, exit = FALSE)
  library.dynam.unload("mirai", libpath)
}
