# Large objects and the plain-data reader: every plain type read back as
# sent, through real daemons both ways; long vectors; a link closed in the
# middle of a payload; an object changed once mirai() has returned.

read_plain <- function(bytes) .Call(mirai:::wrap__serial_read_plain, bytes)
sent_bytes <- function(x) .Call(mirai:::wrap__serial_bytes, x)
r_bytes <- function(x) serialize(x, NULL, xdr = FALSE, version = 3L)

plain_values <- function() {
  latin1 <- iconv("caf\u00e9", "UTF-8", "latin1")
  bytes <- "caf\xe9"
  Encoding(bytes) <- "bytes"
  list(
    NULL, TRUE, c(TRUE, NA, FALSE), c(1L, NA, -5L), c(1.5, NA, NaN, Inf, -0),
    c(3+2i, NA, complex(real = NaN, imaginary = 1)), as.raw(0:255),
    c("a", NA, "", "\u00e9t\u00e9", latin1, bytes), character(), integer(), list(), raw(),
    c(a = 1, b = NA), list(a = 1, b = "c", c = list(d = NA_integer_)),
    data.frame(x = c(1.5, NA), y = c("a", NA)),
    factor(c("lo", "hi", NA, "lo")),
    matrix(c(1, NA, 3, 4), 2, dimnames = list(c("r1", "r2"), c("c1", "c2"))),
    array(1:24 + 0L, c(2L, 3L, 4L)), structure(1:3 + 0L, class = "myclass", note = "kept"),
    quote(x), quote(f(x, y = 2)), quote(x[, 1]), pairlist(a = 1, 2), expression(a + 1, "b"),
    as.Date("2026-11-22"), ts(1:10, start = 2000),
    seq_len(3e5) * 0.5, c(seq_len(2e6), NA), as.raw(seq_len(5e6) %% 256L),
    c(rep(1+1i, 2e5), NA), list(big = seq_len(1e6) + 0.25, names = c(x = "y"))
  )
}

test_that("the plain reader reads every plain type as R's unserializer does", {
  for (x in plain_values()) {
    read <- read_plain(sent_bytes(x))
    expect_false(is.null(read), label = deparse1(x, nlines = 1L))
    expect_identical(read[[1L]], x)
  }
  expect_identical(Encoding(read_plain(sent_bytes(c("\u00e9t\u00e9", "a")))[[1L]]),
                   c("UTF-8", "unknown"))
})

test_that("the plain reader leaves to R what is not plain data, and bad bytes", {
  # (R writes a symbol met twice, `names` here, as a back reference.)
  for (x in list(function(x) x, new.env(), list(a = 1, list(b = 2)), 1:10, asS4(c(1.5, 2))))
    expect_null(read_plain(r_bytes(x)))
  # A length that the bytes cannot hold allocates nothing.
  header <- length(sent_bytes(NULL)) - 4L
  claimed <- sent_bytes(c(1.5, 2))
  claimed[header + 5:8] <- writeBin(.Machine$integer.max, raw(), endian = .Platform$endian)
  expect_null(read_plain(claimed))
  whole <- sent_bytes(list(a = 1:10 + 0L, b = "x"))
  for (n in c(0L, 5L, 14L, 20L, length(whole) - 1L))
    expect_null(read_plain(whole[seq_len(n)]))
  expect_null(read_plain(c(whole, as.raw(0))))
  expect_null(read_plain(serialize(1:3, NULL)))
})

test_that("every plain type makes the round trip through a daemon, dispatcher on and off", {
  for (dispatcher in c(TRUE, FALSE)) {
    daemons(1, dispatcher = dispatcher)
    for (x in plain_values()) {
      expect_identical(mirai(list(x), x = x)[], list(x), label = deparse1(x, nlines = 1L))
      expect_identical(mirai(identical(x, y), x = x, y = x)[], TRUE)
    }
    daemons(0)
  }
})

test_that("a large value received is held outside R's heap, and is an ordinary vector", {
  daemons(1)
  withr::defer(daemons(0))
  vcells_mb <- function() gc()[2L, 2L]
  x <- structure(seq_len(2^22) * 0.5, names = NULL, note = "kept")
  invisible(mirai(1)[])
  before <- vcells_mb()
  y <- mirai(x, x = x)[]
  # R's vector heap did not take the 32 MiB
  expect_lt(vcells_mb() - before, 8)
  expect_identical(y, x)
  z <- y
  z[1L] <- -1
  expect_identical(y, x)
  expect_identical(z[1:2], c(-1, 1))
  y[2L] <- -2
  expect_identical(y[1:3], c(0.5, -2, 1.5))
  expect_identical(attr(y, "note"), "kept")
  expect_identical(unserialize(serialize(y, NULL)), y)
  expect_identical(mirai(y, y = y)[], y)
  for (v in list(rep_len(c(TRUE, NA, FALSE), 2^20), c(NA, seq_len(2^20)),
                 complex(real = seq_len(2^17), imaginary = -1), as.raw(seq_len(2^21) %% 256L)))
    expect_identical(mirai(v, v = v)[], v)
})

test_that("buffers of large values are reused only once their values are collected", {
  daemons(1)
  withr::defer(daemons(0))
  make <- function(i) seq_len(2^20) + i * 0.25
  kept <- list()
  for (i in 1:60) {
    y <- mirai(make(i), make = make, i = i)[]
    if (i %% 3L == 0L) kept[[as.character(i)]] <- y
    expect_identical(y, make(i))
  }
  # (each call's value takes 8 MiB: collections ran, buffers were reused)
  for (i in names(kept)) expect_identical(kept[[i]], make(as.integer(i)))
})

test_that("a vector changed right after mirai() is sent as it was at the call", {
  daemons(1)
  withr::defer(daemons(0))
  x <- seq_len(5e6) * 1
  expected <- sum(x)
  ms <- list()
  for (i in 1:5) {
    ms[[i]] <- mirai(sum(x), x = x)
    x[1L] <- x[1L] + 1e9
  }
  expect_identical(vapply(ms, function(m) m[], numeric(1L)), expected + (0:4) * 1e9)
})

test_that("long vectors (over 2^31 elements) go both ways", {
  free <- as.numeric(sub("[^0-9]*([0-9]+).*", "\\1",
                         grep("^MemAvailable:", readLines("/proc/meminfo"), value = TRUE))) * 1024
  skip_if(free < 14 * 2^30, "needs 14 GiB of free memory")
  n <- 2^31 + 10
  daemons(1)
  withr::defer(daemons(0))
  x <- rep_len(as.raw(1:251), n)
  at <- c(1, 2^31 - 1, 2^31, 2^31 + 1, n)
  expect_identical(mirai(list(length(x), x[at]), x = x, at = at)[], list(n, x[at]))
  rm(x)
  y <- mirai(rep_len(as.raw(1:251), n), n = n)[]
  expect_identical(length(y), n)
  expect_identical(y[at], rep_len(as.raw(1:251), n)[at])
})

test_that("a daemon killed in the middle of receiving a large task gives 19, and the host goes on", {
  daemons(1, resilience = FALSE)
  withr::defer(daemons(0))
  pid <- mirai(Sys.getpid())[]
  # Stopped, the daemon reads nothing: the host's write of the task stalls
  # once the socket's buffers are full, part way through the payload.
  tools::pskill(pid, tools::SIGSTOP)
  x <- seq_len(2^25) * 0.5
  started <- tempfile()
  m <- mirai({ file.create(started); length(x) }, x = x, started = started)
  Sys.sleep(0.5)
  tools::pskill(pid, tools::SIGKILL)
  tools::pskill(pid, tools::SIGCONT)
  value <- m[]
  expect_true(is_error_value(value))
  expect_identical(unclass(value), 19L)
  expect_false(file.exists(started))
  expect_true(poll_until(function() status()$connections == 1L))
  expect_identical(mirai(length(x), x = x)[], length(x))
})

test_that("a daemon killed in the middle of sending a large result gives 19, and the host goes on", {
  daemons(1, resilience = FALSE)
  withr::defer(daemons(0))
  m <- mirai({
    y <- seq_len(2^27) * 0.5
    system(sprintf("sleep 1; kill -9 %d", Sys.getpid()), wait = FALSE)
    y
  })
  value <- m[]
  expect_true(is_error_value(value))
  expect_identical(unclass(value), 19L)
  expect_true(poll_until(function() status()$connections == 1L))
  expect_identical(mirai(1 + 1)[], 2)
})
