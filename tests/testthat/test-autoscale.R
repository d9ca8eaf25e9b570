# Autoscaling with local daemons: growing under a burst of slow tasks, back
# to the minimum once idle, never below it, and the checks of `autoscale`.

# Poll status() (which drives autoscaling) until `condition(status)` holds;
# the connections seen meanwhile are kept in attribute "seen".
scale_until <- function(condition, .compute, limit_s = 30) {
  seen <- integer()
  s <- NULL
  ok <- poll_until(function() {
    s <<- status(.compute)
    seen <<- c(seen, s$connections)
    isTRUE(condition(s))
  }, limit_s = limit_s)
  structure(ok, status = s, seen = seen)
}

test_that("a burst of slow tasks grows the pool to max; idle, it shrinks back to min", {
  daemons(autoscale = list(min = 1, max = 3, wait = 0.2, batch = 1, idletime = 500),
          .compute = "scaled")
  withr::defer(daemons(0, .compute = "scaled"))
  s <- status(.compute = "scaled")
  expect_identical(s$connections, 1L)
  expect_identical(s$autoscale$min, 1L)
  expect_identical(s$autoscale$max, 3L)
  expect_identical(s$autoscale$target, 1L)
  expect_identical(s$autoscale$launching, 0L)
  expect_true(is.na(s$autoscale$stopped))
  ms <- lapply(1:12, function(i) mirai({
    Sys.sleep(0.5)
    Sys.getpid()
  }, .compute = "scaled"))
  grown <- scale_until(function(s) s$connections == 3L, "scaled")
  expect_true(grown)
  expect_identical(attr(grown, "status")$autoscale$target, 3L)
  pids <- unlist(collect_mirai(ms))
  expect_length(pids, 12L)
  expect_length(unique(pids), 3L)
  expect_lte(max(attr(grown, "seen")), 3L)
  # idle: the daemons launched beyond min leave, and min stays
  shrunk <- scale_until(function(s) s$connections == 1L && s$autoscale$launching == 0L,
                        "scaled")
  expect_true(shrunk)
  expect_identical(attr(shrunk, "status")$autoscale$target, 1L)
  kept <- scale_until(function(s) FALSE, "scaled", limit_s = 1.5)
  expect_identical(unique(attr(kept, "seen")), 1L)
  expect_identical(mirai(Sys.getpid(), .compute = "scaled")[], pids[1L])
})

test_that("with min 0, the first task waiting launches a daemon, and a killed one is replaced", {
  daemons(autoscale = list(max = 2, wait = 0, idletime = 60000), .compute = "from0")
  withr::defer(daemons(0, .compute = "from0"))
  s <- status(.compute = "from0")
  expect_identical(s$connections, 0L)
  expect_identical(s$autoscale$target, 0L)
  pid <- mirai(Sys.getpid(), .compute = "from0")[]
  expect_true(is.numeric(pid))
  daemons(0, .compute = "from0")
  daemons(2, autoscale = list(max = 2), .compute = "from0")
  expect_identical(status(.compute = "from0")$connections, 2L)
  pid <- mirai(Sys.getpid(), .compute = "from0")[]
  tools::pskill(pid, tools::SIGKILL)
  expect_true(poll_until(function() !process_alive(pid)))
  replaced <- scale_until(function(s) s$connections == 2L && s$deaths == 1L, "from0")
  expect_true(replaced)
  expect_false(pid %in% unlist(collect_mirai(lapply(1:4, function(i)
    mirai({Sys.sleep(0.2); Sys.getpid()}, .compute = "from0")))))
})

test_that("autoscale's arguments are checked, each error naming the argument", {
  withr::defer(daemons(0, .compute = "badscale"))
  expect_error(daemons(autoscale = 3, .compute = "badscale"),
               "'autoscale' must be NULL or a list with elements among min, max")
  expect_error(daemons(autoscale = list(max = 2, most = 3), .compute = "badscale"),
               "'autoscale' must be NULL or a list")
  expect_error(daemons(autoscale = list(min = 1), .compute = "badscale"),
               "'autoscale$max' must be a whole number of daemons, at least 1", fixed = TRUE)
  expect_error(daemons(autoscale = list(min = 3, max = 2), .compute = "badscale"),
               "at least 'autoscale$min'", fixed = TRUE)
  expect_error(daemons(autoscale = list(min = -1, max = 2), .compute = "badscale"),
               "'autoscale$min' must be a whole number", fixed = TRUE)
  expect_error(daemons(2, autoscale = list(min = 1, max = 2), .compute = "badscale"),
               "'autoscale$min' differs from 'n'", fixed = TRUE)
  expect_error(daemons(autoscale = list(max = 2, wait = -1), .compute = "badscale"),
               "'autoscale$wait' must be a finite non-negative number of seconds", fixed = TRUE)
  expect_error(daemons(autoscale = list(max = 2, wait = Inf), .compute = "badscale"),
               "'autoscale$wait'", fixed = TRUE)
  expect_error(daemons(autoscale = list(max = 2, batch = 0), .compute = "badscale"),
               "'autoscale$batch' must be a whole number", fixed = TRUE)
  expect_error(daemons(autoscale = list(max = 2, idletime = 0.5), .compute = "badscale"),
               "'autoscale$idletime' must be a whole number of milliseconds", fixed = TRUE)
  expect_error(daemons(autoscale = list(max = 2), dispatcher = FALSE, .compute = "badscale"),
               "'autoscale' needs dispatcher = TRUE", fixed = TRUE)
  expect_error(daemons(url = "tcp://127.0.0.1:0", autoscale = list(max = 2),
                       .compute = "badscale"),
               "'autoscale' with 'url' needs 'remote'", fixed = TRUE)
  err <- tryCatch(daemons(autoscale = list(max = "2"), .compute = "badscale"),
                  error = identity)
  expect_identical(deparse(conditionCall(err)[[1L]]), "daemons")
  expect_false(daemons_set(.compute = "badscale"))
})

test_that("repeated failed launches stop autoscaling with a warning naming the reason", {
  daemons(autoscale = list(max = 2, wait = 0), .compute = "broken")
  withr::defer(daemons(0, .compute = "broken"))
  # from now on, each daemon launched fails in daemon() before connecting
  envir <- mirai:::..[["broken"]]
  envir[["dots"]] <- list(maxtasks = -1)
  m <- mirai(1, .compute = "broken")
  warnings <- character()
  ok <- withCallingHandlers(
    scale_until(function(s) !is.na(s$autoscale$stopped), "broken"),
    warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    }
  )
  expect_true(ok)
  s <- attr(ok, "status")
  expect_identical(s$connections, 0L)
  expect_identical(s$autoscale$launching, 0L)
  expect_match(s$autoscale$stopped, "'maxtasks' must be", fixed = TRUE)
  expect_length(warnings, 1L)
  expect_match(warnings, "autoscaling stopped launching daemons after 5 failed in a row",
               fixed = TRUE)
  expect_true(unresolved(m))
})
