# daemons(): local daemons, compute profiles, status, seeds, failures

test_that("daemons(n) returns n, status() reports them, daemons(0) resets", {
  value <- daemons(2)
  withr::defer(daemons(0))
  expect_s3_class(value, "miraiDaemons")
  expect_identical(attr(value, "compute"), "default")
  expect_output(print(value), "^\\[1\\] 2$")
  s <- status()
  expect_identical(s$connections, 2L)
  expect_type(s$daemons, "character")
  expect_match(s$daemons, "^abstract://")
  expect_identical(names(s$mirai), c("awaiting", "executing", "completed"))
  expect_identical(colnames(s$workers), c("online", "assigned", "complete"))
  expect_identical(nrow(s$workers), 2L)
  expect_identical(daemons(), s)
  expect_identical(nextget("n"), 2L)
  expect_true(nextget("dispatcher"))
  reset <- daemons(0)
  expect_identical(unclass(reset)[[1L]], 0L)
  expect_identical(status(), list(connections = 0L, daemons = 0L))
  expect_null(nextget("n"))
})

test_that("two slow tasks on two daemons run in parallel on different processes", {
  daemons(2)
  withr::defer(daemons(0))
  task <- function() {
    start <- Sys.time()
    Sys.sleep(1)
    list(pid = Sys.getpid(), start = start, end = Sys.time())
  }
  m1 <- mirai(task(), task = task)
  m2 <- mirai(task(), task = task)
  r1 <- m1[]
  r2 <- m2[]
  expect_false(r1$pid == r2$pid)
  expect_false(Sys.getpid() %in% c(r1$pid, r2$pid))
  # each started before the other finished
  expect_true(r1$start < r2$end)
  expect_true(r2$start < r1$end)
})

test_that("dispatcher = FALSE sends tasks round-robin to both daemons", {
  expect_identical(unclass(daemons(2, dispatcher = FALSE))[[1L]], 2L)
  withr::defer(daemons(0))
  expect_false(nextget("dispatcher"))
  pids <- collect_mirai(lapply(1:4, function(i) mirai({ Sys.sleep(0.2); Sys.getpid() })))
  expect_length(unique(unlist(pids)), 2L)
})

test_that("a daemon killed mid-task gives errorValue 19 and the other carries on", {
  daemons(2, resilience = FALSE)
  withr::defer(daemons(0))
  file <- tempfile()
  m <- mirai({
    writeLines(as.character(Sys.getpid()), file)
    Sys.sleep(30)
  }, file = file)
  expect_true(poll_until(function() file.exists(file) && length(readLines(file)) == 1L))
  pid <- as.integer(readLines(file))
  tools::pskill(pid, tools::SIGKILL)
  value <- m[]
  expect_true(is_error_value(value))
  expect_identical(unclass(value), 19L)
  expect_identical(mirai(1 + 1)[], 2)
  expect_false(mirai(Sys.getpid())[] == pid)
  expect_identical(status()$deaths, 1L)
})

# The PIDs of the daemons connected to the default profile.
status_pids <- function() {
  s <- host_status(..[["default"]][["host"]])
  as.integer(s[["pid"]][s[["online"]]])
}

# A task that kills whichever daemon evaluates it, each noting its PID in `log`.
fatal_mirai <- function(log) {
  mirai({
    cat(Sys.getpid(), "\n", file = log, append = TRUE)
    tools::pskill(Sys.getpid(), tools::SIGKILL)
    Sys.sleep(10)
  }, log = log)
}

test_that("a task that kills its daemons is retried up to the limit, then gives 19", {
  daemons(4, resilience = 2)
  withr::defer(daemons(0))
  expect_identical(nextget("resilience"), 2L)
  log <- tempfile()
  fatal <- fatal_mirai(log)
  others <- lapply(1:6, function(i) mirai({ Sys.sleep(0.1); i }, i = i))
  value <- fatal[]
  expect_true(is_error_value(value))
  expect_identical(unclass(value), 19L)
  # the first attempt and two retries, each on a different daemon
  expect_length(unique(readLines(log)), 3L)
  expect_identical(unlist(collect_mirai(others)), 1:6)
  expect_identical(mirai(2 + 2)[], 4)
})

test_that("by default a task that kills its daemon is retried once: it kills two, not four", {
  daemons(4)
  withr::defer(daemons(0))
  expect_identical(nextget("resilience"), 1L)
  log <- tempfile()
  fatal <- fatal_mirai(log)
  value <- fatal[]
  expect_identical(unclass(value), 19L)
  expect_length(unique(readLines(log)), 2L)
  expect_identical(status()$deaths, 2L)
  # the pool heals: four daemons serve tasks again
  expect_true(poll_until(function() status()$connections == 4L))
  values <- collect_mirai(lapply(1:8, function(i) mirai(i, i = i, .timeout = 20000)))
  expect_identical(unlist(values), 1:8)
})

test_that("launched daemons that die are replaced, and status() counts the deaths", {
  daemons(2, dispatcher = FALSE)
  withr::defer(daemons(0))
  expect_identical(status()$healing, "replacing")
  expect_identical(status()$deaths, 0L)
  pids <- function() {
    tasks <- lapply(1:4, function(i) mirai({ Sys.sleep(0.2); Sys.getpid() }, .timeout = 20000))
    unique(unlist(collect_mirai(tasks)))
  }
  before <- pids()
  expect_length(before, 2L)
  tools::pskill(before[1L], tools::SIGKILL)
  expect_true(poll_until(function() status()$deaths == 1L && status()$connections == 2L))
  after <- pids()
  expect_length(after, 2L)
  expect_false(before[1L] %in% after)
  expect_true(before[2L] %in% after)
  expect_identical(nrow(status()$workers), 3L)
})

test_that("without dispatcher, tasks queued behind the fatal one spend no retry", {
  daemons(2, dispatcher = FALSE, resilience = FALSE)
  withr::defer(daemons(0))
  # round-robin: tasks 1 and 3 go to one daemon, 2 and 4 to the other
  tasks <- list(
    mirai({ Sys.sleep(0.5); tools::pskill(Sys.getpid(), tools::SIGKILL); Sys.sleep(10) }),
    mirai({ Sys.sleep(0.5); 2L }),
    mirai(3L, .timeout = 20000),
    mirai(4L)
  )
  values <- collect_mirai(tasks)
  expect_identical(unclass(values[[1L]]), 19L)
  expect_identical(values[2:4], list(2L, 3L, 4L))
})

test_that("a daemon that leaves at its maxtasks is not replaced", {
  daemons(1, maxtasks = 1L)
  withr::defer(daemons(0))
  expect_identical(mirai(1L, .timeout = 20000)[], 1L)
  expect_true(poll_until(function() status()$connections == 0L))
  expect_false(poll_until(function() status()$connections > 0L, limit_s = 1))
  expect_identical(status()$deaths, 0L)
  expect_identical(status()$healing, "replacing")
})

test_that("daemons killed while idle are replaced at once, and never stop the replacing", {
  daemons(1, dispatcher = FALSE)
  withr::defer(daemons(0))
  for (i in 1:6) {
    pids <- status_pids()
    expect_length(pids, 1L)
    tools::pskill(pids, tools::SIGKILL)
    expect_true(poll_until(function() {
      now <- status_pids()
      length(now) == 1L && now != pids
    }))
  }
  expect_identical(status()$healing, "replacing")
  expect_identical(status()$deaths, 6L)
  expect_identical(mirai(1L, .timeout = 20000)[], 1L)
})

test_that("a crash loop stops replacing, says so, and resolves what waits to 19", {
  script <- tempfile(fileext = ".R")
  writeLines(c(
    "library(mirai)",
    "daemons(2)",
    "everywhere(tools::pskill(Sys.getpid(), tools::SIGKILL))",
    "m <- mirai(1, .timeout = 60000)",
    "value <- m[]",
    "s <- status()",
    "later <- mirai(2, .timeout = 10000)[]",
    "cat(unclass(value), unclass(later), s$connections, s$deaths >= 5L, '\\n', sep = ' ')",
    "cat(s$healing, '\\n')",
    "daemons(0)"
  ), script)
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
                      R_TESTS = NA)
  out <- suppressWarnings(system2(file.path(R.home("bin"), "Rscript"), script,
                                  stdout = TRUE, stderr = TRUE))
  expect_true(any(grepl("^19 19 0 TRUE", out)), info = paste(out, collapse = "\n"))
  expect_true(any(grepl("^stopped: [0-9]+ daemons died within 60 s before completing a task",
                        out)), info = paste(out, collapse = "\n"))
  expect_true(any(grepl("^mirai: launched daemons are no longer replaced: ", out)),
              info = paste(out, collapse = "\n"))
})

test_that("a task whose daemon dies is retried on another daemon", {
  daemons(2, dispatcher = FALSE)
  withr::defer(daemons(0))
  marker <- tempfile()
  m <- mirai({
    if (!file.exists(marker)) {
      file.create(marker)
      tools::pskill(Sys.getpid(), tools::SIGKILL)
    }
    Sys.getpid()
  }, marker = marker)
  pid <- m[]
  expect_type(pid, "integer")
  expect_true(file.exists(marker))
  expect_snapshot(error = TRUE, daemons(1, resilience = -1, .compute = "bad"))
  expect_snapshot(error = TRUE, daemons(1, resilience = 1.5, .compute = "bad"))
  expect_snapshot(error = TRUE, daemons(1, memory = "1", .compute = "bad"))
  expect_snapshot(error = TRUE, daemons(1, serial = list(), .compute = "bad"))
})

test_that("the cleanup defaults stop globals, packages and options leaking", {
  daemons(1)
  withr::defer(daemons(0))
  mirai({
    assign("leak", 1, envir = .GlobalEnv)
    library(tools)
    options(mirai.leak = TRUE)
  }, put = 1)[]
  after <- mirai(c(exists("leak"), exists("put"), "package:tools" %in% search(),
                   isTRUE(getOption("mirai.leak"))))[]
  expect_identical(after, c(FALSE, FALSE, FALSE, FALSE))
})

test_that("cleanup restores an option changed in place and a global a task removed", {
  daemons(1, dispatcher = FALSE, .compute = "restore")
  withr::defer(daemons(0, .compute = "restore"))
  everywhere(assign("kept", 42, envir = .GlobalEnv), .compute = "restore")
  before <- mirai(list(getOption("digits"), getOption("warn"), get0("kept")),
                  .compute = "restore")[]
  mirai({
    options(digits = 3, warn = 1)
    rm("kept", envir = .GlobalEnv)
  }, .compute = "restore")[]
  after <- mirai(list(getOption("digits"), getOption("warn"), get0("kept")),
                 .compute = "restore")[]
  expect_identical(before, list(7L, 0L, 42))
  expect_identical(after, before)
})

test_that("cleanup = 0L keeps globals, packages and options", {
  daemons(1, cleanup = 0L)
  withr::defer(daemons(0))
  mirai({
    assign("leak", 1, envir = .GlobalEnv)
    library(tools)
    options(mirai.leak = TRUE)
  }, put = 1)[]
  after <- mirai(c(exists("leak"), exists("put"), "package:tools" %in% search(),
                   isTRUE(getOption("mirai.leak"))))[]
  expect_identical(after, c(TRUE, TRUE, TRUE, TRUE))
})

test_that("maxtasks makes a daemon exit", {
  daemons(1, maxtasks = 2L, dispatcher = FALSE, .compute = "maxtasks")
  withr::defer(daemons(0, .compute = "maxtasks"))
  expect_identical(collect_mirai(list(mirai(1, .compute = "maxtasks"),
                                      mirai(2, .compute = "maxtasks"))), list(1, 2))
  expect_true(poll_until(function() status("maxtasks")$connections == 0L))
  expect_identical(unname(status("maxtasks")$workers[, "complete"]), 2L)
})

test_that("a daemon leaving at maxtasks or walltime loses no task of a backlog", {
  for (dispatcher in c(TRUE, FALSE)) {
    daemons(2, dispatcher = dispatcher, maxtasks = 2L, .compute = "backlog")
    ms <- lapply(1:5, function(i) mirai({ Sys.sleep(0.1); i }, i = i, .compute = "backlog"))
    expect_true(poll_until(function() status("backlog")$connections == 0L))
    # (without the dispatcher, a daemon also runs the tasks sent to it
    # before it said it was leaving)
    launch_local(1, .compute = "backlog")
    expect_identical(collect_mirai(ms), as.list(1:5))
    daemons(0, .compute = "backlog")
  }
  daemons(2, walltime = 300, .compute = "backlog")
  withr::defer(daemons(0, .compute = "backlog"))
  ms <- lapply(1:8, function(i) mirai({ Sys.sleep(0.1); i }, i = i, .compute = "backlog"))
  expect_true(poll_until(function() status("backlog")$connections == 0L))
  launch_local(1, walltime = 60000, .compute = "backlog")
  expect_identical(collect_mirai(ms), as.list(1:8))
})

test_that("idletime makes a daemon exit", {
  daemons(1, idletime = 500, .compute = "idle")
  withr::defer(daemons(0, .compute = "idle"))
  expect_true(poll_until(function() status("idle")$connections == 0L))
})

test_that("walltime makes a daemon exit, and timerstart delays the timers", {
  daemons(1, walltime = 500, .compute = "wall")
  withr::defer(daemons(0, .compute = "wall"))
  expect_true(poll_until(function() status("wall")$connections == 0L))

  daemons(1, idletime = 200, timerstart = 1L, .compute = "start")
  withr::defer(daemons(0, .compute = "start"))
  Sys.sleep(1)
  expect_identical(status("start")$connections, 1L)
  expect_identical(mirai(1, .compute = "start")[], 1)
  expect_true(poll_until(function() status("start")$connections == 0L))
})

test_that("the same seed gives the same random numbers, with or without dispatcher", {
  draw <- function(dispatcher) {
    daemons(2, dispatcher = dispatcher, seed = 1234L, .compute = "seed")
    on.exit(daemons(0, .compute = "seed"))
    unlist(collect_mirai(lapply(1:6, function(i) mirai(runif(2), .compute = "seed"))))
  }
  set.seed(42)
  saved <- .Random.seed
  first <- draw(FALSE)
  expect_identical(.Random.seed, saved)
  expect_identical(draw(FALSE), first)
  expect_identical(draw(TRUE), first)
  expect_length(unique(first), 12L)
})

test_that("without a seed, each daemon has its own stream and the user's RNG is untouched", {
  set.seed(7)
  saved <- .Random.seed
  daemons(2, dispatcher = FALSE)
  withr::defer(daemons(0))
  expect_identical(.Random.seed, saved)
  draws <- unlist(collect_mirai(lapply(1:2, function(i) mirai(runif(1)))))
  expect_false(draws[1L] == draws[2L])
  stream <- nextstream()
  expect_type(stream, "integer")
  expect_length(stream, 7L)
  expect_false(identical(nextstream(), stream))
})

test_that("with(daemons(2), ...) tears down when the expression is done", {
  pids <- with(daemons(2), {
    expect_identical(status()$connections, 2L)
    collect_mirai(list(mirai(Sys.getpid()), mirai(Sys.getpid())))
  })
  expect_length(pids, 2L)
  expect_identical(status()$connections, 0L)
})

test_that("compute profiles are independent", {
  daemons(1, .compute = "a")
  withr::defer(daemons(0, .compute = "a"))
  daemons(1, dispatcher = FALSE, .compute = "b")
  withr::defer(daemons(0, .compute = "b"))
  expect_identical(status()$connections, 0L)
  pa <- mirai(Sys.getpid(), .compute = "a")[]
  pb <- mirai(Sys.getpid(), .compute = "b")[]
  expect_false(pa == pb)
  daemons(0, .compute = "a")
  expect_identical(status("a")$connections, 0L)
  expect_identical(mirai(Sys.getpid(), .compute = "b")[], pb)
})

test_that("revising settings without a reset changes nothing and says so", {
  daemons(1)
  withr::defer(daemons(0))
  expect_snapshot(daemons(2))
  expect_identical(status()$connections, 1L)
  expect_message(daemons(2, .compute = "default"), "daemons(0)", fixed = TRUE)
  daemons(1, .compute = "other")
  withr::defer(daemons(0, .compute = "other"))
  expect_message(daemons(3, .compute = "other"), ".compute = \"other\"", fixed = TRUE)
})

test_that("daemons(url) listens for remote daemons and returns the URL", {
  url <- daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "url")
  withr::defer(daemons(0, .compute = "url"))
  expect_match(unclass(url), "^tcp://127\\.0\\.0\\.1:[0-9]+$")
  expect_false(grepl(":0$", unclass(url)))
  expect_identical(status("url")$daemons, as.vector(unclass(url)))
  expect_identical(status("url")$connections, 0L)
  # a daemon started as users would: Rscript -e 'mirai::daemon(url)'
  # (R CMD check sets R_TESTS to a relative path that breaks a child's start-up)
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
                      R_TESTS = NA)
  system2(file.path(R.home("bin"), "Rscript"),
          c("-e", shQuote(sprintf("mirai::daemon('%s')", url))), wait = FALSE,
          stdout = FALSE, stderr = FALSE)
  expect_true(poll_until(function() status("url")$connections == 1L))
  pid <- mirai(Sys.getpid(), .timeout = 20000, .compute = "url")[]
  expect_false(is_error_value(pid))
  expect_false(pid == Sys.getpid())
})

test_that("daemons(n, url) listens for n remote daemons; launch_local() brings them", {
  expect_identical(unclass(daemons(2, url = "tcp://127.0.0.1:0", .compute = "both"))[[1L]], 2L)
  withr::defer(daemons(0, .compute = "both"))
  expect_identical(status("both")$connections, 0L)
  urls <- nextget("urls", .compute = "both")
  expect_length(urls, 2L)
  expect_match(urls, "^tcp://127\\.0\\.0\\.1:[0-9]+$")
  launch_local(2L, .compute = "both")
  expect_true(poll_until(function() status("both")$connections == 2L))
  expect_identical(mirai(1L + 1L, .compute = "both")[], 2L)
})

test_that("daemons(NULL) sends exit, so even autoexit = FALSE daemons leave", {
  url <- local_url()
  daemons(url = url, dispatcher = FALSE, .compute = "persist")
  withr::defer(daemons(0, .compute = "persist"))
  process <- launch_daemon(url, list(autoexit = FALSE))
  withr::defer(.Call(wrap__process_kill, process))
  expect_true(poll_until(function() status("persist")$connections == 1L))
  pid <- mirai(Sys.getpid(), .timeout = 20000, .compute = "persist")[]
  daemons(0, .compute = "persist")
  # the daemon dials in again when a host listens at the same URL (the old
  # listener is released by the networking threads just after the reset)
  expect_true(poll_until(function() {
    !inherits(try(daemons(url = url, dispatcher = FALSE, .compute = "persist"),
                  silent = TRUE), "try-error")
  }))
  expect_true(poll_until(function() status("persist")$connections == 1L))
  expect_identical(mirai(Sys.getpid(), .timeout = 20000, .compute = "persist")[], pid)
  daemons(NULL, .compute = "persist")
  expect_true(poll_until(function() !is.null(.Call(wrap__process_exit_status, process))))
})

test_that("a launched daemon that cannot start fails daemons() with its own error", {
  empty <- withr::local_tempdir()
  withr::local_libpaths(empty, action = "replace")
  withr::local_envvar(R_LIBS_USER = empty, R_LIBS_SITE = empty)
  withr::defer(daemons(0, .compute = "nolib"))
  expect_error(daemons(1, .compute = "nolib"), "there is no package called")
  expect_identical(status("nolib")$connections, 0L)
})

test_that("bad input to daemons() is an error naming the argument", {
  expect_snapshot(error = TRUE, daemons(-1))
  expect_snapshot(error = TRUE, daemons("a"))
  expect_snapshot(error = TRUE, daemons(2.5))
  expect_snapshot(error = TRUE, daemons(c(1, 2)))
  expect_snapshot(error = TRUE, daemons(1, dispatcher = "yes"))
  expect_snapshot(error = TRUE, daemons(1, seed = "x"))
  expect_snapshot(error = TRUE, daemons(1, resilience = NA))
  expect_snapshot(error = TRUE, daemons(1, maxtasks = -1))
  expect_snapshot(error = TRUE, daemons(1, cleanup = 16L))
  expect_snapshot(error = TRUE, daemons(1, output = "yes"))
  expect_snapshot(error = TRUE, daemons(1, unknown = 1))
  expect_snapshot(error = TRUE, daemons(1, 2))
  expect_snapshot(error = TRUE, daemons(url = 1), transform = scrub_urls)
  expect_snapshot(error = TRUE, daemons(url = "bogus://x"), transform = scrub_urls)
  expect_snapshot(error = TRUE, daemons(1, tls = 1))
  expect_snapshot(error = TRUE, daemons(1, pass = 1))
  expect_snapshot(error = TRUE, daemons(1, remote = list()))
  expect_snapshot(error = TRUE, daemons(1, .compute = NA))
  expect_identical(status(), list(connections = 0L, daemons = 0L))
})

test_that("a result beyond max_message is errorValue 24 and closes that daemon's connection only", {
  for (dispatcher in c(TRUE, FALSE)) {
    daemons(2, max_message = 4096, dispatcher = dispatcher, .compute = "limit")
    expect_true(poll_until(function() status("limit")$connections == 2L))
    # not retried: it would be too large on the other daemon too
    big <- mirai(raw(1e5), .compute = "limit")[]
    expect_true(is_error_value(big))
    expect_identical(as.integer(big), 24L)
    expect_output(print(big), "Message too large", fixed = TRUE)
    expect_identical(mirai(1L, .compute = "limit")[], 1L)
    expect_identical(status("limit")$connections, 1L)
    daemons(0, .compute = "limit")
  }
  expect_error(daemons(1, max_message = 1, .compute = "bad"), "'max_message' must be")
  expect_null(..[["bad"]])
})

test_that("a standalone dispatcher dials into a host and serves its own daemons", {
  url <- local_url()
  cfg <- serial_config("relay_cls", local(function(x) serialize(NULL, NULL), baseenv()),
                       local(function(r) NULL, baseenv()))
  daemons(url = url, dispatcher = FALSE, serial = cfg, .compute = "upstream")
  withr::defer(daemons(0, .compute = "upstream"))
  code <- sprintf("mirai::dispatcher(\"%s\", n = 2L)", url)
  process <- process_spawn(file.path(R.home("bin"), "Rscript"), c("-e", code),
                           "R_LIBS", paste(.libPaths(), collapse = .Platform$path.sep),
                           "R_TESTS", FALSE)
  withr::defer(.Call(wrap__process_kill, process))
  expect_true(poll_until(function() status("upstream")$connections == 1L))
  ms <- lapply(1:10, function(i) mirai({ Sys.sleep(0.1); c(i, Sys.getpid()) }, i = i,
                                       .compute = "upstream"))
  values <- collect_mirai(ms)
  expect_identical(vapply(values, `[[`, numeric(1L), 1L), as.numeric(1:10))
  expect_length(unique(vapply(values, `[[`, numeric(1L), 2L)), 2L)
  expect_true(is_mirai_error(mirai(stop("relayed"), .compute = "upstream")[]))
  # The dispatcher passes tasks on as bytes, unread: one with custom
  # serialization reaches its daemons, which were given the configuration.
  custom <- structure(methods::new("externalptr"), class = "relay_cls")
  expect_identical(mirai(1, x = custom, .timeout = 10000, .compute = "upstream")[], 1)
  expect_identical(mirai(2, .timeout = 10000, .compute = "upstream")[], 2)
  # everywhere() through the dispatcher: answered once its daemons have run
  # it, with the first error among them, else the first daemon's value
  expect_identical(everywhere(1, .compute = "upstream")[], list(1))
  relayed <- everywhere(stop("on the relay's daemons"), .compute = "upstream")[]
  expect_true(is_mirai_error(relayed[[1L]]))
  expect_match(relayed[[1L]], "on the relay's daemons", fixed = TRUE)
  daemons(0, .compute = "upstream")
  expect_true(poll_until(function() !is.null(.Call(wrap__process_exit_status, process))))
})

test_that("dispatcher() forwards a cancel: the task stops on its daemon, which is free for the next", {
  url <- local_url()
  daemons(url = url, dispatcher = FALSE, .compute = "relay_cancel")
  withr::defer(daemons(0, .compute = "relay_cancel"))
  code <- sprintf("mirai::dispatcher(\"%s\", n = 1L)", url)
  process <- process_spawn(file.path(R.home("bin"), "Rscript"), c("-e", code),
                           "R_LIBS", paste(.libPaths(), collapse = .Platform$path.sep),
                           "R_TESTS", FALSE)
  withr::defer(process_kill(process))
  expect_true(poll_until(function() status("relay_cancel")$connections == 1L))
  started <- tempfile("started-")
  finished <- tempfile("finished-")
  withr::defer(unlink(c(started, finished)))
  m <- mirai({
    file.create(started)
    Sys.sleep(10)
    file.create(finished)
  }, started = started, finished = finished, .compute = "relay_cancel")
  expect_true(poll_until(function() file.exists(started)))
  expect_true(stop_mirai(m))
  expect_identical(unclass(m[]), 20L)
  # The dispatcher has one daemon: this task runs there only once the first
  # has ended, which it does at once only if the cancel stopped it.
  expect_false(mirai(file.exists(finished), finished = finished, .compute = "relay_cancel")[])
  expect_false(file.exists(finished))
  daemons(0, .compute = "relay_cancel")
  expect_true(poll_until(function() !is.null(process_exit_status(process))))
})

test_that("bad input to dispatcher() is an error naming the argument", {
  expect_error(dispatcher(1), "'host' must be")
  expect_error(dispatcher("tcp://127.0.0.1:1"), "'n' must be")
  expect_error(dispatcher("tcp://127.0.0.1:1", n = 0), "'n' must be")
  expect_error(dispatcher("tcp://127.0.0.1:1", n = 1, autoscale = list(max = 2)), "'autoscale' is not taken")
})

test_that("local daemons are out of reach of a Ctrl-C at the host's terminal", {
  daemons(1)
  withr::defer(daemons(0))
  pid <- mirai(Sys.getpid())[]
  # The terminal sends SIGINT to its foreground process group: the daemon
  # leads a group of its own.
  stat <- readLines(sprintf("/proc/%d/stat", pid))
  fields <- strsplit(sub("^.*\\) ", "", stat), " ", fixed = TRUE)[[1L]]
  expect_identical(as.integer(fields[3L]), pid)
})

test_that("cleanup = TRUE is the default cleanup and FALSE none, as in the original", {
  daemons(1, cleanup = FALSE, .compute = "keep")
  withr::defer(daemons(0, .compute = "keep"))
  expect_identical(nextget("dots", .compute = "keep"), list(cleanup = 0L))
  mirai(assign("leak", 1, envir = .GlobalEnv), .compute = "keep")[]
  expect_true(mirai(exists("leak"), .compute = "keep")[])
  daemons(1, cleanup = TRUE, .compute = "clean")
  withr::defer(daemons(0, .compute = "clean"))
  expect_identical(nextget("dots", .compute = "clean"), list(cleanup = 7L))
  mirai(assign("leak", 1, envir = .GlobalEnv), .compute = "clean")[]
  expect_false(mirai(exists("leak"), .compute = "clean")[])
})

test_that("daemons() takes the daemon arguments of the original mirai through '...'", {
  daemons(1, asyncdial = TRUE, dispatcher = TRUE, id = 3L, autoexit = NA,
          .compute = "orig")
  withr::defer(daemons(0, .compute = "orig"))
  expect_identical(nextget("dots", .compute = "orig"), list(asyncdial = TRUE, autoexit = NA))
  expect_identical(mirai(1L, .compute = "orig")[], 1L)
  expect_snapshot(error = TRUE, daemons(1, tlsc = "x", .compute = "bad"))
})

test_that("daemons() with neither n nor url is status() only when given nothing else", {
  expect_identical(daemons(), status())
  expect_identical(daemons(.compute = "none"), status("none"))
  expect_snapshot(error = TRUE, daemons(bogus = 1))
  expect_snapshot(error = TRUE, daemons(dispatcher = FALSE))
  expect_snapshot(error = TRUE, daemons(seed = 1))
  expect_false(daemons_set())
})

test_that("memory is in megabytes: the queue's bound, reported by status()", {
  url <- local_url()
  daemons(url = url, memory = 0.001, seed = 1, .compute = "mem")
  withr::defer(daemons(0, .compute = "mem"))
  expect_identical(status("mem")$memory, c(used = 0, peak = 0, capacity = 0.001))
  first <- mirai(length(x), x = raw(600), .compute = "mem")
  used <- status("mem")$memory
  expect_gt(used[["used"]], 0.0006)
  expect_identical(used[["peak"]], used[["used"]])
  # full: try_mirai() refuses at once, and leaves the random number stream
  # as it was (its task never ran)
  stream <- nextget("stream", .compute = "mem")
  expect_null(try_mirai(length(x), x = raw(600), .compute = "mem"))
  expect_identical(nextget("stream", .compute = "mem"), stream)
  launch_local(1, .compute = "mem")
  expect_identical(first[], 600L)
  expect_true(poll_until(function() status("mem")$memory[["used"]] == 0))
  expect_identical(status("mem")$memory[["peak"]], used[["peak"]])

  # 0, NA and NULL are unbounded; without dispatcher it has no effect
  for (unbounded in list(0, NA, NA_real_, NULL)) {
    daemons(url = local_url(), memory = unbounded, .compute = "unbounded")
    expect_identical(status("unbounded")$memory[["capacity"]], NA_real_)
    expect_true(is_mirai(try_mirai(x, x = raw(600), .compute = "unbounded")))
    expect_true(is_mirai(try_mirai(x, x = raw(600), .compute = "unbounded")))
    daemons(0, .compute = "unbounded")
  }
  daemons(url = local_url(), dispatcher = FALSE, memory = 0.001, .compute = "direct")
  withr::defer(daemons(0, .compute = "direct"))
  expect_null(status("direct")$memory)
  expect_true(is_mirai(try_mirai(x, x = raw(2000), .compute = "direct")))
  expect_true(is_mirai(try_mirai(x, x = raw(2000), .compute = "direct")))
  expect_snapshot(error = TRUE, daemons(1, memory = -1, .compute = "bad"))
  expect_snapshot(error = TRUE, daemons(1, memory = c(1, 2), .compute = "bad"))
})

test_that("daemons(n) inside a mirai is an error, unless nested on purpose", {
  daemons(1)
  withr::defer(daemons(0))
  nested <- mirai(mirai::daemons(1))[]
  expect_true(is_mirai_error(nested))
  expect_match(nested, "cannot launch local daemons from within a daemon", fixed = TRUE)
  on_purpose <- mirai({
    mirai::daemons(url = mirai::local_url())
    mirai::launch_local(1)
    out <- mirai::mirai(Sys.getpid())[]
    mirai::daemons(0)
    out
  })[]
  expect_type(on_purpose, "integer")
  expect_false(on_purpose %in% c(Sys.getpid(), mirai(Sys.getpid())[]))
})

test_that("with(daemons(...), expr) makes the profile the default for expr", {
  pids <- with(daemons(1, .compute = "w"), {
    expect_true(daemons_set())
    expect_identical(status()$connections, 1L)
    list(mirai(Sys.getpid())[], mirai_map(1:2, function(x) Sys.getpid())[.flat])
  })
  expect_false(pids[[1L]] == Sys.getpid())
  expect_identical(pids[[2L]], rep(pids[[1L]], 2L))
  expect_false(daemons_set("w"))
  expect_false(daemons_set())
})
