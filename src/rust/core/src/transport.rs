//! Listening and dialling for the byte-stream transports (tcp, ipc,
//! abstract). A connection is handed on as boxed read and write halves, so
//! that TLS streams can be added as further implementations of the same
//! traits; WebSocket (message-oriented) will add its own reader and writer
//! beside the SP framing in `frame`.

use std::io::{self, IoSlice};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{tcp, unix, TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};

use crate::url::{Scheme, Url};
use crate::{runtime, Error};

pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type WriteHalf = Box<dyn WriteStream>;

/// The write half of a connection: an `AsyncWrite` for the link's writer
/// task, plus an optional capability to write without blocking from any
/// thread (no async context), which lets a sender skip the hop to the writer
/// task. Streams that cannot (TLS, WebSocket: their bytes pass through
/// state that only the writer task may drive) keep the default, and every
/// frame for them goes through the writer task.
pub(crate) trait WriteStream: AsyncWrite + Send + Unpin {
    /// Writes as much of `bufs` as the socket takes now, in order, never
    /// blocking: `None` when this stream has no such path, otherwise what
    /// `try_write_vectored` returns (`WouldBlock` when it takes nothing).
    fn try_write_now(&self, bufs: &[IoSlice<'_>]) -> Option<io::Result<usize>> {
        let _ = bufs;
        None
    }
}

impl WriteStream for tcp::OwnedWriteHalf {
    fn try_write_now(&self, bufs: &[IoSlice<'_>]) -> Option<io::Result<usize>> {
        Some(self.try_write_vectored(bufs))
    }
}

impl WriteStream for unix::OwnedWriteHalf {
    fn try_write_now(&self, bufs: &[IoSlice<'_>]) -> Option<io::Result<usize>> {
        Some(self.try_write_vectored(bufs))
    }
}

/// In-memory pipe of the unit tests: a stream without the direct path.
#[cfg(test)]
impl WriteStream for tokio::io::DuplexStream {}

pub(crate) struct Connection {
    pub read: ReadHalf,
    pub write: WriteHalf,
    pub peer: String,
}

fn from_tcp(stream: TcpStream, peer: String) -> Connection {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    Connection {
        read: Box::new(read),
        write: Box::new(write),
        peer,
    }
}

fn from_unix(stream: UnixStream, peer: String) -> Connection {
    let (read, write) = stream.into_split();
    Connection {
        read: Box::new(read),
        write: Box::new(write),
        peer,
    }
}

pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        url: String,
        path: Option<PathBuf>,
    },
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix {
            path: Some(path), ..
        } = self
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listener {
    pub async fn accept(&self) -> io::Result<Connection> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok(from_tcp(stream, peer.to_string()))
            }
            Listener::Unix { listener, url, .. } => {
                let (stream, _) = listener.accept().await?;
                Ok(from_unix(stream, url.clone()))
            }
        }
    }
}

fn io_error(action: &str, url: &Url, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => &text,
    };
    Error::Io(format!("cannot {action} {url}: {text}"))
}

fn resolve(url: &Url) -> Result<Vec<SocketAddr>, Error> {
    let host = if url.host == "*" {
        "0.0.0.0"
    } else {
        url.host.as_str()
    };
    let addrs: Vec<SocketAddr> = (host, url.port)
        .to_socket_addrs()
        .map_err(|e| io_error("resolve", url, e))?
        .collect();
    if addrs.is_empty() {
        return Err(io_error("resolve", url, "no addresses"));
    }
    Ok(addrs)
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

fn bind_unix_path(url: &Url) -> Result<UnixListener, Error> {
    match UnixListener::bind(&url.path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            if std::os::unix::net::UnixStream::connect(&url.path).is_ok() {
                return Err(io_error("listen at", url, e));
            }
            let _ = std::fs::remove_file(&url.path);
            UnixListener::bind(&url.path).map_err(|e| io_error("listen at", url, e))
        }
        other => other.map_err(|e| io_error("listen at", url, e)),
    }
}

fn abstract_path(name: &str) -> String {
    format!("\0{name}")
}

/// Binds at once (so port 0 becomes a real port) and returns the listener
/// with the URL that reaches it.
pub(crate) fn listen(url: &Url) -> Result<(Listener, Url), Error> {
    url.require_supported()?;
    let _context = runtime().enter();
    match url.scheme {
        Scheme::Tcp => {
            let mut last_error = None;
            for addr in resolve(url)? {
                match bind_tcp(addr) {
                    Ok(listener) => {
                        let port = listener
                            .local_addr()
                            .map_err(|e| io_error("listen at", url, e))?
                            .port();
                        return Ok((Listener::Tcp(listener), url.with_port(port)));
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            Err(io_error(
                "listen at",
                url,
                last_error.map_or_else(|| "no address".to_string(), |e| e.to_string()),
            ))
        }
        Scheme::Ipc => {
            let listener = bind_unix_path(url)?;
            let unix = Listener::Unix {
                listener,
                url: url.to_string(),
                path: Some(PathBuf::from(&url.path)),
            };
            Ok((unix, url.clone()))
        }
        Scheme::Abstract => {
            let listener = UnixListener::bind(abstract_path(&url.path))
                .map_err(|e| io_error("listen at", url, e))?;
            let unix = Listener::Unix {
                listener,
                url: url.to_string(),
                path: None,
            };
            Ok((unix, url.clone()))
        }
        Scheme::Ws | Scheme::Wss | Scheme::TlsTcp => {
            Err(Error::Url(format!("{url}: not yet supported")))
        }
    }
}

/// One connection attempt. The error names the URL.
pub(crate) async fn dial(url: &Url) -> Result<Connection, Error> {
    url.require_supported()?;
    match url.scheme {
        Scheme::Tcp => {
            let host = if url.host == "*" {
                "127.0.0.1"
            } else {
                url.host.as_str()
            };
            let stream = TcpStream::connect((host, url.port))
                .await
                .map_err(|e| io_error("connect to", url, e))?;
            Ok(from_tcp(stream, url.to_string()))
        }
        Scheme::Ipc => {
            let stream = UnixStream::connect(&url.path)
                .await
                .map_err(|e| io_error("connect to", url, e))?;
            Ok(from_unix(stream, url.to_string()))
        }
        Scheme::Abstract => {
            let stream = UnixStream::connect(abstract_path(&url.path))
                .await
                .map_err(|e| io_error("connect to", url, e))?;
            Ok(from_unix(stream, url.to_string()))
        }
        Scheme::Ws | Scheme::Wss | Scheme::TlsTcp => {
            Err(Error::Url(format!("{url}: not yet supported")))
        }
    }
}
