# Helpers for test-hostile.R: a daemon on the far side of a network that the
# test makes and then breaks, and peers that are not daemons at all.

# Network namespaces and veth pairs need root and these programs.
skip_unless_netns <- function() {
  if (!identical(unname(Sys.info()[["effective_user"]]), "root"))
    skip("needs root, to make network namespaces and veth pairs")
  tools <- c("ip", "unshare", "nsenter", "iptables")
  missing <- tools[!nzchar(Sys.which(tools))]
  if (length(missing))
    skip(sprintf("needs %s (Debian packages iproute2, util-linux, iptables: tools/setup.sh)",
                 paste(missing, collapse = ", ")))
}

run_tool <- function(...) {
  out <- suppressWarnings(system2(..., stdout = TRUE, stderr = TRUE))
  status <- attr(out, "status")
  if (!is.null(status) && status != 0L)
    stop(paste(c(...), collapse = " "), " failed: ", paste(out, collapse = "\n"))
  invisible(out)
}

# A veth pair in this network namespace, its end here up with an address of
# its own /30 (random, from 10.0.0.0/8); the other end is for a daemon's
# namespace (see `netns_daemon()`). Removed when the calling test ends.
veth_pair <- function(envir = parent.frame()) {
  # From OS randomness: R's seed may be the same in every test run.
  tag <- random_hex(5L)
  bytes <- strtoi(substring(tag, c(1L, 3L), c(2L, 4L)), 16L)
  subnet <- sprintf("10.%d.%d", 16L + bytes[1L] %% 235L, 4L * (bytes[2L] %% 63L))
  pair <- list(host_if = paste0("mh", tag), peer_if = paste0("md", tag),
               host_ip = paste0(subnet, ".1"), peer_ip = paste0(subnet, ".2"))
  run_tool("ip", c("link", "add", pair$host_if, "type", "veth", "peer", "name", pair$peer_if))
  withr::defer(system2("ip", c("link", "del", pair$host_if), stdout = FALSE, stderr = FALSE),
               envir = envir)
  run_tool("ip", c("addr", "add", paste0(pair$host_ip, "/30"), "dev", pair$host_if))
  run_tool("ip", c("link", "set", pair$host_if, "up"))
  pair
}

# Starts `Rscript -e 'mirai::daemon(url, ...)'` in a network namespace of
# its own, whose only way out is the far end of `pair`; returns its PID.
# The namespace ends with the process, which is killed when the calling
# test ends.
netns_daemon <- function(pair, url, ..., envir = parent.frame()) {
  call <- as.call(c(quote(mirai::daemon), list(url), list(...)))
  command <- paste(deparse(call, width.cutoff = 500L), collapse = " ")
  pidfile <- tempfile("netns-daemon-")
  script <- paste(
    sprintf("echo $$ > %s;", pidfile),
    sprintf("for i in $(seq 400); do ip link show %s >/dev/null 2>&1 && break; sleep 0.05; done;",
            pair$peer_if),
    "ip link set lo up;",
    sprintf("ip addr add %s/30 dev %s;", pair$peer_ip, pair$peer_if),
    sprintf("ip link set %s up;", pair$peer_if),
    sprintf("exec %s -e %s", shQuote(file.path(R.home("bin"), "Rscript")), shQuote(command))
  )
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
                      R_TESTS = NA)
  system2("unshare", c("--net", "bash", "-c", shQuote(script)), wait = FALSE,
          stdout = FALSE, stderr = FALSE)
  started <- poll_until(function() {
    file.exists(pidfile) && grepl("^[0-9]+$", paste(readLines(pidfile), collapse = ""))
  })
  if (!started) stop("the namespaced daemon did not start")
  pid <- as.integer(readLines(pidfile))
  withr::defer(tools::pskill(pid, tools::SIGKILL), envir = envir)
  run_tool("ip", c("link", "set", pair$peer_if, "netns", pid))
  pid
}

# From now on, the namespace of process `pid` drops every packet, each way:
# its peers hear nothing more from it, not even a reset.
drop_traffic <- function(pid) {
  for (chain in c("INPUT", "OUTPUT"))
    run_tool("nsenter", c("-t", pid, "-n", "iptables", "-A", chain, "-j", "DROP"))
}

# Resident memory of this R process, in bytes.
rss_bytes <- function() {
  line <- grep("^VmRSS:", readLines("/proc/self/status"), value = TRUE)
  as.numeric(gsub("[^0-9]", "", line)) * 1024
}

# A shell command that sends, as a peer of the host at `url` that proves
# nothing, one message of `bytes` bytes of zeros: after the SP handshake
# (tcp, tls+tcp) or a WebSocket upgrade and a frame header (ws, wss), over
# TLS through `openssl s_client` for the TLS schemes.
flood_command <- function(url, bytes) {
  scheme <- sub("://.*", "", url)
  authority <- sub("/.*", "", sub("^[a-z+]+://", "", url))
  host <- sub(":[0-9]+$", "", authority)
  port <- sub(".*:", "", authority)
  ws <- scheme %in% c("ws", "wss")
  length64 <- paste(sprintf("\\x%02x", as.integer(rev(
    (bytes %/% 256^(0:7)) %% 256))), collapse = "")
  head <- if (ws) {
    paste0("printf '",
           "GET / HTTP/1.1\\r\\nHost: ", authority, "\\r\\nUpgrade: websocket\\r\\n",
           "Connection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n",
           "Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Protocol: pair.sp.nanomsg.org\\r\\n\\r\\n'; ",
           # once upgraded: a final binary frame, masked with the key 0 (so
           # the zeros go as they are)
           "sleep 1; printf '\\x82\\xff", length64, "\\x00\\x00\\x00\\x00'")
  } else {
    paste0("printf '\\x00SP\\x00\\x00\\x10\\x00\\x00", length64, "'")
  }
  body <- sprintf("{ %s; head -c %.0f /dev/zero; }", head, bytes)
  if (scheme %in% c("tls+tcp", "wss")) {
    sprintf("%s 2>/dev/null | openssl s_client -connect %s -quiet >/dev/null 2>&1", body, authority)
  } else {
    sprintf("%s 2>/dev/null > /dev/tcp/%s/%s", body, host, port)
  }
}

# Runs `commands` at once in the background; returns a function that is
# TRUE once all of them have ended.
run_all <- function(commands) {
  done <- tempfile("done-")
  script <- paste(c(paste0("( ", commands, " ) &"), "wait", sprintf("touch %s", done)),
                  collapse = "\n")
  system2("bash", c("-c", shQuote(script)), wait = FALSE, stdout = FALSE, stderr = FALSE)
  function() file.exists(done)
}

# Starts an R process, limited to `files` open files (R itself needs about
# 200), that sets up a host requiring the invitation at a tcp:// URL with
# one local daemon, then waits; once `go()` is called it opens 20 files at
# once, runs a task, and reports. Returns the `url` (once listening), `go()`,
# which returns the report as a named list, the file of the host's `log`
# (its stderr), and `stop()`, which lets it exit (it also does at the end of
# the calling test).
limited_host <- function(files, envir = parent.frame()) {
  dir <- tempfile("limited-host-")
  dir.create(dir)
  path <- function(name) file.path(dir, name)
  writeLines(c(
    "library(mirai)",
    "daemons(url = 'tcp://127.0.0.1:0', token = TRUE)",
    "launch_local(1L)",
    "while (status()$connections < 1L) Sys.sleep(0.05)",
    sprintf("writeLines(status()$daemons, '%s')", path("url")),
    sprintf("while (!file.exists('%s')) Sys.sleep(0.05)", path("go")),
    "opened <- tryCatch({",
    "  cons <- lapply(1:20, function(i) file(tempfile(), 'w'))",
    "  for (con in cons) close(con)",
    "  TRUE",
    "}, error = function(e) FALSE)",
    "value <- mirai(21L * 2L, .timeout = 30000)[]",
    "descriptors <- length(list.files('/proc/self/fd'))",
    sprintf("saveRDS(list(opened = opened, value = value, descriptors = descriptors), '%s')",
            path("report.rds")),
    "t0 <- proc.time()[['elapsed']]",
    sprintf("while (!file.exists('%s') && proc.time()[['elapsed']] - t0 < 120) Sys.sleep(0.05)",
            path("stop")),
    "daemons(0)"
  ), path("host.R"))
  withr::defer(file.create(path("stop")), envir = envir)
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
                      R_TESTS = NA)
  script <- sprintf("ulimit -n %d; exec %s %s", files,
                    shQuote(file.path(R.home("bin"), "Rscript")), shQuote(path("host.R")))
  system2("bash", c("-c", shQuote(script)), wait = FALSE, stdout = FALSE,
          stderr = path("log"))
  if (!poll_until(function() file.exists(path("url")), 60)) stop("the limited host did not start")
  list(
    url = readLines(path("url")),
    log = path("log"),
    go = function() {
      file.create(path("go"))
      if (!poll_until(function() file.exists(path("report.rds")), 60)) return(NULL)
      readRDS(path("report.rds"))
    },
    stop = function() file.create(path("stop"))
  )
}

# Opens `n` idle TCP connections to the host and port of `url` from a
# background shell, which holds them for `hold` seconds; returns a function
# that is TRUE once all are open.
idle_connections <- function(url, n, hold = 60) {
  authority <- sub("/.*", "", sub("^[a-z+]+://", "", url))
  opened <- tempfile("opened-")
  script <- sprintf(
    "for i in $(seq %d); do exec {fd}<>/dev/tcp/%s/%s; done; touch %s; sleep %d",
    n, sub(":[0-9]+$", "", authority), sub(".*:", "", authority), opened, hold)
  system2("bash", c("-c", shQuote(script)), wait = FALSE, stdout = FALSE, stderr = FALSE)
  function() file.exists(opened)
}
