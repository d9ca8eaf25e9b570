# TLS: zero-configuration certificates and the user's own, made with the
# openssl command line tool; a wrong certificate authority or a certificate
# for another host is refused by daemon() with a clear error.

# daemon() errors at once here; if it ever connected, the time limit ends it
# rather than the test run hanging in its loop.
dial_error <- function(...) {
  setTimeLimit(elapsed = 20, transient = TRUE)
  on.exit(setTimeLimit(elapsed = Inf))
  tryCatch({
    daemon(...)
    NULL
  }, error = function(e) e)
}

test_that("zero-config TLS: launched daemons get the CA, and a wrong CA is refused", {
  daemons(url = "tls+tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "zero")
  withr::defer(daemons(0, .compute = "zero"))
  launch_local(2L, .compute = "zero")
  expect_true(poll_until(function() status("zero")$connections == 2L))
  expect_identical(mirai(TRUE, .compute = "zero")[], TRUE)
  url <- status("zero")$daemons
  ca <- nextget("tls_ca", .compute = "zero")
  expect_match(ca, "^-----BEGIN CERTIFICATE-----")

  other <- daemons(url = "tls+tcp://127.0.0.1:0", dispatcher = FALSE, .compute = "zero2")
  withr::defer(daemons(0, .compute = "zero2"))
  other_ca <- nextget("tls_ca", .compute = "zero2")
  expect_false(identical(ca, other_ca))
  for (asyncdial in c(FALSE, TRUE)) {
    e <- dial_error(url, tls = c(other_ca, ""), asyncdial = asyncdial)
    expect_s3_class(e, "error")
    expect_match(conditionMessage(e), url, fixed = TRUE)
    expect_match(conditionMessage(e), "certificate", fixed = TRUE)
  }
  expect_identical(status("zero")$connections, 2L)
})

test_that("daemon() needs the CA for a TLS URL, and names 'tls' when it is unusable", {
  expect_snapshot(error = TRUE, daemon("tls+tcp://127.0.0.1:5555"))
  expect_snapshot(error = TRUE, daemon("wss://127.0.0.1:5555", tls = c("not a PEM", "")))
  expect_snapshot(error = TRUE, daemon("wss://127.0.0.1:5555", tls = "/no/such/ca.pem"))
})

skip_if_no_openssl()
certs <- make_certificates()
withr::defer(unlink(certs$dir, recursive = TRUE), teardown_env())

for (dispatcher in c(TRUE, FALSE)) {
  mode <- if (dispatcher) "with dispatcher" else "without dispatcher"

  test_that(paste("a user certificate from a PEM file (certificate, CA, key),", mode), {
    url <- daemons(url = "tls+tcp://127.0.0.1:0", dispatcher = dispatcher,
                   tls = certs$bundle_file, .compute = "user")
    withr::defer(daemons(0, .compute = "user"))
    # the daemons launched here trust the certificates given (never the key)
    expect_false(grepl("PRIVATE KEY", nextget("tls_ca", .compute = "user"), fixed = TRUE))
    launch_local(1L, .compute = "user")
    # a user's daemon, with the CA file as seed 000 describes; no invitation
    errors <- rscript_daemon(unclass(url), tls = certs$ca_file, stderr = TRUE)
    joined <- poll_until(function() status("user")$connections == 2L)
    expect_true(joined, info = paste(readLines(errors, warn = FALSE), collapse = "\n"))
    pids <- task_pids(2L, "user")
    expect_length(unique(pids), 2L)
    # the wrong CA is refused
    e <- dial_error(unclass(url), tls = c(certs$other_ca, ""))
    expect_match(conditionMessage(e), unclass(url), fixed = TRUE)
    expect_match(conditionMessage(e), "UnknownIssuer", fixed = TRUE)
  })

  test_that(paste("a user certificate with an encrypted key and pass,", mode), {
    called <- 0L
    pass <- function() {
      called <<- called + 1L
      "secret"
    }
    daemons(url = "wss://127.0.0.1:0/enc", dispatcher = dispatcher,
            tls = c(paste(certs$encrypted_cert, certs$ca, sep = "\n"), certs$encrypted_key),
            pass = pass, .compute = "enc")
    withr::defer(daemons(0, .compute = "enc"))
    expect_identical(called, 1L)
    launch_local(1L, .compute = "enc")
    errors <- rscript_daemon(status("enc")$daemons, tls = c(certs$ca, ""), stderr = TRUE)
    joined <- poll_until(function() status("enc")$connections == 2L)
    expect_true(joined, info = paste(readLines(errors, warn = FALSE), collapse = "\n"))
    expect_length(unique(task_pids(2L, "enc")), 2L)
  })
}

test_that("pass is called only for an encrypted key, and errors name 'pass' or 'tls'", {
  daemons(url = "tls+tcp://127.0.0.1:0", tls = c(certs$cert, certs$key),
          pass = function() stop("not needed"), .compute = "plain")
  daemons(0, .compute = "plain")
  encrypted <- c(certs$encrypted_cert, certs$encrypted_key)
  expect_snapshot(error = TRUE, transform = scrub_urls, {
    daemons(url = "tls+tcp://127.0.0.1:0", tls = encrypted, pass = 1, .compute = "bad")
    daemons(url = "tls+tcp://127.0.0.1:0", tls = encrypted, .compute = "bad")
    daemons(url = "tls+tcp://127.0.0.1:0", tls = encrypted, pass = function() "wrong",
            .compute = "bad")
    daemons(url = "tls+tcp://127.0.0.1:0", tls = encrypted, pass = function() 1, .compute = "bad")
    daemons(url = "tls+tcp://127.0.0.1:0", tls = c("junk", "junk"), .compute = "bad")
    daemons(url = "tls+tcp://127.0.0.1:0", tls = "/no/such/file.pem", .compute = "bad")
  })
  expect_null(..[["bad"]])
  # the password itself, as a string, as the original mirai takes it
  daemons(url = "tls+tcp://127.0.0.1:0", pass = "secret", .compute = "string",
          tls = c(paste(certs$encrypted_cert, certs$ca, sep = "\n"), certs$encrypted_key))
  withr::defer(daemons(0, .compute = "string"))
  launch_local(1L, .compute = "string")
  expect_true(poll_until(function() status("string")$connections == 1L))
})

test_that("a certificate for another host is refused by daemon()", {
  url <- daemons(url = "tls+tcp://127.0.0.1:0", tls = c(certs$misnamed_cert, certs$misnamed_key),
                 .compute = "misnamed")
  withr::defer(daemons(0, .compute = "misnamed"))
  e <- dial_error(unclass(url), tls = certs$ca_file)
  expect_match(conditionMessage(e), unclass(url), fixed = TRUE)
  expect_match(conditionMessage(e), "not valid for name", fixed = TRUE)
  expect_identical(status("misnamed")$connections, 0L)
})

test_that("a TLS dial to a host that has gone away is a clean error", {
  url <- daemons(url = "tls+tcp://127.0.0.1:0", .compute = "gone")
  ca <- nextget("tls_ca", .compute = "gone")
  daemons(0, .compute = "gone")
  expect_true(poll_until(function() {
    e <- dial_error(unclass(url), tls = c(ca, ""))
    inherits(e, "error") && grepl("could not connect", conditionMessage(e), fixed = TRUE)
  }))
})
