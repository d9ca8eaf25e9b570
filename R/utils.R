# mirai: utilities ------------------------------------------------------------

# Every message the package raises or prints, in one place so they read alike.
# Argument errors name the argument first, then what was expected.
._ <- list(
  args = "'.args' must be a named list, a list of symbols, or an environment",
  cleanup = "'cleanup' must be a whole number between 0 and 15",
  compute = "'.compute' must be a single non-empty character string",
  connect = "daemon could not connect to '%s': %s",
  daemon_args = "'...' accepts only named daemon arguments (%s); not: %s",
  daemon_dots = "'...' accepts only 'autoexit' and 'token' here; not: %s",
  died = "daemon %d of %d exited (status %s) before connecting:\n%s",
  dispatcher = "'dispatcher' must be TRUE or FALSE",
  dots = "'...' must be named objects, or a single environment",
  expr_missing = "'.expr' is missing: supply an expression to evaluate",
  flag = "'%s' must be TRUE or FALSE",
  launch_timeout = "only %d of %d daemons connected within %d seconds",
  n = "'n' must be a single non-negative whole number (or NULL to reset)",
  number = "'%s' must be a single non-negative number (Inf for no limit)",
  pass = "'pass' must be NULL, a function returning the password, or a character string",
  remote = "'remote' must be NULL or a remote launch configuration (a list)",
  remote_unsupported = "'remote': launching remote daemons is not yet supported",
  resilience = "'resilience' must be TRUE or FALSE",
  revise = "daemons are already set for compute profile '%s': reset with `daemons(0%s)` before revising settings",
  rs = "'rs' must be NULL or an integer vector of length 7 (a L'Ecuyer-CMRG .Random.seed)",
  seed = "'seed' must be NULL or a single finite number",
  serialize = "the value of the task could not be serialized",
  spawn = "could not launch a daemon process: %s",
  timeout = "'.timeout' must be NULL or a single non-negative number of milliseconds",
  timerstart = "'timerstart' must be a single non-negative whole number",
  tls = "'tls' must be NULL or a character vector of length 1 or 2",
  token = "'token' must be NULL or a single character string",
  url = "'url' must be a character vector of URLs such as 'tcp://hostname:5555'",
  url_daemon = "'url' must be a single character URL such as 'tcp://hostname:5555'",
  url_invalid = "'url' is not usable: %s"
)

# Raise an argument error with the user's call (not the helper's).
stop_arg <- function(msg, call) stop(simpleError(msg, call))

# Error values: transport outcomes as integers ---------------------------------

error_messages <- c(
  "5" = "Timed out",
  "7" = "Object closed",
  "19" = "Connection reset",
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

# The daemon arguments `daemons(...)` passes on, each with its check; returns
# the validated list.
daemon_arg_names <- c("autoexit", "cleanup", "output", "maxtasks", "idletime",
                      "walltime", "timerstart")

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
  for (name in nm) check_daemon_arg(name, dots[[name]], call)
  dots
}

check_daemon_arg <- function(name, value, call) {
  ok <- switch(
    name,
    autoexit = , output = , asyncdial = is_flag(value),
    maxtasks = , idletime = , walltime = is_limit(value),
    timerstart = is_count(value),
    cleanup = is_count(value) && value <= 15,
    TRUE
  )
  if (!ok) {
    msg <- switch(
      name,
      autoexit = , output = , asyncdial = sprintf(._[["flag"]], name),
      maxtasks = , idletime = , walltime = sprintf(._[["number"]], name),
      timerstart = ._[["timerstart"]],
      cleanup = ._[["cleanup"]]
    )
    stop_arg(msg, call)
  }
  invisible(value)
}

check_compute <- function(.compute, call) {
  if (!is_string(.compute)) stop_arg(._[["compute"]], call)
}

# Milliseconds of elapsed time since an arbitrary origin.
mclock <- function() proc.time()[["elapsed"]] * 1000

# Random start for RNG streams, from OS randomness: the user's .Random.seed is
# neither read nor touched. Six 31-bit words are valid L'Ecuyer-CMRG seeds.
random_stream <- function() {
  hex <- .Call(wrap__random_hex, 24L)
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
