# mirai: HPC schedulers and HTTP launch APIs ------------------------------------

#' Cluster (HPC Scheduler) Launch Configuration
#'
#' Makes the configuration for launching daemons as jobs of a cluster's
#' resource manager, for use as the `remote` argument of [daemons()] or
#' [launch_remote()]: Slurm (`sbatch`), SGE and PBS/Torque (`qsub`), or LSF
#' (`bsub`).
#'
#' The launcher writes a job script that starts the daemons and submits it
#' on standard input with `command`, waiting for the scheduler to accept it.
#' The script begins with your `options` (the scheduler's directives, and
#' any shell lines such as `module load R`), then starts
#' `Rscript -e 'mirai::daemon(...)'` with `rscript`. The job's output and
#' error streams go to one file (`-j y` for SGE, `-j oe` for PBS, as Slurm
#' and LSF do anyway), unless a directive says otherwise.
#'
#' The package must be installed where `rscript` finds it on the compute
#' nodes. Slurm passes your environment (such as `R_LIBS`) to the job; SGE
#' and PBS do so only with the directive `-V` (`"#$ -V"`, `"#PBS -V"`);
#' otherwise set the library in `rscript`, e.g.
#' `"R_LIBS=~/R/library Rscript"`.
#'
#' @section Arrays:
#'
#' With `array = TRUE`, `n` daemons go in one array job (`sbatch
#' --array=1-n`, `qsub -t 1-n`, or `qsub -J 1-n` for PBS Professional,
#' `bsub -J "mirai[1-n]"`), of which each task starts one daemon: one
#' submission and one job ID cover them all, which suits sites that limit
#' the number of jobs. With `array = FALSE`, or a single daemon, each daemon
#' is a job of its own.
#'
#' @section Job Tracking:
#'
#' The host keeps the IDs of the jobs it submitted. [status()] then shows
#' them as `jobs`: one row for each daemon's job (or array task), with its
#' scheduler state ('pending', 'running', 'done', 'failed' or 'cancelled'),
#' whether its daemon has connected, and a report for a job that ended
#' before its daemon ever connected. The states are read from `squeue`,
#' `qstat` or `bjobs` when [status()] is called (at most once a second, and
#' each query limited to 10 seconds), never while tasks are sent or
#' collected.
#'
#' A job that ends without its daemon having connected (R missing on the
#' node, the package not installed there, the host unreachable) raises a
#' warning, once, with its scheduler exit state and the first lines of its
#' output file where the scheduler keeps one there (Slurm, PBS and LSF do;
#' the file must be readable from the host, as on a shared file system).
#' This is checked by [status()] and at reset.
#'
#' [daemons()] with `0` (or `NULL`) cancels the jobs still queued or running
#' (`scancel`, `qdel`, `bkill`), so none is left waiting in the queue for a
#' host that has gone; so does the end of the R session. Daemons that have
#' connected would exit at reset anyway.
#'
#' Each daemon names its job in its greeting to the host, through the
#' environment variable `MIRAI_JOB` that the job script sets.
#'
#' @param command \[default "sbatch"\] the scheduler's submit command:
#'   `"sbatch"` (Slurm), `"qsub"` (SGE, PBS or Torque) or `"bsub"` (LSF), or
#'   the full path to it; the scheduler's other commands (for example
#'   `squeue` and `scancel`) are then taken from the same directory.
#' @param options \[default ""\] the lines that open the job script, as a
#'   character string (one line per line of text; leading spaces are
#'   dropped) or a character vector of lines: the scheduler's directives,
#'   such as `"#SBATCH --mem=4G"`, `"#$ -l h_vmem=4G"`, `"#PBS -l
#'   walltime=01:00:00"` or `"#BSUB -n 2"`, and any shell commands to run
#'   before R starts, such as `"module load R"`. The job is named 'mirai'
#'   unless a directive here names it.
#' @param rscript \[default "Rscript"\] how to start R on the compute nodes:
#'   the file name of Rscript, or its full path if it is not on the `PATH`
#'   there. It is written into the script as is, so it may carry environment
#'   settings first, e.g. `"R_LIBS=/opt/rlib Rscript"`.
#' @param array \[default TRUE\] logical value whether to submit several
#'   daemons as one array job (see Arrays section), or else one job each.
#'
#' @return A list with elements `command`, `options`, `rscript`, `array`
#'   and `type`, of class 'miraiClusterConfig' (and 'miraiRemote').
#'
#' @examples
#' # Slurm: 4G of memory and an hour for each daemon, in one array job
#' cluster_config(
#'   command = "sbatch",
#'   options = "#SBATCH --mem=4G
#'              #SBATCH --time=01:00:00
#'              module load R",
#'   rscript = "Rscript"
#' )
#'
#' # SGE, passing this session's environment, one job per daemon
#' cluster_config("qsub", options = c("#$ -V", "#$ -l h_vmem=4G"), array = FALSE)
#'
#' # LSF
#' cluster_config("bsub", options = c("#BSUB -n 1", "#BSUB -W 01:00"))
#'
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' daemons(n = 4, url = host_url(tls = TRUE),
#'         remote = cluster_config(options = "#SBATCH --mem=2G"))
#' status()
#' daemons(0)
#'
#' }
#'
#' @export
#'
cluster_config <- function(command = "sbatch", options = "", rscript = "Rscript",
                           array = TRUE) {
  call <- sys.call()
  if (!is_string(command) || is.na(submit_kind(command)))
    stop_arg(._[["cluster_command"]], call)
  if (!is.character(options) || anyNA(options)) stop_arg(._[["cluster_options"]], call)
  if (!is_string(rscript)) stop_arg(._[["rscript"]], call)
  if (!is_flag(array)) stop_arg(sprintf(._[["flag"]], "array"), call)
  lines <- trimws(unlist(strsplit(options, "\n", fixed = TRUE)), which = "left")
  structure(list(command = command, options = lines[nzchar(lines)], rscript = rscript,
                 array = array, type = "cluster"),
            class = c("miraiClusterConfig", "miraiRemote"))
}

#' HTTP Launch Configuration
#'
#' Makes the configuration for launching daemons through a web API that
#' starts jobs (such as that of Posit Workbench, or a service of your own),
#' for use as the `remote` argument of [daemons()] or [launch_remote()].
#'
#' For each daemon, the launcher sends one HTTP request to `url` with
#' `method` and `headers`, whose body is `data` with `"%s"` replaced by the
#' daemon's R code: the expression that `Rscript -e` runs,
#' `mirai::daemon(...)`, as a JSON string's contents (escaped, without the
#' enclosing quotes). Any field may be a function, called at each launch to
#' give the value (for a token or cookie that changes, say). A response
#' other than 2xx is an error naming the status and the start of its body.
#'
#' The requests are made by the `curl` command line program, which must be
#' on the `PATH`; the headers and body reach it through its standard input
#' and a temporary file only you can read, never its command line.
#'
#' @param url the URL of the API endpoint, e.g.
#'   `"https://jobs.example.org/api/launch"`, or a function returning it.
#' @param method \[default "POST"\] the HTTP method, or a function returning
#'   it.
#' @param headers \[default NULL\] a named character vector of request
#'   headers, such as `c(Authorization = "Bearer ...")`, or a function
#'   returning one. 'Content-Type: application/json' is sent unless given
#'   here.
#' @param data the JSON body of the request as a character string,
#'   containing `"%s"` once: where the R code of the daemon goes (see the
#'   examples); or a function returning it.
#'
#' @return A list with elements `url`, `method`, `headers`, `data` and
#'   `type`, of class 'miraiHttpConfig' (and 'miraiRemote').
#'
#' @examples
#' http_config(
#'   url = "https://jobs.example.org/api/launch",
#'   headers = c(Authorization = "Bearer my-token"),
#'   data = '{"name": "mirai", "exe": "Rscript", "args": ["-e", "%s"]}'
#' )
#'
#' # fields read at each launch, e.g. from the environment
#' http_config(
#'   url = function() Sys.getenv("JOBS_API_URL"),
#'   headers = function() c(Cookie = Sys.getenv("JOBS_API_COOKIE")),
#'   data = '{"command": ["Rscript", "-e", "%s"]}'
#' )
#'
#' @export
#'
http_config <- function(url, method = "POST", headers = NULL, data) {
  call <- sys.call()
  if (missing(url)) stop_arg(._[["http_url"]], call)
  if (missing(data)) stop_arg(._[["http_data"]], call)
  if (!is.function(url)) check_http_field("url", url, call)
  if (!is.function(method)) check_http_field("method", method, call)
  if (!is.function(headers)) check_http_field("headers", headers, call)
  if (!is.function(data)) check_http_field("data", data, call)
  structure(list(url = url, method = method, headers = headers, data = data,
                 type = "http"),
            class = c("miraiHttpConfig", "miraiRemote"))
}

#' @export
#'
print.miraiClusterConfig <- function(x, ...) {
  cat("< miraiClusterConfig >",
      paste(" - command:", x[["command"]]),
      paste(" - options:", if (length(x[["options"]])) "" else "(none)"),
      if (length(x[["options"]])) paste("    ", x[["options"]]),
      paste(" - rscript:", x[["rscript"]]),
      paste(" - array:", x[["array"]]),
      sep = "\n")
  invisible(x)
}

#' @export
#'
print.miraiHttpConfig <- function(x, ...) {
  shown <- function(name) {
    v <- x[[name]]
    if (is.function(v)) return("<function>")
    if (is.null(v)) return("(none)")
    if (name == "headers") return(paste(names(v), collapse = ", "))
    v
  }
  cat("< miraiHttpConfig >",
      paste(" - url:", shown("url")),
      paste(" - method:", shown("method")),
      paste(" - headers:", shown("headers")),
      paste(" - data:", shown("data")),
      sep = "\n")
  invisible(x)
}

# Launching ------------------------------------------------------------------------

# The `remote` of daemons() and launch_remote() made by cluster_config() or
# http_config().
check_service_config <- function(remote, call) {
  ok <- is_string(remote[["type"]]) && switch(
    remote[["type"]],
    cluster = is_string(remote[["command"]]) && !is.na(submit_kind(remote[["command"]])) &&
      is.character(remote[["options"]]) && !anyNA(remote[["options"]]) &&
      is_string(remote[["rscript"]]) && is_flag(remote[["array"]]),
    http = all(c("url", "method", "headers", "data") %in% names(remote)),
    FALSE
  )
  if (!ok) stop_arg(._[["remote"]], call)
  invisible(remote)
}

# Launch daemons through a scheduler or an HTTP API: one for each URL that
# launch_urls() makes of `n` (NULL for one).
launch_service <- function(envir, n, remote, dots, tls, call) {
  urls <- remote_urls(launch_urls(if (is.null(n)) 1L else n, envir[["urls"]], call), FALSE)
  if (remote[["type"]] == "http") {
    streams <- daemon_streams(envir, length(urls))
    codes <- vapply(seq_along(urls), function(i)
      launch_command(urls[i], dots, streams[[i]], envir[["token"]], tls, inline = TRUE), "")
    http_launch(remote, codes, call)
    return(structure(paste("Rscript -e", sh_single(codes)), class = "miraiLaunchCmd"))
  }
  cmds <- vapply(daemon_commands(envir, urls, dots, tls, remote[["rscript"]]), `[[`, "", "command")
  cluster_submit(envir, remote, cmds, call)
  structure(cmds, class = "miraiLaunchCmd")
}

# Schedulers -------------------------------------------------------------------------

# The scheduler family of a submit command: "slurm", "qsub" or "lsf".
submit_kind <- function(command) {
  kind <- c(sbatch = "slurm", qsub = "qsub", bsub = "lsf")[basename(command)]
  unname(kind)
}

# A scheduler's other commands, from the directory of its submit command
# when that was given as a path.
scheduler_tool <- function(command, tool) {
  dir <- dirname(command)
  if (dir == ".") tool else file.path(dir, tool)
}

# qsub belongs to SGE, Torque or PBS Professional, which differ in their
# array option and in what qstat prints: "sge", "torque" or "pbspro".
qsub_flavour <- function(command) {
  out <- run_tool(scheduler_tool(command, "qstat"), "-help", timeout = 10)[["output"]]
  if (any(grepl("^(SGE|GE|OGS|UGE|Univa)", out))) return("sge")
  out <- run_tool(scheduler_tool(command, "qstat"), "--version", timeout = 10)[["output"]]
  if (any(grepl("pbs_version", out, fixed = TRUE))) "pbspro" else "torque"
}

# The environment variables each scheduler gives a job: the array task's
# index, and the job's identity as its queue listing names it (which the
# daemon reports back through MIRAI_JOB; PBS IDs without the server's name).
job_variables <- list(
  slurm = list(index = "$SLURM_ARRAY_TASK_ID",
               array = "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}",
               single = "$SLURM_JOB_ID"),
  sge = list(index = "$SGE_TASK_ID", array = "$JOB_ID.$SGE_TASK_ID", single = "$JOB_ID"),
  torque = list(index = "$PBS_ARRAYID", array = "${PBS_JOBID%%.*}", single = "${PBS_JOBID%%.*}"),
  pbspro = list(index = "$PBS_ARRAY_INDEX", array = "${PBS_JOBID%%.*}",
                single = "${PBS_JOBID%%.*}"),
  lsf = list(index = "$LSB_JOBINDEX", array = "$LSB_JOBID[$LSB_JOBINDEX]",
             single = "$LSB_JOBID")
)

# The job script that starts the daemons of `cmds`: one, or with `array`,
# the one of its task's index.
job_script <- function(flavour, options, cmds, array) {
  vars <- job_variables[[flavour]]
  header <- switch(
    flavour,
    slurm = "#SBATCH --job-name=mirai",
    sge = c("#$ -N mirai", "#$ -S /bin/sh", "#$ -j y"),
    torque = , pbspro = c("#PBS -N mirai", "#PBS -S /bin/sh", "#PBS -j oe"),
    lsf = "#BSUB -J mirai"
  )
  job <- sprintf('MIRAI_JOB="%s"', if (array) vars[["array"]] else vars[["single"]])
  start <- if (array) {
    c(sprintf('case "%s" in', vars[["index"]]),
      sprintf("%d) exec %s\n;;", seq_along(cmds), cmds),
      "esac",
      sprintf('echo "mirai: no daemon for array index %s" >&2', vars[["index"]]),
      "exit 1")
  } else {
    paste("exec", cmds)
  }
  c("#!/bin/sh", header, options, job, "export MIRAI_JOB", start)
}

# The arguments of the submit command for `n` daemons.
submit_args <- function(flavour, n, array) {
  range <- sprintf("1-%d", n)
  switch(
    flavour,
    slurm = c("--parsable", if (array) paste0("--array=", range)),
    sge = , torque = if (array) c("-t", range),
    pbspro = if (array) c("-J", range),
    lsf = if (array) c("-J", sprintf("mirai[%s]", range))
  )
}

# The job ID in what the submit command printed, or NA.
submitted_id <- function(flavour, output) {
  pattern <- switch(
    flavour,
    slurm = "^([0-9]+)(;.*)?$",
    sge = "^Your job(-array)? ([0-9]+)[ .].*$",
    torque = , pbspro = "^([0-9]+(\\[\\])?\\.[^ ]+|[0-9]+(\\[\\])?)$",
    lsf = "^Job <([0-9]+)> is submitted.*$"
  )
  group <- if (flavour == "sge") "\\2" else "\\1"
  hit <- grep(pattern, trimws(output), value = TRUE)
  if (!length(hit)) return(NA_character_)
  sub(pattern, group, hit[length(hit)])
}

# The identities of the daemons' jobs, as queue listings show them and as
# MIRAI_JOB carries them (PBS IDs without their server's name).
job_names <- function(flavour, id, n, array) {
  if (!array) return(pbs_short(id))
  base <- sub("\\[\\]", "", pbs_short(id))
  switch(
    flavour,
    slurm = sprintf("%s_%d", base, seq_len(n)),
    sge = sprintf("%s.%d", base, seq_len(n)),
    torque = , pbspro = , lsf = sprintf("%s[%d]", base, seq_len(n))
  )
}

pbs_short <- function(id) sub("^([^.]+)\\..*$", "\\1", id)

# Where Grid Engine writes the output of each job of `names` (submission
# `id`), which it tells no one once the job has ended: the file or directory
# of the last `-o` among the directives (with its pseudo variables), else
# the home directory (the working directory with `-cwd`); in a directory,
# '<name>.o<job>[.<task>]'.
sge_output <- function(options, id, names, array) {
  args <- unlist(strsplit(trimws(sub("^#\\$", "", grep("^#\\$", options, value = TRUE))),
                          "[ \t]+"))
  after <- function(flag) {
    at <- which(args == flag)
    if (length(at) && at[length(at)] < length(args)) args[at[length(at)] + 1L]
  }
  name <- after("-N")
  if (is.null(name)) name <- "mirai"
  path <- after("-o")
  in_dir <- is.null(path)
  path <- if (in_dir) {
    if ("-cwd" %in% args) getwd() else Sys.getenv("HOME")
  } else {
    sub("^[^/:]*:", "", path)
  }
  tasks <- if (array) sub("^.*[.]", "", names) else rep("undefined", length(names))
  vapply(seq_along(names), function(i) {
    file <- path
    vars <- c(HOME = Sys.getenv("HOME"), USER = Sys.getenv("USER"), JOB_ID = id,
              JOB_NAME = name, TASK_ID = tasks[i])
    for (v in names(vars)) file <- gsub(paste0("$", v), vars[[v]], file, fixed = TRUE)
    if (in_dir || dir.exists(file))
      file <- file.path(file, sprintf("%s.o%s%s", name, id, if (array) paste0(".", tasks[i]) else ""))
    file
  }, "")
}

# Submit the daemons' commands (one array job, or one job each) and record
# the jobs in the profile.
cluster_submit <- function(envir, remote, cmds, call) {
  command <- remote[["command"]]
  kind <- submit_kind(command)
  flavour <- if (kind == "qsub") qsub_flavour(command) else kind
  array <- remote[["array"]] && length(cmds) > 1L
  groups <- if (array) list(seq_along(cmds)) else as.list(seq_along(cmds))
  for (group in groups) {
    script <- job_script(flavour, remote[["options"]], cmds[group], array)
    result <- run_tool(command, submit_args(flavour, length(group), array), input = script)
    id <- if (result[["status"]] == 0L) submitted_id(flavour, result[["output"]])
    if (is.null(id) || is.na(id))
      stop_arg(sprintf(._[["cluster_submit"]], command, result[["status"]],
                       paste(result[["output"]], collapse = "\n")), call)
    names <- job_names(flavour, id, length(group), array)
    output <- if (flavour == "sge") sge_output(remote[["options"]], id, names, array)
    record_jobs(envir, command, flavour, id, names, output)
  }
  invisible()
}

# Run `command args` (each argument quoted for the shell here) and wait, at
# most `timeout` seconds, with `input` (lines) as its standard input; returns
# its exit status and its output (standard output and error together). R_TESTS is removed for it, as for launched
# daemons. A job script may carry the invitation secret: its file is
# readable by this user only, and removed once read.
run_tool <- function(command, args, input = NULL, timeout = 30) {
  saved <- Sys.getenv("R_TESTS", unset = NA)
  if (!is.na(saved)) {
    Sys.unsetenv("R_TESTS")
    on.exit(Sys.setenv(R_TESTS = saved), add = TRUE)
  }
  stdin <- ""
  if (!is.null(input)) {
    stdin <- private_file(input)
    on.exit(unlink(stdin), add = TRUE)
  }
  quoted <- if (length(args)) sh_single(args)
  output <- tryCatch(
    suppressWarnings(system2(command, quoted, stdout = TRUE, stderr = TRUE, stdin = stdin,
                             timeout = timeout)),
    error = function(e) structure(conditionMessage(e), status = 127L)
  )
  status <- attr(output, "status")
  list(status = if (is.null(status)) 0L else as.integer(status),
       output = as.character(output))
}

# A temporary file holding `lines` that only this user can read.
private_file <- function(lines) {
  path <- tempfile("mirai-")
  mask <- Sys.umask("077")
  on.exit(Sys.umask(mask))
  writeLines(lines, path)
  path
}

# Jobs of a profile -------------------------------------------------------------------

# envir[["jobs"]] is a data frame with one row for each daemon's job (or
# array task): `job` (its identity), `id` (the submission, as cancelled),
# `command` (the submit command, locating the scheduler's tools), `flavour`,
# `state`, `submitted` (mclock() at submission), `output` (its output file,
# where only the submission tells it, else NA), `report` (for a job that
# ended before its daemon connected, else NA).
record_jobs <- function(envir, command, flavour, id, jobs, output = NULL) {
  rows <- data.frame(job = jobs, id = id, command = command, flavour = flavour,
                     state = "pending", submitted = mclock(),
                     output = if (is.null(output)) NA_character_ else output,
                     report = NA_character_, stringsAsFactors = FALSE)
  if (is.null(envir[["jobs"]])) {
    envir[["jobs"]] <- rows
    reg.finalizer(envir, function(e) cancel_jobs(e), onexit = TRUE)
  } else {
    envir[["jobs"]] <- rbind(envir[["jobs"]], rows)
  }
  invisible()
}

ended_states <- c("done", "failed", "cancelled")

# The jobs as status() shows them, after a poll of the scheduler (skipped
# within a second of the last one).
jobs_status <- function(envir) {
  jobs <- envir[["jobs"]]
  if (is.null(jobs)) return(NULL)
  last <- envir[["jobs_polled"]]
  if (is.null(last) || mclock() - last >= 1000) refresh_jobs(envir)
  jobs <- envir[["jobs"]]
  state <- jobs[["state"]]
  # A job whose daemon is connected runs, whatever the last poll said.
  state[state == "pending" & jobs[["job"]] %in% connected_jobs(envir, now = TRUE)] <- "running"
  data.frame(job = jobs[["job"]], state = state,
             connected = jobs[["job"]] %in% connected_jobs(envir),
             report = jobs[["report"]], stringsAsFactors = FALSE)
}

# The jobs whose daemons have connected (at any time, or `now`), as they
# named them.
connected_jobs <- function(envir, now = FALSE) {
  s <- host_status(envir[["host"]])
  named <- s[["job"]]
  keep <- !is.na(named) & (!now | s[["online"]])
  named[keep]
}

# Ask the scheduler(s) for the states of the jobs not known to have ended;
# report those that ended before their daemon connected.
refresh_jobs <- function(envir) {
  envir[["jobs_polled"]] <- mclock()
  jobs <- envir[["jobs"]]
  open <- !jobs[["state"]] %in% ended_states
  for (command in unique(jobs[["command"]][open])) {
    mine <- open & jobs[["command"]] == command
    flavour <- jobs[["flavour"]][mine][1L]
    listed <- poll_jobs(flavour, command, unique(jobs[["id"]][mine]))
    if (is.null(listed)) next
    state <- listed[jobs[["job"]][mine]]
    gone <- is.na(state) & mclock() - jobs[["submitted"]][mine] > 10000
    state[gone] <- "done"
    jobs[["state"]][mine] <- ifelse(is.na(state), jobs[["state"]][mine], state)
  }
  ended <- jobs[["state"]] %in% c("done", "failed") & is.na(jobs[["report"]]) &
    !jobs[["job"]] %in% connected_jobs(envir)
  for (i in which(ended)) {
    report <- job_report(jobs[i, ])
    jobs[["report"]][i] <- report
    if (isTRUE(attr(report, "failed"))) jobs[["state"]][i] <- "failed"
    warning(report, call. = FALSE, immediate. = TRUE)
  }
  envir[["jobs"]] <- jobs
  invisible()
}

# The states of the jobs of submissions `ids`, named by job identity, from
# one query of the scheduler; NULL if the query failed.
poll_jobs <- function(flavour, command, ids) {
  tool <- function(name) scheduler_tool(command, name)
  result <- switch(
    flavour,
    slurm = run_tool(tool("squeue"), c("-h", "-t", "all", "-r", "-o", "%i|%T", "-j",
                                      paste(ids, collapse = ",")), timeout = 10),
    sge = run_tool(tool("qstat"), c("-g", "d", "-u", "*"), timeout = 10),
    torque = run_tool(tool("qstat"), c("-t", ids), timeout = 10),
    pbspro = run_tool(tool("qstat"), c("-t", "-x", ids), timeout = 10),
    lsf = run_tool(tool("bjobs"), c("-a", "-noheader", "-o",
                                    "jobid jobindex stat delimiter='|'", ids),
                   timeout = 10)
  )
  # squeue fails when none of the jobs is known any more: all have ended.
  if (result[["status"]] != 0L && !(flavour == "slurm" &&
                                     any(grepl("Invalid job id", result[["output"]]))))
    return(NULL)
  parse_job_states(flavour, result[["output"]])
}

# A queue listing as a named vector of states: 'pending', 'running', 'done',
# 'failed' or 'cancelled', named by job identity.
parse_job_states <- function(flavour, lines) {
  fields <- strsplit(trimws(lines), if (flavour %in% c("slurm", "lsf")) "|" else "[ \t]+",
                     fixed = flavour %in% c("slurm", "lsf"))
  out <- character()
  for (f in fields) {
    row <- switch(
      flavour,
      slurm = if (length(f) == 2L && grepl("^[0-9]", f[1L])) c(f[1L], slurm_state(f[2L])),
      sge = sge_row(f),
      torque = , pbspro = if (length(f) >= 6L && grepl("^[0-9]+(\\[[0-9]*\\])?(\\.|$)", f[1L]))
        c(pbs_short(f[1L]), pbs_state(f[5L])),
      lsf = if (length(f) == 3L && grepl("^[0-9]+$", f[1L]))
        c(if (f[2L] %in% c("0", "-")) f[1L] else sprintf("%s[%s]", f[1L], f[2L]),
          lsf_state(f[3L]))
    )
    if (length(row) == 2L) out[row[1L]] <- row[2L]
  }
  out
}

slurm_state <- function(s) {
  s <- sub("[+ ].*$", "", s)
  if (s %in% c("RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING")) return("running")
  if (s == "COMPLETED") return("done")
  if (s == "CANCELLED") return("cancelled")
  if (s %in% c("FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
               "PREEMPTED", "SPECIAL_EXIT", "REVOKED")) return("failed")
  "pending"
}

# `qstat -g d`: job-ID prior name user state date time [queue] slots
# [ja-task-ID], the queue only for a job that runs, the task only for arrays.
sge_row <- function(f) {
  if (length(f) < 8L || !grepl("^[0-9]+$", f[1L])) return(NULL)
  state <- f[5L]
  task <- if (length(f) == (if (grepl("[rtRs]", state)) 10L else 9L)) f[length(f)]
  job <- if (is.null(task)) f[1L] else paste(f[1L], task, sep = ".")
  mapped <- if (grepl("E", state)) "failed" else if (grepl("d", state)) "cancelled" else
    if (grepl("[rt]", state)) "running" else "pending"
  c(job, mapped)
}

pbs_state <- function(s) {
  if (s %in% c("R", "E", "B")) return("running")
  if (s %in% c("C", "F", "X")) return("done")
  "pending"
}

lsf_state <- function(s) {
  if (s %in% c("RUN", "PROV")) return("running")
  if (s == "DONE") return("done")
  if (s == "EXIT") return("failed")
  "pending"
}

# What a job that ended before its daemon connected says of itself: its
# scheduler exit state, and the first lines of its output file where the
# scheduler names one that is readable here. Attribute "failed" is TRUE
# where the exit status says it failed (as schedulers that drop ended jobs
# from their listings tell only afterwards).
job_report <- function(row) {
  details <- job_details(row)
  lines <- character()
  file <- details[["output"]]
  if (!is.na(file) && file.exists(file))
    lines <- tryCatch(readLines(file, n = 10L, warn = FALSE), error = function(e) character())
  text <- sprintf(._[["job_ended"]], row[["job"]],
                  if (is.na(details[["exit"]])) row[["state"]] else details[["exit"]])
  if (length(lines)) {
    text <- paste0(text, sprintf(._[["job_output"]], file),
                   paste0("\n  ", lines, collapse = ""))
  } else if (!is.na(file)) {
    text <- paste0(text, sprintf(._[["job_no_output"]], file))
  }
  structure(text, failed = isTRUE(details[["failed"]]))
}

# The exit state and output file of an ended job (a row of the jobs), as far
# as its scheduler still knows them (NA where not).
job_details <- function(row) {
  tool <- function(name) scheduler_tool(row[["command"]], name)
  job <- row[["job"]]
  field <- function(out, key) {
    hit <- regmatches(out, regexpr(sprintf("(^|[ \t])%s ?[=:]? *[^ \t]+", key), out))
    if (!length(hit)) return(NA_character_)
    sub(sprintf("^.*%s ?[=:]? *", key), "", hit[1L])
  }
  switch(
    row[["flavour"]],
    slurm = {
      out <- run_tool(tool("scontrol"), c("-o", "show", "job", job), timeout = 10)[["output"]]
      state <- field(out, "JobState")
      exit <- field(out, "ExitCode")
      list(exit = if (is.na(state)) NA_character_ else
             sprintf("%s, exit code %s", state, sub(":.*$", "", exit)),
           output = field(out, "StdOut"))
    },
    sge = {
      parts <- strsplit(row[["job"]], ".", fixed = TRUE)[[1L]]
      out <- run_tool(tool("qacct"), c("-j", parts[1L], if (length(parts) > 1L) c("-t", parts[2L])),
                      timeout = 10)[["output"]]
      exit <- field(out, "exit_status")
      list(exit = if (is.na(exit)) NA_character_ else sprintf("exit status %s", exit),
           output = row[["output"]], failed = !is.na(exit) && exit != "0")
    },
    torque = , pbspro = {
      out <- run_tool(tool("qstat"), c("-f", if (row[["flavour"]] == "pbspro") "-x", job),
                      timeout = 10)[["output"]]
      exit <- field(out, "Exit_status")
      path <- field(out, "Output_Path")
      list(exit = if (is.na(exit)) NA_character_ else sprintf("exit status %s", exit),
           output = if (is.na(path)) NA_character_ else sub("^[^:/]*:", "", path),
           failed = !is.na(exit) && exit != "0")
    },
    lsf = {
      out <- run_tool(tool("bjobs"), c("-a", "-noheader", "-o",
                                       "stat exit_code output_file delimiter='|'", job),
                      timeout = 10)[["output"]]
      f <- strsplit(out[length(out)], "|", fixed = TRUE)[[1L]]
      if (length(f) < 3L) return(list(exit = NA_character_, output = NA_character_))
      list(exit = sprintf("%s, exit code %s", f[1L], f[2L]),
           output = if (f[3L] %in% c("", "-")) NA_character_ else f[3L])
    }
  )
}

# At reset: report the jobs that ended before their daemon connected, then
# cancel those still queued or running. Never fails: a scheduler that does
# not answer leaves its jobs to end by themselves.
reset_jobs <- function(envir) {
  if (is.null(envir[["jobs"]])) return(invisible())
  tryCatch(refresh_jobs(envir), error = function(e) NULL)
  cancel_jobs(envir)
}

cancel_jobs <- function(envir) {
  jobs <- envir[["jobs"]]
  if (is.null(jobs)) return(invisible())
  open <- !jobs[["state"]] %in% ended_states
  for (command in unique(jobs[["command"]][open])) {
    mine <- open & jobs[["command"]] == command
    ids <- unique(jobs[["id"]][mine])
    flavour <- jobs[["flavour"]][mine][1L]
    tool <- scheduler_tool(command, switch(flavour, slurm = "scancel", lsf = "bkill", "qdel"))
    tryCatch(run_tool(tool, ids, timeout = 10), error = function(e) NULL)
  }
  jobs[["state"]][open] <- "cancelled"
  envir[["jobs"]] <- jobs
  invisible()
}

# HTTP ----------------------------------------------------------------------------------

check_http_field <- function(name, value, call) {
  ok <- switch(
    name,
    url = , method = is_string(value),
    headers = is.null(value) || (is.character(value) && !anyNA(value) &&
                                   !is.null(names(value)) && all(nzchar(names(value)))),
    data = is_string(value) && length(gregexpr("%s", value, fixed = TRUE)[[1L]]) == 1L &&
      grepl("%s", value, fixed = TRUE)
  )
  if (!ok) stop_arg(._[[paste0("http_", name)]], call)
  invisible(value)
}

# One request for each daemon's R code in `codes`, by the curl program.
http_launch <- function(remote, codes, call) {
  field <- function(name) {
    value <- remote[[name]]
    if (is.function(value)) value <- value()
    check_http_field(name, value, call)
  }
  url <- field("url")
  method <- field("method")
  headers <- field("headers")
  data <- field("data")
  if (!any(tolower(names(headers)) == "content-type"))
    headers <- c(headers, `Content-Type` = "application/json")
  curl <- Sys.which("curl")
  if (!nzchar(curl)) stop_arg(._[["http_curl"]], call)
  for (code in codes) {
    body <- private_file(sub("%s", json_escape(code), data, fixed = TRUE))
    on.exit(unlink(body), add = TRUE)
    config <- c(curl_option("url", url), curl_option("request", method),
                curl_option("header", paste0(names(headers), ": ", headers)),
                curl_option("data-binary", paste0("@", body)),
                curl_option("write-out", "\n%{http_code}"),
                "silent", "show-error", curl_option("max-time", "30"))
    result <- run_tool(curl, c("--config", "-"), input = config, timeout = 40)
    out <- result[["output"]]
    status <- if (length(out)) suppressWarnings(as.integer(out[length(out)])) else NA
    if (result[["status"]] != 0L || is.na(status) || status < 200L || status > 299L) {
      reply <- substr(paste(out[-length(out)], collapse = "\n"), 1L, 500L)
      stop_arg(sprintf(._[["http_failed"]], url,
                       if (result[["status"]] != 0L) sprintf("curl exit status %d", result[["status"]])
                       else sprintf("HTTP status %s", out[length(out)]),
                       reply), call)
    }
    unlink(body)
  }
  invisible()
}

# A line of curl's --config: the value in double quotes, with \ " and
# newlines escaped.
curl_option <- function(name, value) {
  if (!length(value)) return(character())
  value <- gsub("\\", "\\\\", value, fixed = TRUE)
  value <- gsub('"', '\\"', value, fixed = TRUE)
  sprintf('%s = "%s"', name, gsub("\n", "\\n", value, fixed = TRUE))
}

# The contents of a JSON string holding `x`.
json_escape <- function(x) {
  x <- gsub("\\", "\\\\", x, fixed = TRUE)
  x <- gsub('"', '\\"', x, fixed = TRUE)
  x <- gsub("\n", "\\n", x, fixed = TRUE)
  x <- gsub("\r", "\\r", x, fixed = TRUE)
  x <- gsub("\t", "\\t", x, fixed = TRUE)
  if (!grepl("[\001-\037]", x)) return(x)
  codes <- utf8ToInt(x)
  chars <- vapply(codes, intToUtf8, "")
  control <- codes < 32L
  chars[control] <- sprintf("\\u%04x", codes[control])
  paste(chars, collapse = "")
}
