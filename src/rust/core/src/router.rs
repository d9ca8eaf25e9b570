//! The acceptors of TLS and WebSocket listeners. An acceptor is a task that
//! owns the TCP listener and runs each connection's TLS and HTTP upgrade
//! handshakes in a task of its own, bounded by the handshake timeout (so a
//! half-open peer delays nobody), then routes the connection by request path
//! to the `Route` of that URL: several WebSocket URLs on one host:port share
//! one TCP listener.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

use crate::admission::{accept_failed_line, Admission, Throttled, ACCEPT_PAUSE};
use crate::runtime::runtime;
use crate::socket::tune_tcp;
use crate::transport::{bind_tcp_url, from_tls, from_ws, Connection, IoBox, ListenOptions};
use crate::url::{Scheme, Url};
use crate::{ws, Error};

/// One URL's share of an acceptor: the connections routed to its path.
pub(crate) struct Route {
    incoming: tokio::sync::Mutex<mpsc::UnboundedReceiver<Connection>>,
    router: Arc<Router>,
    path: String,
}

impl Route {
    /// The next connection upgraded for this URL.
    pub(crate) async fn accept(&self) -> io::Result<Connection> {
        self.incoming
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the acceptor has stopped"))
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        let mut routes = self
            .router
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        routes.remove(&self.path);
        if routes.is_empty() {
            drop(routes);
            if let Some(acceptor) = self
                .router
                .acceptor
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                acceptor.abort();
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    Tls,
    Ws,
    Wss,
}

/// What an acceptor needs to upgrade and route its connections.
struct Router {
    upgrade: Upgrade,
    tls: Option<TlsAcceptor>,
    timeout: Duration,
    admission: Arc<Admission>,
    /// Request path (tls+tcp: "") to the listener of that URL.
    routes: Mutex<HashMap<String, mpsc::UnboundedSender<Connection>>>,
    acceptor: Mutex<Option<AbortHandle>>,
}

impl Router {
    fn has_route(&self, path: &str) -> bool {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(path)
    }

    fn deliver(&self, path: &str, connection: Connection) {
        let sender = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned();
        if let Some(sender) = sender {
            let _ = sender.send(connection);
        }
    }

    /// TLS and/or WebSocket handshakes of one accepted socket.
    async fn upgrade(&self, stream: TcpStream) -> Result<(String, Connection), String> {
        tune_tcp(&stream);
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "unknown peer".to_string(), |a| a.to_string());
        let socket = stream.as_raw_fd();
        let io: IoBox = match (&self.tls, self.upgrade) {
            (Some(acceptor), Upgrade::Tls | Upgrade::Wss) => {
                let tls = acceptor
                    .accept(stream)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                if self.upgrade == Upgrade::Tls {
                    return Ok((String::new(), from_tls(tls, socket, peer)));
                }
                Box::new(tls)
            }
            _ => Box::new(stream),
        };
        let (path, stream) = ws::accept(io, |path| self.has_route(path)).await?;
        Ok((path, from_ws(stream, ws::Role::Server, socket, peer)))
    }
}

async fn run_acceptor(router: Arc<Router>, listener: TcpListener) {
    let failures = Throttled::new(accept_failed_line);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(admitted) = router.admission.try_admit() else {
                    continue;
                };
                let router = router.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(router.timeout, router.upgrade(stream)).await {
                        Ok(Ok((path, mut connection))) => {
                            connection.admitted = Some(admitted);
                            router.deliver(&path, connection);
                        }
                        Ok(Err(why)) => router
                            .admission
                            .closed_in_greeting(format!("closed connection from {peer}: {why}")),
                        Err(_) => router.admission.closed_in_greeting(format!(
                            "closed connection from {peer}: no TLS or WebSocket handshake within {:?}",
                            router.timeout
                        )),
                    }
                });
            }
            Err(e) => {
                failures.note(e.to_string());
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// Scheme, host and port asked for: WebSocket URLs alike in these share a
/// TCP listener.
type PortKey = (Scheme, String, u16);

/// The acceptors started for the URLs of one host, with the real port of
/// each.
#[derive(Default)]
pub(crate) struct Acceptors(Vec<(PortKey, Arc<Router>, u16)>);

impl Acceptors {
    /// Binds a `tls+tcp://`, `ws://` or `wss://` URL, or adds its path to
    /// the acceptor of a WebSocket URL of the same scheme, host and port
    /// (port 0 included); returns its route with the URL that reaches it.
    pub(crate) fn route(
        &mut self,
        url: &Url,
        opts: &ListenOptions<'_>,
    ) -> Result<(Route, Url), Error> {
        let upgrade = match url.scheme {
            Scheme::TlsTcp => Upgrade::Tls,
            Scheme::Ws => Upgrade::Ws,
            _ => Upgrade::Wss,
        };
        let tls = match (upgrade, opts.tls) {
            (Upgrade::Ws, _) => None,
            (_, Some(tls)) => Some(TlsAcceptor::from(tls.config.clone())),
            (_, None) => {
                return Err(Error::Url(format!(
                    "{url}: a TLS URL needs a TLS configuration (certificate and key)"
                )))
            }
        };
        let path = match upgrade {
            Upgrade::Tls => String::new(),
            _ => ws::route_path(&url.path),
        };
        let key = (url.scheme, url.host.clone(), url.port);
        let found = self
            .0
            .iter()
            .find(|(k, _, _)| upgrade != Upgrade::Tls && *k == key)
            .map(|(_, router, port)| (router.clone(), *port));
        let (router, port) = match found {
            Some(found) => found,
            None => {
                let (tcp, port) = bind_tcp_url(url)?;
                let router = Arc::new(Router {
                    upgrade,
                    tls,
                    timeout: opts.handshake_timeout,
                    admission: opts.admission.clone(),
                    routes: Mutex::new(HashMap::new()),
                    acceptor: Mutex::new(None),
                });
                let acceptor = runtime().spawn(run_acceptor(router.clone(), tcp));
                *router
                    .acceptor
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(acceptor.abort_handle());
                self.0.push((key, router.clone(), port));
                (router, port)
            }
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        {
            let mut routes = router.routes.lock().unwrap_or_else(PoisonError::into_inner);
            if routes.contains_key(&path) {
                return Err(Error::Url(format!(
                    "{url}: another URL already listens at path {path}"
                )));
            }
            routes.insert(path.clone(), sender);
        }
        let route = Route {
            incoming: tokio::sync::Mutex::new(receiver),
            router,
            path,
        };
        Ok((route, url.with_port(port)))
    }
}
