# make_cluster(): the backend for the parallel package and foreach

test_that("parLapply, parSapply and clusterApplyLB give the sequential results", {
  cl <- make_cluster(2)
  withr::defer(stop_cluster(cl))
  expect_s3_class(cl, c("miraiCluster", "cluster"))
  expect_length(cl, 2L)
  expect_s3_class(cl[[1L]], "miraiNode")
  expect_output(print(cl), "< miraiCluster \\| ID: .* nodes: 2 active: TRUE >")
  expect_output(print(cl[[2L]]), "< miraiNode \\| node: 2")
  f <- function(x) x^2 + 1
  expect_identical(parallel::parLapply(cl, 1:10, f), lapply(1:10, f))
  expect_identical(parallel::parSapply(cl, 1:10, f), sapply(1:10, f))
  expect_identical(parallel::clusterApplyLB(cl, 1:7, function(x) { Sys.sleep(0.01 * x); -x }),
                   as.list(-(1:7)))
  expect_identical(parallel::clusterApply(cl, 1:3, f), lapply(1:3, f))
  expect_identical(parallel::clusterMap(cl, function(a, b) a * b, 1:4, 4:1),
                   Map(function(a, b) a * b, 1:4, 4:1))
})

test_that("clusterExport, clusterEvalQ and clusterCall reach every node and stay", {
  cl <- make_cluster(2)
  withr::defer(stop_cluster(cl))
  base_value <- 40
  parallel::clusterExport(cl, "base_value", envir = environment())
  loaded <- parallel::clusterEvalQ(cl, { library(tools); "package:tools" %in% search() })
  expect_identical(loaded, list(TRUE, TRUE))
  pids <- parallel::clusterCall(cl, Sys.getpid)
  expect_length(unique(unlist(pids)), 2L)
  expect_identical(parallel::parSapply(cl, 1:4, function(x) base_value + x), 41:44 + 0)
})

test_that("errors in tasks read as from the original mirai: the call, then the message", {
  cl <- make_cluster(2)
  withr::defer(stop_cluster(cl))
  psock <- parallel::makePSOCKcluster(2)
  withr::defer(parallel::stopCluster(psock))
  f <- function(x) if (x > 2) stop("too big: ", x) else x
  message_of <- function(expr) tryCatch(expr, error = conditionMessage)
  # as a PSOCK cluster's, but each error is "Error in <call>: <message>"
  for (run in list(
    function(cl) parallel::parLapply(cl, 1:4, f),
    function(cl) parallel::parLapply(cl, 1:8, f),
    function(cl) parallel::clusterApply(cl, 1:4, f),
    function(cl) parallel::clusterApplyLB(cl, 1:5, f),
    function(cl) parallel::parSapply(cl, 3, f)
  )) {
    ours <- message_of(run(cl))
    theirs <- message_of(run(psock))
    expect_identical(sub("error: Error in .*?: ", "error: ", ours, perl = TRUE), theirs)
    expect_match(ours, "error: Error in ")
  }
  expect_error(parallel::parLapply(cl, 1:8, f),
               "2 nodes produced errors; first error: Error in FUN(X[[i]], ...): too big: 3",
               fixed = TRUE)
  expect_error(parallel::clusterEvalQ(cl, stop("in eval")), "first error: Error", fixed = TRUE)
  # the cluster carries on
  expect_identical(parallel::parSapply(cl, 1:2, f), 1:2)
})

test_that("foreach %dopar% with doParallel gives the sequential results", {
  cl <- make_cluster(2)
  withr::defer(stop_cluster(cl))
  doParallel::registerDoParallel(cl)
  withr::defer(foreach::registerDoSEQ())
  `%dopar%` <- foreach::`%dopar%`
  offset <- 0.5
  res <- foreach::foreach(i = 1:8, .combine = c) %dopar% { sqrt(i) + offset }
  expect_identical(res, sqrt(1:8) + offset)
  res <- foreach::foreach(i = 1:3) %dopar% tools::file_ext(paste0("a.", letters[i]))
  expect_identical(res, as.list(letters[1:3]))
})

test_that("stop_cluster() and parallel::stopCluster() reset the cluster's profile", {
  cl <- make_cluster(1)
  id <- attr(cl, "id")
  expect_true(daemons_set(id))
  parallel::stopCluster(cl)
  expect_false(daemons_set(id))
  expect_output(print(cl), "active: FALSE")
  expect_snapshot(error = TRUE, parallel::parLapply(cl, 1:2, identity),
                  transform = function(x) gsub("miraiCluster-[0-9a-f]+", "<id>", x))
  expect_silent(stop_cluster(cl))
  expect_output(cl2 <- on_this_machine(make_cluster(1, url = local_url())), "mirai::daemon")
  launch_local(1L, .compute = attr(cl2, "id"))
  expect_identical(parallel::clusterCall(cl2, function() 1L), list(1L))
  stop_cluster(cl2)
})

test_that("a subset of a cluster is a cluster; status() and launch_remote() take one", {
  cl <- make_cluster(2)
  withr::defer(stop_cluster(cl))
  one <- cl[2L]
  expect_s3_class(one, "miraiCluster")
  expect_identical(attr(one, "id"), attr(cl, "id"))
  expect_length(one, 1L)
  expect_identical(parallel::clusterCall(cl[1:2], function() 1L), list(1L, 1L))
  expect_identical(status(cl)$connections, 2L)
  expect_identical(status(cl[[1L]]), status(cl))
  expect_identical(info(cl)[["connections"]], 2L)
  expect_match(on_this_machine(launch_remote(cl)), "mirai::daemon(", fixed = TRUE)
  expect_length(on_this_machine(launch_remote(cl)), 2L)
  expect_length(on_this_machine(launch_remote(cl[[2L]])), 1L)
})

test_that("make_cluster(url = ) without n has one node and prints its launch command", {
  expect_output(cl <- on_this_machine(make_cluster(url = local_url())),
                "Shell commands for deployment on nodes:\\n.*mirai::daemon\\(")
  withr::defer(stop_cluster(cl))
  expect_length(cl, 1L)
  launch_local(1L, .compute = attr(cl, "id"))
  expect_identical(parallel::clusterCall(cl, function() 2L), list(2L))
  remote <- remote_config(args = list(c("", "."), c("", ".")))
  cl2 <- on_this_machine(make_cluster(url = local_url(), remote = remote))
  withr::defer(stop_cluster(cl2))
  expect_length(cl2, 2L)
})

test_that("bad input to make_cluster() and stop_cluster() names the argument", {
  expect_snapshot(error = TRUE, make_cluster())
  expect_snapshot(error = TRUE, make_cluster(0))
  expect_snapshot(error = TRUE, make_cluster(1.5))
  expect_snapshot(error = TRUE, make_cluster(2, dispatcher = TRUE))
  expect_snapshot(error = TRUE, make_cluster(1, url = 1))
  expect_snapshot(error = TRUE, stop_cluster(list()))
})
