# promises: as.promise() for a mirai and a mirai_map

test_that("a mirai's promise resolves inside a later::run_now() loop", {
  daemons(1)
  withr::defer(daemons(0))
  m <- mirai({ Sys.sleep(0.2); x * 2 }, x = 21)
  p <- promises::as.promise(m)
  expect_true(promises::is.promise(p))
  expect_identical(promises::as.promise(m), p)
  result <- NULL
  promises::then(p, function(value) result <<- value)
  expect_true(run_later_until(function() !is.null(result)))
  expect_identical(result, 42)
})

test_that("the promise pipe and a rejected promise work", {
  daemons(1)
  withr::defer(daemons(0))
  `%...>%` <- promises::`%...>%`
  `%...!%` <- promises::`%...!%`
  result <- NULL
  mirai(1:3) %...>% sum() %...>% (function(x) result <<- x)
  expect_true(run_later_until(function() !is.null(result)))
  expect_identical(result, 6L)

  reason <- NULL
  mirai(stop("went wrong")) %...!% (function(e) reason <<- conditionMessage(e))
  expect_true(run_later_until(function() !is.null(reason)))
  expect_match(reason, "went wrong")

  reason <- NULL
  m <- mirai(Sys.sleep(5), .timeout = 100)
  promises::catch(promises::as.promise(m), function(e) reason <<- conditionMessage(e))
  expect_true(run_later_until(function() !is.null(reason)))
  expect_match(reason, "errorValue 5 \\(Timed out\\)")
})

test_that("a resolved mirai gives a promise that settles at once", {
  daemons(1)
  withr::defer(daemons(0))
  m <- mirai("done")
  m[]
  result <- NULL
  promises::then(m, function(value) result <<- value)
  expect_true(run_later_until(function() !is.null(result)))
  expect_identical(result, "done")
})

test_that("a mirai_map's promise resolves to all the values", {
  daemons(2)
  withr::defer(daemons(0))
  mp <- mirai_map(c(a = 1, b = 2, c = 3), function(x) x + 1)
  result <- NULL
  promises::then(promises::as.promise(mp), function(values) result <<- values)
  expect_true(run_later_until(function() !is.null(result)))
  expect_identical(result, list(a = 2, b = 3, c = 4))
})

test_that("a pending mirai's promise wakes later from the background: no polling", {
  need_binding("wrap__task_on_resolve")
  daemons(1)
  withr::defer(daemons(0))
  later::run_now(0)
  m <- mirai({ Sys.sleep(0.5); "woken" })
  result <- NULL
  promises::then(m, function(value) result <<- value)
  # nothing is scheduled on later's loop while the mirai is pending
  expect_true(later::loop_empty())
  expect_true(run_later_until(function() !is.null(result)))
  expect_identical(result, "woken")
})
