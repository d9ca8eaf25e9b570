# Poll `condition` (a function) until it is TRUE, for at most `limit_s`
# seconds; returns its last value, so a test asserts the outcome, not a time.
poll_until <- function(condition, limit_s = 20) {
  deadline <- proc.time()[["elapsed"]] + limit_s
  repeat {
    if (isTRUE(condition())) return(TRUE)
    if (proc.time()[["elapsed"]] > deadline) return(FALSE)
    Sys.sleep(0.05)
  }
}

# Snapshot transform: URLs carry random names and ports.
scrub_urls <- function(x) {
  x <- gsub("(tcp|ws|wss|tls\\+tcp|ipc|abstract)://[^ ,'\"`]+", "<url>", x)
  gsub("[0-9a-f]{24,}", "<hex>", x)
}

# testthat 3.2 (Debian 13, R 4.5) writes error snapshots in another layout
# than 3.1 (Debian 12, R 4.2): each keeps its own snapshot files, testthat
# 3.2's in `_snaps/testthat-3.2/`. Every `expect_snapshot()` of this suite
# goes through here, so that its code is still captured as written.
expect_snapshot <- function(...) {
  call <- sys.call()
  call[[1L]] <- quote(testthat::expect_snapshot)
  if (utils::packageVersion("testthat") >= "3.2.0") call[["variant"]] <- "testthat-3.2"
  eval(call, parent.frame())
}
