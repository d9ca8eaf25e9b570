# Remote and hostile networks: a daemon whose network is cut, peers that
# send much and prove nothing, more connections than a host should keep.

test_that("a daemon cut off by the network is dropped within link_timeout; its task gives 19", {
  skip_unless_netns()
  pair <- veth_pair()
  daemons(url = sprintf("tcp://%s:0", pair$host_ip), link_timeout = 2000, .compute = "cut")
  # withr::defer, not on.exit(): an on.exit() here would replace the handlers
  # withr keeps on this frame, so the namespaced daemon (which dials again
  # for ever) would outlive the test, with its veth pair.
  withr::defer(daemons(0, .compute = "cut"))
  pid <- netns_daemon(pair, status("cut")$daemons, asyncdial = TRUE)
  expect_true(poll_until(function() status("cut")$connections == 1L, 60))
  m <- mirai({
    Sys.sleep(600)
    "finished"
  }, .compute = "cut")
  expect_true(poll_until(function() status("cut")$mirai[["executing"]] == 1L))
  drop_traffic(pid)
  # Without liveness, the link would stay 'connected' for the kernel's
  # retransmission timeout (about 15 minutes).
  expect_true(poll_until(function() !unresolved(m), 60))
  expect_true(is_error_value(m$data))
  expect_identical(unclass(m$data), 19L)
  expect_identical(status("cut")$connections, 0L)
})

test_that("peers sending 1 GiB messages before the greeting cost the host little; daemons keep working", {
  skip_if_not(file.exists("/proc/self/status"), "needs /proc for the resident memory")
  skip_if_no_openssl()
  for (url in c("tcp://127.0.0.1:0", "ws://127.0.0.1:0", "tls+tcp://127.0.0.1:0",
                "wss://127.0.0.1:0")) {
    profile <- sub(":.*", "", url)
    daemons(url = url, token = TRUE, .compute = profile)
    launch_local(1L, .compute = profile)
    expect_true(poll_until(function() status(profile)$connections == 1L))
    for (i in 1:20) mirai(i, i = i, .compute = profile)[]
    gc()
    baseline <- rss_bytes()
    peak <- baseline
    flooding <- run_all(rep(flood_command(status(profile)$daemons, 2^30), 2L))
    right <- 0L
    deadline <- mclock() + 120000
    while (!flooding() && mclock() < deadline) {
      i <- sample.int(1000L, 1L)
      if (identical(mirai(i * 2L, i = i, .compute = profile)[], i * 2L)) right <- right + 1L
      peak <- max(peak, rss_bytes())
    }
    expect_true(flooding(), label = paste(url, "flood over"))
    expect_lt((peak - baseline) / 2^20, 64, label = paste(url, "MiB above baseline"))
    expect_gt(right, 0L)
    expect_identical(mirai(21L * 2L, .compute = profile)[], 42L)
    daemons(0, .compute = profile)
  }
})

test_that("idle connections beyond the bound are closed at once, so the host keeps its descriptors", {
  host <- limited_host(files = 256L)
  started <- mclock()
  flood <- idle_connections(host$url, 600L)
  expect_true(poll_until(flood, 60))
  report <- host$go()
  expect_true(is.list(report))
  expect_true(report$opened)
  expect_identical(report$value, 42L)
  expect_lt(report$descriptors, 256L)
  # Refusals are logged at most once a second, with their count: the first
  # at once, the hundreds that follow within the second as one line.
  counted <- function() any(grepl("closed [0-9]{2,} connections at once", readLines(host$log)))
  expect_true(poll_until(counted, 10))
  refusals <- grep("at once", readLines(host$log), value = TRUE)
  seconds <- (mclock() - started) / 1000
  expect_lte(length(refusals), ceiling(seconds) + 1)
  host$stop()
})
