# mirai: TLS credentials and invitations ----------------------------------------------

# The host's TLS as the binding takes it: NULL when no URL needs TLS;
# `list(zero = host)` for a zero-config certificate authority and certificate
# made for the host of the first TLS URL; or the user's certificate and key,
# with the password (`pass`, or what `pass()` returns) only when the key is
# encrypted. The password is handed on, never stored.
host_tls <- function(urls, tls, pass, call) {
  tls_urls <- urls[is_tls_url(urls)]
  if (!length(tls_urls)) return(NULL)
  if (is.null(tls)) {
    host <- url_parts(tls_urls[1L])$host
    if (host %in% c("", "*", "0.0.0.0", "::")) host <- this_host()
    return(list(zero = host))
  }
  pem <- read_tls(tls, call)
  key <- pem[2L]
  password <- NULL
  if (grepl("ENCRYPTED", key, fixed = TRUE)) {
    if (is.null(pass)) stop_arg(._[["pass_needed"]], call)
    password <- if (is.function(pass)) pass() else pass
    if (!is_string(password)) stop_arg(._[["pass_value"]], call)
  }
  list(cert = pem[1L], key = key, pass = password)
}

# `tls` of daemons(): a PEM file holding the certificate (chain) and the
# private key, or c(certificate, key) as text. Returns c(certificate, key).
read_tls <- function(tls, call) {
  if (length(tls) == 2L) return(tls)
  if (!file.exists(tls)) stop_arg(sprintf(._[["tls_file"]], tls), call)
  text <- paste(readLines(tls, warn = FALSE), collapse = "\n")
  c(text, text)
}

# The certificate blocks of PEM text (never its key): what daemons launched
# by the package trust when the user supplied the host's certificate chain.
pem_certificates <- function(pem) {
  blocks <- regmatches(
    pem,
    gregexpr("-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----", pem)
  )[[1L]]
  if (length(blocks)) paste0(paste(blocks, collapse = "\n"), "\n")
}

# `tls` of daemon(): a PEM file holding the certificate authority chain, or
# c(chain, "") with the chain as text. Returns the PEM text.
daemon_tls_ca <- function(tls, call) {
  if (is.null(tls)) return(NULL)
  pem <- tls[1L]
  if (length(tls) == 1L && !grepl("-----BEGIN", pem, fixed = TRUE)) {
    if (!file.exists(pem)) stop_arg(sprintf(._[["tls_file"]], pem), call)
    pem <- paste(readLines(pem, warn = FALSE), collapse = "\n")
  }
  if (!grepl("-----BEGIN CERTIFICATE-----", pem, fixed = TRUE))
    stop_arg(._[["tls_ca"]], call)
  pem
}

# An error from listening: a URL at fault names 'url' (the core's messages
# about a URL quote it); else the certificate and key name 'tls', or 'pass'
# when the key could not be decrypted.
listen_error <- function(e, tls, call) {
  msg <- conditionMessage(e)
  if (is.null(tls) || grepl("://", msg, fixed = TRUE))
    stop_arg(sprintf(._[["url_invalid"]], msg), call)
  if (grepl("decrypt", msg, fixed = TRUE))
    stop_arg(sprintf(._[["pass_invalid"]], msg), call)
  stop_arg(sprintf(._[["tls_invalid"]], msg), call)
}

# The secret is never shown: in the call reported by daemon()'s errors (which
# a launched daemon's error output carries back to daemons()), and in any
# message, it is replaced. A certificate chain given as text is shortened.
redact_call <- function(call) {
  if (!is.null(call[["token"]])) call[["token"]] <- "<secret>"
  if (any(grepl("-----BEGIN", deparse(call[["tls"]]), fixed = TRUE)))
    call[["tls"]] <- "<certificate>"
  call
}

redact <- function(text, token) {
  if (is.null(token)) text else gsub(token, "<secret>", text, fixed = TRUE)
}
