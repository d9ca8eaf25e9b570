# daemon(): arguments, the launch command, the evaluation and cleanup helpers;
# on_daemon()

test_that("bad input to daemon() is an error naming the argument", {
  expect_snapshot(error = TRUE, daemon("bogus://x"), transform = scrub_urls)
  expect_snapshot(error = TRUE, daemon(1))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", asyncdial = NA))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", maxtasks = -1))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", idletime = "1"))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", walltime = NA))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", timerstart = 1.5))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", output = 1))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", cleanup = -1L))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", rs = 1:3))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", tls = 1))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", autoexit = "no"))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", token = 1))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", other = 1))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", cleanup = "yes"))
  expect_snapshot(error = TRUE, daemon("tcp://127.0.0.1:5555", autoexit = 99))
  expect_snapshot(error = TRUE, daemon("tcp://:5555"), transform = scrub_urls)
})

# Runs `mirai::daemon(url, ...)` in an R process as a user would, and returns
# what it prints: the daemon's exit code, explained by nextcode().
daemon_exit <- function(url, ...) {
  call <- as.call(c(quote(mirai::daemon), list(url), list(...)))
  code <- sprintf("cat(mirai::nextcode(%s))", paste(deparse(call, width.cutoff = 500L),
                                                    collapse = " "))
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
                      R_TESTS = NA)
  out <- tempfile()
  system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(code)), wait = FALSE,
          stdout = out, stderr = FALSE)
  out
}

read_exit <- function(out) {
  text <- if (file.exists(out)) readLines(out, warn = FALSE) else character()
  if (length(text)) text else NA_character_
}

test_that("daemon() returns an exit code that nextcode() explains", {
  expect_identical(nextcode(0L), "0 | Daemon connection terminated")
  expect_identical(nextcode(1L), "1 | Daemon idletime limit reached")
  expect_identical(nextcode(2), "2 | Daemon walltime limit reached")
  expect_identical(nextcode(3L), "3 | Daemon task limit reached")
  expect_snapshot(error = TRUE, nextcode(4L))
  expect_snapshot(error = TRUE, nextcode("a"))

  url <- daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "codes")
  withr::defer(daemons(0, .compute = "codes"))
  url <- unclass(url)
  tasks <- daemon_exit(url, maxtasks = 1L)
  expect_true(poll_until(function() status("codes")$connections == 1L))
  expect_identical(mirai(1, .compute = "codes")[], 1)
  expect_true(poll_until(function() !is.na(read_exit(tasks))))
  expect_identical(read_exit(tasks), "3 | Daemon task limit reached")

  idle <- daemon_exit(url, idletime = 300)
  expect_true(poll_until(function() !is.na(read_exit(idle))))
  expect_identical(read_exit(idle), "1 | Daemon idletime limit reached")
  # walltime wins when it elapses while the daemon is idle too
  wall <- daemon_exit(url, idletime = 300, walltime = 300)
  expect_true(poll_until(function() !is.na(read_exit(wall))))
  expect_identical(read_exit(wall), "2 | Daemon walltime limit reached")

  closed <- daemon_exit(url)
  expect_true(poll_until(function() status("codes")$connections == 1L))
  daemons(0, .compute = "codes")
  expect_true(poll_until(function() !is.na(read_exit(closed))))
  expect_identical(read_exit(closed), "0 | Daemon connection terminated")
})

test_that("daemon() takes the arguments of the original mirai's daemon()", {
  url <- daemons(url = "tls+tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "orig")
  withr::defer(daemons(0, .compute = "orig"))
  ca <- nextget("tls_ca", .compute = "orig")
  token <- mirai:::..[["orig"]][["token"]]
  # as in a launch command that the original mirai 2.x generated
  rscript_daemon(unclass(url), dispatcher = FALSE, cleanup = FALSE, asyncdial = FALSE,
                 autoexit = NA, tlscert = c(ca, ""), id = 1L, token = token,
                 rs = c(10407L, 1:6))
  expect_true(poll_until(function() status("orig")$connections == 1L))
  # cleanup = FALSE: a global set by one task is seen by the next
  mirai(assign("kept", 1, envir = .GlobalEnv), .timeout = 20000, .compute = "orig")[]
  expect_true(mirai(exists("kept"), .timeout = 20000, .compute = "orig")[])
})

test_that("autoexit = a signal ends a daemon whose host goes away mid-task", {
  url <- daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "signal")
  withr::defer(daemons(0, .compute = "signal"))
  out <- daemon_exit(unclass(url), autoexit = tools::SIGTERM)
  expect_true(poll_until(function() status("signal")$connections == 1L))
  pid <- mirai(Sys.getpid(), .compute = "signal")[]
  started <- tempfile()
  m <- mirai({ file.create(started); Sys.sleep(60) }, started = started, .compute = "signal")
  expect_true(poll_until(function() file.exists(started)))
  daemons(0, .compute = "signal")
  # gone long before its task would have ended, without returning
  expect_true(poll_until(function() !process_alive(pid)))
  expect_true(is.na(read_exit(out)))
})

test_that("daemon() fails clearly when nothing listens and asyncdial = FALSE", {
  url <- local_url()
  expect_error(daemon(url), "could not connect", fixed = TRUE)
})

test_that("local_url() gives a fresh abstract socket URL", {
  url <- local_url()
  expect_match(url, "^abstract://mirai-[0-9a-f]{24}$")
  expect_false(identical(url, local_url()))
})

test_that("the launch command is a mirai::daemon() call; the secret and stream go on stdin", {
  cmd <- launch_command("abstract://x", list(maxtasks = 1L, cleanup = 0L),
                        rs = c(10407L, 1:6), token = "abc")
  expect_identical(
    cmd,
    'mirai::daemon("abstract://x", maxtasks = 1L, cleanup = 0L, stdin = TRUE)'
  )
  call <- str2lang(cmd)
  expect_identical(call[[1L]], quote(mirai::daemon))
  expect_identical(launch_command("abstract://x", list()), 'mirai::daemon("abstract://x")')
  expect_identical(launch_record(c(10407L, 1:6), "abc"), "token abc\nrs 10407 1 2 3 4 5 6\nend\n")
  expect_identical(launch_record("random", NULL), "rs random\nend\n")
  expect_null(launch_record())
  expect_identical(here_document("cmd", "token abc\nend\n"), "cmd <<'MIRAI'\ntoken abc\nend\nMIRAI")
  expect_identical(here_document("cmd", NULL), "cmd")
})

test_that("a daemon reads its secret and stream from stdin, as the launchers write them", {
  reader <- paste(
    "r <- mirai:::read_launch_record();",
    "cat(r$token, length(mirai:::record_stream(r$rs)), mirai:::record_stream('random')[1L],",
    "    is.null(mirai:::record_stream(NULL)))"
  )
  input <- tempfile()
  writeLines(c("token abc123", "rs 10407 1 2 3 4 5 6", "other ignored", "end", "after"), input)
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep), R_TESTS = NA)
  out <- system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(reader)),
                 stdin = input, stdout = TRUE)
  expect_identical(out, "abc123 7 10407 TRUE")
  # end of input without `end`, and no input at all
  writeLines("token xyz", input)
  out <- system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(reader)),
                 stdin = input, stdout = TRUE)
  expect_identical(out, "xyz 0 10407 TRUE")
})

test_that("random streams are valid L'Ecuyer-CMRG seeds and leave the RNG alone", {
  set.seed(1)
  saved <- .Random.seed
  stream <- random_stream()
  expect_identical(.Random.seed, saved)
  expect_length(stream, 7L)
  expect_identical(stream[1L], 10407L)
  expect_type(parallel::nextRNGStream(stream), "integer")
  expect_identical(seed_stream(5), seed_stream(5))
  expect_identical(.Random.seed, saved)
  expect_false(identical(random_stream(), random_stream()))
})

test_that("a task is evaluated with globals, local args and a stack trace on error", {
  withr::defer(rm(list = intersect(c("gv", "hv"), names(.GlobalEnv)), envir = .GlobalEnv))
  value <- serve_tasks(eval_task(list(quote(gv + lv), list(gv = 1), list(lv = 2), NULL)))
  expect_identical(value, 3)
  expect_false(exists("lv", envir = .GlobalEnv, inherits = FALSE))
  err <- serve_tasks(eval_task(list(quote(h()),
                                    list(h = function() k(), k = function() stop("deep")),
                                    list(), NULL)))
  expect_true(is_mirai_error(err))
  expect_identical(as.character(err), "Error in k(): deep")
  expect_identical(err$stack.trace[2:3], list(quote(k()), quote(h())))
  rm(list = c("h", "k"), envir = .GlobalEnv)
})

test_that("a daemon's RNG stream is installed from the task", {
  withr::local_seed(99)
  stream <- seed_stream(3)
  a <- eval_task(list(quote(runif(1)), NULL, list(), stream))
  b <- eval_task(list(quote(runif(1)), NULL, list(), stream))
  expect_identical(a, b)
})

test_that("a daemon starts without loading parallel", {
  daemons(1, dispatcher = FALSE, .compute = "lean")
  withr::defer(daemons(0, .compute = "lean"))
  expect_false(mirai("parallel" %in% loadedNamespaces(), .compute = "lean")[])
})

test_that("an interrupt reaching an idle daemon stops it, and says so on its error output", {
  url <- daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "idle")
  withr::defer(daemons(0, .compute = "idle"))
  errors <- rscript_daemon(unclass(url), stderr = TRUE)
  expect_true(poll_until(function() status("idle")$connections == 1L))
  pid <- mirai(Sys.getpid(), .compute = "idle")[]
  # (again until it stops: one landing as the task ends is absorbed)
  expect_true(poll_until(function() {
    tools::pskill(pid, tools::SIGINT)
    status("idle")$connections == 0L
  }))
  said <- function() any(grepl("mirai: daemon stops: interrupted while idle",
                               readLines(errors, warn = FALSE), fixed = TRUE))
  expect_true(poll_until(said))
})

test_that("the host passes on the log lines of the daemons it launched", {
  script <- tempfile(fileext = ".R")
  writeLines(c(
    "library(mirai)",
    "daemons(1)",
    "pid <- mirai(Sys.getpid())[]",
    "for (i in 1:400) {",
    "  tools::pskill(pid, tools::SIGINT)",
    "  Sys.sleep(0.05)",
    "  if (status()$connections == 0L) break",
    "}",
    "Sys.sleep(0.5)",
    "cat(pid)"
  ), script)
  errors <- tempfile()
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
                      R_TESTS = NA)
  pid <- system2(file.path(R.home("bin"), "Rscript"), script, stdout = TRUE, stderr = errors)
  expect_match(pid, "^[0-9]+$")
  expect_true(any(readLines(errors) ==
                    sprintf("mirai: pid %s: daemon stops: interrupted while idle", pid)))
})

test_that("an error as a failing task unwinds leaves the first error as its value", {
  daemons(1, dispatcher = FALSE)
  withr::defer(daemons(0))
  pid <- mirai(Sys.getpid())[]
  # (a daemon that died would leave the next task waiting: hence the timeouts)
  value <- mirai({
    f <- function() {
      on.exit(stop("in its cleanup"))
      stop("first")
    }
    f()
  }, .timeout = 10000)[]
  expect_true(is_mirai_error(value))
  expect_identical(as.character(value), "Error in f(): first")
  value <- mirai(tryCatch(stop("the work"), finally = stop("the cleanup")), .timeout = 10000)[]
  expect_match(value, "the work", fixed = TRUE)
  expect_identical(mirai(Sys.getpid(), .timeout = 10000)[], pid)
})

test_that("a value too large for the daemon's memory to send is an error value", {
  url <- daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "small")
  withr::defer(daemons(0, .compute = "small"))
  # A daemon with 1.5 GB of address space: room for a 700 MB vector, not
  # also for its serialization.
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
                      R_TESTS = NA)
  command <- sprintf("mirai::daemon('%s')", unclass(url))
  script <- sprintf("ulimit -v 1500000; exec %s -e %s",
                    shQuote(file.path(R.home("bin"), "Rscript")), shQuote(command))
  system2("sh", c("-c", shQuote(script)), wait = FALSE, stdout = FALSE, stderr = FALSE)
  expect_true(poll_until(function() status("small")$connections == 1L))
  pid <- mirai(Sys.getpid(), .compute = "small")[]
  value <- mirai(raw(700e6), .timeout = 60000, .compute = "small")[]
  expect_true(is_mirai_error(value))
  expect_match(value, "could not be serialized", fixed = TRUE)
  expect_identical(mirai(Sys.getpid(), .timeout = 10000, .compute = "small")[], pid)
})

test_that("on_daemon() is FALSE here and TRUE inside a mirai", {
  expect_false(on_daemon())
  daemons(1)
  withr::defer(daemons(0))
  expect_true(mirai(mirai::on_daemon())[])
})

test_that("a daemon whose idle link is reset (its host killed) ends without a log line", {
  skip_on_os("windows")
  dir <- withr::local_tempdir()
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep), R_TESTS = NA)
  rscript <- file.path(R.home("bin"), "Rscript")
  in_dir <- function(name) file.path(dir, name)
  host <- in_dir("host.R")
  writeLines(c(
    "library(mirai)",
    "daemons(url = 'tcp://127.0.0.1:0', dispatcher = FALSE, link_timeout = 1000)",
    sprintf("writeLines(c(Sys.getpid(), status()$daemons), '%s')", in_dir("url.tmp")),
    sprintf("file.rename('%s', '%s')", in_dir("url.tmp"), in_dir("url")),
    "while (status()$connections < 1L) Sys.sleep(0.05)",
    sprintf("if (identical(mirai(1)[], 1)) file.create('%s')", in_dir("done")),
    "Sys.sleep(60)"
  ), host)
  system2(rscript, host, wait = FALSE, stdout = FALSE, stderr = FALSE)
  expect_true(poll_until(function() file.exists(in_dir("url"))))
  lines <- readLines(in_dir("url"))
  host_pid <- as.integer(lines[1L])
  withr::defer(tools::pskill(host_pid, tools::SIGKILL))
  log <- in_dir("daemon.log")
  code <- sprintf("mirai::daemon('%s'); message('daemon returned')", lines[2L])
  system2(rscript, c("-e", shQuote(code)), wait = FALSE, stdout = log, stderr = log)
  expect_true(poll_until(function() file.exists(in_dir("done"))))
  # A stopped host reads nothing: the daemon's heartbeats (every 125 ms)
  # stay unread in its socket, so that killing it resets the connection.
  tools::pskill(host_pid, tools::SIGSTOP)
  Sys.sleep(0.6)
  tools::pskill(host_pid, tools::SIGKILL)
  expect_true(poll_until(function() any(grepl("daemon returned", readLines(log, warn = FALSE)))))
  expect_false(any(grepl("closed connection", readLines(log, warn = FALSE), fixed = TRUE)))
})
