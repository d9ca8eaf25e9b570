# mirai: utilities ------------------------------------------------------------

# Every message the package raises or prints, in one place so they read alike.
# Argument errors name the argument first, then what was expected.
._ <- list(
  autoscale = "'autoscale' must be NULL or a list with elements among min, max, wait, batch and idletime (max is required)",
  autoscale_batch = "'autoscale$batch' must be a whole number of daemons launched at a time, at least 1",
  autoscale_dispatcher = "'autoscale' needs dispatcher = TRUE: it reads how long tasks wait in the dispatcher's queue",
  autoscale_idletime = "'autoscale$idletime' must be a whole number of milliseconds, at least 1",
  autoscale_max = "'autoscale$max' must be a whole number of daemons, at least 1 and at least 'autoscale$min'",
  autoscale_min = "'autoscale$min' must be a whole number of daemons, 0 or more",
  autoscale_n = "'autoscale$min' differs from 'n': give the number of daemons always kept in one of them",
  autoscale_remote = "'autoscale' with 'url' needs 'remote': the configuration through which daemons are launched",
  autoscale_stopped = "mirai: autoscaling stopped launching daemons after %d failed in a row; the last: %s",
  autoscale_wait = "'autoscale$wait' must be a finite non-negative number of seconds",
  args = "'.args' must be a named list or vector, a list of symbols, or an environment",
  autoexit = "'autoexit' must be TRUE, FALSE, NA or a signal number such as tools::SIGTERM",
  cleanup = "'cleanup' must be TRUE, FALSE or a whole number between 0 and 15",
  cluster_cl = "'cl' must be a 'miraiCluster' made by make_cluster()",
  cluster_deploy = "Shell commands for deployment on nodes:",
  cluster_dispatcher = "'...': a 'miraiCluster' always sends tasks without dispatcher; remove 'dispatcher'",
  cluster_n = "'n' must be a single positive whole number of nodes",
  cluster_nothing = "no task is pending on this 'miraiCluster' node",
  cluster_reply = "the node returned no value",
  cluster_stopped = "this 'miraiCluster' has been stopped: create a new one with make_cluster()",
  compute = "'.compute' must be NULL (the current default profile) or a single non-empty character string",
  compute_set = "'.compute' must be a single non-empty character string naming a compute profile",
  connect = "daemon could not connect to '%s': %s",
  daemon_args = "'...' accepts only named daemon arguments (%s); not: %s",
  daemon_dots = "'...' is reserved: daemon() has no argument named %s",
  died = "daemon %d of %d exited (status %s) before connecting:\n%s",
  dispatcher = "'dispatcher' must be TRUE or FALSE",
  dots = "'...' must be named objects, or a single environment",
  everywhere_min = "'.min' must be a single non-negative whole number of daemons",
  expr_missing = "'.expr' is missing: supply an expression to evaluate",
  flag = "'%s' must be TRUE or FALSE",
  frame = "'frame' must be an environment (the frame of a function)",
  launch_n = "'n' must be a single positive whole number, or a character vector of URLs to dial",
  launch_n_remotes = "'n' must be %d, the number of sets of arguments (remotes) in 'remote', or left out",
  launch_profile = "'.compute': no daemons are set for compute profile '%s': call daemons(url = ...) first",
  launch_sync = "'.compute': compute profile '%s' is synchronous (daemons(sync = TRUE)): it has no daemons to launch",
  launch_timeout = "only %d of %d daemons connected within %d seconds",
  loopback = "'url' %s can only be dialled on this machine (a loopback or local address, or a name that resolves to loopback here): daemons on other machines cannot reach it; use host_url(), or ssh_config(tunnel = TRUE)",
  map_args = "'.args' must be a list of further arguments to '.f'",
  map_f = "'.f' must be a function",
  map_flat = "'.flat': cannot flatten results of differing type: %s / %s (element %s)",
  map_flat_error = "'.flat': the result of element %s is an error: %s",
  map_options = "the collection options must be any of .flat, .progress and .stop",
  map_promise = "'.promise' must be NULL, a function, or a list of two functions (on fulfilment, on rejection)",
  map_stopped = "mirai_map() element %s failed: %s",
  map_x = "'.x' must be a list, an atomic vector, a data frame or a matrix",
  n_or_url = "'n' or 'url' is required: the number of local daemons, or the URL for remote daemons to dial into (daemons() alone returns status())",
  nested = "'n': cannot launch local daemons from within a daemon (a mirai); to nest daemons on purpose, set `daemons(url = local_url())` and then `launch_local(n)`",
  n = "'n' must be a single non-negative whole number (or NULL to reset)",
  nextcode = "'xc' must be an exit code returned by daemon(): 0, 1, 2 or 3",
  needs_package = "the '%s' package is required for %s: install it first",
  no_daemons = "no daemons are set for compute profile '%s': set them first, for example with `daemons(4%s)` for 4 local daemons",
  number = "'%s' must be a single non-negative number (Inf for no limit)",
  pass = "'pass' must be NULL, the password of the private key as a string, or a function returning it",
  pass_invalid = "'pass' did not open the private key: %s",
  pass_needed = "'pass' is required: the private key supplied to 'tls' is encrypted",
  pass_value = "'pass' must return the password as a single character string",
  port = "'port' must be a whole number between 0 and 65535",
  race_mirai = "'x' must be a 'mirai' or a list of 'mirai'",
  remote = "'remote' must be NULL or a remote launch configuration made by remote_config(), ssh_config(), cluster_config() or http_config()",
  remote_args = "'args' must be a character vector containing \".\" once (where the daemon's command goes), or a list of such vectors",
  remote_command = "'command' must be NULL or a single character string",
  remote_url = "'remote' needs 'url': the host URL that the remote daemons dial into",
  remotes = "'remotes' must be a character vector of SSH URLs such as 'ssh://hostname' or 'ssh://user@hostname:22'",
  memory = "'memory' must be NULL or a number of megabytes (0 or NA for no bound)",
  resilience = "'resilience' must be TRUE, FALSE or a whole number of retries (0 or more)",
  serial = "'serial' must be NULL or a configuration made by serial_config()",
  revise = "daemons are already set for compute profile '%s': reset with `daemons(0%s)` before revising settings",
  rs = "'rs' must be NULL or an integer vector of length 7 (a L'Ecuyer-CMRG .Random.seed)",
  rscript = "'rscript' must be a single character string, such as 'Rscript'",
  seed = "'seed' must be NULL or a single finite number",
  serial_class = "'class' must be a character vector of class names",
  serial_func = "'%s' must be a function, or a list of functions with one for each class in 'class'",
  serialize = "the value of the task could not be serialized",
  unreported = "the task failed with an error that could not be reported",
  spawn = "could not launch a daemon process: %s",
  ssh_command = "'command' must be a single character string: the ssh program",
  ssh_timeout = "'timeout' must be a single whole number of seconds, at least 1",
  stop_mirai = "'x' must be a 'mirai' or a list of 'mirai'",
  timeout = "'.timeout' must be NULL or a single non-negative number of milliseconds",
  timerstart = "'timerstart' must be a single non-negative whole number",
  tls = "'tls' must be NULL or a character vector of length 1 or 2",
  tls_ca = "'tls' must hold the certificate authority chain in PEM format ('-----BEGIN CERTIFICATE-----')",
  tls_file = "'tls' names no file: '%s'",
  tls_invalid = "'tls' is not usable: %s",
  tls_required = "'tls' is required for a TLS URL ('%s'): the certificate authority chain in PEM format",
  token = "'token' must be NULL or a single character string",
  token_flag = "'token' must be TRUE or FALSE (whether daemons must be invited)",
  max_message = "'max_message' must be a number of bytes, at least 1024",
  max_greeting = "'max_greeting' must be a whole number of connections, at least 1",
  link_timeout = "'link_timeout' must be a whole number of milliseconds, at least 1000",
  dispatcher_host = "'host' must be the URL of the host to dial into, e.g. 'tcp://hostname:5555'",
  dispatcher_autoscale = "'autoscale' is not taken by dispatcher(): its daemons are the ones given by 'n' or dialling 'url'",
  dispatcher_n = "'n' must be a whole number of daemons, at least 1 (required when 'url' is NULL)",
  token_hidden = "# the invitation secret is shown as <secret>: writeLines() shows the commands in full",
  tunnel_url = "'url' must be on 127.0.0.1 or localhost, with a port, to tunnel over SSH (tunnel = TRUE); not: %s",
  url = "'url' must be a character vector of URLs such as 'tcp://hostname:5555'",
  url_daemon = "'url' must be a single character URL such as 'tcp://hostname:5555'",
  url_invalid = "'url' is not usable: %s",
  cluster_command = "'command' must be the submit command of a scheduler: \"sbatch\", \"qsub\" or \"bsub\" (or a path to one)",
  cluster_options = "'options' must be a character string or vector of job script lines, such as \"#SBATCH --mem=4G\"",
  cluster_submit = "could not submit the daemons' job with '%s' (exit status %d):\n%s",
  job_ended = "mirai: job %s ended (%s) before its daemon connected",
  job_output = "; the start of its output (%s):",
  job_no_output = "; its output file (%s) is not readable here",
  http_url = "'url' must be the URL of the launch API as a character string, or a function returning it",
  http_method = "'method' must be an HTTP method such as \"POST\", or a function returning it",
  http_headers = "'headers' must be NULL or a named character vector of HTTP headers, or a function returning one",
  http_data = "'data' must be the JSON body as a character string containing \"%s\" once (where the daemon's R code goes), or a function returning it",
  http_curl = "http_config() needs the 'curl' command line program on the PATH",
  http_failed = "the launch request to '%s' failed (%s):\n%s"
)

# Raise an argument error with the user's call (not the helper's).
stop_arg <- function(msg, call) stop(simpleError(msg, call))

# Error values: transport outcomes as integers ---------------------------------

error_messages <- c(
  "5" = "Timed out",
  "7" = "Object closed",
  "19" = "Connection reset",
  "24" = "Message too large",
  "20" = "Operation canceled"
)

mk_error_value <- function(code) `class<-`(as.integer(code), "errorValue")

unresolved_value <- `class<-`(NA, "unresolvedValue")

# Validation helpers ------------------------------------------------------------

is_flag <- function(x) is.logical(x) && length(x) == 1L && !is.na(x)

is_count <- function(x) {
  is.numeric(x) && length(x) == 1L && !is.na(x) && x >= 0 && is.finite(x) &&
    x == trunc(x)
}

is_limit <- function(x) is.numeric(x) && length(x) == 1L && !is.na(x) && x >= 0

is_string <- function(x) is.character(x) && length(x) == 1L && !is.na(x) && nzchar(x)

# The daemon arguments `daemons(...)` passes on: ours, and those of the
# original mirai 2.x's daemon() (`tlscert` is read by the launchers as the
# certificate authority to trust; `dispatcher` and `id` are ignored).
daemon_arg_names <- c("autoexit", "cleanup", "output", "maxtasks", "idletime",
                      "walltime", "timerstart", "asyncdial", "tlscert", "dispatcher",
                      "id")

# Checks the daemon arguments in `dots`; returns them, with `cleanup` as the
# integer bitmask.
check_daemon_args <- function(dots, call) {
  nm <- names(dots)
  if (length(dots) && (is.null(nm) || !all(nzchar(nm)) ||
                       !all(nm %in% daemon_arg_names))) {
    bad <- if (is.null(nm)) "unnamed" else {
      nm[!nzchar(nm)] <- "unnamed"
      nm[!nm %in% daemon_arg_names]
    }
    stop_arg(sprintf(._[["daemon_args"]], paste(daemon_arg_names, collapse = ", "),
                     paste(unique(bad), collapse = ", ")), call)
  }
  for (name in nm) dots[name] <- list(check_daemon_arg(name, dots[[name]], call))
  dots[c("dispatcher", "id")] <- NULL
  dots
}

# Checks one daemon argument; returns it, `cleanup` as the integer bitmask.
check_daemon_arg <- function(name, value, call) {
  if (name == "cleanup" && is_flag(value)) return(if (value) 7L else 0L)
  ok <- switch(
    name,
    output = , asyncdial = is_flag(value),
    autoexit = is_flag(value) || identical(value, NA) ||
      (is_count(value) && value >= 1 && value <= 64),
    maxtasks = , idletime = , walltime = is_limit(value),
    timerstart = is_count(value),
    cleanup = is_count(value) && value <= 15,
    tlscert = is.null(value) || (is.character(value) && length(value) %in% 1:2 && !anyNA(value)),
    TRUE
  )
  if (!ok) {
    msg <- switch(
      name,
      output = , asyncdial = sprintf(._[["flag"]], name),
      autoexit = ._[["autoexit"]],
      maxtasks = , idletime = , walltime = sprintf(._[["number"]], name),
      timerstart = ._[["timerstart"]],
      cleanup = ._[["cleanup"]],
      tlscert = ._[["tls"]]
    )
    stop_arg(msg, call)
  }
  value
}

# Milliseconds of elapsed time since an arbitrary origin.
mclock <- function() proc.time()[["elapsed"]] * 1000

# Random start for RNG streams, from OS randomness: the user's .Random.seed is
# neither read nor touched. Six 31-bit words are valid L'Ecuyer-CMRG seeds.
random_stream <- function() {
  hex <- random_hex(24L)
  starts <- seq.int(1L, 41L, by = 8L)
  hi <- strtoi(substring(hex, starts, starts + 3L), 16L) %% 32768L
  lo <- strtoi(substring(hex, starts + 4L, starts + 7L), 16L)
  words <- as.integer(hi * 65536 + lo)
  if (all(words[1:3] == 0L)) words[1L] <- 1L
  if (all(words[4:6] == 0L)) words[4L] <- 1L
  c(10407L, words)
}

# The L'Ecuyer-CMRG .Random.seed that `set.seed(seed)` would give, computed
# with the user's RNG kind and .Random.seed saved and restored.
seed_stream <- function(seed) {
  genv <- globalenv()
  saved <- get0(".Random.seed", envir = genv, inherits = FALSE)
  kind <- RNGkind()
  on.exit({
    suppressWarnings(RNGkind(kind[1L], kind[2L], kind[3L]))
    if (is.null(saved)) {
      rm(".Random.seed", envir = genv)
    } else {
      assign(".Random.seed", saved, envir = genv)
    }
  })
  suppressWarnings(set.seed(seed, kind = "L'Ecuyer-CMRG"))
  get(".Random.seed", envir = genv, inherits = FALSE)
}
