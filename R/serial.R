# mirai: custom serialization ------------------------------------------------------

#' Custom Serialization Functions
#'
#' Returns a configuration for custom serialization and unserialization of
#' non-system reference objects (such as an external pointer of a class that
#' R itself cannot serialize), to be supplied as the `serial` argument of
#' [daemons()]. Objects of the classes named travel between host and daemons
#' through these functions, both ways.
#'
#' @param class character string (or vector) of the class(es) of object that
#'   the functions apply to, e.g. `"ArrowTabular"` or
#'   `c("torch_tensor", "ArrowTabular")`.
#' @param sfunc a function (or list of functions, one for each class) that
#'   takes an object of the class and returns a raw vector.
#' @param ufunc a function (or list of functions, one for each class) that
#'   takes a raw vector and returns the object again.
#'
#' @return A list of `class` (a character vector), `sfunc` and `ufunc` (each
#'   a list of functions of the same length as `class`).
#'
#' @examples
#' cfg <- serial_config("test_cls", function(x) serialize(x, NULL), unserialize)
#' str(cfg)
#'
#' @export
#'
serial_config <- function(class, sfunc, ufunc)
  make_serial_config(class, sfunc, ufunc, sys.call())

make_serial_config <- function(class, sfunc, ufunc, call) {
  if (!is.character(class) || !length(class) || anyNA(class) || !all(nzchar(class)))
    stop_arg(._[["serial_class"]], call)
  n <- length(class)
  as_functions <- function(f, name) {
    if (is.function(f)) f <- list(f)
    if (!is.list(f) || length(f) != n || !all(vapply(f, is.function, logical(1L))))
      stop_arg(sprintf(._[["serial_func"]], name), call)
    unname(f)
  }
  list(class = class, sfunc = as_functions(sfunc, "sfunc"),
       ufunc = as_functions(ufunc, "ufunc"))
}

is_serial_config <- function(x) {
  is.list(x) && identical(names(x), c("class", "sfunc", "ufunc")) &&
    is.character(x[["class"]]) && length(x[["class"]]) > 0L &&
    is.list(x[["sfunc"]]) && is.list(x[["ufunc"]]) &&
    length(x[["sfunc"]]) == length(x[["class"]]) &&
    length(x[["ufunc"]]) == length(x[["class"]]) &&
    all(vapply(c(x[["sfunc"]], x[["ufunc"]]), is.function, logical(1L)))
}

# The hooks of R's serializer for a serial_config(): `out` is called on each
# reference object serialized (external pointers, environments) and returns
# NULL to serialize it as usual, or the index of its class and the ASCII
# serialization of what that class's sfunc made of it; `inp` reverses it.
serial_hooks <- function(cfg) {
  class <- cfg[["class"]]
  sfunc <- cfg[["sfunc"]]
  ufunc <- cfg[["ufunc"]]
  out <- function(x) {
    for (i in seq_along(class)) if (inherits(x, class[i]))
      return(c(as.character(i), rawToChar(serialize(sfunc[[i]](x), NULL, ascii = TRUE))))
    NULL
  }
  inp <- function(s) ufunc[[as.integer(s[1L])]](unserialize(charToRaw(s[2L])))
  list(out = out, inp = inp)
}

# Custom serialization for a profile: at the host now, and at each daemon
# (through everywhere(), so also those that connect later) before its tasks.
set_serial <- function(envir, cfg) {
  hooks <- serial_hooks(cfg)
  host_serial(envir[["host"]], hooks[["out"]], hooks[["inp"]])
  expr <- as.call(list(set_daemon_serial, cfg))
  host_broadcast(envir[["host"]], list(expr, NULL, list(), NULL, everywhere = TRUE))
  invisible()
}

# Evaluated at a daemon, by the task that set_serial() sends.
set_daemon_serial <- function(cfg) {
  hooks <- serial_hooks(cfg)
  daemon_serial(.state[["link"]], hooks[["out"]], hooks[["inp"]])
  invisible()
}

#' Register Serialization Configuration
#'
#' Registers custom serialization and unserialization functions for the
#' session: they apply to every compute profile set afterwards by
#' [daemons()] without its own `serial` argument. Registering again for a
#' class already registered replaces its functions.
#'
#' @inheritParams serial_config
#'
#' @return Invisible NULL.
#'
#' @examples
#' register_serial("test_cls", function(x) serialize(x, NULL), unserialize)
#'
#' @export
#'
register_serial <- function(class, sfunc, ufunc) {
  cfg <- make_serial_config(class, sfunc, ufunc, sys.call())
  registered <- .state[["serial"]]
  if (!is.null(registered)) {
    kept <- !registered[["class"]] %in% cfg[["class"]]
    cfg <- list(class = c(registered[["class"]][kept], cfg[["class"]]),
                sfunc = c(registered[["sfunc"]][kept], cfg[["sfunc"]]),
                ufunc = c(registered[["ufunc"]][kept], cfg[["ufunc"]]))
  }
  .state[["serial"]] <- cfg
  invisible()
}
