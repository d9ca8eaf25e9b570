# How long writing a task or a value takes, by writer, for typical shapes:
# the package's own writer of plain data (what it sends), R's serializer
# through the package's buffers, and base serialize() into a raw vector.
#
#   R_LIBS=$PWD/lib Rscript bench/serial.R
#
# Prints a markdown table: the median over 9 timings of one call, each
# timing a loop of enough calls to take about 100 ms of CPU (this process's,
# user and system: the garbage collections that a writer's allocations
# trigger are counted, and other processes on a busy machine are not).
# Each writer runs in an R process of its own, so that one writer's garbage
# does not change when the collector runs for the next. BENCH_SERIAL_REPS
# sets the number of timings. Both package writers return a raw vector
# here, so each includes one copy of the output, as base serialize() does.

shapes <- function() {
  set.seed(1)
  n <- 1e5
  list(
    "scalar `1`" = 1,
    "task of `mirai(x + 1, x = 1)`" = list(quote(x + 1), list(x = 1), list(), NULL),
    "named list of 4 small items" = list(a = 1, b = "text", c = 1:3 + 0L, d = TRUE),
    "1e6 doubles" = runif(1e6),
    "data frame, 1e5 rows x 5 (incl. factor, Date)" = data.frame(
      x = runif(n), i = sample.int(n), s = sample(c("alpha", "beta", "gamma"), n, TRUE),
      f = factor(sample(c("lo", "mid", "hi"), n, TRUE)),
      d = as.Date("2026-01-01") + sample.int(365L, n, TRUE)
    ),
    "list of 1e4 small named lists" = lapply(seq_len(1e4), function(i)
      list(id = i, name = "item", value = i * 0.5))
  )
}

writer_of <- function(name) {
  ns <- asNamespace("mirai")
  switch(name,
    plain = function(x) .Call(ns[["wrap__serial_bytes"]], x),
    r_via_package = if (exists("wrap__serial_bytes_r", envir = ns)) {
      function(x) .Call(ns[["wrap__serial_bytes_r"]], x)
    },
    base = function(x) serialize(x, NULL, xdr = FALSE)
  )
}

cpu <- function() sum(proc.time()[c("user.self", "sys.self")])

per_call <- function(f, x, reps) {
  stopifnot(identical(unserialize(f(x)), x))
  t0 <- cpu()
  k <- 0L
  while (cpu() - t0 < 0.1) {
    f(x)
    k <- k + 1L
  }
  times <- numeric(reps)
  for (r in seq_len(reps)) {
    t0 <- cpu()
    for (i in seq_len(k)) f(x)
    times[r] <- (cpu() - t0) / k
  }
  stats::median(times)
}

args <- commandArgs(trailingOnly = TRUE)
if (length(args)) {
  # a child: one writer over every shape, the figures as R code
  f <- writer_of(args[1])
  reps <- as.integer(Sys.getenv("BENCH_SERIAL_REPS", "9"))
  x <- shapes()
  out <- if (is.null(f)) rep(NA_real_, length(x)) else
    vapply(x, function(s) per_call(f, s, reps), numeric(1))
  dput(unname(out))
  quit(save = "no")
}

library(mirai)
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))[1]
run <- function(w) {
  out <- system2(file.path(R.home("bin"), "Rscript"), c(shQuote(script), w), stdout = TRUE)
  eval(parse(text = out))
}
writers <- c("plain", "r_via_package", "base")
t <- vapply(writers, run, numeric(length(shapes())))
x <- shapes()
bytes <- vapply(x, function(s) length(writer_of("plain")(s)), numeric(1))

fmt_us <- function(s) if (is.na(s)) "n/a" else formatC(s * 1e6, digits = 3, format = "fg", big.mark = ",")
cat(sprintf("R %s, mirai %s (%s)\n\n", getRversion(), utils::packageVersion("mirai"),
            if (is.null(writer_of("r_via_package"))) "no serial_bytes_r" else "with serial_bytes_r"))
cat("| shape | bytes | plain writer (us) | R_Serialize via package (us) | base serialize() (us) |\n")
cat("| --- | ---: | ---: | ---: | ---: |\n")
for (i in seq_along(x))
  cat(sprintf("| %s | %s | %s | %s | %s |\n", names(x)[i], format(bytes[i], big.mark = ","),
              fmt_us(t[i, "plain"]), fmt_us(t[i, "r_via_package"]), fmt_us(t[i, "base"])))
