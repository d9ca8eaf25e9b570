# mirai: launching daemon processes ------------------------------------------------

#' URL Constructor for Local Daemons
#'
#' Constructs a random URL suitable for local daemons: an abstract Unix socket
#' on Linux, which exists only while a host listens at it and leaves no file
#' behind.
#'
#' @return A character string comprising a valid URL, e.g.
#'   `"abstract://mirai-1a2b3c4d5e6f7a8b9c0d1e2f"`.
#'
#' @examples
#' local_url()
#'
#' @export
#'
local_url <- function() sprintf("abstract://mirai-%s", .Call(wrap__random_hex, 12L))

# Launch `n` local daemons for the profile held in `envir`, dialling into its
# first URL, each with its own RNG stream (tasks of a seeded profile carry
# their own streams, so daemons there draw from a separate random start).
launch_local <- function(envir, n) {
  url <- envir[["urls"]][1L]
  stream <- if (envir[["seeded"]]) random_stream()
  for (i in seq_len(n)) {
    rs <- if (is.null(stream)) {
      envir[["stream"]] <- nextRNGStream(envir[["stream"]])
      envir[["stream"]]
    } else {
      stream <- nextRNGStream(stream)
    }
    process <- launch_daemon(url, envir[["dots"]], rs, envir[["token"]])
    envir[["processes"]] <- c(envir[["processes"]], list(process))
  }
  invisible(n)
}

# The R code a launched daemon runs: `mirai::daemon(url, <dots>, rs, token)`.
launch_command <- function(url, dots, rs = NULL, token = NULL) {
  args <- c(list(url), dots, if (!is.null(rs)) list(rs = rs),
            if (!is.null(token)) list(token = token))
  paste(deparse(as.call(c(quote(mirai::daemon), args)), width.cutoff = 500L),
        collapse = " ")
}

# Start `Rscript -e <command>` with this session's library paths; R_TESTS is
# removed (R CMD check sets it to a relative path that breaks a child's
# start-up). Output is passed through only when `output = TRUE`.
launch_daemon <- function(url, dots, rs = NULL, token = NULL) {
  command <- launch_command(url, dots, rs, token)
  tryCatch(
    .Call(wrap__process_spawn,
          file.path(R.home("bin"), "Rscript"),
          c("-e", command),
          "R_LIBS",
          paste(.libPaths(), collapse = .Platform$path.sep),
          "R_TESTS",
          isTRUE(dots[["output"]])),
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
    connected <- .Call(wrap__host_wait_connections, host, as.integer(n), 200L)
    if (connected >= n) return(invisible(connected))
    finished <- 0L
    for (i in seq_along(processes)) {
      exit <- .Call(wrap__process_exit_status, processes[[i]])
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
