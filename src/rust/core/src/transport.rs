//! Listening and dialling for every transport. A connection is handed on as
//! boxed read and write halves carrying SP over a byte stream: tcp, ipc and
//! abstract sockets directly, `tls+tcp://` through rustls, and `ws://` /
//! `wss://` through the adapters of `ws` (which present NNG's WebSocket
//! mapping as that same byte stream).
//!
//! A plain listener's `accept` hands over the socket at once; a TLS or
//! WebSocket listener's, the connections its acceptor (see `router`) has
//! upgraded and routed to its URL.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::{tcp, unix, TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::admission::{Admission, Admitted};
use crate::frame::{FrameReader, FrameWriter, Framing};
use crate::interfaces::listen_addresses;
use crate::message::GREETING_MAX_BYTES;
use crate::router::{Acceptors, Route};
use crate::runtime::runtime;
use crate::socket::{set_option, size_buffers, tune_tcp};
use crate::tls::{TlsClientConfig, TlsServerConfig};
use crate::url::{Scheme, Url};
use crate::{ws, Error};

/// How long a dialled TLS or WebSocket handshake may take.
const DIAL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
        let stream: &TcpStream = self.as_ref();
        Some(stream.try_io(Interest::WRITABLE, || {
            send_vectored(stream.as_raw_fd(), bufs)
        }))
    }
}

impl WriteStream for unix::OwnedWriteHalf {
    fn try_write_now(&self, bufs: &[IoSlice<'_>]) -> Option<io::Result<usize>> {
        let stream: &UnixStream = self.as_ref();
        Some(stream.try_io(Interest::WRITABLE, || {
            send_vectored(stream.as_raw_fd(), bufs)
        }))
    }
}

#[cfg(not(target_vendor = "apple"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
/// (macOS has no MSG_NOSIGNAL: `tune_tcp` sets SO_NOSIGPIPE instead, for
/// TCP; Unix sockets there are not covered.)
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

/// `writev` on a socket, without SIGPIPE when the peer has gone (an
/// `EPIPE` error instead). Direct writes run on R's thread, where R's
/// handler would turn SIGPIPE into an R error, a `longjmp` through Rust
/// frames holding locks.
fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix, and the
    // message header points only at `bufs`, which outlives the call.
    let sent = unsafe {
        let mut header: libc::msghdr = std::mem::zeroed();
        header.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        header.msg_iovlen = bufs.len() as _;
        libc::sendmsg(fd, &header, SEND_FLAGS)
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// In-memory pipe of the unit tests: a stream without the direct path.
#[cfg(test)]
impl WriteStream for tokio::io::DuplexStream {}

/// TLS streams: every frame goes through the writer task.
impl<T: AsyncRead + AsyncWrite + Send> WriteStream for tokio::io::WriteHalf<T> {}

/// WebSocket: every frame goes through the writer task.
impl<S: AsyncRead + AsyncWrite + Send> WriteStream for ws::WsWriter<S> {}

/// Any byte stream under TLS or WebSocket.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
pub(crate) type IoBox = Box<dyn Io>;

pub(crate) struct Connection {
    pub read: ReadHalf,
    pub write: WriteHalf,
    pub peer: String,
    pub framing: Framing,
    /// A WebSocket's bound on messages it gathers from several frames:
    /// `GREETING_MAX_BYTES` until the greeting raises it.
    pub message_limit: Option<ws::MessageLimit>,
    /// An accepted connection's place among those in their greeting.
    pub admitted: Option<Admitted>,
    /// The TCP socket underneath (tcp, tls+tcp, ws, wss), for
    /// `liveness::set_liveness`; open while the halves are.
    pub socket: Option<RawFd>,
}

/// A connection with its halves framed (see `Connection::framed`).
pub(crate) struct Framed {
    pub reader: FrameReader<ReadHalf>,
    pub writer: FrameWriter<WriteHalf>,
    pub peer: String,
    pub message_limit: Option<ws::MessageLimit>,
    pub admitted: Option<Admitted>,
    pub socket: Option<RawFd>,
}

impl Connection {
    /// The halves as frame reader and writer, with the rest as it was.
    pub(crate) fn framed(self) -> Framed {
        Framed {
            reader: FrameReader::new(self.read, self.framing),
            writer: FrameWriter::new(self.write, self.framing),
            peer: self.peer,
            message_limit: self.message_limit,
            admitted: self.admitted,
            socket: self.socket,
        }
    }
}

fn from_tcp(stream: TcpStream, peer: String) -> Connection {
    tune_tcp(&stream);
    let socket = Some(stream.as_raw_fd());
    let (read, write) = stream.into_split();
    Connection {
        read: Box::new(read),
        write: Box::new(write),
        peer,
        framing: Framing::Stream,
        message_limit: None,
        admitted: None,
        socket,
    }
}

fn from_unix(stream: UnixStream, peer: String) -> Connection {
    size_buffers(stream.as_raw_fd(), &[libc::SO_SNDBUF, libc::SO_RCVBUF]);
    let (read, write) = stream.into_split();
    Connection {
        read: Box::new(read),
        write: Box::new(write),
        peer,
        framing: Framing::Ipc,
        message_limit: None,
        admitted: None,
        socket: None,
    }
}

pub(crate) fn from_tls<T: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
    stream: T,
    socket: RawFd,
    peer: String,
) -> Connection {
    let (read, write) = tokio::io::split(stream);
    Connection {
        read: Box::new(read),
        write: Box::new(write),
        peer,
        framing: Framing::Stream,
        message_limit: None,
        admitted: None,
        socket: Some(socket),
    }
}

/// A connection over a WebSocket whose HTTP upgrade is done.
pub(crate) fn from_ws(
    stream: tokio_tungstenite::WebSocketStream<IoBox>,
    role: ws::Role,
    socket: RawFd,
    peer: String,
) -> Connection {
    let limit = ws::MessageLimit::new(GREETING_MAX_BYTES);
    // Read through an `UpgradeStream`, tungstenite holds no bytes past the
    // upgrade: only the stream is kept.
    let (read, write) = ws::split(stream.into_inner(), role, limit.clone());
    Connection {
        read: Box::new(read),
        write: Box::new(write),
        peer,
        framing: Framing::Stream,
        message_limit: Some(limit),
        admitted: None,
        socket: Some(socket),
    }
}

pub(crate) enum Listener {
    Tcp {
        listener: TcpListener,
        admission: Arc<Admission>,
    },
    Unix {
        listener: UnixListener,
        url: String,
        path: Option<PathBuf>,
        admission: Arc<Admission>,
    },
    /// Connections upgraded (TLS, WebSocket) by an acceptor task.
    Routed(Route),
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
    /// The next connection admitted to its greeting (see `Admission`);
    /// those beyond the bound are closed here, at once.
    pub async fn accept(&self) -> io::Result<Connection> {
        loop {
            let (mut connection, admission) = match self {
                Listener::Tcp {
                    listener,
                    admission,
                } => {
                    let (stream, peer) = listener.accept().await?;
                    (from_tcp(stream, peer.to_string()), admission)
                }
                Listener::Unix {
                    listener,
                    url,
                    admission,
                    ..
                } => {
                    let (stream, _) = listener.accept().await?;
                    (from_unix(stream, url.clone()), admission)
                }
                Listener::Routed(route) => return route.accept().await,
            };
            if let Some(admitted) = admission.try_admit() {
                connection.admitted = Some(admitted);
                return Ok(connection);
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

/// Binds `addr`; the IPv6 wildcard accepts IPv4 connections too.
fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED {
        set_option(socket.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
    }
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

pub(crate) fn bind_tcp_url(url: &Url) -> Result<(TcpListener, u16), Error> {
    let mut last_error = None;
    for addr in listen_addresses(url)? {
        match bind_tcp(addr) {
            Ok(listener) => {
                let port = listener
                    .local_addr()
                    .map_err(|e| io_error("listen at", url, e))?
                    .port();
                return Ok((listener, port));
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

/// What listening needs beyond the URLs.
pub(crate) struct ListenOptions<'a> {
    pub tls: Option<&'a TlsServerConfig>,
    /// Shared by every listener of a host.
    pub admission: &'a Arc<Admission>,
    /// Bound on a connection's TLS and WebSocket handshakes.
    pub handshake_timeout: Duration,
}

/// Binds every URL at once (so port 0 becomes a real port) and returns, in
/// the order of `urls`, each listener with the URL that reaches it.
/// WebSocket URLs with the same scheme, host and port (port 0 included)
/// share one TCP listener, each served at its own path.
pub(crate) fn listen_all(
    urls: &[Url],
    opts: &ListenOptions<'_>,
) -> Result<Vec<(Listener, Url)>, Error> {
    let _context = runtime().enter();
    let mut done = Vec::with_capacity(urls.len());
    let mut acceptors = Acceptors::default();
    for url in urls {
        url.require_supported()?;
        let listened = match url.scheme {
            Scheme::Tcp | Scheme::Ipc | Scheme::Abstract => listen(url, opts.admission)?,
            Scheme::TlsTcp | Scheme::Ws | Scheme::Wss => {
                let (route, url) = acceptors.route(url, opts)?;
                (Listener::Routed(route), url)
            }
        };
        done.push(listened);
    }
    Ok(done)
}

/// Binds a plain (tcp, ipc, abstract) URL at once and returns the listener
/// with the URL that reaches it.
fn listen(url: &Url, admission: &Arc<Admission>) -> Result<(Listener, Url), Error> {
    let _context = runtime().enter();
    match url.scheme {
        Scheme::Ipc => {
            let listener = bind_unix_path(url)?;
            let unix = Listener::Unix {
                listener,
                url: url.to_string(),
                path: Some(PathBuf::from(&url.path)),
                admission: admission.clone(),
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
                admission: admission.clone(),
            };
            Ok((unix, url.clone()))
        }
        _ => {
            let (listener, port) = bind_tcp_url(url)?;
            let tcp = Listener::Tcp {
                listener,
                admission: admission.clone(),
            };
            Ok((tcp, url.with_port(port)))
        }
    }
}

/// What dialling needs beyond the URL.
pub(crate) struct DialOptions<'a> {
    pub tls: Option<&'a TlsClientConfig>,
}

/// A failed TLS handshake: `Refused` when TLS itself said no (certificate
/// not trusted or not for this host, no common protocol), since trying
/// again cannot help; `Io` when the connection failed.
fn tls_failure(url: &Url, e: io::Error) -> Error {
    let text = format!("TLS handshake with {url} failed: {e}");
    let refused = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if refused {
        Error::Refused(text)
    } else {
        Error::Io(text)
    }
}

fn ws_failure(url: &Url, e: tungstenite::Error) -> Error {
    if let tungstenite::Error::Http(response) = &e {
        return Error::Io(format!(
            "WebSocket handshake with {url} failed: HTTP {}",
            response.status()
        ));
    }
    Error::Io(format!("WebSocket handshake with {url} failed: {e}"))
}

/// A failed connection attempt: `connected` once the connection was made
/// (its TLS or WebSocket handshake then failed). The error names the URL.
#[derive(Debug)]
pub(crate) struct DialFailure {
    pub connected: bool,
    pub error: Error,
}

/// One connection attempt, with its TLS and WebSocket handshakes.
pub(crate) async fn dial(url: &Url, opts: &DialOptions<'_>) -> Result<Connection, DialFailure> {
    let failed = |connected| move |error| DialFailure { connected, error };
    url.require_supported().map_err(failed(false))?;
    if url.host.is_empty() && !matches!(url.scheme, Scheme::Ipc | Scheme::Abstract) {
        return Err(failed(false)(Error::Url(format!(
            "{url}: missing host (an empty host listens on all interfaces, but there is nothing to dial)"
        ))));
    }
    let unix = |e| failed(false)(io_error("connect to", url, e));
    match url.scheme {
        Scheme::Tcp => {
            let tcp = connect_tcp(url).await.map_err(failed(false))?;
            Ok(from_tcp(tcp, url.to_string()))
        }
        Scheme::Ipc => {
            let stream = UnixStream::connect(&url.path).await.map_err(unix)?;
            Ok(from_unix(stream, url.to_string()))
        }
        Scheme::Abstract => {
            let stream = UnixStream::connect(abstract_path(&url.path))
                .await
                .map_err(unix)?;
            Ok(from_unix(stream, url.to_string()))
        }
        Scheme::Ws | Scheme::Wss | Scheme::TlsTcp => {
            let tls = match (url.scheme, opts.tls) {
                (Scheme::Ws, _) => None,
                (_, Some(tls)) => {
                    let name = ServerName::try_from(dial_host(url).to_string()).map_err(|e| {
                        failed(false)(Error::Url(format!("{url}: not a host name for TLS: {e}")))
                    })?;
                    Some((TlsConnector::from(tls.config.clone()), name))
                }
                (_, None) => {
                    return Err(failed(false)(Error::Url(format!(
                        "{url}: a TLS URL needs a TLS configuration (the CA certificate)"
                    ))))
                }
            };
            let tcp = connect_tcp(url).await.map_err(failed(false))?;
            match tokio::time::timeout(DIAL_HANDSHAKE_TIMEOUT, upgrade(url, tcp, tls)).await {
                Ok(result) => result.map_err(failed(true)),
                Err(_) => Err(failed(true)(Error::Io(format!(
                    "cannot connect to {url}: no handshake within {DIAL_HANDSHAKE_TIMEOUT:?}"
                )))),
            }
        }
    }
}

/// The TLS handshake (with `tls`), then the WebSocket upgrade (for ws://
/// and wss://), of a connection just made to `url`.
async fn upgrade(
    url: &Url,
    tcp: TcpStream,
    tls: Option<(TlsConnector, ServerName<'static>)>,
) -> Result<Connection, Error> {
    let socket = tcp.as_raw_fd();
    let io: IoBox = match tls {
        Some((connector, name)) => {
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| tls_failure(url, e))?;
            if url.scheme == Scheme::TlsTcp {
                return Ok(from_tls(tls, socket, url.to_string()));
            }
            Box::new(tls)
        }
        None => Box::new(tcp),
    };
    let mut request = ws_request_url(url)
        .into_client_request()
        .map_err(|e| ws_failure(url, e))?;
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(ws::SUB_PROTOCOL),
    );
    let io: IoBox = Box::new(ws::UpgradeStream::new(io));
    let (stream, _) = tokio_tungstenite::client_async(request, io)
        .await
        .map_err(|e| ws_failure(url, e))?;
    Ok(from_ws(stream, ws::Role::Client, socket, url.to_string()))
}

/// A wildcard host (empty, or `*`) is dialled at loopback.
fn dial_host(url: &Url) -> &str {
    if url.host.is_empty() || url.host == "*" {
        "127.0.0.1"
    } else {
        url.host.as_str()
    }
}

async fn connect_tcp(url: &Url) -> Result<TcpStream, Error> {
    let stream = TcpStream::connect((dial_host(url), url.port))
        .await
        .map_err(|e| io_error("connect to", url, e))?;
    tune_tcp(&stream);
    Ok(stream)
}

/// The URL of the HTTP upgrade request: ws:// or wss://, path "/" if none.
fn ws_request_url(url: &Url) -> String {
    let host = dial_host(url);
    let scheme = if url.scheme == Scheme::Wss {
        "wss"
    } else {
        "ws"
    };
    let path = if url.path.is_empty() { "/" } else { &url.path };
    if host.contains(':') {
        format!("{scheme}://[{host}]:{}{path}", url.port)
    } else {
        format!("{scheme}://{host}:{}{path}", url.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_host_listens_at_every_interface_for_ipv4_and_ipv6() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let url: Url = "tcp://:0".parse().unwrap();
            let (listener, port) = bind_tcp_url(&url).unwrap();
            let local = listener.local_addr().unwrap();
            assert!(local.ip().is_unspecified(), "{local}");
            for dialled in ["127.0.0.1", "[::1]"] {
                let stream = TcpStream::connect(format!("{dialled}:{port}")).await;
                assert!(stream.is_ok(), "{dialled}: {stream:?}");
                listener.accept().await.unwrap();
            }
        });
    }
}
