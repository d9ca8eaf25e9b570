# mirai(), its values, and waiting on it

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
