# mirai: launching daemon processes ------------------------------------------------

#' URL Constructor for Local Daemons
#'
#' Constructs a random URL suitable for local daemons: an abstract Unix socket
#' on Linux, which exists only while a host listens at it and leaves no file
#' behind. With `tcp = TRUE`, a TCP URL on the loopback address instead, as
#' an SSH tunnel needs (see [ssh_config()]).
#'
#' @param tcp \[default FALSE\] logical value, whether to give a TCP URL on
#'   the loopback address '127.0.0.1' rather than a local socket.
#' @param port \[default 0\] (with `tcp = TRUE`) numeric port: `0` assigns a
#'   free ephemeral port once [daemons()] listens (see [status()]).
#'
#' @return A character string comprising a valid URL, e.g.
#'   `"abstract://mirai-1a2b3c4d5e6f7a8b9c0d1e2f"` or
#'   `"tcp://127.0.0.1:5555"`.
#'
#' @examples
#' local_url()
#' local_url(tcp = TRUE, port = 5555)
#'
#' @export
#'
local_url <- function(tcp = FALSE, port = 0) {
  call <- sys.call()
  if (!is_flag(tcp)) stop_arg(sprintf(._[["flag"]], "tcp"), call)
  if (!(is_count(port) && port <= 65535)) stop_arg(._[["port"]], call)
  if (tcp) sprintf("tcp://127.0.0.1:%d", as.integer(port))
  else sprintf("abstract://mirai-%s", random_hex(12L))
}

#' Launch Daemons
#'
#' Launch daemons that dial into the host URL(s) of a compute profile set by
#' [daemons()]. `launch_local()` starts them on this machine.
#' `launch_remote()` returns the shell commands that start them on other
#' machines, and runs those commands through `remote` when it has a command
#' (see [remote_config()] and [ssh_config()]).
#'
#' The commands carry everything a daemon needs to join: the URL, for TLS
#' the certificate authority the daemon should trust (as PEM text inside
#' the command) and, where the host requires it, the profile's invitation
#' secret (see the Invited Daemons section of [daemons()]). The secret, and
#' the daemon's random number stream, never appear on a command line, where
#' any user of either machine could read them (with `ps`): the daemon reads
#' them from its standard input (`stdin = TRUE`), which each returned command
#' feeds from the lines that follow it (a 'here-document', ending `MIRAI`).
#' The commands are quoted for a POSIX shell (`sh`, `bash`, `zsh`), so that
#' they may be pasted verbatim into a terminal on the other machine.
#'
#' Where `remote` has a command (such as `ssh`), it is run with those lines
#' written to its standard input, which must reach the daemon: `ssh`, `srun`,
#' `sh -c` and `docker run -i` pass it on, whereas a batch job submitted with
#' `sbatch --wrap` gets none (its daemons have no secret, and where the host
#' requires one they are refused).
#'
#' Printing the commands hides the invitation secret; use
#' `writeLines(cmds)` (or `cat(cmds, sep = "\n")`) to see them in full, for
#' example to copy them.
#'
#' A URL that remote daemons would dial at a loopback address of this
#' machine (such as '127.0.0.1', 'localhost', or a name that resolves to
#' one here) draws a warning, as other machines cannot reach it: use
#' [host_url()], or SSH tunnelling (see [ssh_config()]).
#'
#' Where the profile listens at several URLs (for example a WebSocket URL
#' with `n` paths, or a block of TCP ports, see [daemons()]), daemon `i`
#' dials URL `i`, going round again when there are more daemons than URLs.
#'
#' @param n \[default 1L\] the number of daemons to launch, dialling into
#'   the profile's URL(s); or else a character vector of URLs to dial, one
#'   daemon for each (for example the profile's URL with the host's address
#'   as seen from the other machines). For `launch_remote()`, also a
#'   'miraiCluster' (one daemon for each of its nodes, for its profile) or
#'   one of its nodes (one daemon).
#' @param ... (optional) arguments passed through to [daemon()]: `autoexit`,
#'   `cleanup`, `output`, `maxtasks`, `idletime`, `walltime`, `timerstart`
#'   and `asyncdial` (and `tlscert`, the original \pkg{mirai}'s name for
#'   `tls`). If none are given, those supplied to [daemons()] are used.
#' @param tls \[default NULL\] (for TLS connections) the certificate
#'   authority chain the daemons should trust. With NULL, that of the
#'   profile: the zero-configuration certificate authority made by
#'   [daemons()], or the certificates supplied to it. Otherwise either PEM
#'   text, a path to a PEM file (read here, so that the certificates travel
#'   in the command), or a length 2 character vector of \[i\] the chain and
#'   \[ii\] the empty character `''`.
#' @param .compute \[default NULL\] character value for the compute profile
#'   whose daemons are launched, or NULL for the current default profile
#'   ('default' unless changed by [with_daemons()] or [local_daemons()]).
#'
#' @return For `launch_local()`: the integer number of daemons launched,
#'   invisibly.
#'
#'   For `launch_remote()`: a character vector of shell commands, one for
#'   each daemon, of class 'miraiLaunchCmd' (printed one after the other,
#'   with the secret hidden).
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' daemons(url = "tcp://127.0.0.1:0")
#' launch_local(2)
#' Sys.sleep(1)
#' status()
#' launch_remote(2)
#' daemons(0)
#'
#' }
#'
#' @export
#'
launch_local <- function(n = 1L, ..., tls = NULL, .compute = NULL) {
  call <- sys.call()
  envir <- launch_profile_of(.compute, call)
  urls <- launch_urls(n, envir[["urls"]], call)
  dots <- if (...length()) check_daemon_args(list(...), call) else envir[["dots"]]
  if (is.null(tls)) tls <- dots[["tlscert"]]
  dots[["tlscert"]] <- NULL
  tls <- launch_tls(tls, envir, call)
  spawn_daemons(envir, urls, dots, tls)
  invisible(length(urls))
}

#' @param remote \[default remote_config()\] a remote launch configuration
#'   made by [remote_config()], [ssh_config()], [cluster_config()] or
#'   [http_config()]. With no `command`, the commands are only returned.
#'
#' @rdname launch_local
#' @export
#'
launch_remote <- function(n = 1L, remote = remote_config(), ..., tls = NULL,
                          .compute = NULL) {
  call <- sys.call()
  if (inherits(n, c("miraiCluster", "miraiNode"))) {
    .compute <- profile_of(n, call)
    n <- if (inherits(n, "miraiNode")) 1L else max(length(n), 1L)
  }
  envir <- launch_profile_of(.compute, call)
  check_remote(remote, call)
  dots <- if (...length()) check_daemon_args(list(...), call) else envir[["dots"]]
  if (is.null(tls)) tls <- dots[["tlscert"]]
  dots[["tlscert"]] <- NULL
  tls <- launch_tls(tls, envir, call)
  launch_remote_profile(envir, if (missing(n)) NULL else n, remote, dots, tls, call)
}

#' @export
#'
print.miraiLaunchCmd <- function(x, ...) {
  shown <- hide_token(as.character(x))
  cat(shown, sep = "\n")
  if (!identical(shown, as.character(x)))
    cat(._[["token_hidden"]], "\n", sep = "")
  invisible(x)
}

# Launching from a profile ------------------------------------------------------

# The compute profile `launch_*()` works for, which daemons() must have set
# (not synchronous: it has no daemons).
launch_profile_of <- function(.compute, call) {
  .compute <- compute_profile(.compute, call)
  envir <- ..[[.compute]]
  if (is.null(envir)) stop_arg(sprintf(._[["launch_profile"]], .compute), call)
  if (isTRUE(envir[["sync"]])) stop_arg(sprintf(._[["launch_sync"]], .compute), call)
  envir
}

# The URL each daemon dials: `n` daemons spread over the profile's URLs, or
# the URLs given in `n`.
launch_urls <- function(n, urls, call) {
  if (is.character(n)) {
    if (!length(n) || anyNA(n) || !all(nzchar(n))) stop_arg(._[["launch_n"]], call)
    return(n)
  }
  if (!is_count(n) || n < 1) stop_arg(._[["launch_n"]], call)
  urls[(seq_len(n) - 1L) %% length(urls) + 1L]
}

# The certificate authority given to launched daemons, as c(chain, "") so
# that it travels as text; NULL when the profile needs none.
launch_tls <- function(tls, envir, call) {
  if (is.null(tls)) {
    ca <- envir[["tls_ca"]]
    return(if (!is.null(ca)) c(ca, ""))
  }
  if (!(is.character(tls) && length(tls) %in% 1:2 && !anyNA(tls)))
    stop_arg(._[["tls"]], call)
  if (length(tls) == 2L) return(tls)
  if (!grepl("-----BEGIN", tls, fixed = TRUE)) {
    if (!file.exists(tls)) stop_arg(sprintf(._[["tls_file"]], tls), call)
    tls <- paste0(paste(readLines(tls, warn = FALSE), collapse = "\n"), "\n")
  }
  c(tls, "")
}

# Random number streams for `n` launched daemons. Tasks of a seeded profile
# carry their own streams, so its daemons draw from a separate random start
# and the profile's sequence is kept for the tasks.
daemon_streams <- function(envir, n) {
  stream <- if (envir[["seeded"]]) random_stream()
  lapply(seq_len(n), function(i) {
    if (is.null(stream)) {
      envir[["stream"]] <- parallel::nextRNGStream(envir[["stream"]])
      envir[["stream"]]
    } else {
      stream <<- parallel::nextRNGStream(stream)
    }
  })
}

# Start local daemons dialling `urls` (one each), keeping their processes
# in the profile so that a failed start can end them.
spawn_daemons <- function(envir, urls, dots, tls) {
  urls <- vapply(urls, function(url) dialable_urls(url, local_dial_host(url)), character(1L),
                 USE.NAMES = FALSE)
  streams <- daemon_streams(envir, length(urls))
  for (i in seq_along(urls)) {
    process <- launch_daemon(urls[i], dots, streams[[i]], envir[["token"]], tls)
    envir[["processes"]] <- c(envir[["processes"]], list(process))
  }
  invisible(length(urls))
}

# The `n` local daemons of `daemons(n)`.
launch_profile <- function(envir, n)
  spawn_daemons(envir, launch_urls(n, envir[["urls"]], NULL), envir[["dots"]],
                launch_tls(NULL, envir, NULL))

# The commands for remote daemons, run through `remote` when it has a
# command (with the launch record on its standard input). `n` NULL means one
# daemon for each set of arguments in `remote` (one for each remote of
# ssh_config()), else one.
launch_remote_profile <- function(envir, n, remote, dots, tls, call) {
  if (!is.null(remote[["type"]])) return(launch_service(envir, n, remote, dots, tls, call))
  args <- remote[["args"]]
  per_daemon <- is.list(args) && length(args) > 1L
  if (per_daemon) {
    if (!is.null(n) && !(is.numeric(n) && length(n) == 1L && !is.na(n) && n == length(args)))
      stop_arg(sprintf(._[["launch_n_remotes"]], length(args)), call)
    n <- length(args)
  }
  urls <- launch_urls(if (is.null(n)) 1L else n, envir[["urls"]], call)
  urls <- remote_urls(urls, isTRUE(remote[["tunnel"]]))
  if (isTRUE(remote[["tunnel"]])) check_tunnel_urls(urls, call) else warn_loopback(urls, call)
  launches <- daemon_commands(envir, urls, dots, tls, remote[["rscript"]])
  for (i in seq_along(urls)) {
    line <- launches[[i]][["line"]]
    if (length(remote[["command"]])) {
      a <- if (is.list(args)) args[[if (per_daemon) i else 1L]] else args
      a[a == "."] <- if (isTRUE(remote[["quote"]])) sh_double(line) else line
      if (isTRUE(remote[["tunnel"]])) {
        port <- url_parts(urls[i])$port
        a <- c(sprintf("-R %d:127.0.0.1:%d", port, port), a)
      }
      run_detached(remote[["command"]], a, launches[[i]][["record"]])
    }
  }
  structure(vapply(launches, `[[`, "", "command"), class = "miraiLaunchCmd")
}

# The URLs remote daemons dial for `urls`: a host listening on all
# interfaces is dialled at this machine's reachable address, or through a
# tunnel at loopback.
remote_urls <- function(urls, tunnel) {
  if (tunnel) return(dialable_urls(urls, "127.0.0.1"))
  vapply(urls, function(url) dialable_urls(url, remote_dial_host(url)), "", USE.NAMES = FALSE)
}

# The shell commands of daemons dialling `urls` (one each), with the next
# random number streams of the profile: `line` runs `rscript`, `record` (or
# NULL) is what it reads on its standard input, and `command` is the line
# with the record as a here-document.
daemon_commands <- function(envir, urls, dots, tls, rscript) {
  streams <- daemon_streams(envir, length(urls))
  lapply(seq_along(urls), function(i) {
    line <- paste(rscript, "-e",
                  sh_single(launch_command(urls[i], dots, streams[[i]], envir[["token"]], tls)))
    record <- launch_record(streams[[i]], envir[["token"]])
    list(line = line, record = record, command = here_document(line, record))
  })
}

# Tunnelling forwards the remote side's 127.0.0.1:port to the same port here:
# the daemons must dial a loopback URL with a port.
check_tunnel_urls <- function(urls, call) {
  for (url in urls) {
    scheme <- url_scheme(url)
    ok <- scheme %in% c("tcp", "ws", "tls+tcp", "wss")
    if (ok) {
      parts <- url_parts(url)
      ok <- parts$host %in% c("127.0.0.1", "localhost") && !is.na(parts$port) &&
        parts$port > 0L
    }
    if (!ok) stop_arg(sprintf(._[["tunnel_url"]], url), call)
  }
}

# Run `command args` through the shell without waiting, as system2() does,
# with `record` (or nothing) on its standard input and its output passed
# through; R_TESTS is removed for the child (R CMD check sets a relative path
# that breaks an R process started from elsewhere).
run_detached <- function(command, args, record = NULL) {
  tryCatch(
    process_spawn("/bin/sh", c("-c", paste(c(shQuote(command), args), collapse = " ")),
                  character(), character(), "R_TESTS", TRUE, record),
    error = function(e) stop(sprintf(._[["spawn"]], conditionMessage(e)), call. = FALSE)
  )
}

# Remote daemons dialling a URL at a loopback address of this machine cannot
# reach it from another machine: warn, once, naming the first such URL.
warn_loopback <- function(urls, call) {
  for (url in unique(urls)) {
    if (dials_loopback(url)) {
      warning(simpleWarning(sprintf(._[["loopback"]], url), call))
      return(invisible(TRUE))
    }
  }
  invisible(FALSE)
}

# Whether dialling `url` reaches this machine's loopback: an IPC URL, a
# loopback or wildcard address (dialled as loopback), or a name that resolves
# only to loopback here (as this machine's own name may, in /etc/hosts).
dials_loopback <- function(url) {
  if (!url_scheme(url) %in% c("tcp", "tls+tcp", "ws", "wss")) return(TRUE)
  host <- tolower(url_parts(url)$host)
  if (host %in% c("", "*", "0.0.0.0", "::", "localhost") || host == "::1" ||
      startsWith(host, "127.") || endsWith(host, ".localhost")) return(TRUE)
  if (grepl("^[0-9.]+$", host) || grepl(":", host, fixed = TRUE)) return(FALSE)
  address <- tryCatch(suppressWarnings(utils::nsl(host)), error = function(e) NULL)
  !is.null(address) && startsWith(address, "127.")
}

# Commands and processes ----------------------------------------------------------

# The R code a launched daemon runs, on one line (deparse() writes the
# newlines of a PEM as \n escapes):
# `mirai::daemon("url", <dots>, tls = c("<PEM>", ""), stdin = TRUE)`. The
# stream `rs` and the secret `token` are not in it: with either, the daemon
# reads them from its standard input, where the launcher writes
# launch_record(rs, token). With `inline`, they are arguments in the code
# (for http_config(), whose API receives R code rather than a command).
launch_command <- function(url, dots, rs = NULL, token = NULL, tls = NULL, inline = FALSE) {
  secrets <- if (inline) {
    c(if (!is.null(rs)) list(rs = rs), if (!is.null(token)) list(token = token))
  } else if (!is.null(rs) || !is.null(token)) {
    list(stdin = TRUE)
  }
  args <- c(list(url), dots, if (!is.null(tls)) list(tls = tls), secrets)
  paste(deparse(as.call(c(quote(mirai::daemon), args)), width.cutoff = 500L),
        collapse = " ")
}

# What a launched daemon reads from its standard input (see
# read_launch_record()): a line per setting, `name value`, then `end`. `rs`
# may be "random": the daemon draws a stream of its own. NULL for none.
launch_record <- function(rs = NULL, token = NULL) {
  if (is.null(rs) && is.null(token)) return(NULL)
  lines <- c(if (!is.null(token)) paste("token", token),
             if (!is.null(rs)) paste(c("rs", as.character(rs)), collapse = " "),
             "end")
  paste0(paste(lines, collapse = "\n"), "\n")
}

# The shell command `line` with `record` on its standard input, as a
# here-document (not part of any command line).
here_document <- function(line, record) {
  if (is.null(record)) return(line)
  paste0(line, " <<'MIRAI'\n", record, "MIRAI")
}

# POSIX shell quoting. In single quotes nothing is special, so a single
# quote is written as '\'' ; in double quotes only \ " $ and ` are.
sh_single <- function(x) paste0("'", gsub("'", "'\\''", x, fixed = TRUE), "'")

sh_double <- function(x) paste0('"', gsub('([\\\\"$`])', "\\\\\\1", x, perl = TRUE), '"')

# The invitation secret as printed: hidden.
# (Inline in the R code for http_config(), on a line of the launch record
# otherwise.)
hide_token <- function(x) {
  x <- gsub('(token = \\\\?")[^"\\\\]+', "\\1<secret>", x, perl = TRUE)
  gsub("(^|\n)token [^\n]+", "\\1token <secret>", x, perl = TRUE)
}

# Start `Rscript -e <command>` with this session's library paths; R_TESTS is
# removed (R CMD check sets it to a relative path that breaks a child's
# start-up). The secret and the stream go to the child's standard input,
# not on its command line, which `ps` shows to every user, nor into its
# environment, which stays readable in /proc for its life and passes to
# every process its tasks start. Output is passed through only when
# `output = TRUE`.
launch_daemon <- function(url, dots, rs = NULL, token = NULL, tls = NULL) {
  tryCatch(
    process_spawn(file.path(R.home("bin"), "Rscript"),
                  c("-e", launch_command(url, dots, rs, token, tls)),
                  "R_LIBS",
                  paste(.libPaths(), collapse = .Platform$path.sep),
                  "R_TESTS",
                  isTRUE(dots[["output"]]),
                  launch_record(rs, token)),
    error = function(e) stop(sprintf(._[["spawn"]], conditionMessage(e)), call. = FALSE)
  )
}

# Wait until `n` daemons are connected to the profile's host. Meanwhile a
# launched process that exits with an error stops the wait at once, with its
# own error output; after `limit_s` seconds the wait fails naming how many
# connected.
wait_connected <- function(envir, n, call, limit_s = 30L) {
  host <- envir[["host"]]
  processes <- envir[["processes"]]
  deadline <- mclock() + limit_s * 1000
  repeat {
    connected <- host_wait_connections(host, as.integer(n), 200L)
    if (connected >= n) return(invisible(connected))
    finished <- 0L
    for (i in seq_along(processes)) {
      exit <- process_exit_status(processes[[i]])
      if (is.null(exit)) next
      if (identical(as.integer(exit[["status"]]), 0L)) {
        finished <- finished + 1L
        next
      }
      stop_arg(sprintf(._[["died"]], i, length(processes), exit[["status"]],
                       trimws(exit[["stderr"]])), call)
    }
    if (connected + finished >= n) return(invisible(connected))
    if (mclock() > deadline)
      stop_arg(sprintf(._[["launch_timeout"]], connected, n, limit_s), call)
    Sys.sleep(0)
  }
}
