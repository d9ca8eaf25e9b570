# mirai: a backend for the parallel package ----------------------------------------

#' Make a mirai Cluster
#'
#' `make_cluster()` creates a cluster of type 'miraiCluster', which may be
#' used as a cluster object for any function in the \pkg{parallel} base
#' package such as [parallel::clusterApply()], [parallel::parLapply()] or
#' [parallel::clusterExport()], and for \pkg{foreach} through
#' `doParallel::registerDoParallel()`. `stop_cluster()` (or
#' [parallel::stopCluster()]) stops it.
#'
#' Each cluster has its own compute profile, with `n` daemons (one for each
#' node) sent tasks at once without dispatcher, and no cleanup between tasks
#' by default, so that what [parallel::clusterExport()] and
#' [parallel::clusterEvalQ()] set up on the nodes stays there, as it does on
#' a 'PSOCK' cluster. An error in a task comes back as from the original
#' \pkg{mirai}: for example `parLapply()` raises
#' `"2 nodes produced errors; first error: Error in FUN(X[[i]], ...): ..."`.
#'
#' A subset of a cluster, such as `cl[1:2]`, is a 'miraiCluster' of those
#' nodes. A 'miraiCluster' or a node may be given to [status()], [info()]
#' and [launch_remote()] in place of the compute profile.
#'
#' @param n integer number of nodes: daemons launched on this machine, or,
#'   with `url`, daemons expected to dial in there. With `url` it may be left
#'   out: one node, or with `remote`, one for each remote it launches on.
#' @param url \[default NULL\] (for distributed computing) the character URL
#'   at which the host listens, e.g. 'tcp://10.75.32.70:5555', for daemons
#'   started elsewhere to dial into; see [daemons()]. Without `remote`, the
#'   shell commands that start them are printed (see [launch_remote()]).
#' @param remote \[default NULL\] (for distributed computing) a remote launch
#'   configuration, passed to [daemons()], which launches the daemons.
#' @param ... additional arguments passed on to [daemons()], such as the
#'   daemon arguments `output` or `cleanup` (default `0L` here).
#'
#' @return For `make_cluster()`: an object of class 'miraiCluster' and
#'   'cluster', a list of 'miraiNode' objects (one for each node).
#'
#'   For `stop_cluster()`: invisible NULL.
#'
#' @examples
#' if (interactive()) {
#' # Only run examples in interactive R sessions
#'
#' cl <- make_cluster(2)
#' cl
#' cl[[1L]]
#' parallel::parLapply(cl, 1:5, function(x) x^2)
#' parallel::clusterExport(cl, "cl")
#' stop_cluster(cl)
#'
#' }
#'
#' @export
#'
make_cluster <- function(n, url = NULL, remote = NULL, ...) {
  call <- sys.call()
  if (missing(n) && !is.null(url)) n <- if (is.null(remote)) 1L else remote_count(remote)
  if (missing(n) || !is_count(n) || n < 1) stop_arg(._[["cluster_n"]], call)
  dots <- list(...)
  if ("dispatcher" %in% names(dots)) stop_arg(._[["cluster_dispatcher"]], call)
  if (is.null(dots[["cleanup"]])) dots[["cleanup"]] <- 0L
  id <- sprintf("miraiCluster-%s", random_hex(6L))
  args <- c(list(n = as.integer(n), url = url, remote = remote, dispatcher = FALSE),
            dots, list(.compute = id))
  value <- withCallingHandlers(
    do.call(daemons, args),
    error = function(e) stop(simpleError(conditionMessage(e), call))
  )
  if (!is.null(url) && is.null(remote)) {
    cat(._[["cluster_deploy"]], "\n", sep = "")
    print(launch_remote(as.integer(n), .compute = id))
  }

  cl <- vector("list", n)
  for (i in seq_len(n)) {
    node <- new.env(parent = emptyenv())
    node[["id"]] <- id
    node[["rank"]] <- i
    node[["queue"]] <- list()
    cl[[i]] <- `class<-`(node, c("miraiNode", "SOCK0node"))
  }
  reg.finalizer(cl[[1L]], function(node) if (!is.null(..[[id]])) daemons(0, .compute = id))
  `attributes<-`(cl, list(class = c("miraiCluster", "cluster"), id = id))
}

#' @rdname make_cluster
#' @param cl a 'miraiCluster'.
#' @export
#'
stop_cluster <- function(cl) {
  if (!inherits(cl, "miraiCluster")) stop_arg(._[["cluster_cl"]], sys.call())
  id <- cluster_id(cl)
  if (!is.null(id) && !is.null(..[[id]])) daemons(0, .compute = id)
  invisible()
}

#' @exportS3Method parallel::stopCluster
#'
stopCluster.miraiCluster <- function(cl = NULL) stop_cluster(cl)

cluster_id <- function(cl) {
  if (length(cl)) .subset2(.subset2(cl, 1L), "id") else attr(cl, "id", exact = TRUE)
}

# The number of daemons a remote configuration launches when not told: one
# for each set of arguments (one for each remote of ssh_config()).
remote_count <- function(remote) {
  args <- remote[["args"]]
  if (is.list(args)) length(args) else 1L
}

#' @export
#'
`[.miraiCluster` <- function(x, i) {
  nodes <- .subset(x, i)
  `attributes<-`(nodes, list(class = class(x), id = attr(x, "id", exact = TRUE)))
}

# The snow protocol: parallel calls these for each node and cluster ---------------

#' @exportS3Method parallel::sendData
#'
sendData.miraiNode <- function(node, data) {
  envir <- ..[[node[["id"]]]]
  if (is.null(envir)) stop(._[["cluster_stopped"]], call. = FALSE)
  if (!identical(data[["type"]], "EXEC")) return(invisible())
  job <- data[["data"]]
  task <- list(quote(.exec(.fun, .args, .tag)), NULL,
               list(.exec = cluster_exec, .fun = job[["fun"]], .args = job[["args"]],
                    .tag = job[["tag"]]),
               NULL)
  m <- new_mirai(submit_task(envir, task, NULL))
  node[["queue"]] <- c(node[["queue"]], list(list(mirai = m, tag = job[["tag"]])))
  invisible()
}

#' @exportS3Method parallel::recvData
#'
recvData.miraiNode <- function(node) {
  queue <- node[["queue"]]
  if (!length(queue)) stop(._[["cluster_nothing"]], call. = FALSE)
  node[["queue"]] <- queue[-1L]
  cluster_value(queue[[1L]])
}

#' @exportS3Method parallel::recvOneData
#'
recvOneData.miraiCluster <- function(cl) {
  heads <- lapply(cl, function(node) {
    queue <- node[["queue"]]
    if (length(queue)) queue[[1L]][["mirai"]]
  })
  if (all(vapply(heads, is.null, logical(1L)))) stop(._[["cluster_nothing"]], call. = FALSE)
  i <- race_mirai(heads)
  list(node = i, value = recvData.miraiNode(.subset2(cl, i)))
}

# On the daemon: run a job as a parallel worker does (parallel:::workCommand),
# an error becoming a 'snow-try-error' value, whose text reads as a
# miraiError's ("Error in f(): message").
cluster_exec <- function(fun, args, tag) {
  success <- TRUE
  start <- proc.time()
  value <- tryCatch(
    do.call(fun, args, quote = TRUE),
    error = function(e) {
      success <<- FALSE
      structure(as.character(mk_mirai_error(e)), class = c("snow-try-error", "try-error"))
    }
  )
  list(type = "VALUE", value = value, success = success, time = proc.time() - start,
       tag = tag)
}

# The worker's reply for a queued job; an outcome with no reply (the daemon
# died, the task was cancelled or interrupted) becomes a failed job.
cluster_value <- function(job) {
  value <- wait_mirai(job[["mirai"]])[["data"]]
  if (is.list(value) && identical(value[["type"]], "VALUE")) return(value)
  message <- if (is_error_value(value)) error_text(value) else ._[["cluster_reply"]]
  list(type = "VALUE",
       value = structure(message, class = c("snow-try-error", "try-error")),
       success = FALSE, time = NULL, tag = job[["tag"]])
}

#' @export
#'
print.miraiCluster <- function(x, ...) {
  id <- cluster_id(x)
  active <- !is.null(id) && !is.null(..[[id]])
  cat(sprintf("< miraiCluster | ID: %s nodes: %d active: %s >\n", id, length(x), active))
  invisible(x)
}

#' @export
#'
print.miraiNode <- function(x, ...) {
  cat(sprintf("< miraiNode | node: %d cluster ID: %s >\n", x[["rank"]], x[["id"]]))
  invisible(x)
}
