# mirai: URLs ------------------------------------------------------------------------

#' URL Constructor for the Host
#'
#' Constructs a valid host URL (at which daemons may connect) that other
#' machines can dial: the address of one of this computer's network
#' interfaces. This may be supplied directly to the `url` argument of
#' [daemons()], which then listens at that interface.
#'
#' The address is that of the interface holding the default route where
#' there is one (otherwise the first interface that is up), IPv4 before
#' IPv6, never a loopback or link-local address; the URL is named by the
#' interface. Where no interface has such an address, the computer's name
#' is used instead (`Sys.info()[["nodename"]]`), at which [daemons()] then
#' listens on all interfaces.
#'
#' On a machine with several networks, remote daemons must be able to reach
#' the one chosen; to listen at another interface, or at all of them, write
#' the URL with its address, or with an empty host, e.g. `"tcp://:5555"`.
#'
#' @param ws \[default FALSE\] logical value whether to use a WebSockets
#'   'ws://' or else TCP 'tcp://' scheme.
#' @param tls \[default FALSE\] logical value whether to use TLS in which case
#'   the scheme used will be either 'wss://' or 'tls+tcp://' accordingly.
#' @param port \[default 0\] numeric port to use. `0` is a wildcard value
#'   that automatically assigns a free ephemeral port: the real port is shown
#'   by [status()] once [daemons()] listens. The port must be open to
#'   connections from the machines the daemons run on.
#'
#' @return A character string comprising a valid URL, e.g.
#'   `"tcp://10.0.0.5:0"`, named by its network interface (e.g. `eth0`).
#'
#' @examples
#' host_url()
#' host_url(ws = TRUE)
#' host_url(tls = TRUE)
#' host_url(ws = TRUE, tls = TRUE, port = 5555)
#'
#' @export
#'
host_url <- function(ws = FALSE, tls = FALSE, port = 0) {
  call <- sys.call()
  if (!is_flag(ws)) stop_arg(sprintf(._[["flag"]], "ws"), call)
  if (!is_flag(tls)) stop_arg(sprintf(._[["flag"]], "tls"), call)
  if (!(is_count(port) && port <= 65535)) stop_arg(._[["port"]], call)
  scheme <- if (ws) {
    if (tls) "wss" else "ws"
  } else {
    if (tls) "tls+tcp" else "tcp"
  }
  found <- net_interfaces()
  url <- sprintf("%s://%s:%d", scheme, reachable_host(found), as.integer(port))
  if (length(found[["name"]])) names(url) <- found[["name"]][1L]
  url
}

# The host by which other machines reach this one: the address of its
# network interface (of the default route, IPv4 first), else its name.
reachable_host <- function(found = net_interfaces()) {
  host <- if (length(found[["address"]])) found[["address"]][1L] else Sys.info()[["nodename"]]
  if (grepl(":", host, fixed = TRUE)) sprintf("[%s]", host) else host
}

# The host at which remote daemons dial a URL listening on all interfaces:
# this machine's interface address, or for TLS the name the
# zero-configuration certificate was made for.
remote_dial_host <- function(url) if (is_tls_url(url)) this_host() else reachable_host()

# This machine's name, if it resolves, else an address of it: the name in a
# zero-configuration certificate for a URL with a wildcard host.
this_host <- function() {
  name <- Sys.info()[["nodename"]]
  if (!is.null(suppressWarnings(tryCatch(utils::nsl(name), error = function(e) NULL))))
    return(name)
  found <- net_interfaces()[["address"]]
  if (length(found)) found[1L] else "127.0.0.1"
}

# Parsing and expanding URLs ---------------------------------------------------------

url_scheme <- function(url) sub("://.*$", "", url)

is_tls_url <- function(url) startsWith(url, "tls+tcp://") | startsWith(url, "wss://")

# The pieces of a 'tcp', 'tls+tcp', 'ws' or 'wss' URL: scheme, host (without
# IPv6 brackets), port (NA when absent) and path ("" when absent).
url_parts <- function(url) {
  scheme <- url_scheme(url)
  rest <- substring(url, nchar(scheme) + 4L)
  slash <- regexpr("/", rest, fixed = TRUE)
  authority <- if (slash > 0L) substring(rest, 1L, slash - 1L) else rest
  path <- if (slash > 0L) substring(rest, slash) else ""
  if (startsWith(authority, "[")) {
    close <- regexpr("]", authority, fixed = TRUE)
    host <- substring(authority, 2L, close - 1L)
    port <- sub("^:", "", substring(authority, close + 1L))
  } else {
    host <- sub(":[^:]*$", "", authority)
    port <- if (grepl(":", authority, fixed = TRUE)) sub("^.*:", "", authority) else ""
  }
  list(scheme = scheme, host = host,
       port = if (nzchar(port)) suppressWarnings(as.integer(port)) else NA_integer_,
       path = path)
}

# The URLs that daemons dial for `urls`: one listening on all interfaces,
# with an empty host ('tcp://:5555') or '*', is dialled at `host`.
dialable_urls <- function(urls, host) {
  vapply(urls, function(url) {
    if (!url_scheme(url) %in% c("tcp", "tls+tcp", "ws", "wss")) return(url)
    parts <- url_parts(url)
    if (!parts$host %in% c("", "*")) return(url)
    parts$host <- host
    url_join(parts)
  }, character(1L), USE.NAMES = FALSE)
}

# The host at which local daemons dial a URL listening on all interfaces:
# the loopback address, or for TLS the name the zero-configuration
# certificate was made for.
local_dial_host <- function(url) if (is_tls_url(url)) this_host() else "127.0.0.1"

url_join <- function(parts) {
  host <- if (grepl(":", parts$host, fixed = TRUE)) sprintf("[%s]", parts$host) else parts$host
  port <- if (is.na(parts$port)) "" else sprintf(":%d", parts$port)
  sprintf("%s://%s%s%s", parts$scheme, host, port, parts$path)
}

# The URLs the host listens at. With the dispatcher, a single WebSocket URL
# and `n` listen at paths /1 to /n of its port, and a single TCP URL and `n`
# at `n` consecutive ports (`n` free ports for port 0). Otherwise the URLs as
# given.
expand_urls <- function(url, n, dispatcher) {
  if (!dispatcher || length(url) != 1L || n <= 1L) return(url)
  scheme <- url_scheme(url)
  if (!scheme %in% c("tcp", "tls+tcp", "ws", "wss")) return(url)
  parts <- url_parts(url)
  if (scheme %in% c("ws", "wss")) {
    base <- sub("/$", "", parts$path)
    return(vapply(seq_len(n), function(i) {
      parts$path <- sprintf("%s/%d", base, i)
      url_join(parts)
    }, character(1L)))
  }
  if (is.na(parts$port)) return(url)
  ports <- if (parts$port == 0L) rep(0L, n) else parts$port + seq_len(n) - 1L
  vapply(ports, function(port) {
    parts$port <- port
    url_join(parts)
  }, character(1L))
}
