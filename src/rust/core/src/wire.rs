//! Raw access to the wire format for the interoperability tests (a real NNG
//! peer, `nngcat`, against the crate's own transports and framing) and for
//! the fuzz targets. Hidden from the documentation: not a stable API.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::admission::Admission;
use crate::frame::{FrameReader, FrameWriter, Framing};
use crate::greeting::Hello;
use crate::message::{decode_header, Kind, HEADER_LEN};
use crate::transport::{self, ListenOptions, Listener, ReadHalf, WriteHalf};
use crate::url::Url;
use crate::Error;

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
/// then frames, with a receive limit of `max` bytes), decoding HELLO
/// payloads too; returns how many messages were read before the end or the
/// first error. Also decodes `data` as frames without the handshake.
pub fn decode_stream(data: &[u8], max: u64) -> usize {
    let read_all = |bytes: &[u8], handshake: bool| {
        run_now(async {
            let mut reader = FrameReader::new(bytes, Framing::Stream);
            if handshake && reader.read_handshake().await.is_err() {
                return 0;
            }
            let mut count = 0;
            while let Ok(Some(message)) = reader.read_message(max).await {
                if message.kind == Kind::Hello {
                    let _ = Hello::decode(&message.payload);
                }
                count += 1;
            }
            count
        })
        .unwrap_or(0)
    };
    read_all(data, false);
    read_all(data, true)
}

/// Fuzz entry: decodes `data` as one message body (header, then payload as
/// a HELLO); true when both parts decode.
pub fn decode_message(data: &[u8]) -> bool {
    let Some(header) = data.get(..HEADER_LEN) else {
        return false;
    };
    let mut fixed = [0u8; HEADER_LEN];
    fixed.copy_from_slice(header);
    let header_ok = decode_header(&fixed).is_ok();
    let hello_ok = Hello::decode(data.get(HEADER_LEN..).unwrap_or(&[])).is_ok();
    header_ok && hello_ok
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
}
