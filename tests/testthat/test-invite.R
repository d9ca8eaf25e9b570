# Invited daemons: where the package makes the credentials and launches the
# daemons itself, a daemon must present the profile's secret before it is
# sent anything; a plain URL accepts any daemon unless `token = TRUE`. The
# secret is never shown. Versions must agree.

# A raw link, as any peer that reaches the port could open one. Returns the
# handle and the outcome of connecting: TRUE when welcomed, else the error.
raw_link <- function(url, token = NULL, tls = NULL, version = .state[["version"]]) {
  d <- daemon_connect(url, FALSE, token, 0, version, tls)
  outcome <- tryCatch({
    deadline <- proc.time()[["elapsed"]] + 10
    while (!(welcomed <- daemon_wait_connected(d, 200L)) &&
           proc.time()[["elapsed"]] < deadline) NULL
    welcomed
  }, error = function(e) e)
  list(d = d, outcome = outcome)
}

expect_refused <- function(link, why = "not invited") {
  expect_s3_class(link$outcome, "error")
  expect_match(conditionMessage(link$outcome), why, fixed = TRUE)
  # it learns nothing: no task, only the end of the link
  expect_identical(daemon_recv(link$d, 200L), "closed")
  daemon_close(link$d)
}

test_that("local daemons of daemons(n) are invited; other peers are refused", {
  daemons(1, .compute = "local")
  withr::defer(daemons(0, .compute = "local"))
  url <- status("local")$daemons
  m <- mirai({
    Sys.sleep(0.5)
    "from the invited daemon"
  }, .compute = "local")
  expect_refused(raw_link(url))
  expect_refused(raw_link(url, token = "0123456789abcdef0123456789abcdef"))
  expect_identical(m[], "from the invited daemon")
  expect_identical(nrow(status("local")$workers), 1L)
})

test_that("token = TRUE: a raw client without the secret gets no task and injects nothing", {
  url <- daemons(url = "tcp://127.0.0.1:0", token = TRUE, .compute = "invite")
  withr::defer(daemons(0, .compute = "invite"))
  launch_local(1L, .compute = "invite")
  expect_true(poll_until(function() status("invite")$connections == 1L))
  tasks <- lapply(1:3, function(i) mirai({
    Sys.sleep(0.2)
    i * 10L
  }, i = i, .compute = "invite"))
  link <- raw_link(unclass(url))
  # an attempt to answer the tasks reaches nobody
  for (id in 1:5) daemon_send(link$d, "injected", id)
  expect_refused(link)
  expect_identical(lapply(tasks, `[`), list(10L, 20L, 30L))
  expect_identical(status("invite")$connections, 1L)
  expect_identical(nrow(status("invite")$workers), 1L)
  # a user's daemon without the secret is refused with a clear error
  e <- tryCatch(daemon(unclass(url)), error = function(e) e)
  expect_match(conditionMessage(e), unclass(url), fixed = TRUE)
  expect_match(conditionMessage(e), "not invited", fixed = TRUE)
})

test_that("zero-config TLS requires the invitation as well as the CA", {
  url <- daemons(url = "wss://127.0.0.1:0", dispatcher = FALSE, .compute = "zeroinv")
  withr::defer(daemons(0, .compute = "zeroinv"))
  ca <- nextget("tls_ca", .compute = "zeroinv")
  expect_refused(raw_link(unclass(url), tls = ca))
  launch_local(1L, .compute = "zeroinv")
  expect_true(poll_until(function() status("zeroinv")$connections == 1L))
  expect_identical(mirai("ok", .compute = "zeroinv")[], "ok")
})

test_that("a plain URL accepts any daemon, as `Rscript -e 'mirai::daemon(url)'`", {
  url <- daemons(url = "tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "open")
  withr::defer(daemons(0, .compute = "open"))
  link <- raw_link(unclass(url))
  expect_true(link$outcome)
  daemon_close(link$d)
  errors <- rscript_daemon(unclass(url), stderr = TRUE)
  joined <- poll_until(function() status("open")$connections == 1L)
  expect_true(joined, info = paste(readLines(errors, warn = FALSE), collapse = "\n"))
  expect_false(mirai(Sys.getpid(), .compute = "open")[] == Sys.getpid())
})

test_that("a version mismatch is refused with a clear error on the daemon's side", {
  url <- daemons(url = "tcp://127.0.0.1:0", .compute = "version")
  withr::defer(daemons(0, .compute = "version"))
  expect_refused(raw_link(unclass(url), version = "0.0.1"), "version mismatch")
  # daemon() of another version says so, naming the URL and both versions
  version <- .state[["version"]]
  .state[["version"]] <- "0.0.1"
  withr::defer(.state[["version"]] <- version)
  e <- tryCatch(daemon(unclass(url)), error = function(e) e)
  .state[["version"]] <- version
  expect_match(conditionMessage(e), unclass(url), fixed = TRUE)
  expect_match(conditionMessage(e), "version mismatch", fixed = TRUE)
  expect_match(conditionMessage(e), version, fixed = TRUE)
  expect_match(conditionMessage(e), "0.0.1", fixed = TRUE)
  expect_identical(status("version")$connections, 0L)
})

test_that("status(), printed values and errors never show the secret", {
  daemons(1, .compute = "shown")
  withr::defer(daemons(0, .compute = "shown"))
  value <- daemons(url = "tls+tcp://127.0.0.1:0", token = TRUE, .compute = "shown2")
  withr::defer(daemons(0, .compute = "shown2"))
  for (profile in c("shown", "shown2")) {
    token <- ..[[profile]][["token"]]
    expect_match(token, "^[0-9a-f]{32}$")
    shown <- c(
      capture.output(print(status(profile))),
      capture.output(str(status(profile))),
      capture.output(print(daemons(.compute = profile))),
      capture.output(print(value)), capture.output(str(value)),
      capture.output(str(lapply(c("n", "urls", "dispatcher", "dots", "tls_ca", "token"),
                                nextget, .compute = profile))),
      capture.output(print(mirai(1, .compute = profile))),
      suppressMessages(capture.output(
        print(tryCatch(daemons(1, .compute = profile), message = conditionMessage))
      ))
    )
    expect_false(any(grepl(token, shown, fixed = TRUE)))
    expect_null(nextget("token", .compute = profile))
  }
})

# The arguments of process `pid` (what `ps` shows every user of the machine),
# or its initial environment (what /proc keeps for its whole life), as text
# (R writes the spaces of an `-e` expression as "~+~").
proc_text <- function(pid, what) {
  bytes <- readBin(sprintf("/proc/%d/%s", pid, what), "raw", 1e6)
  bytes[bytes == as.raw(0L)] <- as.raw(32L)
  gsub("~+~", " ", rawToChar(bytes), fixed = TRUE)
}

test_that("a launched daemon's secret and stream are on no command line and in no environment", {
  daemons(1, .compute = "ps")
  withr::defer(daemons(0, .compute = "ps"))
  token <- ..[["ps"]][["token"]]
  pid <- process_pid(..[["ps"]][["processes"]][[1L]])
  cmdline <- proc_text(pid, "cmdline")
  expect_match(cmdline, "mirai::daemon(", fixed = TRUE)
  expect_match(cmdline, "stdin = TRUE", fixed = TRUE)
  expect_false(grepl(token, cmdline, fixed = TRUE))
  expect_false(grepl("rs =", cmdline, fixed = TRUE))
  expect_false(grepl("10407", cmdline, fixed = TRUE))
  environ <- proc_text(pid, "environ")
  expect_false(grepl(token, environ, fixed = TRUE))
  expect_false(grepl("MIRAI_TOKEN", environ, fixed = TRUE))
  # the daemon was admitted, and runs tasks with a L'Ecuyer-CMRG stream
  expect_identical(mirai(RNGkind()[1L], .compute = "ps")[], "L'Ecuyer-CMRG")
  # nothing of it reaches a process a task starts: not its environment, not
  # its standard input
  seen <- mirai({
    env <- system2("sh", c("-c", shQuote("cat /proc/self/environ; cat")), stdout = TRUE)
    c(paste(names(Sys.getenv()), Sys.getenv()), env)
  }, .compute = "ps")[]
  expect_type(seen, "character")
  expect_false(any(grepl(token, seen, fixed = TRUE)))
})

test_that("the ephemeral daemon of a mirai without daemons keeps its secret off its command line", {
  cmdline <- mirai(proc_text(Sys.getpid(), "cmdline"), proc_text = proc_text)[]
  expect_match(cmdline, "stdin = TRUE", fixed = TRUE)
  expect_false(grepl("[0-9a-f]{32}", cmdline))
})

test_that("a daemon's connection error never shows the secret", {
  skip_if_no_openssl()
  certs <- make_certificates()
  withr::defer(unlink(certs$dir, recursive = TRUE))
  daemons(url = "tls+tcp://127.0.0.1:0", tls = c(certs$misnamed_cert, certs$misnamed_key),
          token = TRUE, .compute = "died")
  withr::defer(daemons(0, .compute = "died"))
  secret <- ..[["died"]][["token"]]
  e <- tryCatch(
    daemon(status("died")$daemons, tls = c(certs$misnamed_cert, ""), token = secret),
    error = function(e) e
  )
  expect_s3_class(e, "error")
  expect_false(grepl(secret, conditionMessage(e), fixed = TRUE))
  expect_false(grepl("[0-9a-f]{32}", conditionMessage(e)))
})

test_that("'token' among '...' of daemons() must be TRUE or FALSE", {
  expect_snapshot(error = TRUE, daemons(url = "tcp://127.0.0.1:0", token = "abc"))
  expect_null(..[["default"]])
})

test_that("daemon() reports its call with the secret and certificates replaced", {
  call <- quote(mirai::daemon("tcp://h:1", token = "abc123",
                              tls = c("-----BEGIN CERTIFICATE-----\nx", "")))
  expect_identical(redact_call(call), quote(
    mirai::daemon("tcp://h:1", token = "<secret>", tls = "<certificate>")
  ))
  expect_identical(redact_call(quote(daemon(url, tls = ca))), quote(daemon(url, tls = ca)))
  expect_identical(redact("a abc123 b", "abc123"), "a <secret> b")
})
