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
# BENCH_SERIAL_REPS sets the number of timings. Both package writers return
# a raw vector here, so each includes one copy of the output, as base
# serialize() does.

library(mirai)

ns <- asNamespace("mirai")
writers <- list(
  plain = function(x) .Call(ns[["wrap__serial_bytes"]], x),
  r_via_package = if (exists("wrap__serial_bytes_r", envir = ns)) {
    function(x) .Call(ns[["wrap__serial_bytes_r"]], x)
  },
  base = function(x) serialize(x, NULL, xdr = FALSE)
)

set.seed(1)
n <- 1e5
shapes <- list(
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

cpu <- function() sum(proc.time()[c("user.self", "sys.self")])

per_call <- function(f, x, reps) {
  f(x)
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

fmt_us <- function(s) if (is.na(s)) "n/a" else formatC(s * 1e6, digits = 3, format = "fg", big.mark = ",")

reps <- as.integer(Sys.getenv("BENCH_SERIAL_REPS", "9"))
for (shape in names(shapes)) {
  x <- shapes[[shape]]
  for (w in names(writers)) if (!is.null(writers[[w]]))
    stopifnot(identical(unserialize(writers[[w]](x)), x))
}

cat(sprintf("R %s, mirai %s (%s)\n\n", getRversion(), utils::packageVersion("mirai"),
            if (is.null(writers$r_via_package)) "no serial_bytes_r" else "with serial_bytes_r"))
cat("| shape | bytes | plain writer (us) | R_Serialize via package (us) | base serialize() (us) |\n")
cat("| --- | ---: | ---: | ---: | ---: |\n")
for (shape in names(shapes)) {
  x <- shapes[[shape]]
  t <- vapply(names(writers), function(w)
    if (is.null(writers[[w]])) NA_real_ else per_call(writers[[w]], x, reps), numeric(1))
  cat(sprintf("| %s | %s | %s | %s | %s |\n", shape,
              format(length(writers$plain(x)), big.mark = ","),
              fmt_us(t[["plain"]]), fmt_us(t[["r_via_package"]]), fmt_us(t[["base"]])))
}
