//! The writing half: the SP byte stream in, frames out.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use super::frames::{mask_for, put_header, Mask, OP_BINARY, OP_CLOSE, OP_PONG};
use super::Role;
use crate::frame::SP_HEADER;

/// What the writer gathers (headers, small or masked payloads) before it
/// writes; a large payload of a server goes straight to the socket.
const WRITE_CHUNK: usize = 16 * 1024;

/// The writing side, which the reader also uses to answer pings.
pub(super) struct WriteSide<W> {
    pub(super) inner: W,
    pub(super) role: Role,
    /// Bytes gathered to write, from `pos` on.
    pub(super) out: Vec<u8>,
    pub(super) pos: usize,
    /// Payload bytes of the data frame being written not yet taken: no
    /// control frame may go out before they have.
    pub(super) left: u64,
    /// The masking of the data frame being written (a client's).
    pub(super) mask: Option<Mask>,
    /// The payload of a ping to answer.
    pub(super) pong: Option<Vec<u8>>,
    pub(super) closed: bool,
    /// The writer returned `Pending`: its task waits to be woken when the
    /// socket takes more, and the reader must not write (tokio keeps one
    /// waker per direction, and the reader's would replace the writer's).
    pub(super) writer_waiting: bool,
}

pub(super) struct Shared<W> {
    pub(super) side: Mutex<WriteSide<W>>,
    /// Set while a pong waits or `out` holds one: the reader then helps
    /// writing it.
    pub(super) control: AtomicBool,
}

impl<W> Shared<W> {
    pub(super) fn new(inner: W, role: Role) -> Shared<W> {
        Shared {
            side: Mutex::new(WriteSide {
                inner,
                role,
                out: Vec::new(),
                pos: 0,
                left: 0,
                mask: None,
                pong: None,
                closed: false,
                writer_waiting: false,
            }),
            control: AtomicBool::new(false),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, WriteSide<W>> {
        self.side.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<W: AsyncWrite + Unpin> WriteSide<W> {
    fn pending(&self) -> usize {
        self.out.len() - self.pos
    }

    /// Writes what was gathered; `Pending` until the socket took it all.
    pub(super) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.out.clear();
        self.pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Gathers the pong owed, unless a data frame is half written.
    pub(super) fn gather_pong(&mut self) {
        if self.left > 0 || self.closed {
            return;
        }
        if let Some(mut payload) = self.pong.take() {
            let mut mask = mask_for(self.role);
            put_header(
                &mut self.out,
                OP_PONG,
                payload.len() as u64,
                mask.map(|m| m.key),
            );
            if let Some(mask) = &mut mask {
                mask.apply(&mut payload);
            }
            self.out.extend_from_slice(&payload);
        }
    }

    /// Gathers payload bytes of the current data frame (masked for a
    /// client); returns how many it took.
    fn gather(&mut self, bytes: &[u8]) -> usize {
        let room = 2 * WRITE_CHUNK - self.pending().min(WRITE_CHUNK);
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(bytes.len())
            .min(room);
        let start = self.out.len();
        self.out.extend_from_slice(&bytes[..n]);
        if let Some(mask) = &mut self.mask {
            mask.apply(&mut self.out[start..]);
        }
        self.took(n);
        n
    }

    fn took(&mut self, n: usize) {
        self.left -= n as u64;
        if self.left == 0 {
            self.gather_pong();
        }
    }
}

/// Writes SP messages (see the module's documentation) to a WebSocket.
pub(crate) struct WsWriter<S> {
    shared: Arc<Shared<tokio::io::WriteHalf<S>>>,
    /// Bytes of the SP handshake seen so far.
    handshake: usize,
    prefix: [u8; 8],
    prefix_len: usize,
}

impl<S> WsWriter<S> {
    pub(super) fn new(shared: Arc<Shared<tokio::io::WriteHalf<S>>>) -> WsWriter<S> {
        WsWriter {
            shared,
            handshake: 0,
            prefix: [0; 8],
            prefix_len: 0,
        }
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncWrite for WsWriter<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut side = shared.lock();
        side.writer_waiting = false;
        let mut taken = 0;
        let stalled = |side: &mut WriteSide<_>, taken: usize| {
            if taken > 0 {
                Poll::Ready(Ok(taken))
            } else {
                side.writer_waiting = true;
                Poll::Pending
            }
        };
        while taken < buf.len() {
            if side.pending() >= WRITE_CHUNK {
                match side.poll_drain(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return stalled(&mut side, taken),
                }
            }
            let rest = &buf[taken..];
            if this.handshake < SP_HEADER.len() {
                let n = (SP_HEADER.len() - this.handshake).min(rest.len());
                if rest[..n] != SP_HEADER[this.handshake..this.handshake + n] {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "WebSocket link written to without the SP handshake",
                    )));
                }
                this.handshake += n;
                taken += n;
            } else if side.left == 0 {
                let n = (8 - this.prefix_len).min(rest.len());
                this.prefix[this.prefix_len..this.prefix_len + n].copy_from_slice(&rest[..n]);
                this.prefix_len += n;
                taken += n;
                if this.prefix_len == 8 {
                    this.prefix_len = 0;
                    let len = u64::from_be_bytes(this.prefix);
                    let mask = mask_for(side.role);
                    put_header(&mut side.out, OP_BINARY, len, mask.map(|m| m.key));
                    side.mask = mask;
                    side.left = len;
                    if len == 0 {
                        side.gather_pong();
                    }
                }
            } else if side.mask.is_none() && rest.len() >= WRITE_CHUNK {
                // A large payload of a server: straight to the socket.
                match side.poll_drain(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return stalled(&mut side, taken),
                }
                let n = usize::try_from(side.left)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                match Pin::new(&mut side.inner).poll_write(cx, &rest[..n]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        side.took(n);
                        taken += n;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return stalled(&mut side, taken),
                }
            } else {
                taken += side.gather(rest);
            }
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut side = self.shared.lock();
        side.gather_pong();
        let flushed = match side.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut side.inner).poll_flush(cx),
            other => other,
        };
        side.writer_waiting = flushed.is_pending();
        if flushed.is_ready() && side.pong.is_none() {
            self.shared.control.store(false, Ordering::Relaxed);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut side = self.shared.lock();
        if side.left == 0 && !side.closed {
            side.gather_pong();
            let mask = mask_for(side.role);
            put_header(&mut side.out, OP_CLOSE, 0, mask.map(|m| m.key));
            side.closed = true;
        }
        let shut = match side.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut side.inner).poll_shutdown(cx),
            other => other,
        };
        side.writer_waiting = shut.is_pending();
        shut
    }
}
