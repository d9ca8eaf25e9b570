# mirai: compute profiles ----------------------------------------------------------

# Compute profiles, keyed by `.compute`. Each is an environment holding: host
# (the binding's handle), urls, dispatcher, n, value (what daemons() returned),
# token (the secret daemons must present, or NULL; never shown), tls_ca (the
# PEM that launched daemons trust, or NULL), dots (daemon arguments),
# resilience (retries), memory (the queue's bound, or NULL), processes
# (launched), seeded and stream.
.. <- new.env(parent = emptyenv())

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

# Querying a profile ---------------------------------------------------------------

#' Status Information
#'
#' Retrieve status information for the specified compute profile, comprising
#' current connections and daemons status.
#'
#' @param .compute \[default NULL\] character value for the compute profile
#'   to query, or NULL for the current default profile ('default' unless
#'   changed by [with_daemons()] or [local_daemons()]). A 'miraiCluster' (or
#'   one of its nodes) is also accepted, for the profile of that cluster.
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
#'     \item `memory` - (with dispatcher) a numeric vector, in megabytes, of
#'     the tasks waiting in the dispatcher's queue: `used` now, `peak` (the
#'     most since daemons were set) and `capacity` (the `memory` bound set by
#'     [daemons()], or NA for none).
#'     \item `jobs` - (when daemons were launched through [cluster_config()])
#'     a data frame with one row for each daemon's job or array task:
#'     `job` (its ID), `state` ('pending', 'running', 'done', 'failed' or
#'     'cancelled', as the scheduler reports it), `connected` (whether its
#'     daemon has connected) and `report` (for a job that ended before its
#'     daemon connected: its exit state and the start of its output, else
#'     NA). See the Job Tracking section of [cluster_config()].
#'     \item `autoscale` - (when daemons were set with `autoscale`) a list:
#'     `min` and `max` as set, `target` (the daemons connected and launches
#'     in flight, kept between `min` and `max`), `launching` (launches in
#'     flight: until the daemon connects, or its process or job ends) and
#'     `stopped` (why launching stopped after repeated failures, or NA). See
#'     the Autoscaling section of [daemons()].
#'     \item `deaths` - (when daemons are set) integer number of daemons
#'     whose connection ended without their leaving: daemons that died, were
#'     killed or were cut off.
#'     \item `healing` - (for local daemons launched by [daemons()]) whether
#'     daemons that die are replaced: `"replacing"`, or `"stopped: "` and
#'     the reason, once they kept dying (see the Failure and Healing section
#'     of [daemons()]).
#'   }
#'   For a synchronous profile (see [daemons()]), `daemons` is `"sync"`.
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
status <- function(.compute = NULL) {
  envir <- ..[[profile_of(.compute, sys.call())]]
  if (is.null(envir)) return(list(connections = 0L, daemons = 0L))
  if (isTRUE(envir[["sync"]]))
    return(list(connections = 0L, daemons = "sync",
                mirai = c(awaiting = 0L, executing = 0L, completed = envir[["completed"]])))
  if (!is.null(envir[["autoscale"]])) autoscale_poll(envir)
  s <- host_status(envir[["host"]])
  out <- list(
    connections = as.integer(s[["connections"]]),
    daemons = s[["urls"]],
    mirai = c(awaiting = as.integer(s[["awaiting"]]),
              executing = as.integer(s[["executing"]]),
              completed = as.integer(s[["completed"]])),
    workers = cbind(online = as.integer(s[["online"]]),
                    assigned = as.integer(s[["assigned"]]),
                    complete = as.integer(s[["complete"]])),
    deaths = as.integer(s[["deaths"]])
  )
  if (envir[["dispatcher"]]) {
    capacity <- envir[["memory"]]
    out[["memory"]] <- c(used = s[["queued_bytes"]], peak = s[["peak_bytes"]],
                         capacity = if (is.null(capacity)) NA_real_ else capacity) / 1e6
  }
  out[["healing"]] <- s[["healing"]]
  if (!is.null(envir[["jobs"]])) out[["jobs"]] <- jobs_status(envir)
  if (!is.null(envir[["autoscale"]])) out[["autoscale"]] <- autoscale_status(envir, out[["connections"]])
  out
}

# The compute profile named by `.compute`, which may also be a 'miraiCluster'
# or one of its nodes (the profile of that cluster).
profile_of <- function(.compute, call) {
  if (inherits(.compute, "miraiCluster")) return(cluster_id(.compute))
  if (inherits(.compute, "miraiNode")) return(.compute[["id"]])
  compute_profile(.compute, call)
}

#' Information on Daemons
#'
#' `info()` returns the numbers that describe a compute profile at a glance:
#' its daemons and its tasks.
#'
#' @param .compute \[default NULL\] character value for the compute profile
#'   to query, or NULL for the current default profile ('default' unless
#'   changed by [with_daemons()] or [local_daemons()]). A 'miraiCluster' (or
#'   one of its nodes) is also accepted.
#'
#' @return A named integer vector: `connections` (daemons connected now),
#'   `cumulative` (daemons that have ever connected; NA without dispatcher,
#'   as in the original \pkg{mirai}), `awaiting` (tasks queued), `executing`
#'   (tasks at a daemon) and `completed` (tasks done); or NULL if daemons are
#'   not set for the compute profile. (The original \pkg{mirai} gives NA for
#'   the task counts too without dispatcher; here they are always counted.)
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
  envir <- ..[[profile_of(.compute, sys.call())]]
  if (is.null(envir)) return(NULL)
  if (isTRUE(envir[["sync"]]))
    return(c(connections = 0L, cumulative = NA_integer_, awaiting = 0L, executing = 0L,
             completed = envir[["completed"]]))
  s <- host_status(envir[["host"]])
  c(connections = as.integer(s[["connections"]]),
    cumulative = if (envir[["dispatcher"]]) length(s[["online"]]) else NA_integer_,
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

# Choosing the default profile -----------------------------------------------------

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

# Developer interface --------------------------------------------------------------

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
  stream <- parallel::nextRNGStream(envir[["stream"]])
  envir[["stream"]] <- stream
  stream
}

#' @param x the name of a setting of the compute profile: one of `"n"`
#'   (number of daemons launched), `"url"` (the URL that local daemons dial,
#'   with the real port), `"urls"` (all the listening URLs), `"dispatcher"`
#'   (logical: whether the profile uses dispatcher; the original \pkg{mirai}
#'   gives a URL here), `"seeded"`, `"tls_ca"`, `"dots"` (daemon arguments),
#'   `"resilience"`.
#'
#' @rdname nextstream
#' @export
#'
nextget <- function(x, .compute = "default") {
  envir <- ..[[.compute]]
  if (is.null(envir) || !is_string(x) || x == "token") return(NULL)
  if (x == "url") return(if (length(envir[["urls"]])) envir[["urls"]][1L])
  envir[[x]]
}
