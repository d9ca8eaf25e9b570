//! URLs as mirai and NNG write them: `tcp://host:port`, `tcp://[::1]:port`,
//! `ws://host:port/path`, `wss://...`, `tls+tcp://host:port`,
//! `ipc:///path/to/socket`, `abstract://name`. An empty host
//! (`tcp://:5555`, `ws://:0/path`) is the wildcard, as in NNG.

use std::fmt;
use std::str::FromStr;

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Tcp,
    Ws,
    Wss,
    TlsTcp,
    Ipc,
    Abstract,
}

impl Scheme {
    pub fn prefix(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp://",
            Scheme::Ws => "ws://",
            Scheme::Wss => "wss://",
            Scheme::TlsTcp => "tls+tcp://",
            Scheme::Ipc => "ipc://",
            Scheme::Abstract => "abstract://",
        }
    }

    /// Whether this build can listen on and dial the scheme (all of them).
    pub fn is_supported(self) -> bool {
        true
    }

    /// Whether the scheme runs over TLS (and so needs a TLS configuration).
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::TlsTcp | Scheme::Wss)
    }
}

/// A parsed URL. `host` is kept without IPv6 brackets; `path` is the socket
/// path for `ipc`, the name for `abstract`, the request path for `ws`/`wss`
/// (possibly empty) and empty otherwise; `port` is 0 for `ipc`/`abstract`.
/// An empty `host` (`tcp://:5555`), like `*`, listens on all interfaces
/// (see `Url::is_wildcard`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub(crate) fn require_supported(&self) -> Result<(), Error> {
        if self.scheme.is_supported() {
            Ok(())
        } else {
            Err(Error::Url(format!(
                "{}: {} URLs are not yet supported",
                self,
                self.scheme.prefix().trim_end_matches("://")
            )))
        }
    }

    /// Whether the host is the wildcard, `*` or empty: listening on all
    /// interfaces.
    pub fn is_wildcard(&self) -> bool {
        self.host.is_empty() || self.host == "*"
    }

    /// The same URL with another port (the real one after binding port 0).
    pub fn with_port(&self, port: u16) -> Url {
        Url {
            port,
            ..self.clone()
        }
    }
}

fn invalid(text: &str, why: &str) -> Error {
    Error::Url(format!("invalid URL '{text}': {why}"))
}

const SCHEMES: [Scheme; 6] = [
    Scheme::TlsTcp,
    Scheme::Tcp,
    Scheme::Wss,
    Scheme::Ws,
    Scheme::Ipc,
    Scheme::Abstract,
];

impl FromStr for Url {
    type Err = Error;

    fn from_str(text: &str) -> Result<Url, Error> {
        let (scheme, rest) = SCHEMES
            .iter()
            .find_map(|s| text.strip_prefix(s.prefix()).map(|rest| (*s, rest)))
            .ok_or_else(|| {
                invalid(
                    text,
                    "expected a scheme of tcp://, ws://, wss://, tls+tcp://, ipc:// or abstract://",
                )
            })?;
        match scheme {
            Scheme::Ipc | Scheme::Abstract => {
                if rest.is_empty() {
                    return Err(invalid(text, "empty socket name"));
                }
                if rest.contains('\0') {
                    return Err(invalid(text, "socket name contains a NUL byte"));
                }
                Ok(Url {
                    scheme,
                    host: String::new(),
                    port: 0,
                    path: rest.to_string(),
                })
            }
            Scheme::Tcp | Scheme::TlsTcp => {
                let (host, port) = split_host_port(text, rest, None)?;
                Ok(Url {
                    scheme,
                    host,
                    port,
                    path: String::new(),
                })
            }
            Scheme::Ws | Scheme::Wss => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                let default_port = if scheme == Scheme::Ws { 80 } else { 443 };
                let (host, port) = split_host_port(text, authority, Some(default_port))?;
                Ok(Url {
                    scheme,
                    host,
                    port,
                    path: path.to_string(),
                })
            }
        }
    }
}

fn split_host_port(
    text: &str,
    authority: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), Error> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid(text, "unclosed '[' in IPv6 address"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid(text, "not an IPv6 address inside '[ ]'"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid(text, "expected ':port' after ']'")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(invalid(
                    text,
                    "IPv6 addresses must be written in brackets, e.g. tcp://[::1]:5555",
                ))
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .map_err(|_| invalid(text, "port must be a number from 0 to 65535"))?,
        (None, Some(p)) => p,
        (None, None) => return Err(invalid(text, "missing port")),
    };
    Ok((host.to_string(), port))
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme.prefix())?;
        match self.scheme {
            Scheme::Ipc | Scheme::Abstract => f.write_str(&self.path),
            _ => {
                if self.host.contains(':') {
                    write!(f, "[{}]:{}", self.host, self.port)?;
                } else {
                    write!(f, "{}:{}", self.host, self.port)?;
                }
                f.write_str(&self.path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_every_scheme() {
        for text in [
            "tcp://127.0.0.1:5555",
            "tcp://[::1]:5555",
            "tcp://localhost:0",
            "tcp://*:5555",
            "tcp://:5555",
            "ws://:0/path",
            "ws://10.0.0.1:80/1",
            "wss://example.org:443/path/x",
            "ws://host:8080",
            "tls+tcp://host:5556",
            "ipc:///tmp/mirai.sock",
            "abstract://mirai-1234",
        ] {
            assert_eq!(url(text).to_string(), text);
        }
    }

    #[test]
    fn splits_fields() {
        let u = url("tcp://[::1]:0");
        assert_eq!((u.scheme, u.host.as_str(), u.port), (Scheme::Tcp, "::1", 0));
        let u = url("ws://h:81/3");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Ws, "h", 81, "/3")
        );
        assert_eq!(url("wss://h/x").port, 443);
        let u = url("ipc:///tmp/a b");
        assert_eq!((u.scheme, u.path.as_str()), (Scheme::Ipc, "/tmp/a b"));
        assert_eq!(url("abstract://x").path, "x");
        assert_eq!(
            url("tcp://[::1]:7").with_port(9).to_string(),
            "tcp://[::1]:9"
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for text in [
            "",
            "http://x:1",
            "tcp://",
            "tcp://host",
            "tcp://:",
            "tcp://host:99999",
            "tcp://host:port",
            "tcp://::1:5555",
            "tcp://[::1",
            "tcp://[nothex]:1",
            "tcp://[::1]5555",
            "ipc://",
            "abstract://",
        ] {
            assert!(matches!(text.parse::<Url>(), Err(Error::Url(_))), "{text}");
        }
    }

    #[test]
    fn an_empty_host_is_the_wildcard() {
        let u = url("tcp://:5555");
        assert_eq!((u.host.as_str(), u.port), ("", 5555));
        assert!(u.is_wildcard() && url("tls+tcp://*:1").is_wildcard());
        assert!(!url("tcp://127.0.0.1:1").is_wildcard());
        assert_eq!(url("ws://:0/x").with_port(80).to_string(), "ws://:80/x");
    }

    #[test]
    fn every_transport_is_supported() {
        for text in [
            "tcp://h:1",
            "ipc:///x",
            "abstract://x",
            "ws://h:1/",
            "wss://h:1/",
            "tls+tcp://h:1",
        ] {
            assert!(url(text).require_supported().is_ok(), "{text}");
        }
        assert!(url("wss://h:1/").scheme.is_tls() && url("tls+tcp://h:1").scheme.is_tls());
        assert!(!url("ws://h:1/").scheme.is_tls());
    }
}
