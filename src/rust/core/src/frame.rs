//! NNG SP framing over a byte stream: the 8-byte handshake, then messages as
//! a u64 big-endian length followed by that many bytes (header + payload).
//! Over ipc and abstract sockets NNG puts a message type byte (1) before
//! each length (`Framing::Ipc`).

use std::fmt;
use std::io;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};

use crate::message::{decode_header, encode_header, Message, Tag, HEADER_LEN};

/// Protocol pair0 (0x0010), big-endian, in NNG's SP header.
pub(crate) const SP_HEADER: [u8; 8] = [0x00, b'S', b'P', 0x00, 0x00, 0x10, 0x00, 0x00];

/// Each link's reader and writer hold a buffer this large for as long as the
/// link lives (with thousands of daemons, most of a link's memory); a
/// payload at least this large bypasses it.
const BUFFER_BYTES: usize = 16 * 1024;

/// How each message is delimited on a connection's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// tcp, tls+tcp, and WebSocket as `ws` presents it: the u64 length.
    Stream,
    /// ipc and abstract sockets: the message type byte, then the length.
    Ipc,
}

/// NNG's IPC message type of a user message.
const IPC_MESSAGE: u8 = 1;

/// What precedes a payload on the wire: (the IPC message type,) the u64
/// length, then the header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHead {
    bytes: [u8; 1 + 8 + HEADER_LEN],
    len: u8,
}

impl FrameHead {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }
}

pub(crate) fn frame_head(
    framing: Framing,
    tag: impl Into<Tag>,
    id: u64,
    payload_len: usize,
) -> FrameHead {
    let mut bytes = [0u8; 1 + 8 + HEADER_LEN];
    let at = match framing {
        Framing::Stream => 0,
        Framing::Ipc => {
            bytes[0] = IPC_MESSAGE;
            1
        }
    };
    bytes[at..at + 8].copy_from_slice(&((HEADER_LEN + payload_len) as u64).to_be_bytes());
    bytes[at + 8..at + 8 + HEADER_LEN].copy_from_slice(&encode_header(tag, id));
    FrameHead {
        bytes,
        len: (at + 8 + HEADER_LEN) as u8,
    }
}

#[derive(Debug)]
pub(crate) enum FrameError {
    Io(io::Error),
    Truncated,
    BadHandshake([u8; 8]),
    /// `id`: the message's task id, when its header could be read.
    TooLarge {
        len: u64,
        max: u64,
        id: Option<u64>,
    },
    TooShort(u64),
    BadHeader(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::Truncated => f.write_str("connection closed in the middle of a frame"),
            FrameError::BadHandshake(got) => {
                write!(f, "not an SP pair0 peer (handshake {got:02x?})")
            }
            FrameError::TooLarge { len, max, .. } => {
                write!(f, "frame of {len} bytes exceeds limit of {max}")
            }
            FrameError::TooShort(len) => {
                write!(f, "frame of {len} bytes is shorter than the message header")
            }
            FrameError::BadHeader(why) => f.write_str(why),
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> FrameError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    }
}

pub(crate) struct FrameReader<R> {
    inner: BufReader<R>,
    framing: Framing,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, framing: Framing) -> FrameReader<R> {
        FrameReader {
            inner: BufReader::with_capacity(BUFFER_BYTES, inner),
            framing,
        }
    }

    pub async fn read_handshake(&mut self) -> Result<(), FrameError> {
        let mut got = [0u8; 8];
        self.inner.read_exact(&mut got).await?;
        if got == SP_HEADER {
            Ok(())
        } else {
            Err(FrameError::BadHandshake(got))
        }
    }

    /// The next message, or `None` when the peer closed between frames.
    /// `max` bounds the body (header + payload); 0 means no bound.
    pub async fn read_message(&mut self, max: u64) -> Result<Option<Message>, FrameError> {
        if self.inner.fill_buf().await?.is_empty() {
            return Ok(None);
        }
        if self.framing == Framing::Ipc {
            let kind = self.inner.read_u8().await?;
            if kind != IPC_MESSAGE {
                return Err(FrameError::BadHeader(format!(
                    "IPC message type {kind} (expected {IPC_MESSAGE})"
                )));
            }
        }
        let len = self.inner.read_u64().await?;
        if max > 0 && len > max {
            // Its header comes next, and with the length as a rule: the
            // error names the message's task when it is already here (never
            // waiting on a peer that may send nothing more).
            let header = self.inner.buffer().get(..HEADER_LEN);
            let id = match header.and_then(|bytes| bytes.try_into().ok()) {
                Some(header) if len >= HEADER_LEN as u64 => {
                    decode_header(header).ok().map(|(_, id)| id)
                }
                _ => None,
            };
            return Err(FrameError::TooLarge { len, max, id });
        }
        if len < HEADER_LEN as u64 {
            return Err(FrameError::TooShort(len));
        }
        let payload_len =
            usize::try_from(len - HEADER_LEN as u64).map_err(|_| FrameError::TooLarge {
                len,
                max: usize::MAX as u64,
                id: None,
            })?;
        let mut header = [0u8; HEADER_LEN];
        self.inner.read_exact(&mut header).await?;
        let (tag, id) = decode_header(&header).map_err(FrameError::BadHeader)?;
        let mut payload = crate::pool::take(payload_len).map_err(|_| {
            FrameError::BadHeader(format!("cannot allocate {payload_len} bytes for a frame"))
        })?;
        // Filled as bytes arrive, never zeroed first: a peer announcing a large
        // frame commits memory only by actually sending it.
        let mut body = (&mut self.inner).take(payload_len as u64);
        while payload.len() < payload_len {
            if body.read_buf(&mut payload).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
        Ok(Some(Message {
            kind: tag.kind,
            flags: tag.flags,
            id,
            payload,
        }))
    }
}

/// Buffers small messages so that a burst goes out in few writes; a payload
/// of at least the buffer's size is written straight from its own slice.
pub(crate) struct FrameWriter<W> {
    inner: BufWriter<W>,
    framing: Framing,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(inner: W, framing: Framing) -> FrameWriter<W> {
        FrameWriter {
            inner: BufWriter::with_capacity(BUFFER_BYTES, inner),
            framing,
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    pub async fn write_handshake(&mut self) -> io::Result<()> {
        self.inner.write_all(&SP_HEADER).await
    }

    pub async fn write_message(&mut self, message: &Message) -> io::Result<()> {
        self.write_parts(
            message.kind.with(message.flags),
            message.id,
            &message.payload,
        )
        .await
    }

    pub async fn write_parts(
        &mut self,
        kind: impl Into<Tag>,
        id: u64,
        payload: &[u8],
    ) -> io::Result<()> {
        self.write_rest(
            &frame_head(self.framing, kind, id, payload.len()),
            payload,
            0,
        )
        .await
    }

    /// Writes the frame `head` + `payload` but for its first `skip` bytes
    /// (already written by someone else).
    pub async fn write_rest(
        &mut self,
        head: &FrameHead,
        payload: &[u8],
        skip: usize,
    ) -> io::Result<()> {
        if let Some(head) = head.as_slice().get(skip..) {
            self.inner.write_all(head).await?;
        }
        let payload = payload
            .get(skip.saturating_sub(head.len())..)
            .unwrap_or(&[]);
        self.inner.write_all(payload).await
    }

    /// The stream underneath, for writes that bypass the buffer: only sound
    /// while `is_flushed`.
    pub fn get_ref(&self) -> &W {
        self.inner.get_ref()
    }

    /// True when nothing written is still held in the buffer.
    pub fn is_flushed(&self) -> bool {
        self.inner.buffer().is_empty()
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().await
    }

    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Kind;
    use crate::runtime::block_on;

    async fn encoded(messages: &[Message]) -> Vec<u8> {
        encoded_as(Framing::Stream, messages).await
    }

    async fn encoded_as(framing: Framing, messages: &[Message]) -> Vec<u8> {
        let mut writer = FrameWriter::new(Vec::new(), framing);
        writer.write_handshake().await.unwrap();
        for m in messages {
            writer.write_message(m).await.unwrap();
        }
        writer.flush().await.unwrap();
        writer.inner.into_inner()
    }

    #[test]
    fn frames_round_trip() {
        block_on(async {
            let big = (0..300_000u32).map(|i| i as u8).collect::<Vec<u8>>();
            let sent = vec![
                Message::new(Kind::Task, 7, b"abc".to_vec()),
                Message::signal(Kind::Heartbeat, 0),
                Message::new(Kind::Result, u64::MAX, big),
                Message::signal(Kind::Exit, 3),
            ];
            let bytes = encoded(&sent).await;
            assert_eq!(&bytes[..8], &SP_HEADER);
            assert_eq!(&bytes[8..16], &19u64.to_be_bytes());
            let mut reader = FrameReader::new(&bytes[..], Framing::Stream);
            reader.read_handshake().await.unwrap();
            for m in &sent {
                assert_eq!(
                    reader.read_message(1 << 20).await.unwrap().as_ref(),
                    Some(m)
                );
            }
            assert!(reader.read_message(0).await.unwrap().is_none());
        });
    }

    #[test]
    fn write_rest_skips_exactly_what_was_written() {
        block_on(async {
            let payload = (0..100u8).collect::<Vec<u8>>();
            for framing in [Framing::Stream, Framing::Ipc] {
                let head = frame_head(framing, Kind::Result, 9, payload.len());
                let whole = [head.as_slice(), &payload[..]].concat();
                for skip in [0, 1, 8, 23, 24, 25, 26, 60, whole.len()] {
                    let mut writer = FrameWriter::new(Vec::new(), framing);
                    writer.write_rest(&head, &payload, skip).await.unwrap();
                    writer.flush().await.unwrap();
                    assert_eq!(writer.inner.into_inner(), &whole[skip..], "skip {skip}");
                }
            }
        });
    }

    #[test]
    fn ipc_frames_carry_nngs_message_type() {
        block_on(async {
            let sent = [
                Message::new(Kind::Task, 7, b"abc".to_vec()),
                Message::signal(Kind::Heartbeat, 0),
            ];
            let bytes = encoded_as(Framing::Ipc, &sent).await;
            assert_eq!(bytes[8], 1);
            assert_eq!(&bytes[9..17], &19u64.to_be_bytes());
            let mut reader = FrameReader::new(&bytes[..], Framing::Ipc);
            reader.read_handshake().await.unwrap();
            for m in &sent {
                assert_eq!(reader.read_message(0).await.unwrap().as_ref(), Some(m));
            }
            assert!(reader.read_message(0).await.unwrap().is_none());

            let mut other_type = bytes[8..].to_vec();
            other_type[0] = 2;
            let mut reader = FrameReader::new(&other_type[..], Framing::Ipc);
            assert!(matches!(
                reader.read_message(0).await,
                Err(FrameError::BadHeader(_))
            ));
            let mut reader = FrameReader::new(&bytes[8..9], Framing::Ipc);
            assert!(matches!(
                reader.read_message(0).await,
                Err(FrameError::Truncated)
            ));
        });
    }

    #[test]
    fn frames_round_trip_over_a_duplex_pipe() {
        block_on(async {
            let (a, b) = tokio::io::duplex(1024);
            let writer = tokio::spawn(async move {
                let mut w = FrameWriter::new(a, Framing::Stream);
                for i in 0..100u64 {
                    w.write_message(&Message::new(
                        Kind::Task,
                        i,
                        vec![i as u8; i as usize * 100],
                    ))
                    .await
                    .unwrap();
                }
                w.shutdown().await.unwrap();
            });
            let mut reader = FrameReader::new(b, Framing::Stream);
            for i in 0..100u64 {
                let m = reader.read_message(0).await.unwrap().unwrap();
                assert_eq!(
                    (m.kind, m.id, m.payload.len()),
                    (Kind::Task, i, i as usize * 100)
                );
            }
            assert!(reader.read_message(0).await.unwrap().is_none());
            writer.await.unwrap();
        });
    }

    #[test]
    fn rejects_bad_input() {
        block_on(async {
            let mut reader = FrameReader::new(&b"\x00SP\x00\x00\x11\x00\x00"[..], Framing::Stream);
            assert!(matches!(
                reader.read_handshake().await,
                Err(FrameError::BadHandshake(_))
            ));

            let bytes = encoded(&[Message::new(Kind::Task, 1, vec![0; 100])]).await;
            let mut reader = FrameReader::new(&bytes[8..], Framing::Stream);
            let err = reader.read_message(50).await.unwrap_err();
            assert_eq!(err.to_string(), "frame of 116 bytes exceeds limit of 50");

            let mut reader = FrameReader::new(&bytes[8..bytes.len() - 1], Framing::Stream);
            assert!(matches!(
                reader.read_message(0).await,
                Err(FrameError::Truncated)
            ));

            let mut reader = FrameReader::new(&bytes[8..12], Framing::Stream);
            assert!(matches!(
                reader.read_message(0).await,
                Err(FrameError::Truncated)
            ));

            let short = 3u64.to_be_bytes();
            let mut reader = FrameReader::new(&short[..], Framing::Stream);
            assert!(matches!(
                reader.read_message(0).await,
                Err(FrameError::TooShort(3))
            ));

            let mut bad_kind = bytes[8..].to_vec();
            bad_kind[8] = 200;
            let mut reader = FrameReader::new(&bad_kind[..], Framing::Stream);
            assert!(matches!(
                reader.read_message(0).await,
                Err(FrameError::BadHeader(_))
            ));

            let huge = u64::MAX.to_be_bytes();
            let mut reader = FrameReader::new(&huge[..], Framing::Stream);
            assert!(matches!(
                reader.read_message(1 << 30).await,
                Err(FrameError::TooLarge { .. })
            ));
        });
    }
}
