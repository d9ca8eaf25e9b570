use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A URL that cannot be parsed, or a scheme not supported yet.
    Url(String),
    /// A failure of the operating system: bind, connect, read, write.
    Io(String),
    /// The host refused the daemon; the text is the host's reason.
    Refused(String),
    /// The link or host is closed.
    Closed,
    /// The peer broke the wire protocol.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url(m) | Error::Io(m) | Error::Refused(m) | Error::Protocol(m) => f.write_str(m),
            Error::Closed => f.write_str("connection closed"),
        }
    }
}

impl std::error::Error for Error {}
