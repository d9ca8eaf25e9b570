# Remote and hostile networks: a daemon whose network is cut, peers that
# send much and prove nothing, more connections than a host should keep.

test_that("a daemon cut off by the network is dropped within link_timeout; its task gives 19", {
  skip_unless_netns()
  pair <- veth_pair()
  daemons(url = sprintf("tcp://%s:0", pair$host_ip), link_timeout = 2000, .compute = "cut")
  on.exit(daemons(0, .compute = "cut"))
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
