# everywhere(): set-up on every daemon, now and later, surviving cleanup

test_that("everywhere() reaches every connected daemon", {
  daemons(2, dispatcher = FALSE)
  withr::defer(daemons(0))
  expect_null(everywhere(library(tools)))
  expect_invisible(everywhere({}))
  out <- collect_mirai(lapply(1:4, function(i) mirai("package:tools" %in% search())))
  expect_identical(unlist(out), rep(TRUE, 4L))
  # globals and options it sets survive cleanup; a normal task's do not
  everywhere(options(mirai.test.direct = "kept"), passed = "global",
             .args = list(local_only = 2))
  mirai(assign("temporary", 1, envir = .GlobalEnv))[]
  mirai(assign("temporary", 1, envir = .GlobalEnv))[]
  probe <- quote(list(exists("passed"), exists("local_only"),
                      getOption("mirai.test.direct"), exists("temporary")))
  expect_identical(collect_mirai(lapply(1:4, function(i) mirai(probe))),
                   rep(list(list(TRUE, FALSE, "kept", FALSE)), 4L))
})

test_that("what everywhere() sets up survives the per-task cleanup", {
  need_binding("wrap__host_everywhere")
  daemons(2)
  withr::defer(daemons(0))
  everywhere({
    assign("made_here", 1, envir = .GlobalEnv)
    options(mirai.test.everywhere = "kept")
  }, passed = "global", .args = list(local_only = 2))
  probe <- quote(list(exists("made_here"), exists("passed"), exists("local_only"),
                      getOption("mirai.test.everywhere")))
  for (i in 1:4) {
    mirai({ rm(list = ls(.GlobalEnv), envir = .GlobalEnv); leak <<- 1 })[]
    out <- mirai(probe)[]
    expect_identical(out[[4L]], "kept")
  }
  expect_identical(collect_mirai(lapply(1:4, function(i) mirai(probe))),
                   rep(list(list(TRUE, TRUE, FALSE, "kept")), 4L))
  # a normal task's own globals are still cleaned up
  mirai(assign("temporary", 1, envir = .GlobalEnv))[]
  expect_false(any(unlist(collect_mirai(lapply(1:4, function(i) mirai(exists("temporary")))))))
})

test_that("everywhere(library(tools)) reaches a daemon that connects afterwards", {
  need_binding("wrap__host_everywhere")
  daemons(url = local_url(), dispatcher = TRUE)
  withr::defer(daemons(0))
  everywhere(library(tools))
  launch_local(1)
  expect_true(poll_until(function() status()$connections == 1L))
  expect_true(mirai("package:tools" %in% search())[])
  launch_local(1)
  expect_true(poll_until(function() status()$connections == 2L))
  out <- collect_mirai(lapply(1:4, function(i) mirai({ Sys.sleep(0.2); "package:tools" %in% search() })))
  expect_identical(unlist(out), rep(TRUE, 4L))
})

test_that("bad input to everywhere() is an error naming the argument", {
  expect_snapshot(error = TRUE, everywhere(1))
  daemons(1)
  withr::defer(daemons(0))
  expect_snapshot(error = TRUE, everywhere())
  expect_snapshot(error = TRUE, everywhere(1, 2))
  expect_snapshot(error = TRUE, everywhere(1, .args = 1))
  expect_snapshot(error = TRUE, everywhere(1, .compute = 1))
})
