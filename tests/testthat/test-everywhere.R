# everywhere(): set-up on every daemon, now and later, surviving cleanup

test_that("everywhere() reaches every connected daemon", {
  daemons(2, dispatcher = FALSE)
  withr::defer(daemons(0))
  expect_invisible(everywhere({}))
  everywhere(library(tools))
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

test_that("everywhere() returns a mirai_map with a mirai for each daemon, counted", {
  for (dispatcher in c(TRUE, FALSE)) {
    daemons(2, dispatcher = dispatcher, .compute = "ew")
    before <- info("ew")[["completed"]]
    ew <- everywhere(Sys.getpid(), .compute = "ew")
    expect_true(is_mirai_map(ew))
    expect_length(ew, 2L)
    pids <- unlist(ew[])
    expect_length(unique(pids), 2L)
    expect_false(Sys.getpid() %in% pids)
    expect_identical(info("ew")[["completed"]], before + 2L)
    expect_identical(unname(status("ew")$workers[, "complete"]), c(1L, 1L))
    # an error on the daemons is seen
    failed <- everywhere(library(pkg, character.only = TRUE), pkg = "mirai.no.such.package",
                         .compute = "ew")[]
    expect_true(all(vapply(failed, is_mirai_error, logical(1L))))
    expect_match(failed[[1L]], "mirai.no.such.package", fixed = TRUE)
    expect_error(everywhere(stop("set-up failed"), .compute = "ew")[.stop], "set-up failed")
    # the daemons carry on
    expect_identical(mirai(1L, .compute = "ew")[], 1L)
    daemons(0, .compute = "ew")
  }
})

test_that("everywhere(.min = ) covers the next daemons to connect, a point to wait at", {
  daemons(url = local_url(), .compute = "min")
  withr::defer(daemons(0, .compute = "min"))
  ew <- everywhere(Sys.getpid(), .min = 2, .compute = "min")
  expect_length(ew, 2L)
  expect_true(unresolved(ew))
  expect_identical(info("min")[["awaiting"]], 2L)
  launch_local(2, .compute = "min")
  pids <- unlist(ew[])
  expect_length(unique(pids), 2L)
  # with none asked for and none connected: an empty map
  daemons(url = local_url(), .compute = "none")
  withr::defer(daemons(0, .compute = "none"))
  expect_length(everywhere(1, .min = 0, .compute = "none"), 0L)
  # a seeded stream is not drawn from
  daemons(1, seed = 1, .compute = "seeded")
  withr::defer(daemons(0, .compute = "seeded"))
  stream <- nextget("stream", .compute = "seeded")
  everywhere(runif(1), .compute = "seeded")[]
  expect_identical(nextget("stream", .compute = "seeded"), stream)
})

test_that("bad input to everywhere() is an error naming the argument", {
  expect_snapshot(error = TRUE, everywhere(1))
  daemons(1)
  withr::defer(daemons(0))
  expect_snapshot(error = TRUE, everywhere())
  expect_snapshot(error = TRUE, everywhere(1, 2))
  expect_snapshot(error = TRUE, everywhere(1, .args = 1))
  expect_snapshot(error = TRUE, everywhere(1, .compute = 1))
  expect_snapshot(error = TRUE, everywhere(1, .min = -1))
})
