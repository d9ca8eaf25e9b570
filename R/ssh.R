# mirai: remote launch configurations (generic, SSH) ------------------------------

#' Generic Remote Launch Configuration
#'
#' Provides a flexible generic configuration for launching daemons on other
#' machines, for use as the `remote` argument of [daemons()] or
#' [launch_remote()]: a resource manager's submit command (such as Slurm's
#' `sbatch`), a container runtime, or any program that runs a shell command
#' elsewhere.
#'
#' For each daemon the launcher runs `command` with `args`, where the
#' element `"."` of `args` is replaced by the shell command that starts the
#' daemon (`Rscript -e 'mirai::daemon(...)'`). The programs are run through
#' the local shell, without waiting for them, as [system2()] does, with the
#' daemon's invitation secret and random number stream written to their
#' standard input: `command` must pass it on to the daemon, as `ssh`,
#' `srun`, `sh -c` and `docker run -i` do (see [launch_remote()]).
#'
#' @param command \[default NULL\] the program that launches a daemon, as a
#'   single character string, e.g. `"sbatch"` or `"ssh"`. With NULL, the
#'   launch commands are only returned by [launch_remote()] (to be run by
#'   hand), and [daemons()] launches nothing.
#' @param args \[default c("", ".")\] the arguments to `command`: a
#'   character vector containing `"."` once, where the daemon's command goes;
#'   or a list of such vectors, one for each daemon to launch.
#' @param rscript \[default "Rscript"\] how to start R on the other machine:
#'   the file name of Rscript, or its full path if it is not on the `PATH`
#'   there. It is written into the command as is, so it may carry
#'   environment settings first, e.g. `"R_LIBS=/opt/rlib Rscript"`.
#' @param quote \[default FALSE\] logical value whether to quote the daemon's
#'   command, so that it reaches `command` as a single argument. Needed where
#'   `command` takes the shell command as one argument, such as
#'   `sbatch --wrap` or `sh -c`.
#'
#' @return A list with elements `command`, `args`, `rscript`, `quote` and
#'   `tunnel`, of class 'miraiRemote'.
#'
#' @examples
#' # Slurm: one job per daemon, each starting it with --wrap
#' remote_config(
#'   command = "sbatch",
#'   args = c("--mem 512", "-n 1", "--wrap", "."),
#'   rscript = file.path(R.home("bin"), "Rscript"),
#'   quote = TRUE
#' )
#'
#' # SSH to two named machines, the way ssh_config() does it
#' remote_config(
#'   command = "ssh",
#'   args = list(c("-Tp 22 nodeone", "."), c("-Tp 22 nodetwo", ".")),
#'   quote = TRUE
#' )
#'
#' @export
#'
remote_config <- function(command = NULL, args = c("", "."), rscript = "Rscript",
                          quote = FALSE) {
  call <- sys.call()
  if (!is.null(command) && !is_string(command)) stop_arg(._[["remote_command"]], call)
  if (!is_remote_args(args)) stop_arg(._[["remote_args"]], call)
  if (!is_string(rscript)) stop_arg(._[["rscript"]], call)
  if (!is_flag(quote)) stop_arg(sprintf(._[["flag"]], "quote"), call)
  new_remote(command, args, rscript, quote, tunnel = FALSE)
}

#' SSH Remote Launch Configuration
#'
#' Makes the configuration for launching daemons on other machines over
#' SSH, for use as the `remote` argument of [daemons()] or
#' [launch_remote()]. Each daemon is started with
#' `ssh -o ConnectTimeout=<timeout> -Tp <port> <host> "Rscript -e '...'"`,
#' run in the background for as long as the daemon runs on the remote
#' machine. The invitation secret and the daemon's random number stream
#' travel through the SSH session's standard input, never on a command line
#' of either machine (see [launch_remote()]).
#'
#' SSH must be able to log in without a password prompt (keys, an agent,
#' or the settings of `~/.ssh/config`), and the package must be installed
#' on the remote machines, where `rscript` can find it.
#'
#' @section Tunnelling:
#'
#' Where the remote machines cannot connect to the host directly (a
#' firewall allows SSH only), set `tunnel = TRUE`. Each SSH connection then
#' also forwards the port of the host URL from the remote machine back to
#' the host (`ssh -R <port>:127.0.0.1:<port>`), and the daemons dial
#' `127.0.0.1:<port>` on their own machine. The host URL must therefore be
#' on '127.0.0.1' or 'localhost', with a port: e.g. `"tcp://127.0.0.1:5555"`,
#' or port `0` for a free one. That port must be free on the remote machines
#' as well. Several daemons on one machine share the forward made by the
#' first of their connections (SSH warns that the later ones could not
#' listen).
#'
#' @param remotes the remote machines to launch daemons on, as a character
#'   vector of SSH URLs such as `"ssh://hostname"`, `"ssh://hostname:22"`
#'   or `"ssh://user@10.75.32.90:2222"` (port 22 when none is given). One
#'   daemon is launched on each (give a machine more than once for more
#'   daemons there), or with a single remote, `n` daemons there.
#' @param tunnel \[default FALSE\] logical value whether to connect the
#'   daemons to the host through SSH tunnels (see Tunnelling section).
#' @param timeout \[default 10\] the maximum time, in seconds, allowed to
#'   make each SSH connection (`ConnectTimeout`).
#' @param command \[default "ssh"\] the SSH client program, or the full path
#'   to it. To pass further options (a key file, `-o` settings), prefer
#'   `~/.ssh/config`, or else use a small script that adds them.
#' @inheritParams remote_config
#'
#' @return A list with elements `command`, `args`, `rscript`, `quote` and
#'   `tunnel`, of class 'miraiRemote'.
#'
#' @examples
#' # two machines, the daemons dialling into the host directly
#' ssh_config(c("ssh://nodeone", "ssh://nodetwo"))
#'
#' # one machine on a custom port, reached through an SSH tunnel
#' ssh_config("ssh://user@10.75.32.90:2222", tunnel = TRUE, timeout = 5)
#'
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' # 4 daemons on one machine, dialling back through the tunnel:
#' daemons(n = 4, url = "tcp://127.0.0.1:0",
#'         remote = ssh_config("ssh://nodeone", tunnel = TRUE))
#' daemons(0)
#'
#' }
#'
#' @export
#'
ssh_config <- function(remotes, tunnel = FALSE, timeout = 10, command = "ssh",
                       rscript = "Rscript") {
  call <- sys.call()
  if (missing(remotes) || !is.character(remotes) || !length(remotes) || anyNA(remotes))
    stop_arg(._[["remotes"]], call)
  if (!is_flag(tunnel)) stop_arg(sprintf(._[["flag"]], "tunnel"), call)
  if (!(is_count(timeout) && timeout >= 1)) stop_arg(._[["ssh_timeout"]], call)
  if (!is_string(command)) stop_arg(._[["ssh_command"]], call)
  if (!is_string(rscript)) stop_arg(._[["rscript"]], call)
  args <- lapply(remotes, function(remote) {
    target <- ssh_target(remote, call)
    c(sprintf("-o ConnectTimeout=%d -Tp %d", as.integer(timeout), target[["port"]]),
      target[["host"]], ".")
  })
  new_remote(command, args, rscript, quote = TRUE, tunnel = tunnel)
}

#' @export
#'
print.miraiRemote <- function(x, ...) {
  args <- x[["args"]]
  args <- if (is.list(args)) {
    sprintf(" - args[[%d]]: %s", seq_along(args), vapply(args, paste, "", collapse = " "))
  } else {
    paste(" - args:", paste(args, collapse = " "))
  }
  cat("< miraiRemote >",
      paste(" - command:", if (is.null(x[["command"]])) "NULL (commands are only returned)" else x[["command"]]),
      args,
      paste(" - rscript:", x[["rscript"]]),
      paste(" - quote:", x[["quote"]]),
      paste(" - tunnel:", isTRUE(x[["tunnel"]])),
      sep = "\n")
  invisible(x)
}

# Helpers ---------------------------------------------------------------------------

new_remote <- function(command, args, rscript, quote, tunnel)
  structure(list(command = command, args = args, rscript = rscript, quote = quote,
                 tunnel = tunnel),
            class = "miraiRemote")

# Arguments with one "." where the daemon's command goes, or a list of them.
is_remote_args <- function(args) {
  one <- function(a) is.character(a) && !anyNA(a) && sum(a == ".") == 1L
  if (is.list(args)) length(args) > 0L && all(vapply(args, one, logical(1L))) else one(args)
}

# The `remote` argument of daemons() and launch_remote(): a configuration
# made by remote_config() or ssh_config() (or, with a `type`, by
# cluster_config() or http_config()).
check_remote <- function(remote, call) {
  if (is.list(remote) && !is.null(remote[["type"]])) return(check_service_config(remote, call))
  ok <- is.list(remote) &&
    all(c("command", "args", "rscript", "quote") %in% names(remote)) &&
    (is.null(remote[["command"]]) || is_string(remote[["command"]])) &&
    is_remote_args(remote[["args"]]) && is_string(remote[["rscript"]]) &&
    is_flag(remote[["quote"]]) &&
    (is.null(remote[["tunnel"]]) || is_flag(remote[["tunnel"]]))
  if (!ok) stop_arg(._[["remote"]], call)
  invisible(remote)
}

# "ssh://[user@]host[:port]" as the host for ssh (with its user) and the port.
ssh_target <- function(remote, call) {
  m <- regmatches(remote, regexec("^ssh://([^@/]+@)?(\\[[^]/]+\\]|[^]:/@[]+)(:([0-9]+))?/?$", remote))[[1L]]
  if (!length(m)) stop_arg(._[["remotes"]], call)
  port <- if (nzchar(m[5L])) as.integer(m[5L]) else 22L
  if (is.na(port) || port < 1L || port > 65535L) stop_arg(._[["remotes"]], call)
  host <- gsub("^\\[|\\]$", "", m[3L])
  list(host = paste0(m[2L], host), port = port)
}
