//! The acceptors of TLS and WebSocket listeners. An acceptor is a task that
//! owns the TCP listener and runs each connection's TLS and HTTP upgrade
//! handshakes in a task of its own, bounded by the handshake timeout (so a
//! half-open peer delays nobody), then routes the connection by request path
//! to the `Route` of that URL: several WebSocket URLs on one host:port share
//! one TCP listener.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};

use crate::runtime::{log, runtime};
use crate::transport::{
    bind_tcp_url, from_tls, from_ws, tune_tcp, Connection, IoBox, ListenOptions,
};
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
    max_message_bytes: u64,
    timeout: Duration,
    /// Request path (tls+tcp: "") to the listener of that URL.
    routes: Mutex<HashMap<String, mpsc::UnboundedSender<Connection>>>,
    acceptor: Mutex<Option<AbortHandle>>,
}

/// A WebSocket request path as routed: without a query, "/" when empty.
fn route_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
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
    // The callback's error type is tungstenite's (an HTTP response).
    #[allow(clippy::result_large_err)]
    async fn upgrade(&self, stream: TcpStream) -> Result<(String, Connection), String> {
        tune_tcp(&stream);
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "unknown peer".to_string(), |a| a.to_string());
        let io: IoBox = match (&self.tls, self.upgrade) {
            (Some(acceptor), Upgrade::Tls | Upgrade::Wss) => {
                let tls = acceptor
                    .accept(stream)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                if self.upgrade == Upgrade::Tls {
                    return Ok((String::new(), from_tls(tls, peer)));
                }
                Box::new(tls)
            }
            _ => Box::new(stream),
        };
        let chosen = Mutex::new(String::new());
        let callback = |request: &Request, mut response: Response| {
            let path = route_path(request.uri().path());
            if !self.has_route(&path) {
                return Err(http_error(
                    StatusCode::NOT_FOUND,
                    format!("no listener at {path}"),
                ));
            }
            let offered = request
                .headers()
                .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|p| p.trim() == ws::SUB_PROTOCOL);
            if !offered {
                return Err(http_error(
                    StatusCode::BAD_REQUEST,
                    format!("sub-protocol {} required", ws::SUB_PROTOCOL),
                ));
            }
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(ws::SUB_PROTOCOL),
            );
            *chosen.lock().unwrap_or_else(PoisonError::into_inner) = path;
            Ok(response)
        };
        let stream = tokio_tungstenite::accept_hdr_async_with_config(
            io,
            callback,
            Some(ws::config(self.max_message_bytes)),
        )
        .await
        .map_err(|e| format!("WebSocket handshake failed: {e}"))?;
        let path = chosen.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok((path, from_ws(stream, peer)))
    }
}

fn http_error(status: StatusCode, text: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(text));
    *response.status_mut() = status;
    response
}

async fn run_acceptor(router: Arc<Router>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let router = router.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(router.timeout, router.upgrade(stream)).await {
                        Ok(Ok((path, connection))) => router.deliver(&path, connection),
                        Ok(Err(why)) => log(format_args!("closed connection from {peer}: {why}")),
                        Err(_) => log(format_args!(
                            "closed connection from {peer}: no TLS or WebSocket handshake within {:?}",
                            router.timeout
                        )),
                    }
                });
            }
            Err(e) => {
                log(format_args!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
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
            _ => route_path(&url.path),
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
                    max_message_bytes: opts.max_message_bytes,
                    timeout: opts.handshake_timeout,
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
