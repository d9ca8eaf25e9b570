# HPC schedulers and HTTP launch APIs: cluster_config() on a live Slurm (started
# by tools/slurm.sh: `make test` runs this file inside `tools/slurm.sh run`),
# the job scripts and commands of every scheduler, and http_config() against
# an HTTP server started here that launches the daemons it is asked for.

rscript_path <- file.path(R.home("bin"), "Rscript")

# Snapshot transform: job scripts carry ports, streams and secrets.
scrub_script <- function(x) {
  x <- scrub_urls(x)
  x <- gsub("rs = c\\([^)]*\\)", "rs = <rs>", x)
  gsub("^rs [-0-9 ]+$", "rs <rs>", x)
}

# Slurm -------------------------------------------------------------------------------

# A scheduler answers when `command args` prints a line that `ready(lines)`
# accepts (asked once per file). Under `make test`, tools/slurm.sh and
# tools/sge.sh set `variable` (MIRAI_TEST_SLURM, MIRAI_TEST_SGE): there a
# scheduler that does not answer is a failure; elsewhere its tests say why
# they skip.
scheduler_needed <- function(name, command, args, ready, variable, tool) {
  answer <- NULL
  function() {
    if (is.null(answer)) {
      out <- tryCatch(suppressWarnings(system2(command, args, stdout = TRUE, stderr = TRUE)),
                      error = function(e) character())
      answer <<- ready(out)
    }
    if (answer) return(invisible(TRUE))
    if (identical(Sys.getenv(variable), "true"))
      stop(sprintf("%s is set, but no %s answers (%s)", variable, name, command))
    skip(sprintf("no %s answers here: start one with tools/%s start", name, tool))
  }
}

need_slurm <- scheduler_needed("Slurm", "sinfo", c("-h", "-o", "%T"),
                               function(out) any(out %in% c("idle", "mixed", "allocated")),
                               "MIRAI_TEST_SLURM", "slurm.sh")

# The jobs of `ids` that squeue lists as queued or running.
squeue_listed <- function(ids) {
  out <- suppressWarnings(system2("squeue", c("-h", "-r", "-o", "%i"), stdout = TRUE,
                                  stderr = TRUE))
  intersect(trimws(out), ids)
}

slurm_output <- function() sprintf("#SBATCH --output=%s/slurm-%%j.out", tempdir())

# status() until `condition(status)` holds; the warnings it raised meanwhile
# are kept in attribute "warnings".
status_until <- function(condition, .compute = "default", limit_s = 60) {
  warnings <- character()
  s <- NULL
  ok <- poll_until(function() {
    s <<- withCallingHandlers(status(.compute), warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
    isTRUE(condition(s))
  }, limit_s = limit_s)
  structure(ok, status = s, warnings = warnings)
}

# Wait until the `n` daemons of the profile's jobs have connected and their
# jobs run; else fail, showing the jobs (a test waiting on tasks would hang).
wait_jobs_connected <- function(n, .compute) {
  ok <- status_until(function(s) s$connections == n && all(s$jobs$connected) &&
                       all(s$jobs$state == "running"), .compute = .compute)
  s <- attr(ok, "status")
  if (!ok)
    stop(sprintf("%d of %d daemons connected; the jobs:\n%s", s$connections, n,
                 paste(capture.output(print(s$jobs)), collapse = "\n")), call. = FALSE)
  expect_true(ok)
  invisible(s)
}

test_that("an array of 4 daemons on Slurm runs 100 tasks, and daemons(0) leaves no job", {
  need_slurm()
  cfg <- cluster_config(options = slurm_output(), rscript = rscript_path)
  daemons(4, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "slurm")
  withr::defer(daemons(0, .compute = "slurm"))
  jobs <- status(.compute = "slurm")$jobs
  expect_identical(nrow(jobs), 4L)
  id <- sub("_1$", "", jobs$job[1L])
  expect_identical(jobs$job, sprintf("%s_%d", id, 1:4))
  expect_true(all(jobs$state %in% c("pending", "running")))
  wait_jobs_connected(4L, "slurm")
  seen <- mirai_map(1:100, function(i) {
    Sys.sleep(0.01)
    c(Sys.getenv("SLURM_ARRAY_JOB_ID"), Sys.getenv("SLURM_ARRAY_TASK_ID"))
  }, .compute = "slurm")[]
  expect_length(seen, 100L)
  expect_identical(unique(vapply(seen, `[`, "", 1L)), id)
  expect_setequal(unique(vapply(seen, `[`, "", 2L)), as.character(1:4))
  daemons(0, .compute = "slurm")
  expect_true(poll_until(function() !length(squeue_listed(jobs$job))))
})

test_that("one Slurm job per daemon, also from launch_remote()", {
  need_slurm()
  cfg <- cluster_config("sbatch", options = slurm_output(), rscript = rscript_path,
                        array = FALSE)
  daemons(2, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "single")
  withr::defer(daemons(0, .compute = "single"))
  cmds <- launch_remote(1, remote = cfg, .compute = "single")
  expect_s3_class(cmds, "miraiLaunchCmd")
  expect_match(cmds, "mirai::daemon(", fixed = TRUE)
  jobs <- status(.compute = "single")$jobs$job
  expect_length(unique(jobs), 3L)
  expect_match(jobs, "^[0-9]+$")
  wait_jobs_connected(3L, "single")
  ids <- collect_mirai(lapply(1:3, function(i) mirai({
    Sys.sleep(0.5)
    Sys.getenv("SLURM_JOB_ID")
  }, .compute = "single")))
  expect_true(all(unlist(ids) %in% jobs))
  daemons(0, .compute = "single")
  expect_true(poll_until(function() !length(squeue_listed(jobs))))
})

test_that("a Slurm job that ends before its daemon connects is reported", {
  need_slurm()
  cfg <- cluster_config(options = slurm_output(), rscript = "/nonexistent/bin/Rscript")
  daemons(2, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "failing")
  withr::defer(daemons(0, .compute = "failing"))
  ok <- status_until(function(s) all(!is.na(s$jobs$report)), .compute = "failing")
  expect_true(ok)
  jobs <- attr(ok, "status")$jobs
  expect_identical(jobs$state, c("failed", "failed"))
  expect_identical(jobs$connected, c(FALSE, FALSE))
  expect_match(jobs$report, "job [0-9]+_[12] ended \\(FAILED, exit code 127\\) before its daemon connected")
  expect_match(jobs$report, "/nonexistent/bin/Rscript: not found", fixed = TRUE)
  # each job's report is a warning, once
  expect_length(attr(ok, "warnings"), 2L)
  expect_setequal(attr(ok, "warnings"), jobs$report)
  Sys.sleep(1.1)
  expect_no_warning(status(.compute = "failing"))
})

test_that("a daemon failing in R before it connects is reported with R's error", {
  need_slurm()
  # a daemon that cannot reach the host: nothing listens at the URL it dials
  port <- free_port()
  cfg <- cluster_config(options = slurm_output(), rscript = rscript_path)
  daemons(url = "tcp://127.0.0.1:0", .compute = "unreachable")
  withr::defer(daemons(0, .compute = "unreachable"))
  launch_remote(sprintf("tcp://127.0.0.1:%d", port), remote = cfg, .compute = "unreachable")
  ok <- status_until(function(s) !is.na(s$jobs$report), .compute = "unreachable")
  expect_true(ok)
  report <- attr(ok, "status")$jobs$report
  expect_match(report, "ended (FAILED, exit code 1)", fixed = TRUE)
  expect_match(report, "daemon could not connect", fixed = TRUE)
})

test_that("queued Slurm jobs are cancelled at reset", {
  need_slurm()
  cfg <- cluster_config(options = c(slurm_output(), "#SBATCH --begin=now+1hour"),
                        rscript = rscript_path)
  daemons(3, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "queued")
  jobs <- status(.compute = "queued")$jobs
  expect_identical(jobs$state, rep("pending", 3L))
  expect_setequal(squeue_listed(jobs$job), jobs$job)
  daemons(0, .compute = "queued")
  expect_true(poll_until(function() !length(squeue_listed(jobs$job))))
})

test_that("a submission Slurm refuses is an error naming sbatch's reason", {
  need_slurm()
  cfg <- cluster_config(options = "#SBATCH --partition=nowhere", rscript = rscript_path)
  expect_error(daemons(2, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "refused"),
               "could not submit the daemons' job with 'sbatch' \\(exit status 1\\):\n.*invalid partition")
  expect_false(daemons_set(.compute = "refused"))
})

test_that("daemons of zero-configuration TLS join from Slurm jobs with their invitation", {
  need_slurm()
  cfg <- cluster_config(options = slurm_output(), rscript = rscript_path)
  daemons(2, url = "tls+tcp://127.0.0.1:0", remote = cfg, .compute = "slurmtls")
  withr::defer(daemons(0, .compute = "slurmtls"))
  wait_jobs_connected(2L, "slurmtls")
  expect_identical(mirai(Sys.getenv("MIRAI_JOB"), .compute = "slurmtls")[] %in%
                     status(.compute = "slurmtls")$jobs$job, TRUE)
})

test_that("autoscaling on Slurm grows to max under load and shrinks when idle", {
  need_slurm()
  cfg <- cluster_config(options = slurm_output(), rscript = rscript_path)
  daemons(url = "tcp://127.0.0.1:0", remote = cfg, .compute = "slurmscale",
          autoscale = list(min = 1, max = 3, wait = 0.5, batch = 2, idletime = 2000))
  withr::defer(daemons(0, .compute = "slurmscale"))
  s <- status(.compute = "slurmscale")
  expect_identical(nrow(s$jobs), 1L)
  expect_identical(s$autoscale[c("min", "max", "target")], list(min = 1L, max = 3L, target = 1L))
  wait_jobs_connected(1L, "slurmscale")
  expect_true(status_until(function(s) s$autoscale$launching == 0L, .compute = "slurmscale"))
  ms <- lapply(1:12, function(i) mirai({
    Sys.sleep(1)
    Sys.getenv("MIRAI_JOB")
  }, .compute = "slurmscale"))
  grown <- status_until(function(s) s$connections == 3L, .compute = "slurmscale")
  expect_true(grown)
  s <- attr(grown, "status")
  expect_identical(s$autoscale$target, 3L)
  expect_identical(nrow(s$jobs), 3L)
  jobs <- unique(unlist(collect_mirai(ms)))
  expect_setequal(jobs, s$jobs$job)
  # idle: the two jobs launched for the load end, the first one stays
  shrunk <- status_until(function(s) s$connections == 1L &&
                           sum(s$jobs$state == "done") == 2L, .compute = "slurmscale")
  expect_true(shrunk)
  s <- attr(shrunk, "status")
  expect_identical(s$autoscale$target, 1L)
  expect_identical(s$autoscale$launching, 0L)
  expect_identical(squeue_listed(s$jobs$job), s$jobs$job[1L])
  daemons(0, .compute = "slurmscale")
  expect_true(poll_until(function() !length(squeue_listed(s$jobs$job))))
})

# Grid Engine ---------------------------------------------------------------------------

need_sge <- scheduler_needed("Grid Engine", "qstat", "-f",
                             function(out) any(grepl("^all[.]q@", out)),
                             "MIRAI_TEST_SGE", "sge.sh")

# The jobs (as "id.task", or "id") that qstat lists as queued or running.
qstat_listed <- function() {
  out <- suppressWarnings(system2("qstat", c("-g", "d", "-u", "'*'"), stdout = TRUE,
                                  stderr = TRUE))
  rows <- strsplit(trimws(out[grepl("^ *[0-9]", out)]), "[ \t]+")
  vapply(rows, function(f) {
    task <- f[length(f)]
    if (grepl("^[0-9]+$", task) && length(f) %in% c(9L, 10L) &&
        !(length(f) == 9L && grepl("[rt]", f[5L]))) paste(f[1L], task, sep = ".") else f[1L]
  }, "")
}

test_that("an array of 3 daemons on Grid Engine runs tasks, and daemons(0) leaves no job", {
  need_sge()
  # -V: Grid Engine passes the environment (R_LIBS) on only when asked
  cfg <- cluster_config("qsub", options = c("#$ -V", sprintf("#$ -o %s", tempdir())),
                        rscript = rscript_path)
  daemons(3, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "sge")
  withr::defer(daemons(0, .compute = "sge"))
  jobs <- status(.compute = "sge")$jobs
  id <- sub("[.]1$", "", jobs$job[1L])
  expect_identical(jobs$job, sprintf("%s.%d", id, 1:3))
  wait_jobs_connected(3L, "sge")
  seen <- mirai_map(1:30, function(i) {
    Sys.sleep(0.05)
    c(Sys.getenv("JOB_ID"), Sys.getenv("SGE_TASK_ID"))
  }, .compute = "sge")[]
  expect_identical(unique(vapply(seen, `[`, "", 1L)), id)
  expect_true(all(vapply(seen, `[`, "", 2L) %in% as.character(1:3)))
  daemons(0, .compute = "sge")
  expect_true(poll_until(function() !length(intersect(qstat_listed(), jobs$job))))
})

test_that("a Grid Engine job that ends before its daemon connects is reported", {
  need_sge()
  cfg <- cluster_config("qsub", options = sprintf("#$ -o %s", tempdir()),
                        rscript = "/nonexistent/bin/Rscript", array = FALSE)
  daemons(1, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "sgefail")
  withr::defer(daemons(0, .compute = "sgefail"))
  ok <- status_until(function(s) !is.na(s$jobs$report), .compute = "sgefail")
  expect_true(ok)
  jobs <- attr(ok, "status")$jobs
  expect_identical(jobs$state, "failed")
  expect_match(jobs$report, sprintf("job %s ended (exit status 127) before its daemon connected",
                                    jobs$job), fixed = TRUE)
  expect_match(jobs$report, file.path(tempdir(), sprintf("mirai.o%s", jobs$job)), fixed = TRUE)
  expect_match(jobs$report, "/nonexistent/bin/Rscript: not found", fixed = TRUE)
  expect_identical(attr(ok, "warnings"), jobs$report)
})

test_that("queued Grid Engine jobs are cancelled at reset", {
  need_sge()
  cfg <- cluster_config("qsub", options = c("#$ -V", sprintf("#$ -o %s", tempdir()), "#$ -h"),
                        rscript = rscript_path)
  daemons(2, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "sgeheld")
  jobs <- status(.compute = "sgeheld")$jobs
  expect_true(poll_until(function() all(jobs$job %in% qstat_listed())))
  Sys.sleep(1.1)
  expect_identical(status(.compute = "sgeheld")$jobs$state, c("pending", "pending"))
  daemons(0, .compute = "sgeheld")
  expect_true(poll_until(function() !length(intersect(qstat_listed(), jobs$job))))
})

test_that("Grid Engine's output file follows the directives", {
  withr::local_envvar(HOME = "/home/me", USER = "me")
  expect_identical(sge_output(character(), "7", "7", FALSE), "/home/me/mirai.o7")
  expect_identical(sge_output("#$ -N fit -cwd", "8", c("8.1", "8.2"), TRUE),
                   file.path(getwd(), c("fit.o8.1", "fit.o8.2")))
  expect_identical(sge_output(c("#$ -o node:/scratch/$USER/$JOB_NAME.$JOB_ID.$TASK_ID", "#$ -N x"),
                              "9", "9.3", TRUE), "/scratch/me/x.9.3")
  expect_identical(sge_output(sprintf("#$ -o %s", tempdir()), "10", "10", FALSE),
                   file.path(tempdir(), "mirai.o10"))
})

# Job scripts and commands of every scheduler -------------------------------------

test_that("cluster_config() keeps its settings and checks them", {
  cfg <- cluster_config()
  expect_identical(cfg[c("command", "options", "rscript", "array", "type")],
                   list(command = "sbatch", options = character(), rscript = "Rscript",
                        array = TRUE, type = "cluster"))
  cfg <- cluster_config("/opt/sge/bin/qsub", options = "#$ -l h_vmem=4G
                         #$ -q long.q

                         module load R", rscript = "/opt/R/bin/Rscript", array = FALSE)
  expect_identical(cfg$options, c("#$ -l h_vmem=4G", "#$ -q long.q", "module load R"))
  expect_identical(cluster_config("bsub", options = c("#BSUB -n 1", "  #BSUB -W 10"))$options,
                   c("#BSUB -n 1", "#BSUB -W 10"))
  expect_snapshot(print(cfg))
  expect_snapshot(error = TRUE, cluster_config("srun"))
  expect_snapshot(error = TRUE, cluster_config(options = NA_character_))
  expect_snapshot(error = TRUE, cluster_config(rscript = ""))
  expect_snapshot(error = TRUE, cluster_config(array = "yes"))
  expect_snapshot(error = TRUE, daemons(url = "tcp://127.0.0.1:0",
                                        remote = structure(list(type = "cluster"),
                                                           class = "miraiRemote")))
})

# Run a job script with `sh` as its scheduler would, with the scheduler's
# environment variables for the job (or array task); returns what it printed.
run_job_script <- function(script, env) {
  path <- tempfile(fileext = ".sh")
  writeLines(script, path)
  withr::with_envvar(env, system2("sh", path, stdout = TRUE, stderr = TRUE))
}

test_that("each scheduler's job script starts the daemon of its array task", {
  cmds <- c("echo one $MIRAI_JOB", "echo two $MIRAI_JOB", "echo three $MIRAI_JOB")
  expect_job <- function(flavour, env, expected, array = TRUE) {
    script <- job_script(flavour, "umask 077", if (array) cmds else cmds[1L], array)
    expect_identical(script[1L], "#!/bin/sh")
    expect_identical(run_job_script(script, env), expected)
  }
  expect_job("slurm", c(SLURM_ARRAY_JOB_ID = "41", SLURM_ARRAY_TASK_ID = "2"), "two 41_2")
  expect_job("slurm", c(SLURM_JOB_ID = "42"), "one 42", array = FALSE)
  expect_job("sge", c(JOB_ID = "77", SGE_TASK_ID = "3"), "three 77.3")
  expect_job("sge", c(JOB_ID = "78", SGE_TASK_ID = "undefined"), "one 78", array = FALSE)
  expect_job("torque", c(PBS_JOBID = "12[1].server.example.org", PBS_ARRAYID = "1"),
             "one 12[1]")
  expect_job("pbspro", c(PBS_JOBID = "13[2].pbs", PBS_ARRAY_INDEX = "2"), "two 13[2]")
  expect_job("pbspro", c(PBS_JOBID = "14.pbs"), "one 14", array = FALSE)
  expect_job("lsf", c(LSB_JOBID = "5", LSB_JOBINDEX = "3"), "three 5[3]")
  expect_job("lsf", c(LSB_JOBID = "6", LSB_JOBINDEX = "0"), "one 6", array = FALSE)
  # an index beyond the daemons starts none, and says so
  script <- job_script("slurm", character(), cmds, TRUE)
  out <- suppressWarnings(run_job_script(script, c(SLURM_ARRAY_JOB_ID = "41",
                                                   SLURM_ARRAY_TASK_ID = "9")))
  expect_identical(as.character(out), "mirai: no daemon for array index 9")
  expect_identical(attr(out, "status"), 1L)
})

test_that("the job scripts and submit commands are as submitted", {
  daemons(url = "tcp://127.0.0.1:0", token = TRUE, .compute = "scripts")
  withr::defer(daemons(0, .compute = "scripts"))
  launches <- daemon_commands(..[["scripts"]], status(.compute = "scripts")$daemons,
                              list(idletime = 60000), NULL, "Rscript")
  cmds <- vapply(launches, `[[`, "", "command")
  for (flavour in c("slurm", "sge", "torque", "pbspro", "lsf")) {
    options <- switch(flavour, slurm = "#SBATCH --mem=4G", sge = "#$ -l h_vmem=4G",
                      torque = , pbspro = "#PBS -l walltime=01:00:00", lsf = "#BSUB -n 1")
    expect_snapshot(writeLines(job_script(flavour, options, rep(cmds, 2L), TRUE)),
                    transform = function(x) gsub("[0-9a-f]{32}", "<hex>", scrub_script(x)))
    expect_snapshot(cat(submit_args(flavour, 4L, TRUE), "|",
                        submit_args(flavour, 1L, FALSE)))
  }
})

test_that("each scheduler's answer to a submission gives the job ID", {
  expect_identical(submitted_id("slurm", "4711"), "4711")
  expect_identical(submitted_id("slurm", c("sbatch: warning: x", "4712;cluster")), "4712")
  expect_identical(submitted_id("sge", 'Your job-array 88.1-4:1 ("mirai") has been submitted'), "88")
  expect_identical(submitted_id("sge", 'Your job 89 ("mirai") has been submitted'), "89")
  expect_identical(submitted_id("torque", "123[].headnode.example.org"), "123[].headnode.example.org")
  expect_identical(submitted_id("pbspro", "124.pbs"), "124.pbs")
  expect_identical(submitted_id("lsf", "Job <555> is submitted to default queue <normal>."), "555")
  expect_identical(submitted_id("slurm", "sbatch: error: Batch job submission failed"), NA_character_)
  expect_identical(job_names("torque", "123[].head.org", 2L, TRUE), c("123[1]", "123[2]"))
  expect_identical(job_names("pbspro", "124.pbs", 1L, FALSE), "124")
  expect_identical(job_names("sge", "88", 2L, TRUE), c("88.1", "88.2"))
  expect_identical(job_names("lsf", "555", 2L, TRUE), c("555[1]", "555[2]"))
})

test_that("each scheduler's queue listing gives the states of the jobs", {
  states <- function(flavour, lines) parse_job_states(flavour, lines)
  expect_identical(states("slurm", c("7_1|RUNNING", "7_2|PENDING", "8|COMPLETED", "9|FAILED",
                                     "10|CANCELLED+", "11|TIMEOUT", "12|COMPLETING")),
                   c(`7_1` = "running", `7_2` = "pending", `8` = "done", `9` = "failed",
                     `10` = "cancelled", `11` = "failed", `12` = "running"))
  sge <- c(
    "job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID ",
    "-----------------------------------------------------------------------------------------------------------------",
    "     31 0.55500 mirai      me           r     12/04/2026 17:25:50 all.q@node1                        1 1",
    "     31 0.00000 mirai      me           qw    12/04/2026 17:25:50                                    1 2",
    "     32 0.55500 mirai      me           r     12/04/2026 17:25:51 all.q@node2                        1        ",
    "     33 0.00000 mirai      me           qw    12/04/2026 17:25:52                                    1        ",
    "     34 0.00000 mirai      me           Eqw   12/04/2026 17:25:52                                    1 1"
  )
  expect_identical(states("sge", sge), c(`31.1` = "running", `31.2` = "pending",
                                         `32` = "running", `33` = "pending",
                                         `34.1` = "failed"))
  pbs <- c(
    "Job id            Name             User              Time Use S Queue",
    "----------------  ---------------- ----------------  -------- - -----",
    "40[].pbs          mirai            me                       0 B workq",
    "40[1].pbs         mirai            me                00:00:01 R workq",
    "40[2].pbs         mirai            me                       0 Q workq",
    "41.pbs            mirai            me                00:00:02 F workq"
  )
  expect_identical(states("pbspro", pbs)[c("40[1]", "40[2]", "41")],
                   c(`40[1]` = "running", `40[2]` = "pending", `41` = "done"))
  expect_identical(states("lsf", c("555|1|RUN", "555|2|PEND", "556|0|EXIT", "557|0|DONE")),
                   c(`555[1]` = "running", `555[2]` = "pending", `556` = "failed",
                     `557` = "done"))
})

# A stand-in for a scheduler that cannot run here (LSF, PBS Professional): its
# submit command keeps the script and arguments it is given, answers as the
# real one does, and runs each array task's script with the scheduler's
# variables, so that the daemons really join; its listing command lists them
# as running; its cancel command records what it was asked to cancel.
fake_scheduler <- function(flavour) {
  dir <- tempfile(paste0("fake-", flavour))
  dir.create(dir)
  write_tool <- function(name, lines) {
    path <- file.path(dir, name)
    writeLines(c("#!/bin/sh", sprintf("dir='%s'", dir), lines), path)
    Sys.chmod(path, "0755")
    path
  }
  task <- switch(flavour,
                 lsf = 'env LSB_JOBID=$id LSB_JOBINDEX=$i',
                 pbspro = 'env PBS_JOBID="$id[$i].pbs" PBS_ARRAY_INDEX=$i')
  answer <- switch(flavour,
                   lsf = 'echo "Job <$id> is submitted to default queue <normal>."',
                   pbspro = 'echo "$id[].pbs"')
  listed <- switch(flavour,
                   lsf = 'echo "$id|$i|RUN"',
                   pbspro = 'echo "$id[$i].pbs  mirai  me  00:00:01 R workq"')
  submit <- write_tool(switch(flavour, lsf = "bsub", pbspro = "qsub"), c(
    'echo "$*" > "$dir/args"',
    'cat > "$dir/job.sh"',
    'id=$(( $(cat "$dir/seq" 2>/dev/null || echo 700) + 1 )); echo $id > "$dir/seq"',
    'n=$(echo "$*" | sed -n "s/.*1-\\([0-9]*\\).*/\\1/p")',
    'for i in $(seq 1 "$n"); do',
    sprintf('  %s sh "$dir/job.sh" < /dev/null > "$dir/out.$i" 2>&1 &', task),
    sprintf('  %s >> "$dir/listing"', listed),
    "done",
    answer
  ))
  if (flavour == "pbspro") {
    write_tool("qstat", c('case "$1" in --version) echo "pbs_version = 2022.1.0" ;;',
                          '-help) echo "usage: qstat [-f]" ;;', '*) cat "$dir/listing" ;; esac'))
    write_tool("qdel", 'echo "$*" >> "$dir/cancelled"')
  } else {
    write_tool("bjobs", 'cat "$dir/listing"')
    write_tool("bkill", 'echo "$*" >> "$dir/cancelled"')
  }
  list(dir = dir, submit = submit)
}

test_that("LSF and PBS Professional arrays: daemons join, report their jobs, are cancelled", {
  for (flavour in c("lsf", "pbspro")) {
    fake <- fake_scheduler(flavour)
    .compute <- paste0("fake", flavour)
    cfg <- cluster_config(fake$submit, options = "#BSUB -n 1", rscript = rscript_path)
    daemons(2, url = "tcp://127.0.0.1:0", remote = cfg, .compute = .compute)
    args <- readLines(file.path(fake$dir, "args"))
    expect_identical(args, switch(flavour, lsf = "-J mirai[1-2]", pbspro = "-J 1-2"))
    expect_identical(readLines(file.path(fake$dir, "job.sh"), n = 3L),
                     c("#!/bin/sh", switch(flavour, lsf = "#BSUB -J mirai",
                                           pbspro = "#PBS -N mirai"),
                       if (flavour == "pbspro") "#PBS -S /bin/sh" else "#BSUB -n 1"))
    jobs <- wait_jobs_connected(2L, .compute)$jobs
    expect_identical(jobs$job, c("701[1]", "701[2]"))
    expect_identical(jobs$state, c("running", "running"))
    expect_identical(mirai(Sys.getenv("MIRAI_JOB"), .compute = .compute)[] %in% jobs$job, TRUE)
    daemons(0, .compute = .compute)
    expect_identical(readLines(file.path(fake$dir, "cancelled")),
                     switch(flavour, lsf = "701", pbspro = "701[].pbs"))
  }
})

# HTTP ------------------------------------------------------------------------------------

test_that("http_config() keeps its settings and checks them", {
  data <- '{"exe": "Rscript", "args": ["-e", "%s"]}'
  cfg <- http_config("https://jobs.example.org/launch", headers = c(Authorization = "Bearer x"),
                     data = data)
  expect_identical(cfg[c("url", "method", "headers", "data", "type")],
                   list(url = "https://jobs.example.org/launch", method = "POST",
                        headers = c(Authorization = "Bearer x"), data = data, type = "http"))
  token <- function() "t"
  expect_identical(http_config(function() "u", data = token)$data, token)
  expect_snapshot(print(cfg))
  expect_snapshot(print(http_config(function() "u", method = "PUT", data = token)))
  expect_snapshot(error = TRUE, http_config(data = data))
  expect_snapshot(error = TRUE, http_config("u"))
  expect_snapshot(error = TRUE, http_config("u", data = '{"command": "none"}'))
  expect_snapshot(error = TRUE, http_config("u", data = '["%s", "%s"]'))
  expect_snapshot(error = TRUE, http_config("u", method = NA, data = data))
  expect_snapshot(error = TRUE, http_config("u", headers = "Bearer x", data = data))
})

test_that("the R code of a daemon survives JSON escaping", {
  code <- 'mirai::daemon("tcp://h:1", tls = c("-----BEGIN\\nAB\\tC\\"q\\"\\n", ""))\001'
  escaped <- json_escape(code)
  expect_identical(jsonlite::fromJSON(sprintf('{"x": "%s"}', escaped))$x, code)
})

# An HTTP launch service on 127.0.0.1, in its own R process (httpuv): it logs
# each request (method, path, Authorization header, body) and, for a body
# {"exe": ..., "args": [...]}, starts that program in the background, as a
# job launcher would; the path /busy answers 503.
start_launch_service <- function() {
  port <- free_port()
  log <- tempfile("requests-", fileext = ".txt")
  script <- tempfile("service-", fileext = ".R")
  pidfile <- tempfile("service-", fileext = ".pid")
  writeLines(c(
    sprintf("log <- '%s'", log),
    sprintf("writeLines(as.character(Sys.getpid()), '%s')", pidfile),
    "app <- list(call = function(req) {",
    "  body <- rawToChar(req$rook.input$read())",
    "  auth <- if (is.null(req$HTTP_AUTHORIZATION)) '' else req$HTTP_AUTHORIZATION",
    "  cat(req$REQUEST_METHOD, req$PATH_INFO, auth, gsub('\\n', ' ', body), '\\n', file = log, append = TRUE)",
    "  if (req$PATH_INFO == '/busy')",
    "    return(list(status = 503L, headers = list('Content-Type' = 'text/plain'), body = 'no capacity'))",
    "  job <- jsonlite::fromJSON(body)",
    "  system2(job$exe, shQuote(job$args), wait = FALSE, stdout = FALSE, stderr = FALSE)",
    "  list(status = 201L, headers = list('Content-Type' = 'application/json'), body = '{\"id\": 1}')",
    "})",
    sprintf("httpuv::runServer('127.0.0.1', %d, app)", port)
  ), script)
  withr::local_envvar(R_TESTS = NA,
                      R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep))
  system2(rscript_path, script, wait = FALSE, stdout = FALSE, stderr = FALSE)
  url <- sprintf("http://127.0.0.1:%d", port)
  up <- poll_until(function() {
    out <- suppressWarnings(system2("curl", c("-s", "-o", "/dev/null", "-w", "'%{http_code}'",
                                              paste0(url, "/busy")), stdout = TRUE))
    identical(out, "503")
  })
  if (!up) stop("the launch service did not start")
  list(url = url, log = log, pid = as.integer(readLines(pidfile)))
}

test_that("http_config() launches daemons through an HTTP service, one request each", {
  service <- start_launch_service()
  withr::defer(tools::pskill(service$pid))
  calls <- 0L
  cfg <- http_config(
    url = function() {
      calls <<- calls + 1L
      paste0(service$url, "/launch")
    },
    headers = c(Authorization = "Bearer sesame"),
    data = sprintf('{"exe": "%s", "args": ["-e", "%%s"]}', rscript_path)
  )
  # zero-configuration TLS: the code carries a PEM and the invitation secret
  daemons(2, url = "tls+tcp://127.0.0.1:0", remote = cfg, .compute = "http")
  withr::defer(daemons(0, .compute = "http"))
  expect_identical(calls, 1L)
  expect_true(poll_until(function() status(.compute = "http")$connections == 2L, limit_s = 30))
  expect_identical(mirai(1 + 1, .compute = "http")[], 2)
  requests <- readLines(service$log)
  expect_length(requests, 3L)
  expect_match(requests[2:3], "^POST /launch Bearer sesame .*mirai::daemon")
  cmds <- launch_remote(1, remote = cfg, .compute = "http")
  expect_match(cmds, "^Rscript -e 'mirai::daemon")
  expect_true(poll_until(function() status(.compute = "http")$connections == 3L, limit_s = 30))
  expect_identical(calls, 2L)
})

test_that("a launch request that fails is an error with the service's answer", {
  service <- start_launch_service()
  withr::defer(tools::pskill(service$pid))
  cfg <- http_config(paste0(service$url, "/busy"), data = '{"exe": "none", "args": ["%s"]}')
  expect_snapshot(error = TRUE,
                  daemons(1, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "busy"),
                  transform = function(x) gsub("127.0.0.1:[0-9]+", "127.0.0.1:<port>", x))
  expect_false(daemons_set(.compute = "busy"))
  cfg <- http_config("http://127.0.0.1:1/none", data = '{"args": ["%s"]}')
  expect_error(daemons(1, url = "tcp://127.0.0.1:0", remote = cfg, .compute = "busy"),
               "the launch request to 'http://127.0.0.1:1/none' failed \\(curl exit status 7\\)")
})
