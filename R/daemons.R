# mirai: daemons(), setting and resetting a profile's daemons ----------------------

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
#' [status()]. With other arguments but neither `n` nor `url` (nor `sync`),
#' it is an error.
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
#' `daemons(url = ...)` launches no daemon itself: start them with
#' [launch_local()] (on this machine), [launch_remote()] (which gives the
#' shell commands, and runs them through a remote configuration), or by
#' supplying `remote`. With the dispatcher, `n` also sets how many URLs are
#' listened at (see With Dispatcher); it never launches daemons. IPv6
#' addresses are enclosed in square brackets, e.g. `"tcp://[::1]:5555"`. A URL
#' with an empty host, e.g. `"tcp://:5555"` or `"ws://:0/path"`, listens on
#' all (IPv4) interfaces: [launch_local()] dials it on the loopback address,
#' and [launch_remote()] at this computer's name. The
#' auxiliary function [host_url()] constructs a valid host URL from this
#' computer's name.
#'
#' The transports are 'tcp://', 'ws://' (WebSockets, with an optional path),
#' 'ipc://' and 'abstract://' (local), and their secure TLS forms
#' 'tls+tcp://' and 'wss://'.
#'
#' @section With Dispatcher:
#'
#' One URL serves any number of daemons. The forms of the original
#' \pkg{mirai} are honoured as well: a vector of URLs listens at each; a
#' single WebSocket URL such as 'ws://10.75.32.70:5555' with `n = 6` listens
#' at the paths 'ws://10.75.32.70:5555/1' through '/6' (all on one port); a
#' single TCP URL such as 'tcp://10.75.32.70:5555' with `n = 6` listens at
#' the block of ports 5555 through 5560 (with port zero, at 6 free ports).
#' Dispatcher adjusts to the number of daemons actually connected.
#'
#' @section Without Dispatcher:
#'
#' The host listens at the URL(s) given; `n` does not add URLs. Daemons and
#' dispatchers dial into the same host URL, and may join or leave at any
#' time; tasks are distributed round-robin.
#'
#' @section TLS:
#'
#' A URL starting 'tls+tcp://' or 'wss://' encrypts the connections with TLS.
#' With `tls = NULL` (zero configuration), `daemons()` makes a single-use
#' certificate authority and a certificate for the host of the (first TLS)
#' URL, or this machine's name for a wildcard address such as '0.0.0.0'
#' (ECDSA P-256 keys, made in milliseconds). The daemons it launches are
#' given the certificate authority, and must also present the invitation
#' (see Invited Daemons); both are carried in the commands that
#' `launch_remote()` generates.
#'
#' Otherwise supply the host's own certificate and key as `tls`, and `pass`
#' if the key is encrypted (PKCS#8, as made by `openssl pkcs8 -topk8` or
#' `openssl genpkey -aes256`). Daemons are then given the certificate
#' authority chain with the `tls` argument of [daemon()]; daemons launched
#' by `daemons(n, ...)` trust the certificates in `tls` (so include the
#' certificate authority after the host's certificate).
#'
#' @section Message Size Limit:
#'
#' `max_message` among `...` bounds the size in bytes of any one message the
#' host accepts from a daemon (a task's serialized value); a daemon sending a
#' larger one has its connection closed, the task whose value it was resolves
#' to an 'errorValue' 24 (message too large) without being retried, and the
#' host logs the reason. The default
#' is 16 GiB (`2^34`); memory is only committed as bytes actually arrive.
#'
#' `max_message` applies once a daemon is welcomed. Until then, on every
#' transport, a connection is held to 64 KiB (the greeting needs a few
#' hundred bytes), and at most `max_greeting` (among `...`) connections may
#' be in their greeting (TLS and WebSocket handshakes included) at once; a
#' further one is closed as soon as it is accepted, so that a flood of
#' connections cannot use up the host's memory or file descriptors. The
#' default is an eighth of this R process's limit on open files, between 16
#' and 256 (128 for the common limit of 1024). A daemon closed so dials
#' again for a few seconds (or for as long as it retries, with `asyncdial =
#' TRUE`). Connections refused or closed in their greeting are logged at
#' most once a second, with a count.
#'
#' @section Lost Connections:
#'
#' A daemon whose machine dies, or whose network is cut, cannot say so. The
#' host notices within `link_timeout` (among `...`, in milliseconds, default
#' 60000, at least 1000): host and daemon send each other a heartbeat on a
#' link that has been quiet for an eighth of that time, and the operating
#' system closes a TCP connection whose data stays unacknowledged for three
#' quarters of it. The daemon's task is then retried (see `resilience`) or
#' resolves to an 'errorValue' 19; a daemon notices a host gone in the same
#' way. A daemon that is merely stopped (`kill -STOP`, a suspended job) or
#' busy keeps its connection, since its machine still answers: its task is
#' held until it resumes, or until the task's `.timeout` (see [mirai()]),
#' the way to bound the time a task may take. Connections over local
#' sockets ('ipc://', 'abstract://') close as soon as either process ends.
#'
#' @section Invited Daemons:
#'
#' Where the package makes the credentials and launches the daemons itself
#' (local daemons of `daemons(n)`, and zero-configuration TLS), each daemon
#' must prove it was invited, with a secret made by `daemons()` and carried
#' in the commands the launchers generate, before it is sent any task. A
#' process that merely reaches the port is refused and learns nothing. The
#' secret never travels: the daemon proves it holds it by answering a
#' challenge (an HMAC-SHA256 over random numbers from both sides), so a
#' greeting seen on the network cannot be replayed, and the host proves it in
#' turn, so that a daemon given the secret works only for the host that
#' invited it. With
#' a plain URL, or the user's own certificates, any daemon may connect (as
#' `Rscript -e 'mirai::daemon(url)'` on a remote machine), unless
#' `token = TRUE` is supplied among `...`. The secret is never shown by
#' [status()] or printed objects.
#'
#' @section Failure and Healing:
#'
#' Local daemons launched by `daemons(n)` that die (killed, crashed, out of
#' memory, or ended by a task) are replaced, so that the pool returns to
#' `n`. A daemon that *fails* (dies before connecting, or holding its
#' first task, before completing any) is replaced after a back-off that
#' doubles from 0.25 s up to 10 s; any other (lost while working, or while
#' idle) at once. Meanwhile the tasks of a
#' daemon that died wait for the replacements (see `resilience` for which
#' are retried). A daemon that exits on its own (`maxtasks`, `idletime`,
#' `walltime`) is not replaced. A replacement draws its random numbers
#' from a stream of its own (from a random start).
#'
#' If more daemons fail within 60 s than the larger of 5 and `n` (a crash
#' loop: daemons that cannot start, or tasks that kill every daemon they
#' reach), replacing stops: a log line says
#' so, [status()] shows it as `healing`, and once no daemon is left every
#' task waiting, and every task sent later, resolves to an 'errorValue' 19
#' rather than waiting for ever. Daemons launched with [launch_local()]
#' serve tasks again. `status()$deaths` counts the daemons lost.
#'
#' @section Autoscaling:
#'
#' With `autoscale`, the number of daemons follows the load, between a
#' minimum and a maximum, for local daemons (no `url`) and for daemons
#' launched through `remote` ([ssh_config()], [cluster_config()],
#' [http_config()], [remote_config()] with a command) alike. It needs the
#' dispatcher. `autoscale` is a list of:
#' \itemize{
#'   \item `min` \[default `n`, else 0\]: daemons launched at once and
#'   always kept: one that dies or leaves is launched again, so the pool
#'   never drops below `min`. With `n` too, they must agree.
#'   \item `max` (required): the most daemons, at least 1 and `min`.
#'   \item `wait` \[default 1\]: seconds. While the oldest task in the
#'   queue has waited this long, and more tasks wait than launches are in
#'   flight, a batch more daemons is launched (at most one batch every
#'   `wait` seconds), up to `max`.
#'   \item `batch` \[default 1\]: daemons launched at a time.
#'   \item `idletime` \[default 60000\]: milliseconds, the [daemon()]
#'   argument given to the daemons launched beyond `min`, so that each
#'   leaves (and its job ends) once idle this long.
#' }
#' A launch is in flight until its daemon connects, or its process exits or
#' its job ends first (a failed launch: the next waits a back-off that
#' doubles from 0.25 s to 10 s, and after 5 failures in a row launching
#' stops, with a warning); a launch that nothing can follow (SSH, HTTP) is
#' counted for at most 60 s. There is no background R thread: decisions are
#' taken, at most every 200 ms, when R waits for or looks at results
#' (collecting a 'mirai' or a map, [race_mirai()], [unresolved()]), when a
#' 'mirai' is sent, and by [status()], whose element `autoscale` shows
#' `min`, `max`, the `target` (the daemons connected and in flight, between
#' `min` and `max`), the launches in flight (`launching`) and why launching
#' `stopped` (NA if not). For jobs in flight, the scheduler is asked for
#' their states every 5 s while waiting for results. `status()$healing`
#' shows 'replacing': with no daemon left, tasks wait for the next launch.
#'
#' @section Random Numbers:
#'
#' Without `seed`, each daemon is given its own L'Ecuyer-CMRG random number
#' stream by the host (from a random start that does not touch this
#' session's `.Random.seed`), also a daemon started by hand; results of tasks
#' using random numbers are then not reproducible.
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
#' @section Synchronous Mode:
#'
#' `daemons(sync = TRUE)` sets a compute profile that runs no daemon: each
#' [mirai()] sent to it (and each element of [mirai_map()], and
#' [everywhere()]) is evaluated at once, in this R process, before the call
#' returns its (resolved) 'mirai'. The evaluation is as on a daemon: in a
#' global environment holding only the objects passed as `...` (and what
#' [everywhere()] set up), with this session's own global environment put
#' aside meanwhile and restored afterwards, and with the daemon's cleanup
#' after each task. Output is shown, [browser()] may be used to debug, and
#' [on_daemon()] is TRUE. `seed` is honoured; every other argument is
#' ignored. [launch_local()] and [launch_remote()] have nothing to launch and
#' raise an error. Reset with `daemons(0)` as usual.
#'
#' @section Daemons within Daemons:
#'
#' `daemons(n)` for local daemons, called within a daemon (that is, inside a
#' 'mirai'), is an error, as nested daemons are most often unintended (for
#' example a function that sets daemons, mapped over). To nest them on
#' purpose, call `daemons(url = local_url())` and then [launch_local()]
#' within the 'mirai'.
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
#' @param n integer number of daemons to set: without `url`, the number of
#'   local daemons to launch; with `url` and the dispatcher, the number of
#'   remote daemons to listen for (see 'With Dispatcher'; launch them with
#'   [launch_local()], [launch_remote()] or `remote`). `0` resets, and `NULL`
#'   resets after sending exit instructions to connected daemons.
#' @param url \[default NULL\] if specified, the character URL or vector of
#'   URLs on the host for remote daemons to dial into, including a port
#'   accepting incoming connections (and optionally for websockets, a path),
#'   e.g. 'tcp://hostname:5555' or 'ws://hostname:5555/path'. Specify a URL
#'   starting 'tls+tcp://' or 'wss://' to use secure TLS connections. The
#'   auxiliary function [host_url()] may be used to construct a valid host
#'   URL.
#' @param remote \[default NULL\] (with `url`) a remote launch
#'   configuration made by [remote_config()], [ssh_config()],
#'   [cluster_config()] or [http_config()], to launch daemons on other
#'   machines dialling into `url`: `n` of them, or one for each remote of
#'   [ssh_config()] (see [launch_remote()]). `daemons()` then returns
#'   without waiting for them to connect. Jobs submitted through
#'   [cluster_config()] that are still queued or running are cancelled at
#'   reset.
#' @param dispatcher \[default TRUE\] logical value whether to use dispatcher
#'   (first-in first-out scheduling to idle daemons), or else send tasks at
#'   once round-robin (see Dispatcher section).
#' @param ... (optional) additional arguments passed through to [daemon()]
#'   when launching daemons: `autoexit`, `cleanup`, `output`, `maxtasks`,
#'   `idletime`, `walltime`, `timerstart` and `asyncdial`. Those of the
#'   original \pkg{mirai} 2.x are accepted as well: `tlscert` (the
#'   certificate authority chain that launched daemons trust, as the `tls`
#'   argument of [daemon()]), and `dispatcher` and `id` (ignored). Also, for
#'   the host, `max_message`, `max_greeting` (see Message Size Limit) and
#'   `link_timeout` (see Lost Connections); and `token` \[default FALSE\]
#'   logical value, whether daemons dialling into a plain URL (or one using
#'   your own certificates) must present the invitation made by `daemons()`
#'   (see Invited Daemons section). Any other name is an error.
#' @param autoscale \[default NULL\] (optional, with dispatcher) a list
#'   with elements among `min`, `max` (required), `wait`, `batch` and
#'   `idletime`, to keep between `min` and `max` daemons as tasks wait (see
#'   Autoscaling section), e.g. `list(min = 1, max = 8)`. Local daemons
#'   without `url`; with `url`, `remote` is required to launch them.
#' @param sync \[default FALSE\] logical value: TRUE to evaluate every
#'   [mirai()] of the compute profile synchronously, at once, in this
#'   process, for testing and debugging (output is shown and [browser()]
#'   works). See Synchronous Mode section.
#' @param resilience \[default TRUE\] whether to retry the task that a
#'   daemon was evaluating when it died (or its connection dropped): TRUE
#'   for one retry, FALSE for none, or a whole number of retries. Only that
#'   task spends a retry: the tasks sent to the daemon that it had not yet
#'   started (without dispatcher, tasks wait at each daemon) are sent again
#'   without spending one. A retried task is sent again from the start:
#'   with dispatcher, ahead of every task waiting in the queue; without, to
#'   another connected daemon (or the next to connect). Past its retries it
#'   resolves to an 'errorValue' 19 (Connection reset), so that a task that
#'   kills every daemon it touches kills at most `resilience + 1` of them.
#'   With no daemon left to retry it on, it resolves to 19 at once (most
#'   likely it killed them), unless the daemons are local daemons being
#'   replaced (see Failure and Healing). Note that a task may therefore run
#'   (in part) more than once.
#' @param memory \[default NULL\] (optional, with dispatcher) a number of
#'   megabytes (1 MB is 1e6 bytes; fractions allowed) bounding the tasks
#'   waiting in the dispatcher's queue (those not yet sent to a daemon,
#'   counted as serialized): once reached, [mirai()] waits (interruptibly)
#'   for room and [try_mirai()] returns NULL at once. A single task larger
#'   than the bound is accepted when the queue is empty. NULL, `0` or `NA`
#'   for no bound. It has no effect with `dispatcher = FALSE`, where tasks are
#'   sent at once. [status()] reports the memory used.
#' @param serial \[default NULL\] (optional) a configuration made by
#'   [serial_config()], for custom serialization of objects of the classes it
#'   names, in tasks and in their results (both ways, at the host and at
#'   every daemon). With NULL, the configurations registered with
#'   [register_serial()] apply, if any.
#' @param seed \[default NULL\] (optional) a random seed (single value,
#'   interpreted as an integer), used to initialise the L'Ecuyer-CMRG random
#'   number streams sent with each task (see Random Numbers section).
#' @param tls \[default NULL\] (optional for secure TLS connections) if not
#'   supplied, zero-configuration single-use keys and certificates are
#'   automatically generated. If supplied, either the character path to a
#'   file containing the PEM-encoded TLS certificate and associated private
#'   key (may contain additional certificates leading to a validation chain,
#'   with the TLS certificate first), or a length 2 character vector
#'   comprising \[i\] the TLS certificate (optionally certificate chain) and
#'   \[ii\] the associated private key.
#' @param pass \[default NULL\] (required only if the private key supplied to
#'   `tls` is encrypted with a password) the password as a character string,
#'   or, better, a function returning it (so that it is not written in the
#'   code, for example `function() askpass::askpass()`). The function is
#'   called only when the key is encrypted, and the password is not kept.
#' @param .compute \[default NULL\] character value for the compute profile
#'   to use (each compute profile has its own independent set of daemons), or
#'   NULL for the current default profile: 'default', unless changed by
#'   [with_daemons()] or [local_daemons()].
#'
#' @return The integer number of daemons set (launching local daemons, with
#'   or without dispatcher), or otherwise the character host URL(s);
#'   invisibly, of class 'miraiDaemons' so that it may be used with [with()].
#'   `daemons()` with no arguments returns [status()]. With `autoscale`
#'   and no `url`, the number is `min`.
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
                    autoscale = NULL, sync = FALSE, resilience = TRUE, memory = NULL, serial = NULL,
                    seed = NULL, tls = NULL, pass = NULL, .compute = NULL) {
  call <- sys.call()
  .compute <- compute_profile(.compute, call)
  dots <- list(...)
  invite <- dots[["token"]]
  if (!is.null(invite) && !is_flag(invite)) stop_arg(._[["token_flag"]], call)
  dots[["token"]] <- NULL
  max_message <- dots[["max_message"]]
  if (is.null(max_message)) max_message <- .state[["max_message"]]
  if (!(is_limit(max_message) && max_message >= 1024))
    stop_arg(._[["max_message"]], call)
  dots[["max_message"]] <- NULL
  max_greeting <- dots[["max_greeting"]]
  if (!is.null(max_greeting) && !(is_count(max_greeting) && max_greeting >= 1))
    stop_arg(._[["max_greeting"]], call)
  dots[["max_greeting"]] <- NULL
  link_timeout <- dots[["link_timeout"]]
  if (!is.null(link_timeout) && !(is_count(link_timeout) && link_timeout >= 1000))
    stop_arg(._[["link_timeout"]], call)
  dots[["link_timeout"]] <- NULL
  dots <- check_daemon_args(dots, call)
  if (!is_flag(sync)) stop_arg(sprintf(._[["flag"]], "sync"), call)
  if (missing(n) && is.null(url) && !sync && is.null(autoscale)) {
    if (length(setdiff(names(match.call())[-1L], ".compute")))
      stop_arg(._[["n_or_url"]], call)
    return(status(.compute))
  }
  if (!missing(n)) {
    if (is.null(n)) return(reset_profile(.compute, exit = TRUE))
    if (!is_count(n)) stop_arg(._[["n"]], call)
    if (n == 0 && is.null(url)) return(reset_profile(.compute, exit = FALSE))
  }
  if (!is.null(seed) && !(is.numeric(seed) && length(seed) == 1L && is.finite(seed)))
    stop_arg(._[["seed"]], call)
  if (sync) return(invisible(sync_profile(.compute, seed)))
  if (!is.null(url) && !(is.character(url) && length(url) && !anyNA(url) && all(nzchar(url))))
    stop_arg(._[["url"]], call)
  if (!is.null(remote)) {
    check_remote(remote, call)
    if (is.null(url)) stop_arg(._[["remote_url"]], call)
  }
  if (!is_flag(dispatcher)) stop_arg(._[["dispatcher"]], call)
  if (!is.null(autoscale)) {
    autoscale <- autoscale_settings(autoscale, if (!missing(n)) n, call)
    if (!dispatcher) stop_arg(._[["autoscale_dispatcher"]], call)
    if (!is.null(url) && is.null(remote)) stop_arg(._[["autoscale_remote"]], call)
    if (is.null(url)) n <- autoscale[["min"]]
  }
  retries <- if (is_flag(resilience)) {
    if (resilience) 1L else 0L
  } else if (is_count(resilience) && resilience <= .Machine$integer.max) {
    as.integer(resilience)
  } else {
    stop_arg(._[["resilience"]], call)
  }
  memory <- memory_bytes(memory, call)
  if (!dispatcher) memory <- NULL
  if (is.null(serial)) serial <- .state[["serial"]]
  if (!is.null(serial) && !is_serial_config(serial)) stop_arg(._[["serial"]], call)
  if (!is.null(tls) && !(is.character(tls) && length(tls) %in% 1:2 && !anyNA(tls)))
    stop_arg(._[["tls"]], call)
  if (!is.null(pass) && !is.function(pass) && !is_string(pass)) stop_arg(._[["pass"]], call)
  tlscert <- dots[["tlscert"]]
  dots[["tlscert"]] <- NULL
  if (is.null(url) && ((!missing(n) && n > 0) || !is.null(autoscale)) && on_daemon())
    stop_arg(._[["nested"]], call)

  envir <- ..[[.compute]]
  if (!is.null(envir)) return(invisible(unrevised(envir, .compute)))

  n <- if (missing(n)) 0L else as.integer(n)
  local <- is.null(url)
  urls <- if (local) local_url() else expand_urls(url, n, dispatcher)
  tls_config <- host_tls(urls, tls, pass, call)
  zero <- !is.null(tls_config[["zero"]])
  token <- if (local || zero || isTRUE(invite)) random_hex(16L)
  host <- tryCatch(
    host_listen(urls, dispatcher, token, as.double(max_message), .state[["version"]],
                tls_config, retries, if (is.null(memory)) 0 else memory,
                stream = random_stream(),
                max_greeting = if (is.null(max_greeting)) 0 else as.double(max_greeting),
                link_timeout = if (is.null(link_timeout)) 0 else as.double(link_timeout)),
    error = function(e) listen_error(e, tls_config, call)
  )
  envir <- new.env(parent = emptyenv())
  envir[["host"]] <- host
  envir[["urls"]] <- host_urls(host)
  envir[["dispatcher"]] <- dispatcher
  envir[["n"]] <- n
  envir[["token"]] <- token
  envir[["dots"]] <- dots
  envir[["resilience"]] <- retries
  envir[["memory"]] <- memory
  if (!is.null(serial)) set_serial(envir, serial)
  envir[["tls_ca"]] <- if (!is.null(tlscert)) {
    daemon_tls_ca(tlscert, call)
  } else if (zero) {
    host_tls_ca(host)
  } else if (!is.null(tls_config)) {
    pem_certificates(tls_config[["cert"]])
  }
  envir[["processes"]] <- list()
  envir[["seeded"]] <- !is.null(seed)
  envir[["stream"]] <- if (is.null(seed)) random_stream() else seed_stream(seed)
  value <- if (local || (dispatcher && n > 0L)) n else envir[["urls"]]
  envir[["value"]] <- structure(value, class = "miraiDaemons", compute = .compute)
  ..[[.compute]] <- envir

  if (!is.null(autoscale)) {
    ok <- FALSE
    on.exit(if (!ok) reset_profile(.compute, exit = FALSE, kill = TRUE))
    tryCatch(autoscale_start(envir, .compute, autoscale, remote, call),
             error = function(e) stop_arg(redact(conditionMessage(e), token), conditionCall(e)))
    ok <- TRUE
    return(invisible(envir[["value"]]))
  }
  if (!is.null(remote)) {
    ok <- FALSE
    on.exit(if (!ok) reset_profile(.compute, exit = FALSE))
    launch_remote_profile(envir, if (n > 0L) n, remote, dots,
                          launch_tls(NULL, envir, call), call)
    ok <- TRUE
    return(invisible(envir[["value"]]))
  }
  if (local && n > 0L) {
    ok <- FALSE
    on.exit(if (!ok) reset_profile(.compute, exit = FALSE, kill = TRUE))
    tryCatch({
      launch_profile(envir, n)
      wait_connected(envir, n, call)
    }, error = function(e) stop_arg(redact(conditionMessage(e), token), conditionCall(e)))
    host_heal(host, envir[["processes"]], launch_record("random", token))
    ok <- TRUE
  }
  invisible(envir[["value"]])
}

# Daemons already set for the profile are kept (the seeds ask for a reset
# first): says so, and gives what daemons() returned when setting them.
unrevised <- function(envir, .compute) {
  message(sprintf(._[["revise"]], .compute,
                  if (.compute == "default") "" else sprintf(", .compute = \"%s\"", .compute)))
  envir[["value"]]
}

# `memory` of daemons(), in megabytes, as the bound in bytes: NULL for none
# (also for 0 or NA).
memory_bytes <- function(memory, call) {
  if (is.null(memory) || identical(memory, NA)) return(NULL)
  if (!(is.numeric(memory) && length(memory) == 1L && (is.na(memory) ||
                                                        (is.finite(memory) && memory >= 0))))
    stop_arg(._[["memory"]], call)
  if (is.na(memory) || memory == 0) NULL else as.double(memory) * 1e6
}

# A synchronous profile (daemons(sync = TRUE)): no host and no daemon; each
# mirai is evaluated at once in this process (see sync_evaluate()).
sync_profile <- function(.compute, seed) {
  envir <- ..[[.compute]]
  if (!is.null(envir)) return(unrevised(envir, .compute))
  envir <- new.env(parent = emptyenv())
  envir[["sync"]] <- TRUE
  envir[["dispatcher"]] <- FALSE
  envir[["n"]] <- 1L
  envir[["urls"]] <- character()
  envir[["globals"]] <- list()
  envir[["completed"]] <- 0L
  envir[["seeded"]] <- !is.null(seed)
  envir[["stream"]] <- if (is.null(seed)) random_stream() else seed_stream(seed)
  envir[["value"]] <- structure(1L, class = "miraiDaemons", compute = .compute)
  ..[[.compute]] <- envir
  envir[["value"]]
}

# Evaluates `task` here and now for synchronous profile `envir`, as a daemon
# would: in a global environment holding only what the profile's earlier
# tasks left there (set up by everywhere()), cleaned up afterwards. The
# user's global environment is put aside meanwhile, and restored.
sync_evaluate <- function(envir, task) {
  genv <- globalenv()
  user <- as.list.environment(genv, all.names = TRUE)
  rm(list = names(user), envir = genv)
  list2env(envir[["globals"]], envir = genv)
  was_daemon <- .state[["daemon"]]
  .state[["daemon"]] <- TRUE
  on.exit({
    .state[["daemon"]] <- was_daemon
    envir[["globals"]] <- as.list.environment(genv, all.names = TRUE)
    rm(list = names(envir[["globals"]]), envir = genv)
    list2env(user, envir = genv)
  })
  initial <- baseline()
  value <- serve_tasks(eval_task(task))
  if (!isTRUE(task[["everywhere"]])) {
    do_cleanup(7L, initial)
    envir[["completed"]] <- envir[["completed"]] + 1L
  }
  value
}

# Close the profile's host: pending mirai resolve to errorValue 7, and daemons
# exit once their connection drops (after finishing a task in progress).
# `kill` is for a failed start only: its launched processes are terminated.
reset_profile <- function(.compute, exit, kill = FALSE) {
  envir <- ..[[.compute]]
  if (!is.null(envir)) {
    rm(list = .compute, envir = ..)
    .state[["autoscaled"]] <- setdiff(.state[["autoscaled"]], .compute)
    if (!is.null(envir[["host"]])) host_close(envir[["host"]], exit)
    reset_jobs(envir)
    if (kill) stop_processes(envir[["processes"]], 500)
  }
  invisible(structure(0L, class = "miraiDaemons", compute = .compute))
}

stop_processes <- function(processes, grace_ms) {
  deadline <- mclock() + grace_ms
  running <- processes
  while (length(running)) {
    running <- Filter(function(p) is.null(process_exit_status(p)), running)
    if (!length(running) || mclock() > deadline) break
    Sys.sleep(0.02)
  }
  for (p in running) process_kill(p)
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
#' expression: the compute profile set by the [daemons()] call is the
#' default one while the expression is evaluated (as with [with_daemons()]),
#' and is reset when the expression is done, even on error.
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
  compute <- attr(data, "compute", exact = TRUE)
  previous <- .state[["compute"]]
  .state[["compute"]] <- compute
  on.exit({
    .state[["compute"]] <- previous
    daemons(0L, .compute = compute)
  })
  expr
}
