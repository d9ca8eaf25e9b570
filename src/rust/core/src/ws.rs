//! NNG's WebSocket mapping of SP (sub-protocol `pair.sp.nanomsg.org`): no
//! 8-byte SP handshake, and each message is one binary WebSocket message.
//!
//! So that the links above see one kind of stream, a WebSocket is presented
//! as the byte stream of SP over TCP: `WsReader` yields the SP handshake,
//! then each binary message as its u64 big-endian length and its bytes;
//! `WsWriter` checks and drops the SP handshake written to it, then turns
//! each length-prefixed message into one binary WebSocket message. Pings are
//! answered by tungstenite; a text message, or one over the size limit set in
//! the `WebSocketConfig`, ends the stream with an error (the link is closed
//! and the reason logged).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::{self, Bytes, Message};
use tokio_tungstenite::WebSocketStream;

use crate::frame::SP_HEADER;

/// The sub-protocol name NNG's pair0 uses over WebSocket.
pub(crate) const SUB_PROTOCOL: &str = "pair.sp.nanomsg.org";

/// The WebSocket size limits for a receive limit of `max` bytes (0: none).
pub(crate) fn config(max: u64) -> tungstenite::protocol::WebSocketConfig {
    let limit = match max {
        0 => None,
        max => Some(usize::try_from(max).unwrap_or(usize::MAX)),
    };
    tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(limit)
        .max_frame_size(limit)
}

fn ws_error(e: tungstenite::Error) -> io::Error {
    use tungstenite::error::{CapacityError, ProtocolError};
    use tungstenite::Error as E;
    match e {
        E::Io(e) => e,
        E::ConnectionClosed | E::AlreadyClosed => io::ErrorKind::UnexpectedEof.into(),
        E::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            io::ErrorKind::UnexpectedEof.into()
        }
        E::Capacity(CapacityError::MessageTooLong { size, max_size }) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket message of {size} bytes exceeds limit of {max_size}"),
        ),
        other => io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {other}")),
    }
}

pub(crate) struct WsReader<S> {
    stream: SplitStream<WebSocketStream<S>>,
    /// Bytes of the synthesized SP handshake already read.
    handshake: usize,
    /// The message being read out: its length prefix, then its bytes.
    prefix: [u8; 8],
    current: Bytes,
    /// Position within prefix + current.
    pos: usize,
    done: bool,
}

pub(crate) struct WsWriter<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    /// Bytes of the SP handshake seen so far.
    handshake: usize,
    prefix: [u8; 8],
    prefix_len: usize,
    /// Bytes of the message body still expected.
    left: u64,
    body: Vec<u8>,
    /// A complete message the sink has not yet taken.
    pending: Option<Message>,
}

pub(crate) fn split<S>(ws: WebSocketStream<S>) -> (WsReader<S>, WsWriter<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (sink, stream) = futures_util::StreamExt::split(ws);
    (
        WsReader {
            stream,
            handshake: 0,
            prefix: [0; 8],
            current: Bytes::new(),
            pos: 8,
            done: false,
        },
        WsWriter {
            sink,
            handshake: 0,
            prefix: [0; 8],
            prefix_len: 0,
            left: 0,
            body: Vec::new(),
            pending: None,
        },
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsReader<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(rest) = SP_HEADER.get(this.handshake..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.handshake += n;
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.pos < 8 {
                let rest = &this.prefix[this.pos..];
                let n = rest.len().min(buf.remaining());
                buf.put_slice(&rest[..n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if let Some(rest) = this.current.get(this.pos - 8..).filter(|r| !r.is_empty()) {
                let n = rest.len().min(buf.remaining());
                buf.put_slice(&rest[..n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.stream).poll_next(cx)) {
                Some(Ok(Message::Binary(bytes))) => {
                    this.prefix = (bytes.len() as u64).to_be_bytes();
                    this.current = bytes;
                    this.pos = 0;
                }
                Some(Ok(Message::Text(_))) => {
                    this.done = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket text message received (messages must be binary)",
                    )));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => {
                    this.done = true;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => {
                    this.done = true;
                    let e = ws_error(e);
                    return Poll::Ready(if e.kind() == io::ErrorKind::UnexpectedEof {
                        Ok(())
                    } else {
                        Err(e)
                    });
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsWriter<S> {
    /// Hands a completed message to the sink.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_some() {
            ready!(Pin::new(&mut self.sink).poll_ready(cx)).map_err(ws_error)?;
            if let Some(message) = self.pending.take() {
                Pin::new(&mut self.sink)
                    .start_send(message)
                    .map_err(ws_error)?;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes what it can of `buf` into the message being built; returns how
    /// many bytes it took (0 only when a message is waiting for the sink).
    fn take(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut taken = 0;
        while taken < buf.len() && self.pending.is_none() {
            let rest = &buf[taken..];
            if self.handshake < SP_HEADER.len() {
                if rest[0] != SP_HEADER[self.handshake] {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "WebSocket link written to without the SP handshake",
                    ));
                }
                self.handshake += 1;
                taken += 1;
            } else if self.prefix_len < 8 {
                let n = (8 - self.prefix_len).min(rest.len());
                self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&rest[..n]);
                self.prefix_len += n;
                taken += n;
                if self.prefix_len == 8 {
                    self.left = u64::from_be_bytes(self.prefix);
                    let hint = usize::try_from(self.left).unwrap_or(usize::MAX);
                    self.body = Vec::with_capacity(hint.min(64 << 20));
                    if self.left == 0 {
                        self.finish();
                    }
                }
            } else {
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                self.body.extend_from_slice(&rest[..n]);
                self.left -= n as u64;
                taken += n;
                if self.left == 0 {
                    self.finish();
                }
            }
        }
        Ok(taken)
    }

    fn finish(&mut self) {
        let body = std::mem::take(&mut self.body);
        self.pending = Some(Message::Binary(Bytes::from(body)));
        self.prefix_len = 0;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsWriter<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_pending(cx))?;
        let taken = this.take(buf)?;
        // Start sending a message just completed; if the sink is busy, it
        // goes on the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.sink).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.sink).poll_close(cx).map_err(ws_error)
    }
}
