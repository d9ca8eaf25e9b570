# Some binding routines arrive in stages: a test that needs one fails loudly
# (never skips) while it is missing.
need_binding <- function(name) {
  if (!exists(name, envir = asNamespace("mirai"), inherits = FALSE))
    stop(sprintf("the binding does not export '%s' yet: this test waits on it", name),
         call. = FALSE)
  invisible(TRUE)
}

# Run later's event loop until `condition()` holds, for at most `limit_s`
# seconds; returns whether it held.
run_later_until <- function(condition, limit_s = 20) {
  deadline <- proc.time()[["elapsed"]] + limit_s
  repeat {
    later::run_now(0.05)
    if (isTRUE(condition())) return(TRUE)
    if (proc.time()[["elapsed"]] > deadline) return(FALSE)
  }
}
