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

test_that("a mirai and a mirai_map are promising, for promises 1.3 and later", {
  daemons(1)
  withr::defer(daemons(0))
  m <- mirai(1)
  mp <- mirai_map(1:2, identity)
  expect_true(is.promising.mirai(m))
  expect_true(is.promising.mirai_map(mp))
  if (utils::packageVersion("promises") < "1.3.0")
    skip(sprintf("promises %s has no is.promising() generic (1.3.0 and later do)",
                 utils::packageVersion("promises")))
  expect_true(promises::is.promising(m))
  expect_true(promises::is.promising(mp))
  expect_false(promises::is.promising(1))
})

test_that("an interrupted mirai fulfils its promise with the miraiInterrupt, as in the original", {
  daemons(1)
  withr::defer(daemons(0))
  m <- mirai({ tools::pskill(Sys.getpid(), tools::SIGINT); Sys.sleep(5) })
  result <- NULL
  promises::then(m, function(value) result <<- value)
  expect_true(run_later_until(function() !is.null(result)))
  expect_true(is_mirai_interrupt(result))
})

test_that("a Shiny ExtendedTask runs a mirai and gives its value", {
  if (!requireNamespace("shiny", quietly = TRUE)) skip("shiny is not installed")
  if (utils::packageVersion("shiny") < "1.8.1")
    skip(sprintf("shiny %s has no ExtendedTask (1.8.1 and later do; run on R 4.5: make r45-check)",
                 utils::packageVersion("shiny")))
  daemons(1)
  withr::defer(daemons(0))
  server <- function(input, output, session) {
    task <- shiny::ExtendedTask$new(function(x) mirai({ Sys.sleep(0.2); x * 2 }, x = x))
    shiny::observeEvent(input$go, task$invoke(input$x))
    failing <- shiny::ExtendedTask$new(function() mirai(stop("task failed")))
    shiny::observeEvent(input$fail, failing$invoke())
    output$result <- shiny::renderText(task$result())
    session$userData$task <- task
    session$userData$failing <- failing
  }
  shiny::testServer(server, {
    session$setInputs(x = 21, go = 1)
    task <- session$userData$task
    expect_identical(task$status(), "running")
    expect_true(run_later_until(function() {
      session$flushReact()
      task$status() != "running"
    }))
    expect_identical(task$status(), "success")
    expect_identical(task$result(), 42)
    # the output is invalidated when the task settles, and recomputed at the
    # next flush (the task may have settled after the last one)
    session$flushReact()
    expect_identical(output$result, "42")
    session$setInputs(fail = 1)
    failing <- session$userData$failing
    expect_true(run_later_until(function() {
      session$flushReact()
      failing$status() != "running"
    }))
    expect_identical(failing$status(), "error")
    expect_error(failing$result(), "task failed")
  })
})
