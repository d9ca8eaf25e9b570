# Each transport, with and without the dispatcher: the host listens, one
# daemon is started by the package's local launcher and one as a user starts
# it (`Rscript -e 'mirai::daemon(url)'`), and both evaluate tasks. All on
# loopback; port 0 everywhere, with the real ports shown by status().

# Listens at `url` for compute profile `profile`, then starts `local` daemons
# with launch_local() and one with Rscript dialling the last URL listened at
# (with the certificate authority and the invitation, where the profile has
# them, as launch_remote() would put them in its commands). Returns the URLs.
join_both <- function(url, dispatcher, profile, n = NULL, local = 1L,
                      frame = parent.frame()) {
  if (is.null(n)) {
    daemons(url = url, dispatcher = dispatcher, .compute = profile)
  } else {
    daemons(n, url = url, dispatcher = dispatcher, .compute = profile)
  }
  withr::defer(daemons(0, .compute = profile), envir = frame)
  urls <- status(profile)$daemons
  tls <- nextget("tls_ca", .compute = profile)
  token <- ..[[profile]][["token"]]
  args <- c(list(urls[length(urls)]), if (!is.null(tls)) list(tls = c(tls, "")),
            if (!is.null(token)) list(token = token), list(stderr = TRUE))
  errors <- do.call(rscript_daemon, args)
  if (local > 0L) launch_local(local, .compute = profile)
  expected <- local + 1L
  joined <- poll_until(function() status(profile)$connections == expected)
  expect_true(joined, info = paste(c(urls, readLines(errors, warn = FALSE)), collapse = "\n"))
  urls
}

# Tasks sent at once reach every connected daemon, none of them this session.
expect_all_daemons_work <- function(profile) {
  k <- status(profile)$connections
  pids <- task_pids(k, profile)
  expect_false(anyNA(pids))
  expect_length(unique(pids), k)
  expect_false(Sys.getpid() %in% pids)
  workers <- status(profile)$workers
  expect_identical(sum(workers[, "online"]), k)
  expect_true(all(workers[workers[, "online"] == 1L, "complete"] >= 1L))
}

for (dispatcher in c(TRUE, FALSE)) {
  mode <- if (dispatcher) "with dispatcher" else "without dispatcher"

  test_that(paste("tcp over IPv4 loopback, port 0,", mode), {
    urls <- join_both("tcp://127.0.0.1:0", dispatcher, "tcp4")
    expect_match(urls, "^tcp://127\\.0\\.0\\.1:[1-9][0-9]*$")
    expect_all_daemons_work("tcp4")
  })

  test_that(paste("tcp over IPv6 loopback, port 0,", mode), {
    urls <- join_both("tcp://[::1]:0", dispatcher, "tcp6")
    expect_match(urls, "^tcp://\\[::1\\]:[1-9][0-9]*$")
    expect_all_daemons_work("tcp6")
  })

  test_that(paste("ws with a path, port 0,", mode), {
    urls <- join_both("ws://127.0.0.1:0/mirai", dispatcher, "ws")
    expect_match(urls, "^ws://127\\.0\\.0\\.1:[1-9][0-9]*/mirai$")
    expect_all_daemons_work("ws")
  })

  test_that(paste("ipc,", mode), {
    path <- tempfile("mirai-ipc-")
    withr::defer(unlink(path))
    urls <- join_both(paste0("ipc://", path), dispatcher, "ipc")
    expect_identical(urls, paste0("ipc://", path))
    expect_all_daemons_work("ipc")
  })

  test_that(paste("abstract sockets,", mode), {
    url <- paste0("abstract://mirai-test-", .Call(wrap__random_hex, 8L))
    urls <- join_both(url, dispatcher, "abstract")
    expect_identical(urls, url)
    expect_all_daemons_work("abstract")
  })

  test_that(paste("tls+tcp with zero-configuration certificates,", mode), {
    urls <- join_both("tls+tcp://127.0.0.1:0", dispatcher, "tls")
    expect_match(urls, "^tls\\+tcp://127\\.0\\.0\\.1:[1-9][0-9]*$")
    expect_match(nextget("tls_ca", .compute = "tls"), "^-----BEGIN CERTIFICATE-----")
    expect_all_daemons_work("tls")
  })

  test_that(paste("wss with zero-configuration certificates,", mode), {
    urls <- join_both("wss://[::1]:0/secure", dispatcher, "wss")
    expect_match(urls, "^wss://\\[::1\\]:[1-9][0-9]*/secure$")
    expect_all_daemons_work("wss")
  })
}

test_that("with dispatcher, a ws URL and n listen at paths /1 to /n of one port", {
  urls <- join_both("ws://127.0.0.1:0", TRUE, "wsn", n = 2L, local = 2L)
  expect_length(urls, 2L)
  expect_match(urls, "^ws://127\\.0\\.0\\.1:[1-9][0-9]*/[12]$")
  expect_identical(sub("/[12]$", "", urls[1L]), sub("/[12]$", "", urls[2L]))
  expect_all_daemons_work("wsn")
})

test_that("with dispatcher, a tcp URL and n listen at n ports (free ones for port 0)", {
  urls <- join_both("tcp://127.0.0.1:0", TRUE, "tcpn", n = 2L, local = 2L)
  expect_length(urls, 2L)
  expect_match(urls, "^tcp://127\\.0\\.0\\.1:[1-9][0-9]*$")
  expect_false(identical(urls[1L], urls[2L]))
  expect_all_daemons_work("tcpn")
})

test_that("with dispatcher, a vector of URLs listens at each", {
  daemons(url = c("tcp://127.0.0.1:0", "ws://[::1]:0/a", "ws://[::1]:0/b"), .compute = "vec")
  withr::defer(daemons(0, .compute = "vec"))
  urls <- status("vec")$daemons
  expect_length(urls, 3L)
  expect_match(urls[1L], "^tcp://127\\.0\\.0\\.1:[1-9]")
  expect_match(urls[2:3], "^ws://\\[::1\\]:[1-9][0-9]*/[ab]$")
  launch_local(3L, .compute = "vec")
  expect_true(poll_until(function() status("vec")$connections == 3L), info = capture.output(print(status("vec"))))
  expect_all_daemons_work("vec")
})

test_that("the URL forms expand as the seeds describe", {
  expect_identical(expand_urls("ws://h:5555", 3L, TRUE),
                   c("ws://h:5555/1", "ws://h:5555/2", "ws://h:5555/3"))
  expect_identical(expand_urls("wss://h:5555/x/", 2L, TRUE),
                   c("wss://h:5555/x/1", "wss://h:5555/x/2"))
  expect_identical(expand_urls("tcp://[::1]:5555", 3L, TRUE),
                   c("tcp://[::1]:5555", "tcp://[::1]:5556", "tcp://[::1]:5557"))
  expect_identical(expand_urls("tls+tcp://h:0", 2L, TRUE), c("tls+tcp://h:0", "tls+tcp://h:0"))
  # without dispatcher, or for a vector, one n, or local sockets: as given
  expect_identical(expand_urls("tcp://h:5555", 3L, FALSE), "tcp://h:5555")
  expect_identical(expand_urls(c("tcp://h:1", "tcp://h:2"), 3L, TRUE), c("tcp://h:1", "tcp://h:2"))
  expect_identical(expand_urls("tcp://h:5555", 1L, TRUE), "tcp://h:5555")
  expect_identical(expand_urls("ipc:///tmp/x", 3L, TRUE), "ipc:///tmp/x")
  expect_identical(url_parts("ws://[::1]:80/p/q"),
                   list(scheme = "ws", host = "::1", port = 80L, path = "/p/q"))
})

test_that("without dispatcher, n adds no URLs", {
  daemons(2, url = "tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "direct")
  withr::defer(daemons(0, .compute = "direct"))
  expect_length(status("direct")$daemons, 1L)
  launch_local(2L, .compute = "direct")
  expect_true(poll_until(function() status("direct")$connections == 2L))
})

test_that("host_url() names an interface address of this machine, else its name", {
  expect_match(host_url(), "^tcp://[^/]+:0$")
  expect_match(host_url(ws = TRUE), "^ws://[^/]+:0$")
  expect_match(host_url(tls = TRUE), "^tls\\+tcp://[^/]+:0$")
  expect_match(host_url(ws = TRUE, tls = TRUE, port = 5555), "^wss://[^/]+:5555$")
  found <- net_interfaces()
  if (length(found$address)) {
    address <- found$address[1L]
    if (grepl(":", address, fixed = TRUE)) address <- sprintf("[%s]", address)
    expect_identical(host_url(), c(structure(sprintf("tcp://%s:0", address),
                                             names = found$name[1L])))
    expect_false(any(grepl("^(127\\.|::1$|fe80:|169\\.254\\.)", found$address)))
  } else {
    expect_identical(host_url(), sprintf("tcp://%s:0", Sys.info()[["nodename"]]))
  }
  expect_snapshot(error = TRUE, host_url(ws = NA))
  expect_snapshot(error = TRUE, host_url(tls = "yes"))
  expect_snapshot(error = TRUE, host_url(port = 70000))
})

test_that("a daemon on another machine joins daemons(url = host_url()) and returns results", {
  machines <- two_machines()
  dir <- tempfile("machines-")
  dir.create(dir)
  # On the host: the URL forms for remote daemons, one after the other, each
  # waiting (at most 60 s) for a daemon, whose answer it records. The launch
  # command for round i (as a user would paste it on the other machine) goes
  # in the file round-i, emptied when the round is over. A wildcard or a
  # name is dialled at the host's address.
  host_script <- file.path(dir, "host.R")
  writeLines(c(
    "library(mirai)",
    sprintf("dir <- '%s'", dir),
    sprintf("address <- '%s'", machines$host_address),
    "forms <- list(host_url(), host_url(ws = TRUE, tls = TRUE), 'tcp://:0',",
    "              sprintf('ws://%s:0/path', Sys.info()[['nodename']]))",
    "results <- list()",
    "for (i in seq_along(forms)) {",
    "  url <- forms[[i]]",
    "  round <- file.path(dir, sprintf('round-%d', i))",
    "  results[[i]] <- tryCatch({",
    "    daemons(url = url, dispatcher = i %% 2L == 1L)",
    "    listening <- status()$daemons",
    "    dial <- if (i <= 2L) listening else",
    "      sub('^([a-z]+://)[^/]*(:[0-9]+)', paste0('\\\\1', address, '\\\\2'), listening)",
    "    warned <- tryCatch({ launch_remote(1); 'none' }, warning = conditionMessage)",
    "    writeLines(launch_remote(dial), round)",
    "    deadline <- Sys.time() + 60",
    "    while (status()$connections < 1L && Sys.time() < deadline) Sys.sleep(0.1)",
    "    value <- mirai(list(pid = Sys.getpid(), x = 6 * 7), .timeout = 30000)[]",
    "    list(url = url, listening = listening, dialled = dial, warned = warned,",
    "         value = value, host_pid = Sys.getpid())",
    "  }, error = function(e) list(url = url, error = conditionMessage(e)))",
    "  daemons(0)",
    "  writeLines(character(), round)",
    "}",
    "saveRDS(results, file.path(dir, 'results.rds'))"
  ), host_script)
  # On the other machine: each round's command, run as pasted into sh.
  remote_script <- file.path(dir, "remote.R")
  writeLines(c(
    sprintf("dir <- '%s'", dir),
    "for (i in 1:4) {",
    "  round <- file.path(dir, sprintf('round-%d', i))",
    "  deadline <- Sys.time() + 120",
    "  while (!(file.exists(round) && length(readLines(round)) > 0L) && Sys.time() < deadline)",
    "    Sys.sleep(0.1)",
    "  if (!file.exists(round)) break",
    "  system2('sh', round)",
    "  while (length(readLines(round)) > 0L) Sys.sleep(0.1)",
    "}"
  ), remote_script)
  host_out <- rscript_in(machines, "host", host_script)
  remote_out <- rscript_in(machines, "remote", remote_script)
  done <- poll_until(function() file.exists(file.path(dir, "results.rds")), limit_s = 300)
  info <- paste(c(readLines(host_out, warn = FALSE), readLines(remote_out, warn = FALSE)),
                collapse = "\n")
  expect_true(done, info = info)
  skip_if_not(done)
  results <- readRDS(file.path(dir, "results.rds"))
  # host_url(): the address of the host's one interface, named by it
  expect_identical(unclass(results[[1L]]$url),
                   c(structure(sprintf("tcp://%s:0", machines$host_address),
                               names = machines$host_if)))
  expect_match(results[[2L]]$url, sprintf("^wss://%s:0$", machines$host_address))
  for (i in 1:4) {
    r <- results[[i]]
    expect_null(r$error, info = paste(r$url, info))
    expect_type(r$value, "list")
    expect_identical(r$value[["x"]], 42, info = paste(r$url, info))
    expect_false(identical(r$value[["pid"]], r$host_pid))
  }
  # launch_remote() for the URL as listened at: host_url()'s can be dialled
  # from other machines, and so can a wildcard (its commands dial the
  # interface address); a name that resolves to loopback here draws a
  # warning (the daemons above dialled the host's address)
  expect_identical(results[[1L]]$warned, "none")
  expect_identical(results[[2L]]$warned, "none")
  expect_identical(results[[3L]]$warned, "none")
  expect_match(results[[4L]]$warned, "can only be dialled on this machine", fixed = TRUE)
  expect_match(results[[3L]]$listening, "^tcp://:[0-9]+$")
})

test_that("a daemons() URL made by host_url() listens, with the real port in status()", {
  url <- daemons(url = host_url(), dispatcher = FALSE, .compute = "hosturl")
  withr::defer(daemons(0, .compute = "hosturl"))
  expect_false(grepl(":0$", unclass(url)))
  expect_identical(status("hosturl")$daemons, as.vector(unclass(url)))
})

test_that("a URL with an empty host listens on all interfaces", {
  for (dispatcher in c(TRUE, FALSE)) {
    url <- unclass(daemons(url = "tcp://:0", dispatcher = dispatcher, .compute = "any"))
    expect_match(url, "^tcp://:[1-9][0-9]*$")
    port <- sub("^tcp://:", "", url)
    # launched daemons dial it on the loopback address; a user dials any of
    # this machine's addresses
    launch_local(1, .compute = "any")
    rscript_daemon(sprintf("tcp://127.0.0.1:%s", port))
    expect_true(poll_until(function() status("any")$connections == 2L))
    expect_all_daemons_work("any")
    expect_match(launch_remote(1, .compute = "any"), sprintf(":%s\"", port), fixed = TRUE)
    expect_false(grepl("tcp://:", launch_remote(1, .compute = "any"), fixed = TRUE))
    daemons(0, .compute = "any")
  }
  # zero-configuration TLS certifies this machine's name, which local daemons dial
  daemons(url = "tls+tcp://:0", .compute = "anytls")
  withr::defer(daemons(0, .compute = "anytls"))
  launch_local(1, .compute = "anytls")
  expect_true(poll_until(function() status("anytls")$connections == 1L))
  expect_all_daemons_work("anytls")
  ws <- daemons(2, url = "ws://:0/path", .compute = "anyws")
  withr::defer(daemons(0, .compute = "anyws"))
  urls <- nextget("urls", .compute = "anyws")
  expect_match(urls, "^ws://:[1-9][0-9]*/path/[12]$")
  launch_local(2, .compute = "anyws")
  expect_true(poll_until(function() status("anyws")$connections == 2L))
  expect_all_daemons_work("anyws")
})
