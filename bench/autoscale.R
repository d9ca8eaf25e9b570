# Autoscaling: what it costs when tasks are sent and collected, one poll, and
# how fast a pool grows under a burst and shrinks when idle (local daemons).
#   R_LIBS=$PWD/lib Rscript bench/autoscale.R
library(mirai)

throughput <- function(label, ...) {
  daemons(...)
  on.exit(daemons(0))
  mirai(1)[]
  t <- system.time(for (r in 1:3) collect_mirai(lapply(1:5000, function(i) mirai(i))))
  cat(sprintf("%-32s %6.0f tasks/s\n", label, 15000 / t[["elapsed"]]))
}
for (r in 1:2) {
  throughput("daemons(2)", 2)
  throughput("autoscale = list(min = 2, max = 2)", autoscale = list(min = 2, max = 2))
}

daemons(autoscale = list(min = 1, max = 4, wait = 0.5, idletime = 1000))
envir <- mirai:::..[["default"]]
t <- system.time(for (i in 1:2000) {
  envir[["autoscale"]][["polled"]] <- -Inf
  mirai:::autoscale_poll(envir)
})
cat(sprintf("one poll (forced): %.0f us\n", t[["elapsed"]] / 2000 * 1e6))
start <- proc.time()[["elapsed"]]
ms <- lapply(1:16, function(i) mirai(Sys.sleep(1)))
while (status()$connections < 4) Sys.sleep(0.05)
cat(sprintf("burst of 16 tasks of 1 s (wait 0.5, batch 1): 1 -> 4 daemons in %.2f s\n",
            proc.time()[["elapsed"]] - start))
invisible(collect_mirai(ms))
start <- proc.time()[["elapsed"]]
while (status()$connections > 1) Sys.sleep(0.05)
cat(sprintf("idle (idletime 1 s): back to 1 daemon %.2f s after the last task\n",
            proc.time()[["elapsed"]] - start))
daemons(0)
