//! The stream under the HTTP upgrade: tungstenite reads the upgrade's head
//! (request or response) through it, and never a byte past the head's
//! blank line. A peer may send frames right after it (a host speaks first,
//! as soon as its upgrade response is out), and tungstenite would read them
//! into a buffer that `into_inner` drops: kept here instead, they are the
//! first bytes the WebSocket reader gets.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::WebSocketStream;

use super::SUB_PROTOCOL;
use crate::transport::IoBox;

/// A WebSocket request path as routed: without a query, "/" when empty.
pub(crate) fn route_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

fn http_error(status: StatusCode, text: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(text));
    *response.status_mut() = status;
    response
}

/// The server's side of the HTTP upgrade on `io`: the request must be for
/// a path that `has_route` knows and offer NNG's sub-protocol. Returns the
/// path and the WebSocket, or why it failed.
pub(crate) async fn accept(
    io: IoBox,
    has_route: impl Fn(&str) -> bool,
) -> Result<(String, WebSocketStream<IoBox>), String> {
    let chosen = Mutex::new(String::new());
    // The callback's error type is tungstenite's (an HTTP response).
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        let path = route_path(request.uri().path());
        if !has_route(&path) {
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
            .any(|p| p.trim() == SUB_PROTOCOL);
        if !offered {
            return Err(http_error(
                StatusCode::BAD_REQUEST,
                format!("sub-protocol {SUB_PROTOCOL} required"),
            ));
        }
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUB_PROTOCOL),
        );
        *chosen.lock().unwrap_or_else(PoisonError::into_inner) = path;
        Ok(response)
    };
    let io: IoBox = Box::new(UpgradeStream::new(io));
    let stream = tokio_tungstenite::accept_hdr_async(io, callback)
        .await
        .map_err(|e| format!("WebSocket handshake failed: {e}"))?;
    let path = chosen.into_inner().unwrap_or_else(PoisonError::into_inner);
    Ok((path, stream))
}

const HEAD_END: &[u8; 4] = b"\r\n\r\n";
/// What one read from the socket takes while the head is being read.
const CHUNK: usize = 4096;

pub(crate) struct UpgradeStream<S> {
    inner: S,
    /// Bytes read from `inner` not yet handed out, from `pos` on.
    held: Vec<u8>,
    pos: usize,
    /// How many bytes of `HEAD_END` the bytes handed out so far end with.
    matched: usize,
    head_done: bool,
}

impl<S> UpgradeStream<S> {
    pub(crate) fn new(inner: S) -> UpgradeStream<S> {
        UpgradeStream {
            inner,
            held: Vec::new(),
            pos: 0,
            matched: 0,
            head_done: false,
        }
    }

    /// How many of `bytes` may be handed out: all once the head is done,
    /// else up to the end of the head.
    fn take_len(&mut self, bytes: &[u8]) -> usize {
        if self.head_done {
            return bytes.len();
        }
        for (i, &b) in bytes.iter().enumerate() {
            self.matched = if b == HEAD_END[self.matched] {
                self.matched + 1
            } else {
                usize::from(b == b'\r')
            };
            if self.matched == HEAD_END.len() {
                self.head_done = true;
                return i + 1;
            }
        }
        bytes.len()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for UpgradeStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos == this.held.len() {
            if this.head_done {
                this.held = Vec::new();
                this.pos = 0;
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            this.held.clear();
            this.pos = 0;
            this.held.extend_from_slice(read.filled());
            if this.held.is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
        let room = buf.remaining().min(this.held.len() - this.pos);
        let held = std::mem::take(&mut this.held);
        let n = this.take_len(&held[this.pos..this.pos + room]);
        buf.put_slice(&held[this.pos..this.pos + n]);
        this.held = held;
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for UpgradeStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on;
    use tokio::io::AsyncReadExt;

    #[test]
    fn the_head_is_handed_out_alone_and_what_follows_is_kept() {
        block_on(async {
            let sent = b"HTTP/1.1 101 Switching\r\nA: b\r\n\r\n\x82\x03abc".to_vec();
            let head_len = sent.len() - 5;
            for cut in [1, 2, 7, head_len - 1, head_len, sent.len()] {
                let (mut peer, ours) = tokio::io::duplex(64);
                let mut stream = UpgradeStream::new(ours);
                let bytes = sent.clone();
                let writing = tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    for part in bytes.chunks(cut) {
                        peer.write_all(part).await.unwrap();
                    }
                    peer
                });
                let mut head = Vec::new();
                let mut buf = [0u8; 256];
                while !stream.head_done {
                    let n = stream.read(&mut buf).await.unwrap();
                    head.extend_from_slice(&buf[..n]);
                }
                assert_eq!(head, &sent[..head_len], "cut {cut}");
                let mut rest = [0u8; 5];
                stream.read_exact(&mut rest).await.unwrap();
                assert_eq!(&rest, b"\x82\x03abc");
                drop(writing.await.unwrap());
            }
        });
    }
}
