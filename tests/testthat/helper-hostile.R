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
  tag <- substr(paste(sample(c(letters, 0:9), 10L, TRUE), collapse = ""), 1L, 10L)
  subnet <- sprintf("10.%d.%d", sample(16:250, 1L), 4L * sample(0:62, 1L))
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
