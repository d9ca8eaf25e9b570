# SSH: ssh_config(), and daemons launched over SSH for real, through an OpenSSH
# server started here on a free loopback port with its own keys and config.

ssh_rscript <- sprintf("R_LIBS=%s %s", paste(.libPaths(), collapse = .Platform$path.sep),
                       file.path(R.home("bin"), "Rscript"))

# Start sshd (Debian's openssh-server, installed by tools/setup.sh) for this
# file; returns its directory, port, pid and the client wrapper script, or
# the error that prevented it.
start_sshd <- function() {
  sshd <- "/usr/sbin/sshd"
  if (!file.exists(sshd))
    stop("sshd is not installed (Debian package openssh-server): run tools/setup.sh")
  if (!nzchar(Sys.which("ssh")) || !nzchar(Sys.which("ssh-keygen")))
    stop("ssh and ssh-keygen are not installed (Debian package openssh-client)")
  dir <- tempfile("sshd")
  dir.create(dir)
  keygen <- function(file) {
    out <- system2("ssh-keygen", c("-q", "-t", "ed25519", "-N", "''", "-f", file),
                   stdout = TRUE, stderr = TRUE)
    if (!file.exists(file)) stop("ssh-keygen failed: ", paste(out, collapse = "\n"))
  }
  keygen(file.path(dir, "host_key"))
  keygen(file.path(dir, "client_key"))
  file.copy(file.path(dir, "client_key.pub"), file.path(dir, "authorized_keys"))
  Sys.chmod(c(file.path(dir, "host_key"), file.path(dir, "client_key")), "0600")
  port <- free_port()
  config <- file.path(dir, "sshd_config")
  writeLines(c(
    sprintf("Port %d", port),
    "ListenAddress 127.0.0.1",
    sprintf("HostKey %s", file.path(dir, "host_key")),
    sprintf("AuthorizedKeysFile %s", file.path(dir, "authorized_keys")),
    "PermitRootLogin prohibit-password",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "StrictModes no",
    "AllowTcpForwarding yes",
    sprintf("PidFile %s", file.path(dir, "sshd.pid")),
    "UsePAM no"
  ), config)
  dir.create("/run/sshd", showWarnings = FALSE)
  log <- file.path(dir, "sshd.log")
  system2(sshd, c("-D", "-e", "-f", config), wait = FALSE, stdout = log, stderr = log)
  pidfile <- file.path(dir, "sshd.pid")
  ok <- poll_until(function() file.exists(pidfile) && length(readLines(pidfile, warn = FALSE)) > 0L,
                   limit_s = 10)
  if (!ok) stop("sshd did not start: ", paste(readLines(log, warn = FALSE), collapse = "\n"))
  # The ssh client with the options for this server, as ssh_config(command =).
  client <- function(name, extra = character()) {
    path <- file.path(dir, name)
    writeLines(c(
      "#!/bin/sh",
      paste("exec ssh -i", file.path(dir, "client_key"),
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "-o BatchMode=yes -o LogLevel=ERROR", extra, "\"$@\"")
    ), path)
    Sys.chmod(path, "0755")
    path
  }
  wrapper <- client("ssh")
  # A second "machine": sshd in inetd mode inside a fresh network namespace,
  # reached through ProxyCommand. Its loopback reaches this host only through
  # an SSH tunnel.
  proxy <- file.path(dir, "proxy")
  writeLines(c(
    "#!/bin/sh",
    sprintf("exec unshare --net sh -c 'ip link set lo up && exec %s -i -f %s'", sshd, config)
  ), proxy)
  Sys.chmod(proxy, "0755")
  isolated <- client("ssh-isolated", sprintf("-o ProxyCommand=%s", proxy))
  pid <- as.integer(readLines(pidfile, warn = FALSE)[1L])
  remote <- sprintf("ssh://127.0.0.1:%d", port)
  result <- system2(wrapper, c("-p", port, "127.0.0.1", "echo ok"), stdout = TRUE, stderr = TRUE)
  if (!identical(result, "ok")) {
    tools::pskill(pid)
    stop("ssh to the test sshd failed: ", paste(result, collapse = "\n"), "\n",
         paste(readLines(log, warn = FALSE), collapse = "\n"))
  }
  list(dir = dir, port = port, pid = pid, wrapper = wrapper, isolated = isolated,
       remote = remote, log = log)
}

sshd <- tryCatch(start_sshd(), error = function(e) e)
if (!inherits(sshd, "error"))
  withr::defer(tools::pskill(sshd$pid), envir = testthat::teardown_env())

# Tests that need the server fail, with the reason, when it could not start.
need_sshd <- function() {
  if (inherits(sshd, "error")) stop(conditionMessage(sshd), call. = FALSE)
  sshd
}

test_that("the test sshd is running (tools/setup.sh installs openssh-server)", {
  s <- need_sshd()
  expect_true(file.exists(s$wrapper))
  expect_identical(system2(s$wrapper, c("-p", s$port, "127.0.0.1", "echo", "ok"), stdout = TRUE), "ok")
})

test_that("ssh_config() builds ssh commands, one set of arguments per remote", {
  r <- ssh_config(c("ssh://nodeone", "ssh://user@10.0.0.2:2222", "ssh://[::1]:22"),
                  timeout = 5)
  expect_s3_class(r, "miraiRemote")
  expect_identical(r$command, "ssh")
  expect_identical(r$rscript, "Rscript")
  expect_true(r$quote)
  expect_false(r$tunnel)
  expect_identical(r$args, list(
    c("-o ConnectTimeout=5 -Tp 22", "nodeone", "."),
    c("-o ConnectTimeout=5 -Tp 2222", "user@10.0.0.2", "."),
    c("-o ConnectTimeout=5 -Tp 22", "::1", ".")
  ))
  expect_true(ssh_config("ssh://h", tunnel = TRUE)$tunnel)
})

test_that("the ssh command line is quoted, and carries no secret and no stream", {
  dir <- tempfile()
  dir.create(dir)
  recorder <- file.path(dir, "ssh")
  writeLines(c("#!/bin/sh",
               sprintf("cat > %s/stdin", dir),
               sprintf("for a in \"$@\"; do printf '%%s\\n' \"$a\"; done > %s/args", dir)),
             recorder)
  Sys.chmod(recorder, "0755")
  daemons(url = "tls+tcp://127.0.0.1:0", .compute = "sshcmd")
  withr::defer(daemons(0, .compute = "sshcmd"))
  url <- nextget("urls", .compute = "sshcmd")
  port <- as.integer(sub(".*:", "", url))
  cmds <- launch_remote(remote = ssh_config("ssh://me@nodeone:2222", tunnel = TRUE,
                                            command = recorder),
                        .compute = "sshcmd")
  expect_length(cmds, 1L)
  args_file <- file.path(dir, "args")
  expect_true(poll_until(function() file.exists(args_file) && length(readLines(args_file)) >= 6L))
  args <- readLines(args_file)
  expect_identical(args[1:6], c("-R", sprintf("%d:127.0.0.1:%d", port, port), "-o",
                                "ConnectTimeout=10", "-Tp", "2222"))
  expect_identical(args[7L], "me@nodeone")
  # what the remote shell receives is the command launch_remote() returned,
  # but for its here-document: the secret and the stream arrive on ssh's
  # standard input, and are on neither machine's command lines
  remote_command <- paste(args[-(1:7)], collapse = "\n")
  expect_identical(remote_command, sub(" <<'MIRAI'\n.*$", "", as.character(cmds)))
  expect_match(remote_command, "tls = c(\"-----BEGIN CERTIFICATE-----", fixed = TRUE)
  expect_match(remote_command, "stdin = TRUE)'$")
  token <- ..[["sshcmd"]][["token"]]
  expect_false(grepl(token, paste(args, collapse = " "), fixed = TRUE))
  expect_false(grepl("rs = ", remote_command, fixed = TRUE))
  expect_false(grepl("10407", remote_command, fixed = TRUE))
  record <- readLines(file.path(dir, "stdin"))
  expect_length(record, 3L)
  expect_identical(record[1L], paste("token", token))
  expect_match(record[2L], "^rs 10407( -?[0-9]+){6}$")
  expect_identical(record[3L], "end")
})

# The command lines of every process on this machine that mention `text`.
command_lines_with <- function(text) {
  files <- Sys.glob("/proc/[0-9]*/cmdline")
  lines <- vapply(files, function(f) {
    bytes <- tryCatch(suppressWarnings(readBin(f, "raw", 1e6)), error = function(e) raw())
    bytes[bytes == as.raw(0L)] <- as.raw(32L)
    rawToChar(bytes)
  }, character(1L))
  lines[grepl(text, lines, fixed = TRUE)]
}

test_that("over SSH the secret reaches the daemon on no command line of either machine", {
  s <- need_sshd()
  remote <- ssh_config(s$remote, command = s$wrapper, rscript = ssh_rscript)
  on_this_machine(daemons(url = "tcp://127.0.0.1:0", token = TRUE, remote = remote,
                          .compute = "sshsecret"))
  withr::defer(daemons(0, .compute = "sshsecret"))
  token <- ..[["sshsecret"]][["token"]]
  expect_true(poll_until(function() status("sshsecret")$connections == 1L, limit_s = 30))
  # the daemon was admitted: it had the secret
  pid <- mirai(Sys.getpid(), .compute = "sshsecret")[]
  expect_type(pid, "integer")
  # ssh (here), the remote shell and the daemon (there) are all running
  expect_length(command_lines_with(token), 0L)
  environ <- readBin(sprintf("/proc/%d/environ", pid), "raw", 1e6)
  environ[environ == as.raw(0L)] <- as.raw(32L)
  expect_false(grepl(token, rawToChar(environ), fixed = TRUE))
})

test_that("two daemons launched through ssh_config() run tasks", {
  s <- need_sshd()
  remote <- ssh_config(c(s$remote, s$remote), command = s$wrapper, rscript = ssh_rscript)
  value <- on_this_machine(daemons(url = "tcp://127.0.0.1:0", remote = remote, .compute = "ssh"))
  withr::defer(daemons(0, .compute = "ssh"))
  expect_match(unclass(value), "^tcp://127\\.0\\.0\\.1:[0-9]+$")
  expect_true(poll_until(function() status("ssh")$connections == 2L, limit_s = 30))
  pids <- collect_mirai(lapply(1:2, function(i) mirai({ Sys.sleep(0.5); Sys.getpid() }, .compute = "ssh")))
  expect_length(unique(unlist(pids)), 2L)
  expect_false(Sys.getpid() %in% unlist(pids))
  expect_identical(mirai(6 * 7, .compute = "ssh")[], 42)
})

test_that("daemons launched over SSH with tunnel = TRUE run tasks", {
  s <- need_sshd()
  remote <- ssh_config(s$remote, tunnel = TRUE, command = s$wrapper, rscript = ssh_rscript)
  daemons(2, url = "tcp://127.0.0.1:0", remote = remote, .compute = "tunnel")
  withr::defer(daemons(0, .compute = "tunnel"))
  expect_true(poll_until(function() status("tunnel")$connections == 2L, limit_s = 30))
  pids <- collect_mirai(lapply(1:2, function(i) mirai({ Sys.sleep(0.5); Sys.getpid() }, .compute = "tunnel")))
  expect_length(unique(unlist(pids)), 2L)
})

test_that("tunnelled daemons reach the host only through the tunnel, over TLS too", {
  s <- need_sshd()
  reason <- namespace_reason()
  if (!is.null(reason)) skip(reason)
  # without a tunnel the isolated machine cannot reach this host at all
  remote <- ssh_config(s$remote, command = s$isolated, rscript = ssh_rscript)
  expect_warning(daemons(url = "tcp://127.0.0.1:0", remote = remote, .compute = "isolated"),
                 "loopback")
  expect_false(poll_until(function() status("isolated")$connections > 0L, limit_s = 3))
  daemons(0, .compute = "isolated")
  # with it, two isolated machines each dial 127.0.0.1 through their tunnel
  remote <- ssh_config(c(s$remote, s$remote), tunnel = TRUE, command = s$isolated,
                       rscript = ssh_rscript)
  daemons(url = "tls+tcp://127.0.0.1:0", remote = remote, .compute = "isolated")
  withr::defer(daemons(0, .compute = "isolated"))
  expect_true(poll_until(function() status("isolated")$connections == 2L, limit_s = 30))
  pids <- collect_mirai(lapply(1:2, function(i) mirai({ Sys.sleep(0.5); Sys.getpid() }, .compute = "isolated")))
  expect_length(unique(unlist(pids)), 2L)
})

test_that("bad input to ssh_config() and tunnelling is an error naming the argument", {
  expect_snapshot(error = TRUE, ssh_config())
  expect_snapshot(error = TRUE, ssh_config("nodeone"))
  expect_snapshot(error = TRUE, ssh_config("ssh://"))
  expect_snapshot(error = TRUE, ssh_config("ssh://host:99999"))
  expect_snapshot(error = TRUE, ssh_config(c("ssh://a", NA)))
  expect_snapshot(error = TRUE, ssh_config("ssh://a", tunnel = "yes"))
  expect_snapshot(error = TRUE, ssh_config("ssh://a", timeout = 0))
  expect_snapshot(error = TRUE, ssh_config("ssh://a", command = ""))
  expect_snapshot(error = TRUE, ssh_config("ssh://a", rscript = NA_character_))
  remote <- ssh_config("ssh://nodeone", tunnel = TRUE, command = "false")
  expect_snapshot(error = TRUE, transform = scrub_urls,
                  daemons(1, url = "tcp://0.0.0.0:0", remote = remote, .compute = "t"))
  expect_identical(status("t")$connections, 0L)
  daemons(url = "ipc:///tmp/mirai-tunnel-test", .compute = "t")
  withr::defer(daemons(0, .compute = "t"))
  expect_snapshot(error = TRUE, transform = scrub_urls,
                  launch_remote(remote = remote, .compute = "t"))
})
