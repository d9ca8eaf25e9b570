#' Dispatcher
#'
#' Runs a dispatcher in this R process: it dials into a host as a daemon
#' would, and hands the tasks it receives to daemons of its own, first in,
#' first out, to whichever is idle. Use it to put a dispatcher next to a group
#' of daemons on another machine, with the host set up by
#' `daemons(url = ..., dispatcher = FALSE)`; hosts see a dispatcher as one
#' connection that takes any number of tasks at once.
#'
#' Tasks and results pass through it as they are, never read or re-made in R;
#' a task cancelled at the host (with [stop_mirai()], or by its timeout) is
#' cancelled on the dispatcher's daemon too, which stops evaluating it. A task
#' sent by [everywhere()] runs on every daemon of the dispatcher (at least one:
#' it waits for the first to connect), and its value at the host is the first
#' error among theirs, else the value of the first daemon.
#'
#' The dispatcher exits when its connection to the host drops (after
#' `daemons(0)` at the host, for instance), and its own daemons then exit too.
#'
#' @param host the character URL of the host to dial into, e.g.
#'   'tcp://hostname:5555'.
#' @param url \[default NULL\] the character URL at which this dispatcher
#'   listens for its daemons; NULL to launch `n` local daemons over a local
#'   socket.
#' @param n \[default NULL\] integer number of daemons: launched on this
#'   machine when `url` is NULL; with `url`, as for [daemons()].
#' @param ... (optional) arguments for the daemons: `autoexit`, `cleanup`,
#'   `output`, `maxtasks`, `idletime`, `walltime`, `timerstart`.
#' @param asyncdial \[default FALSE\] whether to keep retrying the dial into
#'   `host` until it succeeds, as for [daemon()].
#' @param tls \[default NULL\] for a 'tls+tcp://' or 'wss://' `host`: the
#'   certificate authority chain, as for [daemon()].
#' @param token \[default NULL\] the host's invitation secret, when it
#'   requires one.
#'
#' @return Invisible NULL, once the host has gone away.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' # On the host (port 0: a free port is chosen):
#' url <- daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE)
#' # In another R process (e.g. `Rscript -e`), with the URL printed here:
#' url
#' # mirai::dispatcher(url, n = 4)
#' daemons(0)
#'
#' }
#'
#' @export
#'
dispatcher <- function(host, url = NULL, n = NULL, ..., asyncdial = FALSE,
                       tls = NULL, token = NULL) {
  call <- sys.call()
  if (!is_string(host)) stop_arg(._[["dispatcher_host"]], call)
  if (is.null(url) && is.null(n)) stop_arg(._[["dispatcher_n"]], call)
  if (!is.null(n) && !(is_count(n) && n >= 1)) stop_arg(._[["dispatcher_n"]], call)
  check_daemon_arg("asyncdial", asyncdial, call)
  if (!is.null(token) && !is_string(token)) stop_arg(._[["token"]], call)
  tls_ca <- daemon_tls_ca(tls, call)
  if (is.null(tls_ca) && is_tls_url(host)) stop_arg(sprintf(._[["tls_required"]], host), call)

  if ("autoscale" %in% names(list(...))) stop_arg(._[["dispatcher_autoscale"]], call)
  profile <- sprintf("dispatcher-%s", random_hex(6L))
  args <- c(if (!is.null(n)) list(n = as.integer(n)), list(url = url, dispatcher = TRUE),
            list(...), list(.compute = profile))
  do.call(daemons, args)
  on.exit(daemons(0, .compute = profile))
  local <- ..[[profile]][["host"]]

  relay <- tryCatch(
    daemon_connect(host, asyncdial, token, .state[["max_bytes"]], .state[["version"]], tls_ca,
                   relay_to = local),
    error = function(e) stop_arg(sprintf(._[["url_invalid"]], conditionMessage(e)), call)
  )
  # The link to the host closes before the local daemons: the host then
  # requeues the tasks in flight, instead of receiving them as errors.
  on.exit(relay_close(relay), add = TRUE, after = FALSE)
  while (!tryCatch(relay_wait(relay, 50L),
                   error = function(e) stop_arg(sprintf(._[["connect"]], host,
                                                        conditionMessage(e)), call)))
    Sys.sleep(0)
  invisible()
}
