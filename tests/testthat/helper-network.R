# Helpers for the networking tests (test-transports.R, test-tls.R,
# test-invite.R): daemons started as users start them, and certificates made
# with the openssl command line tool.

# Starts `Rscript -e 'mirai::daemon(url, ...)'` in the background, as a user
# would on another machine. The child gets this session's library paths
# through R_LIBS and no R_TESTS (R CMD check sets it to a relative path that
# breaks a child's start-up). With `stderr = TRUE`, returns the path of a file
# collecting its error output.
rscript_daemon <- function(url, ..., stderr = FALSE) {
  call <- as.call(c(quote(mirai::daemon), list(url), list(...)))
  command <- paste(deparse(call, width.cutoff = 500L), collapse = " ")
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
                      R_TESTS = NA)
  errors <- if (isTRUE(stderr)) tempfile("daemon-", fileext = ".txt") else FALSE
  system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(command)),
          wait = FALSE, stdout = FALSE, stderr = errors)
  invisible(errors)
}

# The PIDs of the daemons that evaluate `k` tasks sent at once to `.compute`
# (each task holds its daemon briefly, so that the dispatcher hands the
# next one to another idle daemon).
task_pids <- function(k, .compute) {
  tasks <- lapply(seq_len(k), function(i) {
    mirai({
      Sys.sleep(0.1)
      Sys.getpid()
    }, .timeout = 20000, .compute = .compute)
  })
  vapply(tasks, function(m) {
    value <- m[]
    if (is.numeric(value)) as.integer(value) else NA_integer_
  }, integer(1L))
}

skip_if_no_openssl <- function() {
  if (!nzchar(Sys.which("openssl")))
    skip("the openssl command line tool is not installed (Debian package 'openssl')")
}

# A certificate authority and, signed by it, certificates for 127.0.0.1 (one
# with a plain key, one with a key encrypted with the password "secret") and
# for a host name that is not 127.0.0.1; plus a second, unrelated, CA. Made
# once per test file in a temporary directory; returns the paths.
make_certificates <- function(dir = tempfile("certs-")) {
  dir.create(dir)
  path <- function(name) file.path(dir, name)
  openssl <- function(...) {
    out <- suppressWarnings(system2("openssl", c(...), stdout = TRUE, stderr = TRUE))
    status <- attr(out, "status")
    if (!is.null(status) && status != 0L)
      stop("openssl ", paste(c(...), collapse = " "), " failed:\n", paste(out, collapse = "\n"))
    invisible(out)
  }
  ec_key <- function(file, ...) {
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", ...,
            "-out", file)
  }
  make_ca <- function(name) {
    ec_key(path(paste0(name, ".key")))
    openssl("req", "-x509", "-new", "-key", path(paste0(name, ".key")),
            "-subj", shQuote(paste0("/CN=mirai ", name)), "-days", "2",
            "-addext", shQuote("basicConstraints=critical,CA:TRUE"),
            "-addext", shQuote("keyUsage=critical,keyCertSign,cRLSign"),
            "-out", path(paste0(name, ".pem")))
  }
  sign <- function(key, cert, san, ...) {
    ext <- tempfile(tmpdir = dir)
    writeLines(c(paste0("subjectAltName=", san), "basicConstraints=CA:FALSE",
                 "extendedKeyUsage=serverAuth"), ext)
    csr <- tempfile(tmpdir = dir)
    openssl("req", "-new", "-key", key, ..., "-subj", "/CN=server", "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert)
  }
  make_ca("ca")
  make_ca("other-ca")
  ec_key(path("server.key"))
  sign(path("server.key"), path("server.pem"), "IP:127.0.0.1")
  ec_key(path("encrypted.key"), "-aes256", "-pass", "pass:secret")
  sign(path("encrypted.key"), path("encrypted.pem"), "IP:127.0.0.1",
       "-passin", "pass:secret")
  ec_key(path("misnamed.key"))
  sign(path("misnamed.key"), path("misnamed.pem"), "DNS:elsewhere.example")
  read <- function(name) paste(readLines(path(name)), collapse = "\n")
  # One PEM file holding the server's certificate, the CA, then the key.
  writeLines(c(read("server.pem"), read("ca.pem"), read("server.key")), path("bundle.pem"))
  list(
    dir = dir,
    ca = read("ca.pem"),
    other_ca = read("other-ca.pem"),
    ca_file = path("ca.pem"),
    bundle_file = path("bundle.pem"),
    cert = paste(read("server.pem"), read("ca.pem"), sep = "\n"),
    key = read("server.key"),
    encrypted_cert = read("encrypted.pem"),
    encrypted_key = read("encrypted.key"),
    misnamed_cert = read("misnamed.pem"),
    misnamed_key = read("misnamed.key")
  )
}

# A TCP port on 127.0.0.1 that nothing listens at just now.
free_port <- function() {
  for (i in 1:50) {
    port <- sample(20000:60000, 1L)
    socket <- tryCatch(serverSocket(port), error = function(e) NULL)
    if (!is.null(socket)) {
      close(socket)
      return(port)
    }
  }
  stop("no free port found")
}

# Evaluates `expr`, which launches "remote" daemons on this machine through a
# loopback URL: the warning that other machines could not dial it is
# expected there, and dropped; any other warning goes on.
on_this_machine <- function(expr) {
  withCallingHandlers(expr, warning = function(w) {
    if (grepl("can only be dialled on this machine", conditionMessage(w), fixed = TRUE))
      invokeRestart("muffleWarning")
  })
}

# Whether a network namespace can be made here (it needs root, or
# CAP_SYS_ADMIN, and iproute2's `ip`).
namespace_reason <- function() {
  if (!nzchar(Sys.which("unshare")) || !nzchar(Sys.which("ip")))
    return("unshare (util-linux) or ip (iproute2) is not installed")
  out <- suppressWarnings(system2("unshare", c("--net", "ip", "link", "set", "lo", "up"),
                                  stdout = TRUE, stderr = TRUE))
  status <- attr(out, "status")
  if (!is.null(status) && status != 0L)
    return(paste("cannot create a network namespace here:", paste(out, collapse = " ")))
  NULL
}

# Two "machines": network namespaces made here, each held by a `sleep`
# process of its own, joined by a veth pair, with addresses only inside
# them: `host` at 10.231.<k>.1/24 on interface `host_if`, `remote` at
# .2 (and loopback up in each). `run(machine, args)` gives the command that
# runs `args` inside one. Both are removed when `frame` ends (killing the
# holders frees the namespaces, and with them the pair), even on failure.
two_machines <- function(frame = parent.frame()) {
  reason <- namespace_reason()
  if (!is.null(reason)) skip(reason)
  sh <- function(...) {
    out <- suppressWarnings(system2(c(...)[1L], c(...)[-1L], stdout = TRUE, stderr = TRUE))
    status <- attr(out, "status")
    if (!is.null(status) && status != 0L)
      stop(paste(c(...), collapse = " "), " failed: ", paste(out, collapse = " "))
  }
  holders <- list()
  withr::defer({
    # every process left inside either namespace, then the holders
    spaces <- vapply(holders, function(p) Sys.readlink(sprintf("/proc/%d/ns/net", process_pid(p))), "")
    for (dir in Sys.glob("/proc/[0-9]*")) {
      if (Sys.readlink(file.path(dir, "ns/net")) %in% spaces[nzchar(spaces)])
        tools::pskill(as.integer(basename(dir)), tools::SIGKILL)
    }
    for (p in holders) process_kill(p)
  }, envir = frame)
  hold <- function() {
    p <- process_spawn(Sys.which("unshare"), c("--net", "sleep", "3600"), character(),
                       character(), character(), FALSE)
    holders[[length(holders) + 1L]] <<- p
    process_pid(p)
  }
  pids <- c(host = hold(), remote = hold())
  net <- function(machine) sprintf("--net=/proc/%d/ns/net", pids[[machine]])
  subnet <- sample(1:254, 1L)
  suffix <- random_hex(3L)
  ifs <- c(host = paste0("mh", suffix), remote = paste0("mr", suffix))
  sh("ip", "link", "add", ifs[["host"]], "type", "veth", "peer", "name", ifs[["remote"]])
  for (machine in c("host", "remote")) {
    sh("ip", "link", "set", ifs[[machine]], "netns", pids[[machine]])
    address <- sprintf("10.231.%d.%d/24", subnet, if (machine == "host") 1L else 2L)
    sh("nsenter", net(machine), "ip", "addr", "add", address, "dev", ifs[[machine]])
    sh("nsenter", net(machine), "ip", "link", "set", ifs[[machine]], "up")
    sh("nsenter", net(machine), "ip", "link", "set", "lo", "up")
  }
  list(
    host_address = sprintf("10.231.%d.1", subnet),
    host_if = ifs[["host"]],
    run = function(machine, args) c(net(machine), args)
  )
}

# Runs an R script inside `machine` of two_machines() in the background, as
# a user would there, with this session's library paths; returns the path
# of its collected output. R's own bin directory comes first on its PATH,
# as on a machine where R is installed: `R CMD check` puts an `Rscript`
# that only fails ahead of it, and the launch commands it runs say `Rscript`.
rscript_in <- function(machines, machine, script) {
  out <- tempfile("machine-", fileext = ".txt")
  withr::local_envvar(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
                      R_TESTS = NA,
                      PATH = paste(R.home("bin"), Sys.getenv("PATH"), sep = .Platform$path.sep))
  system2("nsenter", machines$run(machine, c(file.path(R.home("bin"), "Rscript"), script)),
          wait = FALSE, stdout = out, stderr = out)
  out
}
