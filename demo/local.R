# A demonstration of local asynchronous evaluation with mirai:
# start daemons, submit slow and small tasks, keep working while they run,
# watch status(), then collect everything and reset.
library(mirai)

stamp <- function(fmt, ...) cat(sprintf(paste0("[%6.2f s] ", fmt, "\n"), proc.time()[["elapsed"]] - t0, ...))
t0 <- proc.time()[["elapsed"]]

n <- daemons(2)
stamp("daemons(%d) connected", n)

slow <- lapply(1:2, function(i) mirai({ Sys.sleep(1); Sys.getpid() }, i = i))
stamp("submitted 2 slow tasks (1 s each)")

small <- lapply(seq_len(10000), function(i) mirai(i * 2L, i = i))
stamp("submitted 10,000 small tasks")

ticks <- 0L
while (unresolved(slow)) {
  ticks <- ticks + 1L
  s <- status()
  stamp("host still responsive (tick %d): awaiting %d, executing %d, completed %d",
        ticks, s$mirai[["awaiting"]], s$mirai[["executing"]], s$mirai[["completed"]])
  Sys.sleep(0.25)
}

pids <- unlist(collect_mirai(slow))
values <- unlist(collect_mirai(small))
stopifnot(identical(values, seq_len(10000) * 2L), length(unique(pids)) == 2L)
stamp("slow tasks ran on processes %s", paste(pids, collapse = " and "))
stamp("all 10,000 small tasks returned their own value")

err <- mirai(stop("an error raised in the daemon"))[]
stamp("an error comes back as a value: %s", format(err))

rt <- system.time(for (i in 1:1000) mirai(1)[])[["elapsed"]]
stamp("round trip of mirai(1)[]: %.0f microseconds (mean of 1,000)", rt * 1000)

print(status())
daemons(0)
stamp("daemons reset")
