//! The reading half: frames in, the SP byte stream out.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frames::{
    invalid, parse_header, truncated, FrameHeader, Mask, CONTROL_MAX, OP_BINARY, OP_CLOSE,
    OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};
use super::writer::{Shared, WriteSide};
use super::{MessageLimit, Role};
use crate::frame::SP_HEADER;

/// What the reader takes from the socket at a time (headers and small
/// payloads; a large payload is read straight into its destination).
const READ_BUFFER: usize = 16 * 1024;

/// Reads SP messages (see the module's documentation) from a WebSocket.
pub(crate) struct WsReader<S> {
    inner: tokio::io::ReadHalf<S>,
    shared: Arc<Shared<tokio::io::WriteHalf<S>>>,
    role: Role,
    limit: MessageLimit,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes of the synthesized SP handshake already handed out.
    handshake: usize,
    state: ReadState,
    /// The fragments of a message in several frames, gathered so far.
    partial: Option<Vec<u8>>,
}

enum ReadState {
    /// Between frames.
    Header,
    /// Handing out a message's u64 length, then its body.
    Prefix {
        bytes: [u8; 8],
        pos: usize,
        body: Body,
    },
    Body(Body),
    /// Reading a fragment into `WsReader::partial`; `fin` for the last.
    Fragment {
        left: u64,
        mask: Option<Mask>,
        fin: bool,
    },
    /// Reading a ping's or a pong's payload.
    Control {
        opcode: u8,
        left: u64,
        mask: Option<Mask>,
        data: Vec<u8>,
    },
    Ended,
}

enum Body {
    /// A message in one frame, handed out as it arrives.
    Stream { left: u64, mask: Option<Mask> },
    /// A message gathered from several frames.
    Gathered { data: Vec<u8>, pos: usize },
}

impl<S: AsyncRead + AsyncWrite> WsReader<S> {
    pub(super) fn new(
        inner: tokio::io::ReadHalf<S>,
        shared: Arc<Shared<tokio::io::WriteHalf<S>>>,
        role: Role,
        limit: MessageLimit,
    ) -> WsReader<S> {
        WsReader {
            inner,
            shared,
            role,
            limit,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            handshake: 0,
            state: ReadState::Header,
            partial: None,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let mut read = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.end += n;
        Poll::Ready(Ok(n))
    }

    /// Moves up to `left` payload bytes (at least one, or fails at end of
    /// stream) from the socket into `into`, unmasking them.
    fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        left: &mut u64,
        mask: &mut Option<Mask>,
        into: &mut Vec<u8>,
    ) -> Poll<io::Result<()>> {
        if self.start == self.end && ready!(self.poll_fill(cx))? == 0 {
            return Poll::Ready(Err(truncated()));
        }
        let n = usize::try_from(*left)
            .unwrap_or(usize::MAX)
            .min(self.end - self.start);
        let from = into.len();
        into.extend_from_slice(&self.buf[self.start..self.start + n]);
        if let Some(mask) = mask {
            mask.apply(&mut into[from..]);
        }
        self.start += n;
        *left -= n as u64;
        Poll::Ready(Ok(()))
    }

    /// Hands out up to `left` bytes of a message in one frame, from the
    /// buffer or, when it is empty, straight from the socket.
    fn poll_stream(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
        left: &mut u64,
        mask: &mut Option<Mask>,
    ) -> Poll<io::Result<()>> {
        let want = usize::try_from(*left)
            .unwrap_or(usize::MAX)
            .min(out.remaining());
        let n = if self.start < self.end {
            let n = want.min(self.end - self.start);
            let from = out.filled().len();
            out.put_slice(&self.buf[self.start..self.start + n]);
            if let Some(mask) = mask {
                mask.apply(&mut out.filled_mut()[from..]);
            }
            self.start += n;
            n
        } else {
            let mut direct = out.take(want);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut direct))?;
            let n = direct.filled().len();
            if let Some(mask) = mask {
                mask.apply(direct.filled_mut());
            }
            // SAFETY: the inner read initialized and filled these `n`
            // bytes of `out`'s unfilled part (`take` shares its memory).
            unsafe {
                out.assume_init(n);
            }
            out.advance(n);
            n
        };
        if n == 0 {
            return Poll::Ready(Err(truncated()));
        }
        *left -= n as u64;
        Poll::Ready(Ok(()))
    }

    /// What the frame whose header was just read starts.
    fn on_header(&mut self, header: FrameHeader) -> io::Result<ReadState> {
        match (self.role, header.mask) {
            (Role::Server, None) => return Err(invalid("unmasked frame from a WebSocket client")),
            (Role::Client, Some(_)) => return Err(invalid("masked frame from a WebSocket server")),
            _ => {}
        }
        let mask = header.mask.map(|key| Mask { key, at: 0 });
        let len = header.len;
        match header.opcode {
            OP_BINARY | OP_CONTINUATION => {
                let continuation = header.opcode == OP_CONTINUATION;
                if continuation != self.partial.is_some() {
                    return Err(invalid(if continuation {
                        "WebSocket continuation frame outside a message"
                    } else {
                        "WebSocket message begun inside another"
                    }));
                }
                if !continuation && header.fin {
                    return Ok(ReadState::Prefix {
                        bytes: len.to_be_bytes(),
                        pos: 0,
                        body: Body::Stream { left: len, mask },
                    });
                }
                let partial = self.partial.get_or_insert_with(Vec::new);
                let total = (partial.len() as u64).saturating_add(len);
                if !self.limit.allows(total) {
                    return Err(invalid(format!(
                        "WebSocket message of at least {total} bytes exceeds the limit"
                    )));
                }
                usize::try_from(len)
                    .ok()
                    .and_then(|len| partial.try_reserve(len).ok())
                    .ok_or_else(|| invalid(format!("cannot allocate {len} bytes for a message")))?;
                Ok(ReadState::Fragment {
                    left: len,
                    mask,
                    fin: header.fin,
                })
            }
            OP_TEXT => Err(invalid(
                "WebSocket text message received (messages must be binary)",
            )),
            OP_CLOSE => Ok(ReadState::Ended),
            OP_PING | OP_PONG if header.fin && len <= CONTROL_MAX => Ok(ReadState::Control {
                opcode: header.opcode,
                left: len,
                mask,
                data: Vec::new(),
            }),
            OP_PING | OP_PONG => Err(invalid("fragmented or oversized WebSocket control frame")),
            other => Err(invalid(format!(
                "WebSocket frame with unknown opcode {other}"
            ))),
        }
    }

    /// Owes the peer a pong (replacing an older one not yet sent).
    fn answer_ping(&mut self, payload: Vec<u8>, cx: &mut Context<'_>) {
        let mut side = self.shared.lock();
        side.pong = Some(payload);
        self.shared.control.store(true, Ordering::Relaxed);
        self.help_write(&mut side, cx);
    }

    /// Writes the pong owed on the writer's behalf (the writer may be
    /// idle), unless the writer is waiting on the socket: it writes it
    /// then. An error is the writer's to report.
    fn help_write(&self, side: &mut WriteSide<tokio::io::WriteHalf<S>>, cx: &mut Context<'_>) {
        side.gather_pong();
        if side.pong.is_some() || side.writer_waiting {
            return;
        }
        if side.poll_drain(cx).is_ready() {
            self.shared.control.store(false, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncRead for WsReader<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.shared.control.load(Ordering::Relaxed) {
            let shared = this.shared.clone();
            this.help_write(&mut shared.lock(), cx);
        }
        if let Some(rest) = SP_HEADER.get(this.handshake..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(out.remaining());
            out.put_slice(&rest[..n]);
            this.handshake += n;
            return Poll::Ready(Ok(()));
        }
        loop {
            match std::mem::replace(&mut this.state, ReadState::Ended) {
                ReadState::Ended => return Poll::Ready(Ok(())),
                ReadState::Prefix {
                    bytes,
                    mut pos,
                    body,
                } => {
                    let n = (8 - pos).min(out.remaining());
                    out.put_slice(&bytes[pos..pos + n]);
                    pos += n;
                    this.state = if pos == 8 {
                        ReadState::Body(body)
                    } else {
                        ReadState::Prefix { bytes, pos, body }
                    };
                    return Poll::Ready(Ok(()));
                }
                ReadState::Body(Body::Gathered { data, mut pos }) => {
                    if pos == data.len() {
                        this.state = ReadState::Header;
                        continue;
                    }
                    let n = (data.len() - pos).min(out.remaining());
                    out.put_slice(&data[pos..pos + n]);
                    pos += n;
                    this.state = if pos == data.len() {
                        ReadState::Header
                    } else {
                        ReadState::Body(Body::Gathered { data, pos })
                    };
                    return Poll::Ready(Ok(()));
                }
                ReadState::Body(Body::Stream { mut left, mut mask }) => {
                    if left == 0 {
                        this.state = ReadState::Header;
                        continue;
                    }
                    let polled = this.poll_stream(cx, out, &mut left, &mut mask);
                    this.state = ReadState::Body(Body::Stream { left, mask });
                    return polled;
                }
                ReadState::Header => {
                    this.state = ReadState::Header;
                    match parse_header(this.buffered())? {
                        Some((header, used)) => {
                            this.start += used;
                            this.state = this.on_header(header)?;
                        }
                        None => {
                            let at_boundary = this.start == this.end && this.partial.is_none();
                            if ready!(this.poll_fill(cx))? == 0 {
                                if at_boundary {
                                    this.state = ReadState::Ended;
                                    return Poll::Ready(Ok(()));
                                }
                                return Poll::Ready(Err(truncated()));
                            }
                        }
                    }
                }
                ReadState::Fragment {
                    mut left,
                    mut mask,
                    fin,
                } => {
                    if left == 0 {
                        this.state = match (fin, this.partial.take()) {
                            (true, Some(data)) => ReadState::Prefix {
                                bytes: (data.len() as u64).to_be_bytes(),
                                pos: 0,
                                body: Body::Gathered { data, pos: 0 },
                            },
                            (_, partial) => {
                                this.partial = partial;
                                ReadState::Header
                            }
                        };
                        continue;
                    }
                    let mut partial = this.partial.take().unwrap_or_default();
                    let polled = this.poll_take(cx, &mut left, &mut mask, &mut partial);
                    this.partial = Some(partial);
                    this.state = ReadState::Fragment { left, mask, fin };
                    ready!(polled)?;
                }
                ReadState::Control {
                    opcode,
                    mut left,
                    mut mask,
                    mut data,
                } => {
                    if left == 0 {
                        this.state = ReadState::Header;
                        if opcode == OP_PING {
                            this.answer_ping(data, cx);
                        }
                        continue;
                    }
                    let polled = this.poll_take(cx, &mut left, &mut mask, &mut data);
                    this.state = ReadState::Control {
                        opcode,
                        left,
                        mask,
                        data,
                    };
                    ready!(polled)?;
                }
            }
        }
    }
}
