# How tasks and values are written: plain data by the package's own writer of
# R's format, everything else by R's serializer; both read back as sent.

sent_bytes <- function(x) .Call(mirai:::wrap__serial_bytes, x)
r_bytes <- function(x) serialize(x, NULL, xdr = FALSE, version = 3L)

test_that("plain data is written byte for byte as R writes it", {
  plain <- list(
    NULL, TRUE, NA, c(1L, NA, -5L), c(1.5, NA, NaN, Inf, -0), 3+2i, as.raw(0:255),
    c("a", NA, "", "\u00e9t\u00e9", enc2native("x")), character(), integer(), list(),
    list(a = 1, b = "c"),
    data.frame(x = c(1.5, 2), y = c("a", "b")),
    factor(c("lo", "hi", "lo")),
    matrix(c(1, 2, 3, 4), 2, dimnames = list(c("r1", "r2"), c("c1", "c2"))),
    structure(1:3 + 0L, class = "myclass", note = "kept"),
    quote(x), quote(f(x, y = 2)), quote(x[, 1]),
    pairlist(a = 1, 2), expression(a + 1, "b"),
    as.Date("2026-11-22"), list(quote(i), list(i = 1L), list(), NULL)
  )
  for (x in plain) expect_identical(sent_bytes(x), r_bytes(x))
})

test_that("a symbol met again is written again, not referred back to", {
  # R writes the second `names` and `sym` as back references: the plain
  # writer's output differs there, and reads back the same
  twice <- list(list(a = quote(sym), b = quote(sym)), list(x = list(y = 1)),
                quote(f(a, g(a))))
  for (x in twice) {
    sent <- sent_bytes(x)
    expect_gt(length(sent), length(r_bytes(x)))
    expect_identical(unserialize(sent), x)
  }
})

test_that("what the plain writer leaves to R still reads back as sent", {
  f <- eval(quote(function(x) x + 1), globalenv())
  others <- list(1:10, seq_len(1e6), f, globalenv(), baseenv(), emptyenv(),
                 list(f = f, data = 1:3), methods::new("numeric"))
  for (x in others) {
    expect_identical(sent_bytes(x), r_bytes(x))
    expect_identical(unserialize(sent_bytes(x)), x)
  }
  e <- new.env()
  assign("v", 42, envir = e)
  expect_identical(mget("v", envir = unserialize(sent_bytes(e))), list(v = 42))
  deep <- list()
  for (i in 1:2000) deep <- list(deep)
  expect_identical(sent_bytes(deep), r_bytes(deep))
})

test_that("plain tasks and values make the round trip through a daemon", {
  daemons(1, dispatcher = FALSE, .compute = "serial")
  withr::defer(daemons(0, .compute = "serial"))
  df <- data.frame(x = c(1.5, NA), y = c("\u00e9", NA), stringsAsFactors = TRUE)
  m <- mirai(list(df, quote(f(x)), 3+2i, as.raw(1:3), attributes(df)), df = df,
             .compute = "serial")
  expect_identical(m[], list(df, quote(f(x)), 3+2i, as.raw(1:3), attributes(df)))
})
