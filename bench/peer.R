# Run by bench/run.R in a separate R process with R_LIBS naming MIRAI_PEER_LIB:
# the mirai workloads alone, with whichever mirai that library holds. A
# workload the peer cannot run becomes an ERROR row, not a failed run.
#   Rscript bench/peer.R <output.rds>
args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 1L)
f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
bench_dir <- dirname(normalizePath(f[1]))
source(file.path(bench_dir, "functions.R"))
suppressPackageStartupMessages(library(mirai))
cfg <- bench_config()
version <- as.character(utils::packageVersion("mirai"))
lib <- dirname(find.package("mirai"))
cat(sprintf("peer: mirai %s from %s\n", version, lib))
res <- tryCatch(mirai_suite(cfg, tag = "peer mirai", bench_dir = bench_dir), finally = mirai_reset())
saveRDS(list(results = res, version = version, lib = lib), args[[1L]])
