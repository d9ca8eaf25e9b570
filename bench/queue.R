# Run by bench/functions.R (wl_queue_mirai) in a fresh R process, so that its
# memory holds nothing but the queued tasks: queues tasks on a host with no
# daemon connected and saves the raw figures of queue_measure().
#   Rscript bench/queue.R <dispatcher TRUE|FALSE> <tasks> <batch> <batch reps> <output.rds>
args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 5L)
f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(dirname(normalizePath(f[1])), "functions.R"))
res <- queue_measure(dispatcher = as.logical(args[[1L]]), n_tasks = as.integer(args[[2L]]),
                     batch = as.integer(args[[3L]]), batch_reps = as.integer(args[[4L]]))
saveRDS(res, args[[5L]])
