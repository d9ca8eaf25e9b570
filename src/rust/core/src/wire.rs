//! Raw access to the wire format for the interoperability tests (a real NNG
//! peer, `nngcat`, against the crate's own transports and framing) and for
//! the fuzz targets. Hidden from the documentation: not a stable API.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::admission::Admission;
use crate::frame::{FrameReader, FrameWriter, Framing};
use crate::greeting::{hear_daemon, meet_host, Challenge, Hello, Identity, Welcome};
use crate::message::{decode_header, Kind, GREETING_MAX_BYTES, HEADER_LEN};
use crate::transport::{self, IoBox, ListenOptions, Listener, ReadHalf, WriteHalf};
use crate::url::Url;
use crate::{ws, Error};

/// A listener on one plain URL (tcp, ipc, abstract, ws), without the host's
/// greeting: connections are handed over right after their transport
/// handshakes. Use it from tasks on `mirai_core::runtime()`.
pub struct RawListener {
    listener: Listener,
    url: String,
}

/// One accepted connection, speaking SP frames whose bodies are this
/// crate's 16-byte message header and a payload.
pub struct RawPeer {
    reader: FrameReader<ReadHalf>,
    writer: FrameWriter<WriteHalf>,
    peer: String,
}

impl RawListener {
    pub fn bind(url: &str) -> Result<RawListener, Error> {
        let url: Url = url.parse()?;
        let mut listeners = transport::listen_all(
            std::slice::from_ref(&url),
            &ListenOptions {
                tls: None,
                handshake_timeout: std::time::Duration::from_secs(10),
                admission: &Admission::new(None),
            },
        )?;
        let (listener, url) = listeners
            .pop()
            .ok_or_else(|| Error::Io("no listener".to_string()))?;
        Ok(RawListener {
            listener,
            url: url.to_string(),
        })
    }

    /// The URL that reaches this listener (the real port for port 0).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn accept(&self) -> Result<RawPeer, Error> {
        let connection = self
            .listener
            .accept()
            .await
            .map_err(|e| Error::Io(format!("accept failed: {e}")))?;
        Ok(RawPeer {
            reader: FrameReader::new(connection.read, connection.framing),
            writer: FrameWriter::new(connection.write, connection.framing),
            peer: connection.peer,
        })
    }
}

impl RawPeer {
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Sends and checks the 8-byte SP handshake (pair0).
    pub async fn handshake(&mut self) -> Result<(), Error> {
        let io = |e: &dyn std::fmt::Display| Error::Io(e.to_string());
        self.writer.write_handshake().await.map_err(|e| io(&e))?;
        self.writer.flush().await.map_err(|e| io(&e))?;
        self.reader
            .read_handshake()
            .await
            .map_err(|e| Error::Protocol(e.to_string()))
    }

    /// The next message as (kind byte, id, payload); `None` at end of stream.
    pub async fn recv(&mut self, max: u64) -> Result<Option<(u8, u64, Vec<u8>)>, Error> {
        let message = self
            .reader
            .read_message(max)
            .await
            .map_err(|e| Error::Protocol(e.to_string()))?;
        Ok(message.map(|m| (m.kind as u8, m.id, m.payload)))
    }

    pub async fn send(&mut self, kind: u8, id: u64, payload: &[u8]) -> Result<(), Error> {
        let kind = Kind::from_byte(kind)
            .ok_or_else(|| Error::Protocol(format!("unknown message kind {kind}")))?;
        let io = |e: &dyn std::fmt::Display| Error::Io(e.to_string());
        self.writer
            .write_parts(kind, id, payload)
            .await
            .map_err(|e| io(&e))?;
        self.writer.flush().await.map_err(|e| io(&e))
    }
}

/// Runs a future that never waits (it reads from memory) to completion;
/// `None` if it would wait.
fn run_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Fuzz entry: decodes `data` as a byte stream from a peer (an SP handshake,
/// then frames, with a receive limit of `max` bytes), with both framings
/// (the IPC one has a type byte before each length), decoding greeting
/// payloads too; returns how many messages the stream framing read before
/// the end or the first error. Also decodes `data` as frames without the
/// handshake.
pub fn decode_stream(data: &[u8], max: u64) -> usize {
    let read_all = |bytes: &[u8], framing: Framing, handshake: bool| {
        run_now(async {
            let mut reader = FrameReader::new(bytes, framing);
            if handshake && reader.read_handshake().await.is_err() {
                return 0;
            }
            let mut count = 0;
            while let Ok(Some(message)) = reader.read_message(max).await {
                decode_greeting(message.kind, &message.payload);
                count += 1;
            }
            count
        })
        .unwrap_or(0)
    };
    read_all(data, Framing::Ipc, false);
    read_all(data, Framing::Ipc, true);
    read_all(data, Framing::Stream, false);
    read_all(data, Framing::Stream, true)
}

/// Decodes a greeting message's payload; true when it decodes.
fn decode_greeting(kind: Kind, payload: &[u8]) -> bool {
    match kind {
        Kind::Hello => Hello::decode(payload).is_ok(),
        Kind::Challenge => Challenge::decode(payload).is_ok(),
        Kind::Welcome => Welcome::decode(payload).is_ok(),
        _ => true,
    }
}

/// Fuzz entry: decodes `data` as one message body (header, then payload as
/// a HELLO, CHALLENGE and WELCOME); true when the header and the HELLO
/// decode.
pub fn decode_message(data: &[u8]) -> bool {
    let Some(header) = data.get(..HEADER_LEN) else {
        return false;
    };
    let mut fixed = [0u8; HEADER_LEN];
    fixed.copy_from_slice(header);
    let header_ok = decode_header(&fixed).is_ok();
    let payload = data.get(HEADER_LEN..).unwrap_or(&[]);
    for kind in [Kind::Challenge, Kind::Welcome] {
        decode_greeting(kind, payload);
    }
    header_ok && decode_greeting(Kind::Hello, payload)
}

/// What a peer that sends `data` and reads nothing is to us: its bytes,
/// and a sink for ours.
fn peer_sending(data: &[u8]) -> tokio::io::Join<std::io::Cursor<Vec<u8>>, tokio::io::Sink> {
    tokio::io::join(std::io::Cursor::new(data.to_vec()), tokio::io::sink())
}

/// Reads SP messages, within the greeting's limit, until the end or an
/// error; returns how many.
async fn read_messages<R: tokio::io::AsyncRead + Unpin>(reader: R) -> usize {
    let mut reader = FrameReader::new(reader, Framing::Stream);
    if reader.read_handshake().await.is_err() {
        return 0;
    }
    let mut count = 0;
    while let Ok(Some(_)) = reader.read_message(GREETING_MAX_BYTES).await {
        count += 1;
    }
    count
}

/// Fuzz entry: `data` as what a client sends to a WebSocket listener: the
/// HTTP upgrade (for the path "/", or else refused), then frames, read as
/// the host reads them before a greeting; also `data` as frames a server
/// sends a daemon. Returns whether the upgrade was accepted.
pub fn accept_websocket(data: &[u8]) -> bool {
    let io: IoBox = Box::new(peer_sending(data));
    let accepted = run_now(async {
        let (_, stream) = ws::accept(io, |path| path == "/").await.ok()?;
        let limit = ws::MessageLimit::new(GREETING_MAX_BYTES);
        let (reader, _writer) = ws::split(stream.into_inner(), ws::Role::Server, limit);
        Some(read_messages(reader).await)
    })
    .flatten()
    .is_some();
    run_now(async {
        let limit = ws::MessageLimit::new(GREETING_MAX_BYTES);
        let (reader, _writer) = ws::split(peer_sending(data), ws::Role::Client, limit);
        read_messages(reader).await
    });
    accepted
}

/// Fuzz entry: `data` as what a peer sends in the greeting, to a host (with
/// and without a secret: its HELLO) and to a daemon (the host's CHALLENGE
/// and answer). Returns whether any side would go on.
pub fn greet(data: &[u8]) -> bool {
    let mut any = false;
    for secret in [None, Some("s3cret")] {
        let heard = run_now(async {
            let (read, write) = tokio::io::split(peer_sending(data));
            let mut reader = FrameReader::new(read, Framing::Stream);
            let mut writer = FrameWriter::new(write, Framing::Stream);
            hear_daemon(&mut reader, &mut writer, "1.0", secret)
                .await
                .is_ok()
        });
        let met = run_now(async {
            let (read, write) = tokio::io::split(peer_sending(data));
            let mut reader = FrameReader::new(read, Framing::Stream);
            let mut writer = FrameWriter::new(write, Framing::Stream);
            let me = Identity {
                version: "1.0",
                pid: 1,
                job: None,
            };
            meet_host(&mut reader, &mut writer, &me, secret)
                .await
                .is_ok()
        });
        any |= heard == Some(true) || met == Some(true);
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_take_anything() {
        let mut stream = crate::frame::SP_HEADER.to_vec();
        stream.extend_from_slice(
            crate::frame::frame_head(Framing::Stream, Kind::Hello, 0, 10).as_slice(),
        );
        stream.extend_from_slice(b"version=1\n");
        assert_eq!(decode_stream(&stream, 1 << 20), 1);
        assert_eq!(decode_stream(&stream[..stream.len() - 1], 1 << 20), 0);
        assert_eq!(decode_stream(&[0xff; 64], 1 << 20), 0);
        assert!(decode_message(&stream[16..]));
        assert!(!decode_message(&stream[..10]));
    }

    #[test]
    fn a_websocket_upgrade_and_a_greeting_go_through_from_memory() {
        let upgrade = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: pair.sp.nanomsg.org\r\n\r\n";
        assert!(accept_websocket(upgrade.as_bytes()));
        assert!(!accept_websocket(
            upgrade.replace("GET /", "GET /x").as_bytes()
        ));
        assert!(!accept_websocket(b"GET / HTTP/1.1\r\n\r\n"));

        let mut hello = crate::frame::SP_HEADER.to_vec();
        let body = b"version=1.0\npid=3\nnonce=00\n";
        hello.extend_from_slice(
            crate::frame::frame_head(Framing::Stream, Kind::Hello, 0, body.len()).as_slice(),
        );
        hello.extend_from_slice(body);
        assert!(greet(&hello));
        assert!(!greet(&hello[..hello.len() - 1]));
    }
}
