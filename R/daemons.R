# mirai: daemons, compute profiles and status -------------------------------------

# Compute profiles, keyed by `.compute`. Each is an environment holding: host
# (the binding's handle), urls, dispatcher, n, value (what daemons() returned),
# token, dots (daemon arguments), processes (launched), seeded and stream.
.. <- new.env(parent = emptyenv())

#' Daemons (Set Persistent Processes)
#'
#' Set 'daemons' or persistent background processes to receive [mirai()]
#' requests. Specify `n` to create daemons on the local machine. Specify `url`
#' for receiving connections from remote daemons (for distributed computing
#' across the network). By default, dispatcher ensures optimal scheduling.
#'
#' Use `daemons(0)` to reset daemon connections:
#' \itemize{
#'   \item A reset is required before revising settings for the same compute
#'   profile, otherwise changes are not registered (a message says so).
#'   \item All connected daemons exit automatically.
#'   \item \pkg{mirai} reverts to the default behaviour of creating a new
#'   background process for each request.
#'   \item Any unresolved 'mirai' will return an 'errorValue' 7 (Object
#'   closed) after a reset.
#' }
#'
#' If the host session ends, all connected daemons automatically exit as soon
#' as their connections are dropped (unless the daemons were started with
#' `autoexit = FALSE`). If a daemon is processing a task, it will exit as soon
#' as the task is complete.
#'
#' To reset persistent daemons started with `autoexit = FALSE`, use
#' `daemons(NULL)` instead, which also sends exit instructions to all
#' connected daemons prior to resetting. Daemons launched locally by
#' `daemons(n)` that have not exited 2 seconds after a reset are terminated.
#'
#' For historical reasons, `daemons()` with no arguments returns the value of
#' [status()].
#'
#' @section Local Daemons:
#'
#' Daemons provide a potentially more efficient solution for asynchronous
#' operations as new processes no longer need to be created on an *ad hoc*
#' basis.
#'
#' Supply the argument `n` to set the number of daemons. New background
#' [daemon()] processes are automatically created on the local machine
#' (started with `Rscript` and the library paths of this session, see
#' [.libPaths()]) connecting back to the host over the fastest local
#' transport (abstract Unix sockets on Linux, see [local_url()]).
#' `daemons(n)` returns once all `n` have connected. If a launched daemon
#' exits before connecting (for example because a package cannot be found),
#' `daemons()` fails at once with that process's own error output.
#'
#' @section Dispatcher:
#'
#' By default `dispatcher = TRUE`. Dispatcher runs inside this R session, on
#' background threads of the networking core (it is not an extra R process).
#' It keeps a first-in first-out queue of tasks and sends each task only to
#' a daemon that is idle, tracking what each daemon is doing.
#'
#' By specifying `dispatcher = FALSE`, tasks are sent to connected daemons
#' immediately, in round-robin fashion. Optimal scheduling is not guaranteed
#' as the duration of tasks cannot be known *a priori*, such that tasks can
#' be queued at one daemon while other daemons remain idle. Nevertheless,
#' this provides a resource-light approach suited to working with
#' similar-length tasks, or where concurrent tasks typically do not exceed
#' available daemons.
#'
#' @section Distributed Computing:
#'
#' Specifying `url` allows tasks to be distributed across the network: the
#' host listens at `url` and daemons started elsewhere with
#' `Rscript -e 'mirai::daemon("tcp://hostname:5555")'` dial into it. Any
#' number of daemons may dial into the same URL, and join or leave at any
#' time. Specifying the port as zero, e.g. `"tcp://127.0.0.1:0"`, picks a
#' free port; the URL returned (and shown by [status()]) has the real one.
#' When `n` is also supplied, `n` local daemons are launched dialling into
#' `url`. IPv6 addresses are enclosed in square brackets, e.g.
#' `"tcp://[::1]:5555"`.
#'
#' @section Random Numbers:
#'
#' Without `seed`, each launched daemon is given its own L'Ecuyer-CMRG random
#' number stream (from a random start that does not touch this session's
#' `.Random.seed`); results of tasks using random numbers are then not
#' reproducible.
#'
#' With `seed`, a L'Ecuyer-CMRG stream is initialised from the seed (this
#' session's random number state is left as it was) and **each task** is sent
#' with the next stream of the sequence ([parallel::nextRNGStream()]), which
#' the daemon installs before evaluating it. The random numbers of a task
#' therefore depend only on the seed and the order in which the tasks were
#' created, not on which daemon ran it: results are reproducible with
#' `dispatcher = TRUE` and `dispatcher = FALSE` alike, provided the tasks are
#' created in the same order.
#'
#' @section Compute Profiles:
#'
#' By default, the `'default'` compute profile is used. Providing a character
#' value for `.compute` creates a new compute profile with the name
#' specified. Each compute profile retains its own daemons settings, and may
#' be operated independently of each other. Supply the same `.compute` to
#' [mirai()] to send tasks to that profile's daemons, and to `daemons(0)` to
#' reset it.
#'
#' @param n integer number of daemons to launch, `0` to reset, or `NULL` to
#'   reset after sending exit instructions to connected daemons.
#' @param url \[default NULL\] if specified, the character URL or vector of
#'   URLs on the host for remote daemons to dial into, including a port
#'   accepting incoming connections, e.g. 'tcp://hostname:5555' or
#'   'ipc:///tmp/mirai'. Schemes 'tls+tcp://', 'ws://' and 'wss://' are
#'   recognised but are not yet supported by this version.
#' @param remote \[default NULL\] reserved for a remote launch configuration
#'   (not yet supported by this version).
#' @param dispatcher \[default TRUE\] logical value whether to use dispatcher
#'   (first-in first-out scheduling to idle daemons), or else send tasks at
#'   once round-robin (see Dispatcher section).
#' @param ... (optional) additional arguments passed through to [daemon()]
#'   when launching daemons: `autoexit`, `cleanup`, `output`, `maxtasks`,
#'   `idletime`, `walltime` and `timerstart`.
#' @param resilience \[default TRUE\] logical value whether to retry failed
#'   tasks on other daemons (accepted for compatibility; this version returns
#'   an 'errorValue' 19 for a task whose daemon died).
#' @param seed \[default NULL\] (optional) a random seed (single value,
#'   interpreted as an integer), used to initialise the L'Ecuyer-CMRG random
#'   number streams sent with each task (see Random Numbers section).
#' @param tls \[default NULL\] (optional for secure TLS connections) either
#'   the character path to a file containing the PEM-encoded TLS certificate
#'   and associated private key, or a length 2 character vector of
#'   \[i\] the certificate (chain) and \[ii\] the private key.
#' @param pass \[default NULL\] (required only if the private key supplied to
#'   `tls` is encrypted with a password) for security, should be provided
#'   through a function that returns this value, rather than directly.
#' @param .compute \[default 'default'\] character value for the compute
#'   profile to use (each compute profile has its own independent set of
#'   daemons).
#'
#' @return The integer number of daemons set (launching local daemons, with
#'   or without dispatcher), or otherwise the character host URL(s);
#'   invisibly, of class 'miraiDaemons' so that it may be used with [with()].
#'   `daemons()` with no arguments returns [status()].
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' # Create 2 local daemons (using dispatcher)
#' daemons(2)
#' status()
#' # Reset to zero
#' daemons(0)
#'
#' # Create 2 local daemons (not using dispatcher)
#' daemons(2, dispatcher = FALSE)
#' status()
#' # Reset to zero
#' daemons(0)
#'
#' # Set host URL for remote daemons to dial into
#' daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE)
#' status()
#' # Reset to zero
#' daemons(0)
#'
#' # Use with() to evaluate with daemons for the duration of the expression
#' with(
#'   daemons(2),
#'   {
#'     m1 <- mirai(Sys.getpid())
#'     m2 <- mirai(Sys.getpid())
#'     cat(m1[], m2[], "\n")
#'   }
#' )
#'
#' }
#'
#' @export
#'
daemons <- function(n, url = NULL, remote = NULL, dispatcher = TRUE, ...,
                    resilience = TRUE, seed = NULL, tls = NULL, pass = NULL,
                    .compute = "default") {
  call <- sys.call()
  check_compute(.compute, call)
  if (missing(n) && is.null(url)) return(status(.compute))
  if (!missing(n)) {
    if (is.null(n)) return(reset_profile(.compute, exit = TRUE))
    if (!is_count(n)) stop_arg(._[["n"]], call)
    if (n == 0 && is.null(url)) return(reset_profile(.compute, exit = FALSE))
  }
  if (!is.null(url) && !(is.character(url) && length(url) && !anyNA(url) && all(nzchar(url))))
    stop_arg(._[["url"]], call)
  if (!is.null(remote)) {
    if (!is.list(remote)) stop_arg(._[["remote"]], call)
    stop_arg(._[["remote_unsupported"]], call)
  }
  if (!is_flag(dispatcher)) stop_arg(._[["dispatcher"]], call)
  if (!is_flag(resilience)) stop_arg(._[["resilience"]], call)
  if (!is.null(seed) && !(is.numeric(seed) && length(seed) == 1L && is.finite(seed)))
    stop_arg(._[["seed"]], call)
  if (!is.null(tls) && !(is.character(tls) && length(tls) %in% 1:2 && !anyNA(tls)))
    stop_arg(._[["tls"]], call)
  if (!is.null(pass) && !is.function(pass) && !is_string(pass))
    stop_arg(._[["pass"]], call)
  dots <- check_daemon_args(list(...), call)

  envir <- ..[[.compute]]
  if (!is.null(envir)) {
    message(sprintf(._[["revise"]], .compute,
                    if (.compute == "default") "" else sprintf(", .compute = \"%s\"", .compute)))
    return(invisible(envir[["value"]]))
  }

  n <- if (missing(n)) 0L else as.integer(n)
  local <- is.null(url)
  token <- if (local) .Call(wrap__random_hex, 16L)
  host <- tryCatch(
    .Call(wrap__host_listen, if (local) local_url() else url, dispatcher, token,
          .state[["max_bytes"]], .state[["version"]]),
    error = function(e) stop_arg(sprintf(._[["url_invalid"]], conditionMessage(e)), call)
  )
  envir <- new.env(parent = emptyenv())
  envir[["host"]] <- host
  envir[["urls"]] <- .Call(wrap__host_urls, host)
  envir[["dispatcher"]] <- dispatcher
  envir[["n"]] <- n
  envir[["token"]] <- token
  envir[["dots"]] <- dots
  envir[["resilience"]] <- resilience
  envir[["tls"]] <- tls
  envir[["pass"]] <- pass
  envir[["processes"]] <- list()
  envir[["seeded"]] <- !is.null(seed)
  envir[["stream"]] <- if (is.null(seed)) random_stream() else seed_stream(seed)
  value <- if (local || n > 0L) n else envir[["urls"]]
  envir[["value"]] <- structure(value, class = "miraiDaemons", compute = .compute)
  ..[[.compute]] <- envir

  if (n > 0L) {
    ok <- FALSE
    on.exit(if (!ok) reset_profile(.compute, exit = FALSE, kill = TRUE))
    launch_local(envir, n)
    wait_connected(envir, n, call)
    ok <- TRUE
  }
  invisible(envir[["value"]])
}

# Close the profile's host: pending mirai resolve to errorValue 7, and daemons
# exit once their connection drops (after finishing a task in progress).
# `kill` is for a failed start only: its launched processes are terminated.
reset_profile <- function(.compute, exit, kill = FALSE) {
  envir <- ..[[.compute]]
  if (!is.null(envir)) {
    rm(list = .compute, envir = ..)
    .Call(wrap__host_close, envir[["host"]], exit)
    if (kill) stop_processes(envir[["processes"]], 500)
  }
  invisible(structure(0L, class = "miraiDaemons", compute = .compute))
}

stop_processes <- function(processes, grace_ms) {
  deadline <- mclock() + grace_ms
  running <- processes
  while (length(running)) {
    running <- Filter(function(p) is.null(.Call(wrap__process_exit_status, p)), running)
    if (!length(running) || mclock() > deadline) break
    Sys.sleep(0.02)
  }
  for (p in running) .Call(wrap__process_kill, p)
}

#' @export
#'
print.miraiDaemons <- function(x, ...) {
  print(`attributes<-`(x, NULL))
  invisible(x)
}

#' With Mirai Daemons
#'
#' Evaluate an expression with daemons that last for the duration of the
#' expression: the compute profile set by the [daemons()] call is reset when
#' the expression is done, even on error.
#'
#' @param data a call to [daemons()].
#' @param expr an expression to evaluate.
#' @param ... not used.
#'
#' @return The return value of `expr`.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' with(
#'   daemons(2, dispatcher = FALSE),
#'   {
#'     m1 <- mirai(Sys.getpid())
#'     m2 <- mirai(Sys.getpid())
#'     cat(m1[], m2[], "\n")
#'   }
#' )
#'
#' status()
#'
#' }
#'
#' @export
#'
with.miraiDaemons <- function(data, expr, ...) {
  on.exit(daemons(0L, .compute = attr(data, "compute", exact = TRUE)))
  expr
}

#' Status Information
#'
#' Retrieve status information for the specified compute profile, comprising
#' current connections and daemons status.
#'
#' @param .compute \[default 'default'\] character value for the compute
#'   profile to query.
#'
#' @return A named list comprising:
#'   \itemize{
#'     \item `connections` - integer number of active daemon connections.
#'     \item `daemons` - the character URL(s) at which the host listens, or
#'     else `0L` if daemons have not been set.
#'     \item `mirai` - (when daemons are set) integer vector of the numbers of
#'     tasks `awaiting` dispatch, `executing` at a daemon and `completed`.
#'     \item `workers` - (when daemons are set) an integer matrix with one
#'     row for each daemon that has connected, with columns `online` (1 if
#'     connected, 0 otherwise), `assigned` (tasks sent to it) and `complete`
#'     (tasks it completed).
#'   }
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' status()
#' daemons(2)
#' status()
#' daemons(0)
#'
#' }
#'
#' @export
#'
status <- function(.compute = "default") {
  check_compute(.compute, sys.call())
  envir <- ..[[.compute]]
  if (is.null(envir)) return(list(connections = 0L, daemons = 0L))
  s <- .Call(wrap__host_status, envir[["host"]])
  list(
    connections = as.integer(s[["connections"]]),
    daemons = s[["urls"]],
    mirai = c(awaiting = as.integer(s[["awaiting"]]),
              executing = as.integer(s[["executing"]]),
              completed = as.integer(s[["completed"]])),
    workers = cbind(online = as.integer(s[["online"]]),
                    assigned = as.integer(s[["assigned"]]),
                    complete = as.integer(s[["complete"]]))
  )
}

#' Next >> Developer Interface
#'
#' `nextstream` retrieves the next L'Ecuyer-CMRG random number stream of the
#' compute profile, advancing it. `nextget` retrieves a setting of the compute
#' profile. These are developer helpers for packages that extend \pkg{mirai}.
#'
#' @param .compute \[default 'default'\] character value for the compute
#'   profile to use.
#'
#' @return For `nextstream`: a length 7 integer vector, as given by
#'   `.Random.seed` when the L'Ecuyer-CMRG RNG is in use (may be passed
#'   directly to the `rs` argument of [daemon()]), or else NULL if daemons are
#'   not set for the profile.
#'
#'   For `nextget`: the requested setting, or else NULL if it (or the
#'   profile) is not present.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' daemons(1L)
#' nextstream()
#' nextget("urls")
#' nextget("dispatcher")
#' daemons(0)
#'
#' }
#'
#' @keywords internal
#' @export
#'
nextstream <- function(.compute = "default") {
  envir <- ..[[.compute]]
  if (is.null(envir)) return(NULL)
  stream <- nextRNGStream(envir[["stream"]])
  envir[["stream"]] <- stream
  stream
}

#' @param x the name of a setting of the compute profile: one of `"n"`
#'   (number of daemons launched), `"urls"` (the listening URLs),
#'   `"dispatcher"`, `"seeded"`, `"token"`, `"dots"` (daemon arguments),
#'   `"resilience"`.
#'
#' @rdname nextstream
#' @export
#'
nextget <- function(x, .compute = "default") {
  envir <- ..[[.compute]]
  if (is.null(envir) || !is_string(x)) return(NULL)
  envir[[x]]
}
