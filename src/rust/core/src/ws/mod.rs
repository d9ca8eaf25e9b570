//! NNG's WebSocket mapping of SP (sub-protocol `pair.sp.nanomsg.org`): no
//! 8-byte SP handshake, and each message is one binary WebSocket message.
//!
//! tungstenite makes the HTTP upgrade (see `router` and `transport`); the
//! frames are read and written here. So that the links above see one kind
//! of stream, a WebSocket is presented as the byte stream of SP over TCP:
//! `WsReader` yields the SP handshake, then each binary message as its u64
//! big-endian length and its bytes; `WsWriter` checks and drops the SP
//! handshake written to it, then sends each length-prefixed message as one
//! final binary frame.
//!
//! Memory: a message in one frame passes through as it arrives, its length
//! first, which the frame reader above checks against its limit before
//! anything is allocated. Only a message in several frames is gathered
//! here, up to the connection's `MessageLimit` (small until the peer is
//! welcomed). A ping is answered with a pong between two data frames; a
//! close frame ends the stream; a text frame, a frame that breaks the
//! protocol, or a gathered message over the limit is an error (the link is
//! closed and the reason logged).

mod frames;
mod reader;
#[cfg(test)]
mod tests;
mod upgrade;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) use self::reader::WsReader;
pub(crate) use self::upgrade::{accept, route_path, UpgradeStream};
use self::writer::Shared;
pub(crate) use self::writer::WsWriter;

/// The sub-protocol name NNG's pair0 uses over WebSocket.
pub(crate) const SUB_PROTOCOL: &str = "pair.sp.nanomsg.org";

/// Which end of the upgrade this is: a client masks what it sends, and a
/// server requires it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

/// The largest message a `WsReader` gathers from several frames; 0 means
/// no bound. Shared, so that the greeting can raise it once the peer is
/// welcomed.
#[derive(Debug, Clone)]
pub(crate) struct MessageLimit(Arc<AtomicU64>);

impl MessageLimit {
    pub(crate) fn new(max: u64) -> MessageLimit {
        MessageLimit(Arc::new(AtomicU64::new(max)))
    }

    pub(crate) fn set(&self, max: u64) {
        self.0.store(max, Ordering::Relaxed);
    }

    fn allows(&self, len: u64) -> bool {
        let max = self.0.load(Ordering::Relaxed);
        max == 0 || len <= max
    }
}

/// Reads SP messages from, and writes them to, the WebSocket `io` (the
/// HTTP upgrade done), as `role`; messages in several frames are gathered
/// up to `limit`.
pub(crate) fn split<S>(io: S, role: Role, limit: MessageLimit) -> (WsReader<S>, WsWriter<S>)
where
    S: AsyncRead + AsyncWrite,
{
    let (read, write) = tokio::io::split(io);
    let shared = Arc::new(Shared::new(write, role));
    (
        WsReader::new(read, shared.clone(), role, limit),
        WsWriter::new(shared),
    )
}
