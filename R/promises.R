# mirai: promises ------------------------------------------------------------------

#' Make mirai a Promise
#'
#' Creates a 'promise' (from the \pkg{promises} package) from a 'mirai', or
#' from a 'mirai_map' (settling when all its 'mirai' have). This lets a
#' 'mirai' be used wherever a promise is, for example with the promise pipe
#' `%...>%`, [promises::then()], or Shiny's asynchronous tasks.
#'
#' The promise is fulfilled with the value of the 'mirai'; for a
#' 'mirai_map', with the list of its values. It is rejected with an error
#' when the value is a 'miraiError' (the error message) or an 'errorValue'
#' such as a timeout (its code and meaning). A 'miraiInterrupt' (the daemon
#' was interrupted) fulfils it with that value, as in the original
#' \pkg{mirai}.
#'
#' A 'mirai' that resolves wakes the \pkg{later} event loop from the
#' background thread that received its value: the promise settles at the
#' next run of the event loop (for example [later::run_now()], or Shiny's
#' loop), with no polling.
#'
#' This function is an S3 method for the generic `as.promise()` of the
#' \pkg{promises} package, registered when \pkg{promises} is loaded. The
#' methods for `is.promising()` (a generic from \pkg{promises} 1.3) say that
#' a 'mirai' and a 'mirai_map' can be used as promises: Shiny's
#' `ExtendedTask` requires this of the value its function returns, so that
#' `ExtendedTask$new(function(...) mirai(...))` works.
#'
#' @param x a 'mirai' or a 'mirai_map'.
#'
#' @return A 'promise' object; for `is.promising()`, TRUE.
#'
#' @examples
#' if (interactive() && requireNamespace("promises", quietly = TRUE)) {
#' # Only run examples in interactive R sessions
#'
#' p <- promises::as.promise(mirai("example"))
#' print(p)
#' promises::is.promise(p)
#'
#' p2 <- promises::then(mirai("completed"), function(x) print(x))
#' promises::is.promise(p2)
#'
#' }
#'
#' @exportS3Method promises::as.promise
#'
as.promise.mirai <- function(x) as_promise_mirai(x)

#' @rdname as.promise.mirai
#' @exportS3Method promises::is.promising
#'
is.promising.mirai <- function(x) TRUE

#' @rdname as.promise.mirai
#' @exportS3Method promises::is.promising
#'
is.promising.mirai_map <- function(x) TRUE

#' @rdname as.promise.mirai
#' @exportS3Method promises::as.promise
#'
as.promise.mirai_map <- function(x) {
  promises::then(
    promises::promise_all(.list = lapply(unclass(x), as_promise_mirai)),
    onFulfilled = function(values) `names<-`(values, names(x))
  )
}

# The promise of mirai `m`, made once and kept in the mirai.
as_promise_mirai <- function(m) {
  promise <- .subset2(m, "promise")
  if (!is.null(promise)) return(promise)
  promise <- promises::promise(function(resolve, reject) {
    settle <- function() {
      # (an error here, in later's loop, would settle the promise never)
      failed <- NULL
      value <- tryCatch(m[["data"]], error = function(e) failed <<- e)
      if (!is.null(failed)) {
        reject(failed)
      } else if (is_error_value(value) && !is_mirai_interrupt(value)) {
        reject(simpleError(error_text(value)))
      } else {
        resolve(value)
      }
    }
    if (unresolved(m)) on_resolve(m, settle) else settle()
  })
  assign("promise", promise, envir = m)
  promise
}

# Run `callback()` on the main thread, through later's event loop, once mirai
# `m` has resolved.
on_resolve <- function(m, callback) {
  handle <- .subset2(m, ".handle")
  if (is.null(handle)) return(later::later(callback))
  # The binding schedules `callback` through later's C interface.
  requireNamespace("later", quietly = TRUE)
  task_on_resolve(handle, callback)
  invisible()
}
