# launchers: launch_local(), launch_remote(), remote_config() and their commands

rscript_path <- file.path(R.home("bin"), "Rscript")
libs <- paste(.libPaths(), collapse = .Platform$path.sep)
# How a remote machine would start R and find the package, as a shell prefix.
rscript_here <- sprintf("R_LIBS=%s %s", libs, rscript_path)

# Run each command the way a user pasting it into a terminal on another
# machine would: as a script read by `sh` (here in the background).
run_pasted <- function(cmds, wait = FALSE) {
  for (cmd in cmds) {
    script <- tempfile(fileext = ".sh")
    writeLines(c("unset R_TESTS", cmd), script)
    system2("sh", script, wait = wait, stdout = FALSE, stderr = FALSE)
  }
}

# An "Rscript" that records the R code it is given (`-e CODE`) in `out`.
code_recorder <- function(out) {
  path <- tempfile("record")
  writeLines(c("#!/bin/sh", sprintf("printf '%%s' \"$2\" > '%s'", out)), path)
  Sys.chmod(path, "0755")
  path
}

# The profile's secret, which nextget() does not give.
profile_token <- function(.compute = "default") ..[[.compute]][["token"]]

# Snapshot transform: launch commands carry ports, streams and secrets.
scrub_cmds <- function(x) {
  x <- scrub_urls(x)
  x <- gsub("rs [-0-9 ]+", "rs <rs>", x)
  gsub("[0-9a-f]{32}", "<hex>", x)
}

# The command line of a launch command: its first line, before the
# here-document that feeds the daemon its secret and stream.
command_line <- function(cmd) sub(" <<'MIRAI'\n.*$", "", cmd)

test_that("launch_local() adds daemons to a profile listening at a URL", {
  daemons(url = "tcp://127.0.0.1:0")
  withr::defer(daemons(0))
  expect_invisible(launch_local(2))
  expect_true(poll_until(function() status()$connections == 2L))
  pids <- collect_mirai(lapply(1:2, function(i) mirai({ Sys.sleep(0.5); Sys.getpid() })))
  expect_length(unique(unlist(pids)), 2L)
  expect_false(Sys.getpid() %in% unlist(pids))
  expect_identical(launch_local(1L), 1L)
  expect_true(poll_until(function() status()$connections == 3L))
})

test_that("launch_local() passes daemon arguments, else the profile's", {
  daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE, maxtasks = 1L)
  withr::defer(daemons(0))
  launch_local(1)
  expect_true(poll_until(function() status()$connections == 1L))
  expect_identical(mirai(1)[], 1)
  # the profile's maxtasks = 1 ends the daemon after its task
  expect_true(poll_until(function() status()$connections == 0L))
  launch_local(1, maxtasks = 2L)
  expect_true(poll_until(function() status()$connections == 1L))
  expect_identical(mirai(1)[], 1)
  expect_identical(mirai(2)[], 2)
  expect_true(poll_until(function() status()$connections == 0L))
})

test_that("launch_local() dials the URLs given, and spreads over several URLs", {
  daemons(url = c("tcp://127.0.0.1:0", "tcp://127.0.0.1:0"), .compute = "two")
  withr::defer(daemons(0, .compute = "two"))
  urls <- nextget("urls", .compute = "two")
  expect_length(urls, 2L)
  expect_identical(launch_local(urls[2L], .compute = "two"), 1L)
  expect_true(poll_until(function() status("two")$connections == 1L))
  cmds <- on_this_machine(launch_remote(3, .compute = "two"))
  expect_length(cmds, 3L)
  expect_true(grepl(urls[1L], cmds[1L], fixed = TRUE))
  expect_true(grepl(urls[2L], cmds[2L], fixed = TRUE))
  expect_true(grepl(urls[1L], cmds[3L], fixed = TRUE))
})

test_that("launch_local() over zero-config TLS hands the daemons the CA and secret", {
  daemons(url = "tls+tcp://127.0.0.1:0", .compute = "tls")
  withr::defer(daemons(0, .compute = "tls"))
  expect_match(nextget("tls_ca", .compute = "tls"), "^-----BEGIN CERTIFICATE-----")
  launch_local(2, .compute = "tls")
  expect_true(poll_until(function() status("tls")$connections == 2L))
  expect_identical(mirai(2 * 21, .compute = "tls")[], 42)
})

test_that("launch_remote() returns shell commands that work when pasted into sh", {
  # a local profile requires the invitation: the command must carry it
  daemons(1, dispatcher = FALSE)
  withr::defer(daemons(0))
  token <- profile_token()
  expect_type(token, "character")
  cmds <- on_this_machine(launch_remote(1, remote = remote_config(rscript = rscript_here)))
  expect_s3_class(cmds, "miraiLaunchCmd")
  expect_length(cmds, 1L)
  expect_true(startsWith(cmds, paste(rscript_here, "-e 'mirai::daemon(")))
  expect_true(endsWith(command_line(cmds), "stdin = TRUE)'"))
  expect_false(grepl(token, command_line(cmds), fixed = TRUE))
  expect_false(grepl("rs", command_line(cmds), fixed = TRUE))
  expect_match(cmds, sprintf("\ntoken %s\nrs 10407 [-0-9 ]+\nend\nMIRAI$", token))
  run_pasted(cmds)
  expect_true(poll_until(function() status()$connections == 2L))
  pids <- collect_mirai(lapply(1:4, function(i) mirai({ Sys.sleep(0.2); Sys.getpid() })))
  expect_length(unique(unlist(pids)), 2L)
})

test_that("pasted commands carry a TLS certificate authority intact", {
  daemons(url = "tls+tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "tls")
  withr::defer(daemons(0, .compute = "tls"))
  ca <- nextget("tls_ca", .compute = "tls")
  cmds <- on_this_machine(
    launch_remote(2, remote = remote_config(rscript = rscript_here), .compute = "tls")
  )
  expect_length(cmds, 2L)
  expect_true(all(grepl("tls = c(\"-----BEGIN CERTIFICATE-----", cmds, fixed = TRUE)))
  expect_true(all(grepl(profile_token("tls"), cmds, fixed = TRUE)))
  expect_false(any(grepl(profile_token("tls"), command_line(cmds), fixed = TRUE)))
  run_pasted(cmds)
  expect_true(poll_until(function() status("tls")$connections == 2L))
  pids <- collect_mirai(lapply(1:4, function(i) mirai({ Sys.sleep(0.2); Sys.getpid() }, .compute = "tls")))
  expect_length(unique(unlist(pids)), 2L)
})

test_that("shell quoting survives newlines, quotes, $ and backquotes", {
  daemons(1, .compute = "quote")
  withr::defer(daemons(0, .compute = "quote"))
  pem <- "-----BEGIN CERTIFICATE-----\nMII'x\"y$HOME`id`\\n\n-----END CERTIFICATE-----\n"
  check <- function(code) {
    call <- str2lang(code)
    expect_identical(call[[1L]], quote(mirai::daemon))
    expect_identical(call[[2L]], nextget("urls", .compute = "quote"))
    expect_identical(call$tls, call("c", pem, ""))
    expect_null(call$token)
    expect_identical(call$stdin, TRUE)
    expect_identical(call$maxtasks, 3)
  }
  # the returned command, pasted
  out <- tempfile()
  cmds <- on_this_machine(launch_remote(1, remote = remote_config(rscript = code_recorder(out)),
                                        maxtasks = 3, tls = pem, .compute = "quote"))
  run_pasted(cmds, wait = TRUE)
  check(readLines(out, warn = FALSE))
  # quoted once more for a command that takes it as one argument (sh -c)
  out2 <- tempfile()
  on_this_machine(
    launch_remote(1, remote = remote_config("sh", c("-c", "."), rscript = code_recorder(out2),
                                            quote = TRUE),
                  maxtasks = 3, tls = pem, .compute = "quote")
  )
  expect_true(poll_until(function() file.exists(out2) && length(readLines(out2, warn = FALSE))))
  check(readLines(out2, warn = FALSE))
  # a PEM file is read, so the certificate travels in the command
  file <- tempfile(fileext = ".pem")
  writeLines(sub("\n$", "", pem), file)
  out3 <- tempfile()
  cmds <- on_this_machine(launch_remote(1, remote = remote_config(rscript = code_recorder(out3)),
                                        maxtasks = 3, tls = file, .compute = "quote"))
  run_pasted(cmds, wait = TRUE)
  check(readLines(out3, warn = FALSE))
})

test_that("a remote_config() command launches daemons; daemons(remote =) too", {
  daemons(url = "tcp://127.0.0.1:0", .compute = "cfg")
  withr::defer(daemons(0, .compute = "cfg"))
  remote <- remote_config(command = "sh", args = c("-c", "."), rscript = rscript_here,
                          quote = TRUE)
  cmds <- on_this_machine(launch_remote(2, remote = remote, .compute = "cfg"))
  expect_length(cmds, 2L)
  expect_true(poll_until(function() status("cfg")$connections == 2L))
  pids <- collect_mirai(lapply(1:2, function(i) mirai({ Sys.sleep(0.5); Sys.getpid() }, .compute = "cfg")))
  expect_length(unique(unlist(pids)), 2L)

  # one set of arguments per daemon; through daemons()
  remote <- remote_config(command = "sh", args = list(c("-c", "."), c("-c", ".")),
                          rscript = rscript_here, quote = TRUE)
  value <- on_this_machine(daemons(url = "tcp://127.0.0.1:0", remote = remote, .compute = "cfg2"))
  withr::defer(daemons(0, .compute = "cfg2"))
  expect_s3_class(value, "miraiDaemons")
  expect_true(poll_until(function() status("cfg2")$connections == 2L))
  expect_identical(mirai(1 + 1, .compute = "cfg2")[], 2)
  expect_snapshot(error = TRUE, launch_remote(3, remote = remote, .compute = "cfg2"))
})

test_that("printing launch commands and configurations never shows the secret", {
  daemons(1)
  withr::defer(daemons(0))
  token <- profile_token()
  expect_warning(cmds <- launch_remote(2), "can only be dialled on this machine")
  printed <- capture.output(print(cmds))
  expect_length(printed, 11L)
  expect_false(any(grepl(token, printed, fixed = TRUE)))
  expect_identical(sum(printed == "token <secret>"), 2L)
  expect_match(printed[11L], "writeLines", fixed = TRUE)
  expect_true(grepl(token, paste(capture.output(writeLines(cmds)), collapse = ""), fixed = TRUE))
  expect_false(any(grepl(token, capture.output(print(status())), fixed = TRUE)))
  expect_false(any(grepl(token, capture.output(print(nextget("value"))), fixed = TRUE)))
  # no secret to hide: nothing said about one
  daemons(url = "tcp://127.0.0.1:0", .compute = "plain")
  withr::defer(daemons(0, .compute = "plain"))
  cmds <- on_this_machine(launch_remote(1, .compute = "plain"))
  printed <- capture.output(print(cmds))
  expect_length(printed, 4L)
  expect_snapshot(print(cmds), transform = scrub_cmds)
  expect_snapshot(print(remote_config("sbatch", c("--mem 512", "--wrap", "."), quote = TRUE)))
})

test_that("remote_config() keeps its settings", {
  r <- remote_config()
  expect_s3_class(r, "miraiRemote")
  expect_null(r$command)
  expect_identical(r$args, c("", "."))
  expect_identical(r$rscript, "Rscript")
  expect_false(r$quote)
  expect_false(r$tunnel)
  r <- remote_config("sbatch", list(c("--wrap", "."), c("-p gpu", "--wrap", ".")), quote = TRUE)
  expect_identical(r$command, "sbatch")
  expect_length(r$args, 2L)
  expect_true(r$quote)
})

test_that("bad input to the launchers is an error naming the argument", {
  expect_snapshot(error = TRUE, launch_local(1, .compute = "none"))
  expect_snapshot(error = TRUE, launch_remote(1, .compute = "none"))
  expect_snapshot(error = TRUE, launch_local(1, .compute = 1))
  daemons(url = "tcp://127.0.0.1:0", .compute = "bad")
  withr::defer(daemons(0, .compute = "bad"))
  expect_snapshot(error = TRUE, launch_local(0, .compute = "bad"))
  expect_snapshot(error = TRUE, launch_local(-1, .compute = "bad"))
  expect_snapshot(error = TRUE, launch_local(NA_character_, .compute = "bad"))
  expect_snapshot(error = TRUE, launch_local(1, maxtasks = "a", .compute = "bad"))
  expect_snapshot(error = TRUE, launch_local(1, bogus = 1, .compute = "bad"))
  expect_snapshot(error = TRUE, launch_local(1, tls = 1, .compute = "bad"))
  expect_snapshot(error = TRUE, launch_local(1, tls = "/no/such/ca.pem", .compute = "bad"))
  expect_snapshot(error = TRUE, launch_remote(1, remote = list(), .compute = "bad"))
  expect_snapshot(error = TRUE, launch_remote(1, remote = "ssh", .compute = "bad"))
  expect_snapshot(error = TRUE, remote_config(command = 1))
  expect_snapshot(error = TRUE, remote_config(args = c("a", "b")))
  expect_snapshot(error = TRUE, remote_config(args = c(".", ".")))
  expect_snapshot(error = TRUE, remote_config(args = list(".", "x")))
  expect_snapshot(error = TRUE, remote_config(rscript = ""))
  expect_snapshot(error = TRUE, remote_config(quote = NA))
  expect_snapshot(error = TRUE, daemons(1, remote = remote_config()))
  expect_snapshot(error = TRUE, daemons(url = "tcp://127.0.0.1:0", remote = list(command = "sh")))
  expect_identical(status()$connections, 0L)
})

test_that("local_url(tcp = TRUE) gives the loopback TCP URL an SSH tunnel needs", {
  expect_identical(local_url(tcp = TRUE), "tcp://127.0.0.1:0")
  expect_identical(local_url(tcp = TRUE, port = 5555), "tcp://127.0.0.1:5555")
  expect_match(local_url(port = 5555), "^abstract://")
  url <- unclass(daemons(url = local_url(tcp = TRUE), dispatcher = FALSE, .compute = "tcp"))
  withr::defer(daemons(0, .compute = "tcp"))
  expect_match(url, "^tcp://127\\.0\\.0\\.1:[1-9][0-9]*$")
  expect_silent(check_tunnel_urls(url, NULL))
  expect_match(on_this_machine(launch_remote(1, .compute = "tcp")), "tcp://127.0.0.1:",
               fixed = TRUE)
  launch_local(1, cleanup = TRUE, .compute = "tcp")
  expect_true(poll_until(function() status("tcp")$connections == 1L))
  expect_snapshot(error = TRUE, local_url(tcp = 1))
  expect_snapshot(error = TRUE, local_url(TRUE, port = 70000))
})

test_that("tlscert, the original mirai's name, gives launched daemons their CA", {
  skip_if_no_openssl()
  certs <- make_certificates()
  url <- daemons(url = "tls+tcp://127.0.0.1:0", tls = c(certs$cert, certs$key),
                 tlscert = certs$ca_file, .compute = "tlscert")
  withr::defer(daemons(0, .compute = "tlscert"))
  expect_identical(trimws(nextget("tls_ca", .compute = "tlscert")), trimws(certs$ca))
  launch_local(1, .compute = "tlscert")
  expect_true(poll_until(function() status("tlscert")$connections == 1L))
  expect_false(mirai(Sys.getpid(), .compute = "tlscert")[] == Sys.getpid())
  launch_local(1, tlscert = c(certs$ca, ""), .compute = "tlscert")
  expect_true(poll_until(function() status("tlscert")$connections == 2L))
})
