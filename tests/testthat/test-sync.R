# daemons(sync = TRUE): mirai evaluated at once in this process

test_that("a synchronous profile evaluates each mirai here, at once, in a clean environment", {
  value <- daemons(sync = TRUE)
  withr::defer(daemons(0))
  expect_s3_class(value, "miraiDaemons")
  expect_true(daemons_set())
  expect_true(require_daemons())
  expect_identical(status()$daemons, "sync")
  assign("mine", 1, envir = .GlobalEnv)
  withr::defer(rm("mine", envir = .GlobalEnv))
  m <- mirai(list(Sys.getpid(), exists("mine"), mirai::on_daemon(), x + y), x = 1,
             .args = list(y = 2))
  # resolved before mirai() returned
  expect_false(unresolved(m))
  expect_identical(m$data, list(Sys.getpid(), FALSE, TRUE, 3))
  expect_true(is.integer(attr(m, "id")))
  # what a task leaves is cleaned up; this session's globals are untouched
  mirai({
    assign("leak", 1, envir = .GlobalEnv)
    options(mirai.sync.leak = TRUE)
  })
  expect_false(exists("leak", envir = .GlobalEnv))
  expect_null(getOption("mirai.sync.leak"))
  expect_false(mirai(exists("leak"))[])
  expect_identical(get("mine", envir = .GlobalEnv), 1)
  expect_false(on_daemon())
  # output is shown
  expect_output(mirai(cat("shown\n")), "shown")
  # errors are miraiErrors
  err <- mirai(stop("sync error"))[]
  expect_true(is_mirai_error(err))
  expect_identical(conditionMessage(err), "sync error")
  expect_identical(stop_mirai(m), FALSE)
  expect_identical(race_mirai(list(m)), 1L)
  expect_identical(info()[["completed"]], 5L)
})

test_that("mirai_map(), everywhere() and a seed work on a synchronous profile", {
  daemons(sync = TRUE, seed = 42, .compute = "sync")
  withr::defer(daemons(0, .compute = "sync"))
  expect_identical(mirai_map(1:3, function(x) x * 2, .compute = "sync")[.flat], c(2, 4, 6))
  ew <- everywhere({}, helper = function(x) x + 100, .compute = "sync")
  expect_true(is_mirai_map(ew))
  expect_length(ew, 1L)
  expect_identical(mirai(helper(1), .compute = "sync")[], 101)
  expect_false(exists("helper", envir = .GlobalEnv))
  draw <- function() {
    daemons(0, .compute = "sync")
    daemons(sync = TRUE, seed = 42, .compute = "sync")
    unlist(mirai_map(1:3, function(x) runif(1), .compute = "sync")[])
  }
  first <- draw()
  expect_length(unique(first), 3L)
  expect_identical(draw(), first)
  expect_identical(with_daemons("sync", mirai(1)[]), 1)
  # nothing to launch
  expect_snapshot(error = TRUE, launch_local(1, .compute = "sync"))
  expect_snapshot(error = TRUE, launch_remote(1, .compute = "sync"))
  expect_snapshot(error = TRUE, daemons(sync = "yes"))
})
