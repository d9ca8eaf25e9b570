# mirai: autoscaling a profile's daemons --------------------------------------------

# A profile set with `daemons(autoscale = ...)` holds envir[["autoscale"]], an
# environment: the settings (min, max, wait in seconds, batch, idletime in
# ms), `launcher` (launches k daemons with the given daemon arguments and
# returns one record each), `launching` (the records of the launches still
# in flight: list(process, pid, job, at)), `rows` (the daemon rows of the
# host's status already matched against them), `polled` and `last_batch`
# (mclock() times), `submitted` (tasks submitted), `failures` in a row,
# `backoff` (no launch before this time), `stopped` (NA, or why launching
# stopped), `busy` (a poll runs) and `next_remote` (for several remotes).
#
# Decisions are taken by autoscale_poll(), at most every 200 ms, from where
# R already waits or looks: the wait loops of collecting a mirai, status(),
# unresolved() and submitting a mirai. No background R thread exists.

autoscale_fields <- c("min", "max", "wait", "batch", "idletime")

# An in-flight launch that nothing can follow (ssh, remote_config(),
# http_config()) is counted at most this long if its daemon never connects.
autoscale_unseen_ms <- 60000

# The `autoscale` argument of daemons(), checked, with its defaults. `n` is
# daemons()'s `n`, or NULL when missing: the default `min`.
autoscale_settings <- function(autoscale, n, call) {
  fields <- names(autoscale)
  if (!is.list(autoscale) || (length(autoscale) &&
                               (is.null(fields) || !all(fields %in% autoscale_fields) ||
                                anyDuplicated(fields))))
    stop_arg(._[["autoscale"]], call)
  min <- autoscale[["min"]]
  if (is.null(min)) min <- if (is.null(n)) 0 else n
  if (!is_count(min)) stop_arg(._[["autoscale_min"]], call)
  if (!is.null(n) && !is.null(autoscale[["min"]]) && n != min)
    stop_arg(._[["autoscale_n"]], call)
  max <- autoscale[["max"]]
  if (!(is_count(max) && max >= 1 && max >= min)) stop_arg(._[["autoscale_max"]], call)
  wait <- autoscale[["wait"]]
  if (is.null(wait)) wait <- 1
  if (!(is_limit(wait) && is.finite(wait))) stop_arg(._[["autoscale_wait"]], call)
  batch <- autoscale[["batch"]]
  if (is.null(batch)) batch <- 1
  if (!(is_count(batch) && batch >= 1)) stop_arg(._[["autoscale_batch"]], call)
  idletime <- autoscale[["idletime"]]
  if (is.null(idletime)) idletime <- 60000
  if (!(is_count(idletime) && idletime >= 1)) stop_arg(._[["autoscale_idletime"]], call)
  list(min = as.integer(min), max = as.integer(max), wait = as.double(wait),
       batch = as.integer(batch), idletime = as.double(idletime))
}

# Starting ------------------------------------------------------------------------------

# Sets up autoscaling for the new profile `envir` (named `.compute`) and
# launches its `min` daemons: local ones (no `remote`) are waited for, as
# daemons(n) does. Daemons that die are then replaced by autoscaling, so
# tasks wait for them (the host is told its daemons are replaced).
autoscale_start <- function(envir, .compute, settings, remote, call) {
  a <- new.env(parent = emptyenv())
  for (name in names(settings)) a[[name]] <- settings[[name]]
  tls <- launch_tls(NULL, envir, call)
  a[["launcher"]] <- if (is.null(remote)) {
    function(envir, k, dots) local_launches(envir, k, dots, tls)
  } else {
    function(envir, k, dots) remote_launches(envir, k, remote, dots, tls)
  }
  a[["launching"]] <- list()
  a[["rows"]] <- 0L
  a[["polled"]] <- -Inf
  a[["last_batch"]] <- -Inf
  a[["failures"]] <- 0L
  a[["backoff"]] <- -Inf
  a[["stopped"]] <- NA_character_
  a[["busy"]] <- FALSE
  a[["next_remote"]] <- 0L
  a[["submitted"]] <- 0
  envir[["autoscale"]] <- a
  if (settings[["min"]] > 0L) {
    a[["launching"]] <- a[["launcher"]](envir, settings[["min"]], envir[["dots"]])
    if (is.null(remote)) wait_connected(envir, settings[["min"]], call)
  }
  host_heal(envir[["host"]], list(), NULL)
  .state[["autoscaled"]] <- union(.state[["autoscaled"]], .compute)
  invisible(envir)
}

# `k` local daemons, as daemons(n) launches them.
local_launches <- function(envir, k, dots, tls) {
  before <- length(envir[["processes"]])
  spawn_daemons(envir, launch_urls(k, envir[["urls"]], NULL), dots, tls)
  lapply(envir[["processes"]][seq.int(before + 1L, length.out = k)], function(p)
    launch_entry(process = p, pid = as.double(process_pid(p))))
}

# `k` daemons through `remote`: jobs of a scheduler are followed by their
# names; other launches are matched to daemons in the order they connect.
# A configuration with one set of arguments for each remote (ssh_config()
# of several remotes) launches on them in turn.
remote_launches <- function(envir, k, remote, dots, tls) {
  before <- if (is.null(envir[["jobs"]])) 0L else nrow(envir[["jobs"]])
  args <- remote[["args"]]
  if (is.null(remote[["type"]]) && is.list(args) && length(args) > 1L) {
    a <- envir[["autoscale"]]
    for (i in seq_len(k)) {
      one <- remote
      one[["args"]] <- args[[a[["next_remote"]] %% length(args) + 1L]]
      a[["next_remote"]] <- a[["next_remote"]] + 1L
      launch_remote_profile(envir, 1L, one, dots, tls, NULL)
    }
  } else {
    launch_remote_profile(envir, k, remote, dots, tls, NULL)
  }
  if (identical(remote[["type"]], "cluster")) {
    jobs <- envir[["jobs"]][["job"]]
    jobs <- jobs[seq.int(before + 1L, length.out = length(jobs) - before)]
    return(lapply(jobs, function(job) launch_entry(job = job)))
  }
  lapply(seq_len(k), function(i) launch_entry())
}

launch_entry <- function(process = NULL, pid = NA_real_, job = NA_character_)
  list(process = process, pid = pid, job = job, at = mclock())

# Polling ------------------------------------------------------------------------------

# Polls every autoscaled profile (see autoscale_poll()); nothing to do, and
# next to no time spent, when none is.
autoscale_tick <- function(query = TRUE) {
  for (name in .state[["autoscaled"]]) {
    envir <- ..[[name]]
    if (is.null(envir)) {
      .state[["autoscaled"]] <- setdiff(.state[["autoscaled"]], name)
    } else {
      autoscale_poll(envir, query)
    }
  }
  invisible()
}

# A task was submitted: polls at the first submission and every 16th after
# (reading the clock costs more than the rest of the check).
autoscale_submitted <- function(envir) {
  a <- envir[["autoscale"]]
  a[["submitted"]] <- a[["submitted"]] + 1
  if (a[["submitted"]] %% 16 == 1) autoscale_poll(envir, query = FALSE)
  invisible()
}

# At most every 200 ms: settles the launches in flight, then launches what
# keeps the pool at `min`, or a batch more (up to `max`, one batch every
# `wait` seconds at most) while the oldest task has waited `wait` seconds
# and more tasks wait than launches are in flight. The launches of
# scale-up daemons carry `idletime`, so that idle ones leave; the `min`
# kept always do not. `query`: whether the scheduler may be asked for the
# states of jobs in flight (not when a task is submitted).
autoscale_poll <- function(envir, query = TRUE) {
  a <- envir[["autoscale"]]
  now <- mclock()
  if (is.null(a) || a[["busy"]] || now - a[["polled"]] < 200) return(invisible())
  a[["busy"]] <- TRUE
  on.exit(a[["busy"]] <- FALSE)
  a[["polled"]] <- now
  s <- host_status(envir[["host"]])
  settle_launches(envir, a, s, query)
  pool <- as.integer(s[["connections"]]) + length(a[["launching"]])
  if (is.na(a[["stopped"]]) && now >= a[["backoff"]]) {
    if (pool < a[["min"]]) {
      autoscale_launch(envir, a, a[["min"]] - pool, permanent = TRUE)
    } else if (pool < a[["max"]] && s[["awaiting"]] > length(a[["launching"]]) &&
               s[["oldest_wait"]] >= a[["wait"]] * 1000 &&
               now - a[["last_batch"]] >= a[["wait"]] * 1000) {
      a[["last_batch"]] <- now
      autoscale_launch(envir, a, min(a[["batch"]], a[["max"]] - pool), permanent = FALSE)
    }
  }
  invisible()
}

# Launches `k` daemons, in flight from now. A launch that fails counts as a
# failed daemon.
autoscale_launch <- function(envir, a, k, permanent) {
  dots <- envir[["dots"]]
  if (!permanent) dots[["idletime"]] <- a[["idletime"]]
  launched <- tryCatch(a[["launcher"]](envir, k, dots), error = function(e) {
    launch_failed(envir, a, conditionMessage(e))
    list()
  })
  a[["launching"]] <- c(a[["launching"]], launched)
  invisible()
}

# Launches in flight end when their daemon connects (matched by process ID,
# else by job, else in order), when their process exits or their job ends
# first (a failure, unless it exited cleanly), or, when nothing can be
# followed, after `autoscale_unseen_ms`.
settle_launches <- function(envir, a, s, query) {
  rows <- length(s[["online"]])
  launching <- a[["launching"]]
  if (rows > a[["rows"]]) {
    for (i in seq.int(a[["rows"]] + 1L, rows)) {
      pids <- vapply(launching, `[[`, 0, "pid")
      jobs <- vapply(launching, `[[`, "", "job")
      hit <- match(s[["pid"]][i], pids)
      if (is.na(hit) && !is.na(s[["job"]][i])) hit <- match(s[["job"]][i], jobs)
      if (is.na(hit)) hit <- which(is.na(pids) & is.na(jobs))[1L]
      if (!is.na(hit)) {
        launching[[hit]] <- NULL
        a[["failures"]] <- 0L
      }
    }
    a[["rows"]] <- rows
  }
  job_launches <- !is.na(vapply(launching, `[[`, "", "job"))
  if (query && any(job_launches)) {
    last <- envir[["jobs_polled"]]
    if (is.null(last) || mclock() - last >= 5000)
      tryCatch(refresh_jobs(envir), error = function(e) NULL)
  }
  keep <- rep(TRUE, length(launching))
  for (i in seq_along(launching)) {
    entry <- launching[[i]]
    if (!is.null(entry[["process"]])) {
      exit <- process_exit_status(entry[["process"]])
      if (is.null(exit)) next
      keep[i] <- FALSE
      if (!identical(as.integer(exit[["status"]]), 0L))
        launch_failed(envir, a, sprintf("exit status %s: %s", exit[["status"]],
                                        trimws(exit[["stderr"]])))
    } else if (!is.na(entry[["job"]])) {
      jobs <- envir[["jobs"]]
      row <- match(entry[["job"]], jobs[["job"]])
      if (is.na(row) || !jobs[["state"]][row] %in% ended_states) next
      keep[i] <- FALSE
      report <- jobs[["report"]][row]
      launch_failed(envir, a, if (is.na(report)) jobs[["state"]][row] else report)
    } else if (mclock() - entry[["at"]] > autoscale_unseen_ms) {
      keep[i] <- FALSE
    }
  }
  a[["launching"]] <- launching[keep]
  if (length(envir[["processes"]]) > 2L * a[["max"]])
    envir[["processes"]] <- Filter(function(p) is.null(process_exit_status(p)),
                                   envir[["processes"]])
  invisible()
}

# A daemon failed to launch or to connect: the next launch waits a back-off
# that doubles from 0.25 s up to 10 s; after 5 failures in a row launching
# stops, with a warning naming the last reason.
launch_failed <- function(envir, a, reason) {
  a[["failures"]] <- a[["failures"]] + 1L
  a[["backoff"]] <- mclock() + min(250 * 2^(a[["failures"]] - 1L), 10000)
  if (a[["failures"]] >= 5L && is.na(a[["stopped"]])) {
    a[["stopped"]] <- redact(reason, envir[["token"]])
    warning(sprintf(._[["autoscale_stopped"]], a[["failures"]], a[["stopped"]]),
            call. = FALSE, immediate. = TRUE)
  }
  invisible()
}

# status()$autoscale, with the daemons `connected` now.
autoscale_status <- function(envir, connected) {
  a <- envir[["autoscale"]]
  pool <- connected + length(a[["launching"]])
  list(min = a[["min"]], max = a[["max"]], target = min(a[["max"]], max(a[["min"]], pool)),
       launching = length(a[["launching"]]), stopped = a[["stopped"]])
}
