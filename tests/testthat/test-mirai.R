# mirai() and try_mirai(), their values, waiting on them, stopping and racing them

test_that("with no daemons set, a mirai evaluates in a new process", {
  m <- mirai(Sys.getpid())
  expect_true(is_mirai(m))
  pid <- m[]
  expect_type(pid, "integer")
  expect_false(pid == Sys.getpid())
  expect_false(unresolved(m))
  expect_output(print(m), "< mirai [$data] >", fixed = TRUE)
  expect_identical(status(), list(connections = 0L, daemons = 0L))
})

test_that("a large value comes back whole from a daemon that exits after its task", {
  # (its socket takes only part of it at once: the rest is written as the
  # daemon exits)
  x <- seq_len(4e6) + 0.5
  expect_identical(mirai(seq_len(4e6) + 0.5)[], x)
  daemons(url = "tls+tcp://127.0.0.1:0", dispatcher = FALSE)
  withr::defer(daemons(0))
  launch_local(1, maxtasks = 1L)
  expect_identical(mirai(seq_len(4e6) + 0.5)[], x)
})

test_that("an error in the task is a miraiError with its fields", {
  m <- mirai(f(), f = function() stop("boom"))
  value <- collect_mirai(m)
  expect_true(is_mirai_error(value))
  expect_true(is_error_value(value))
  expect_false(is_mirai_interrupt(value))
  expect_identical(as.character(value), "Error in f(): boom")
  expect_identical(value$condition.class, c("simpleError", "error", "condition"))
  expect_type(value$stack.trace, "list")
  expect_true("f()" %in% unlist(value$stack.trace))
  expect_output(print(value), "'miraiError' chr Error in f(): boom", fixed = TRUE)
  top <- mirai(stop("at the top"))[]
  expect_identical(as.character(top), "Error: at the top")
  custom <- mirai(stop(structure(class = c("myError", "error", "condition"),
                                 list(message = "mine", call = NULL))))[]
  expect_identical(custom$condition.class, c("myError", "error", "condition"))
})

test_that("a miraiError keeps the condition's message, call and own fields", {
  daemons(1)
  withr::defer(daemons(0))
  value <- mirai(f(2), f = function(x) stop("boom ", x))[]
  expect_identical(value$message, "boom 2")
  expect_identical(value$call, quote(f(2)))
  expect_identical(conditionMessage(value), "boom 2")
  expect_identical(conditionCall(value), quote(f(2)))
  expect_true(any(vapply(value$stack.trace, identical, logical(1L), quote(f(2)))))
  expect_true(all(vapply(value$stack.trace, is.call, logical(1L))))
  expect_true(all(c("message", "call", "condition.class", "stack.trace") %in%
                    .DollarNames(value)))
  top <- mirai(stop("at the top"))[]
  expect_null(top$call)
  expect_null(conditionCall(top))
  expect_identical(conditionMessage(top), "at the top")
  custom <- mirai(stop(structure(class = c("myError", "error", "condition"),
                                 list(message = "mine", call = NULL, extra = 1:3,
                                      names = "clash"))))[]
  expect_identical(custom$extra, 1:3)
  expect_identical(custom$message, "mine")
  expect_identical(custom$condition.class, c("myError", "error", "condition"))
  expect_s3_class(custom, "miraiError")
  expect_null(names(custom))
  abort <- mirai(rlang::abort("from rlang", foo = "bar", class = "my_rlang_error"))[]
  expect_identical(abort$foo, "bar")
  expect_identical(abort$message, "from rlang")
  expect_true("rlang_error" %in% abort$condition.class)
  expect_true("trace" %in% .DollarNames(abort))
})

test_that("a miraiError whose own fields cannot be sent keeps its message, call and class", {
  cfg <- serial_config("unsendable_cls", local(function(x) stop("cannot send"), baseenv()),
                       local(function(r) NULL, baseenv()))
  daemons(1, serial = cfg)
  withr::defer(daemons(0))
  value <- mirai({
    field <- structure(methods::new("externalptr"), class = "unsendable_cls")
    stop(structure(class = c("pipeError", "error", "condition"),
                   list(message = "no pipe", call = quote(g()), con = field)))
  })[]
  expect_true(is_mirai_error(value))
  expect_identical(as.character(value), "Error in g(): no pipe")
  expect_identical(value$message, "no pipe")
  expect_identical(value$call, quote(g()))
  expect_identical(value$condition.class, c("pipeError", "error", "condition"))
  expect_null(value$con)
})

test_that("'.args' may be a named atomic vector; each mirai has an integer id", {
  daemons(1, dispatcher = FALSE)
  withr::defer(daemons(0))
  expect_identical(mirai(m + n, .args = c(m = 2L, n = 4L))[], 6L)
  expect_identical(mirai(paste(a, b), .args = c(a = "x", b = "y"))[], "x y")
  expect_snapshot(error = TRUE, mirai(1, .args = c(1, 2)))
  expect_snapshot(error = TRUE, mirai(1, .args = c(a = 1, 2)))
  m1 <- mirai(1)
  m2 <- mirai(2)
  id <- attr(m1, "id")
  expect_type(id, "integer")
  expect_identical(attr(m2, "id"), id + 1L)
  mp <- mirai_map(1:2, identity)
  expect_identical(vapply(mp, attr, integer(1L), "id"), id + 2:3)
  expect_type(attr(mirai(1, .compute = "unset"), "id"), "integer")
  expect_invisible(mirai(1))
  expect_invisible(try_mirai(1))
  expect_true(is_mirai_map(mp))
  expect_false(is_mirai_map(m1))
  expect_false(is_mirai_map(mp[]))
})

test_that("objects reach the task through '...' and '.args'", {
  daemons(1, dispatcher = FALSE)
  withr::defer(daemons(0))
  f <- function(x) g(x) + 1
  g <- function(x) x * 2
  expect_identical(mirai(f(3), f = f, g = g)[], 7)
  env <- new.env()
  env$a <- 1
  env$b <- 2
  expect_identical(mirai(a + b, env)[], 3)
  expect_identical(mirai(x + y, .args = list(x = 1, y = 2))[], 3)
  x <- 10
  y <- 20
  expect_identical(mirai(x + y, .args = list(x, y))[], 30)
  expect_identical(mirai(x * z, .args = list(x, z = 3))[], 30)
  expect_identical(mirai(a * b, .args = env)[], 2)
  expr <- quote(p + q)
  expect_identical(mirai(expr, p = 1, q = 2)[], 3)
  # '.args' stay local to the evaluation; '...' go to the global environment
  where <- mirai(c(exists("u", envir = .GlobalEnv, inherits = FALSE),
                   exists("v", envir = .GlobalEnv, inherits = FALSE)),
                 u = 1, .args = list(v = 2))[]
  expect_identical(where, c(TRUE, FALSE))
})

test_that("a mirai is unresolved until its value arrives", {
  daemons(1)
  withr::defer(daemons(0))
  m <- mirai({ Sys.sleep(0.5); "done" })
  expect_true(unresolved(m))
  expect_true(unresolved(m$data))
  expect_true(unresolved(list(m, 1)))
  expect_s3_class(m$data, "unresolvedValue")
  expect_output(print(m), "< mirai [] >", fixed = TRUE)
  expect_output(print(m$data), "unresolved value")
  expect_identical(call_mirai(m), m)
  expect_false(unresolved(m))
  expect_identical(m$data, "done")
  expect_identical(m[], "done")
  expect_false(unresolved(m$data))
})

test_that("call_mirai and collect_mirai work on lists and keep names", {
  daemons(2)
  withr::defer(daemons(0))
  ms <- list(a = mirai(1), b = mirai(2), c = "not a mirai")
  expect_identical(call_mirai(ms), ms)
  expect_false(unresolved(ms))
  expect_identical(collect_mirai(ms), list(a = 1, b = 2, c = "not a mirai"))
  expect_identical(collect_mirai(mirai(3)), 3)
})

test_that(".timeout gives errorValue 5", {
  daemons(1)
  withr::defer(daemons(0))
  m <- mirai(Sys.sleep(2), .timeout = 200)
  value <- m[]
  expect_true(is_error_value(value))
  expect_false(is_mirai_error(value))
  expect_identical(unclass(value), 5L)
  expect_output(print(value), "'errorValue' int 5 | Timed out", fixed = TRUE)
})

test_that("a reset with a pending task gives errorValue 7", {
  daemons(1)
  m <- mirai(Sys.sleep(3))
  daemons(0)
  expect_identical(unclass(m[]), 7L)
  expect_output(print(m$data), "Object closed")
})

test_that("1,000 tasks each return their own value", {
  daemons(2)
  withr::defer(daemons(0))
  ms <- lapply(seq_len(1000L), function(i) mirai(i * 2L, .args = list(i = i)))
  expect_identical(unlist(collect_mirai(ms)), seq_len(1000L) * 2L)
  expect_identical(status()$mirai[["completed"]], 1000L)
})

test_that("a 50 MB vector round-trips exactly", {
  daemons(1, dispatcher = FALSE)
  withr::defer(daemons(0))
  x <- runif(50 * 1024^2 / 8)
  expect_identical(mirai(x, x = x)[], x)
})

test_that("bad input to mirai() is an error naming the argument", {
  expect_snapshot(error = TRUE, mirai(1, 2))
  expect_snapshot(error = TRUE, mirai(a + 1, a = 1, 2))
  expect_snapshot(error = TRUE, mirai(1, .timeout = -1))
  expect_snapshot(error = TRUE, mirai(1, .timeout = "1"))
  expect_snapshot(error = TRUE, mirai(1, .args = 1))
  expect_snapshot(error = TRUE, mirai(1, .args = list(1)))
  expect_snapshot(error = TRUE, mirai(1, .compute = 1))
  expect_snapshot(error = TRUE, mirai())
})

test_that("errorValue and interrupt values print and test as documented", {
  expect_output(print(mk_error_value(19L)), "'errorValue' int 19 | Connection reset", fixed = TRUE)
  expect_output(print(mk_error_value(20L)), "Operation canceled", fixed = TRUE)
  interrupt <- mk_mirai_interrupt()
  expect_true(is_mirai_interrupt(interrupt))
  expect_true(is_error_value(interrupt))
  expect_output(print(interrupt), "'miraiInterrupt'")
  expect_false(is_error_value(1L))
  expect_false(is_mirai(1L))
})

test_that("a no-daemons mirai whose process cannot start resolves to an errorValue", {
  empty <- withr::local_tempdir()
  withr::local_libpaths(empty, action = "replace")
  withr::local_envvar(R_LIBS_USER = empty, R_LIBS_SITE = empty)
  value <- mirai(1)[]
  expect_true(is_error_value(value))
  expect_identical(unclass(value), 7L)
})

test_that("race_mirai() returns the index of a resolved mirai", {
  daemons(2)
  withr::defer(daemons(0))
  ms <- list(mirai({ Sys.sleep(3); "slow" }), mirai({ Sys.sleep(0.1); "fast" }))
  expect_identical(race_mirai(ms), 2L)
  expect_identical(ms[[2L]][], "fast")
  expect_identical(race_mirai(ms), 2L)
  expect_identical(race_mirai(list("a", mirai(1))), 2L)
  expect_identical(race_mirai(list()), 0L)
  expect_identical(race_mirai(ms[[1L]]), 1L)
  expect_identical(ms[[1L]][], "slow")
  expect_invisible(race_mirai(ms))
  daemons(1, .compute = "race")
  withr::defer(daemons(0, .compute = "race"))
  expect_identical(race_mirai(list(), .compute = "race"), 0L)
  slow <- mirai({ Sys.sleep(1); 1 }, .compute = "race")
  expect_identical(race_mirai(list(slow), .compute = "race"), 1L)
})

test_that("race_mirai() on nothing with no daemons set is the error of require_daemons()", {
  expect_snapshot(error = TRUE, race_mirai(list(), .compute = "unset"))
  expect_snapshot(error = TRUE, race_mirai(list(1, "a")))
  # a mirai sent with no daemons set can still be raced
  expect_identical(race_mirai(list(mirai(1))), 1L)
})

test_that("stop_mirai() on a running task: errorValue 20, and the daemon carries on", {
  need_binding("wrap__task_cancel")
  daemons(1)
  withr::defer(daemons(0))
  file <- tempfile()
  m <- mirai({ file.create(file); Sys.sleep(10) }, file = file)
  expect_true(poll_until(function() file.exists(file)))
  expect_true(stop_mirai(m))
  value <- m[]
  expect_true(is_error_value(value))
  expect_identical(unclass(value), 20L)
  expect_output(print(value), "Operation canceled")
  # the interrupt never reaches the daemon's next task
  expect_identical(mirai({ Sys.sleep(0.5); "next" })[], "next")
  expect_identical(info()[["connections"]], 1L)
  expect_false(stop_mirai(m))
})

test_that("cancelling, again and again, never interrupts the next task", {
  need_binding("wrap__task_cancel")
  daemons(1)
  withr::defer(daemons(0))
  for (i in 1:10) {
    m <- mirai(Sys.sleep(5))
    if (i %% 2L == 0L) Sys.sleep(0.05)
    stop_mirai(m)
    expect_identical(unclass(m[]), 20L)
    expect_identical(mirai({ Sys.sleep(0.05); i }, i = i)[], i)
  }
})

test_that("an interrupt arriving as a task ends does not stop the daemon", {
  daemons(1)
  withr::defer(daemons(0))
  pid <- mirai(Sys.getpid())[]
  m <- mirai({ tools::pskill(Sys.getpid(), tools::SIGINT); "done" })
  value <- m[]
  expect_true(identical(value, "done") || is_mirai_interrupt(value))
  expect_identical(mirai(Sys.getpid())[], pid)
})

test_that("stop_mirai() drops a queued task, which never runs", {
  need_binding("wrap__task_cancel")
  daemons(1)
  withr::defer(daemons(0))
  file <- tempfile()
  busy <- mirai(Sys.sleep(1))
  queued <- mirai(file.create(file), file = file)
  done <- mirai(1)
  expect_identical(stop_mirai(list(queued, "x", busy)), c(TRUE, FALSE, TRUE))
  expect_identical(unclass(queued[]), 20L)
  expect_identical(unclass(busy[]), 20L)
  expect_identical(done[], 1)
  expect_false(file.exists(file))
})

test_that("try_mirai() is mirai() when the queue has no bound", {
  daemons(1)
  withr::defer(daemons(0))
  m <- try_mirai(x + 1, x = 1)
  expect_true(is_mirai(m))
  expect_identical(m[], 2)
  expect_true(is_mirai(mirai(1)))
})

test_that("with 'memory' set, the queue never holds more than the cap", {
  mb <- 2^20
  daemons(1, memory = 4 * mb / 1e6)
  withr::defer(daemons(0))
  payload <- as.raw(seq_len(mb) %% 256L)
  blocker <- mirai(Sys.sleep(1))
  ms <- list()
  repeat {
    m <- try_mirai(length(p), p = payload)
    if (is.null(m)) break
    ms[[length(ms) + 1L]] <- m
    expect_lte(length(ms), 4L)
    if (length(ms) > 4L) break
  }
  expect_true(length(ms) >= 1L)
  # mirai() waits for room instead, and every task completes
  queued_bytes <- function() .Call(wrap__host_status, ..[["default"]][["host"]])[["queued_bytes"]]
  for (i in 1:40) {
    ms[[length(ms) + 1L]] <- mirai(length(p), p = payload)
    expect_lte(unname(info()[["awaiting"]]), 4L)
    expect_lte(queued_bytes(), 4 * mb)
  }
  expect_true(all(unlist(collect_mirai(ms)) == mb))
})

test_that("bad input to race_mirai() and try_mirai() is an error naming the argument", {
  expect_false(stop_mirai(1))
  expect_false(stop_mirai(NULL))
  expect_snapshot(error = TRUE, race_mirai("a"))
  expect_snapshot(error = TRUE, race_mirai(list(), .compute = 1))
  expect_snapshot(error = TRUE, try_mirai(1, .compute = 1))
})
