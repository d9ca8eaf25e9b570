//! The codec over in-memory pipes: messages each way in both roles, and
//! frames made by hand for what our own writer never sends.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::frames::{parse_header, put_header, Mask};
use super::*;
use crate::frame::{FrameReader, FrameWriter, Framing};
use crate::message::{Kind, Message};
use crate::runtime::block_on;

/// A frame as a peer in `role` would send it (masked by a client).
fn raw_frame(first: u8, payload: &[u8], role: Role) -> Vec<u8> {
    let mut out = Vec::new();
    let key = [0x12, 0x34, 0x56, 0x78];
    let mask = (role == Role::Client).then_some(key);
    put_header(&mut out, 0, payload.len() as u64, mask);
    out[0] = first;
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        Mask { key, at: 0 }.apply(&mut out[start..]);
    }
    out
}

/// The SP body of a message: its 16-byte header then `payload`.
fn body(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = crate::message::encode_header(Kind::Task, id).to_vec();
    body.extend_from_slice(payload);
    body
}

/// Our reader in `role` over one end of a pipe; the other end for the test.
fn reader(
    role: Role,
    max: u64,
) -> (
    FrameReader<WsReader<DuplexStream>>,
    DuplexStream,
    MessageLimit,
) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let limit = MessageLimit::new(max);
    let (read, _write) = split(ours, role, limit.clone());
    (FrameReader::new(read, Framing::Stream), theirs, limit)
}

#[test]
fn messages_cross_in_both_roles_at_every_length_encoding() {
    block_on(async {
        for (writer_role, reader_role) in
            [(Role::Client, Role::Server), (Role::Server, Role::Client)]
        {
            let (a, b) = tokio::io::duplex(1 << 16);
            let (_, write) = split(a, writer_role, MessageLimit::new(0));
            let (read, _) = split(b, reader_role, MessageLimit::new(0));
            let sizes = [0usize, 1, 109, 110, 65_519, 65_520, 300_000, 2_000_000];
            let sent: Vec<Message> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    Message::new(Kind::Task, i as u64, (0..n).map(|b| b as u8).collect())
                })
                .collect();
            let to_send = sent
                .iter()
                .map(|m| (m.id, m.payload.clone()))
                .collect::<Vec<_>>();
            let writing = tokio::spawn(async move {
                let mut w = FrameWriter::new(write, Framing::Stream);
                w.write_handshake().await.unwrap();
                for (id, payload) in to_send {
                    w.write_parts(Kind::Task, id, &payload).await.unwrap();
                    w.flush().await.unwrap();
                }
                w.shutdown().await.unwrap();
            });
            let mut r = FrameReader::new(read, Framing::Stream);
            r.read_handshake().await.unwrap();
            for m in &sent {
                assert_eq!(r.read_message(0).await.unwrap().as_ref(), Some(m));
            }
            assert!(
                r.read_message(0).await.unwrap().is_none(),
                "close frame ends the stream"
            );
            writing.await.unwrap();
        }
    });
}

#[test]
fn fragments_are_gathered_within_the_limit_and_pings_answered_between() {
    block_on(async {
        let (mut r, mut peer, limit) = reader(Role::Server, 64);
        let message = body(7, &[9u8; 40]);
        let mut bytes = raw_frame(OP_BINARY_FIRST, &message[..10], Role::Client);
        bytes.extend(raw_frame(FIN | 0x9, b"are you there", Role::Client));
        bytes.extend(raw_frame(0x0, &message[10..30], Role::Client));
        bytes.extend(raw_frame(FIN, &message[30..], Role::Client));
        peer.write_all(&bytes).await.unwrap();
        r.read_handshake().await.unwrap();
        let got = r.read_message(0).await.unwrap().unwrap();
        assert_eq!((got.id, got.payload), (7, vec![9u8; 40]));
        let mut pong = [0u8; 15];
        peer.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong[..2], &[FIN | 0xa, 13]);
        assert_eq!(&pong[2..], b"are you there");

        // Past the limit (64 bytes) in fragments: an error; raised, fine.
        let big = body(8, &[1u8; 100]);
        let mut bytes = raw_frame(OP_BINARY_FIRST, &big[..60], Role::Client);
        bytes.extend(raw_frame(FIN, &big[60..], Role::Client));
        peer.write_all(&bytes).await.unwrap();
        let err = r.read_message(0).await.unwrap_err().to_string();
        assert!(err.contains("exceeds the limit"), "{err}");

        let (mut r, mut peer, limit_2) = reader(Role::Server, 64);
        limit_2.set(1 << 20);
        drop(limit);
        peer.write_all(&raw_frame(OP_BINARY_FIRST, &big[..60], Role::Client))
            .await
            .unwrap();
        peer.write_all(&raw_frame(FIN, &big[60..], Role::Client))
            .await
            .unwrap();
        r.read_handshake().await.unwrap();
        assert_eq!(
            r.read_message(0).await.unwrap().unwrap().payload,
            vec![1u8; 100]
        );
    });
}

/// The first frame of a binary message in several frames.
const OP_BINARY_FIRST: u8 = 0x2;
const FIN: u8 = 0x80;

#[test]
fn a_single_frame_passes_its_length_to_the_limit_above_before_any_byte() {
    block_on(async {
        let (mut r, mut peer, _) = reader(Role::Server, 64);
        // Announces 1 GiB and sends 10 bytes: the frame reader's limit
        // refuses it on the length alone.
        let mut bytes = Vec::new();
        put_header(&mut bytes, 0x2, 1 << 30, Some([1, 2, 3, 4]));
        bytes.extend_from_slice(&[0u8; 10]);
        peer.write_all(&bytes).await.unwrap();
        r.read_handshake().await.unwrap();
        let err = r.read_message(64 * 1024).await.unwrap_err().to_string();
        assert!(err.contains("exceeds limit"), "{err}");
    });
}

#[test]
fn frames_that_break_the_protocol_end_the_stream_with_an_error() {
    block_on(async {
        let hello = body(1, b"x");
        let cases: Vec<(Role, Vec<u8>, &str)> = vec![
            (
                Role::Server,
                raw_frame(FIN | 0x1, b"text", Role::Client),
                "text",
            ),
            (
                Role::Server,
                raw_frame(FIN | 0x2, &hello, Role::Server),
                "unmasked",
            ),
            (
                Role::Client,
                raw_frame(FIN | 0x2, &hello, Role::Client),
                "masked",
            ),
            (
                Role::Server,
                raw_frame(FIN | 0x42, &hello, Role::Client),
                "reserved",
            ),
            (
                Role::Server,
                raw_frame(FIN, &hello, Role::Client),
                "continuation",
            ),
            (
                Role::Server,
                raw_frame(FIN | 0x3, &hello, Role::Client),
                "opcode 3",
            ),
            (Role::Server, raw_frame(0x9, b"p", Role::Client), "control"),
            (
                Role::Server,
                raw_frame(FIN | 0x9, &[0; 126], Role::Client),
                "control",
            ),
        ];
        for (role, bytes, why) in cases {
            let (mut r, mut peer, _) = reader(role, 0);
            peer.write_all(&bytes).await.unwrap();
            r.read_handshake().await.unwrap();
            let err = r.read_message(0).await.unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        // A new message inside a fragmented one.
        let (mut r, mut peer, _) = reader(Role::Server, 0);
        let mut bytes = raw_frame(0x2, &hello[..4], Role::Client);
        bytes.extend(raw_frame(FIN | 0x2, &hello, Role::Client));
        peer.write_all(&bytes).await.unwrap();
        r.read_handshake().await.unwrap();
        assert!(r.read_message(0).await.is_err());
        // Cut in the middle of a frame.
        let (mut r, mut peer, _) = reader(Role::Server, 0);
        let bytes = raw_frame(FIN | 0x2, &hello, Role::Client);
        peer.write_all(&bytes[..bytes.len() - 3]).await.unwrap();
        drop(peer);
        r.read_handshake().await.unwrap();
        assert!(r.read_message(0).await.is_err());
    });
}

#[test]
fn a_close_frame_or_the_end_between_frames_is_the_end_of_the_stream() {
    block_on(async {
        let (mut r, mut peer, _) = reader(Role::Client, 0);
        let mut bytes = raw_frame(FIN | 0x2, &body(3, b"abc"), Role::Server);
        bytes.extend(raw_frame(FIN | 0x8, &[0x03, 0xe8], Role::Server));
        peer.write_all(&bytes).await.unwrap();
        r.read_handshake().await.unwrap();
        assert_eq!(r.read_message(0).await.unwrap().unwrap().id, 3);
        assert!(r.read_message(0).await.unwrap().is_none());

        let (mut r, peer, _) = reader(Role::Client, 0);
        drop(peer);
        r.read_handshake().await.unwrap();
        assert!(r.read_message(0).await.unwrap().is_none());
    });
}

#[test]
fn headers_parse_only_once_complete() {
    let mut bytes = Vec::new();
    put_header(&mut bytes, 0x2, 70_000, Some([1, 2, 3, 4]));
    assert_eq!(bytes.len(), 14);
    for cut in 0..bytes.len() {
        assert!(parse_header(&bytes[..cut]).unwrap().is_none(), "cut {cut}");
    }
    let (header, used) = parse_header(&bytes).unwrap().unwrap();
    assert_eq!(
        (header.len, header.mask, used),
        (70_000, Some([1, 2, 3, 4]), 14)
    );
    let mut huge = vec![0x82, 127];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    assert!(parse_header(&huge).is_err());
}

#[test]
fn masking_at_any_offset_matches_bytewise_xor() {
    let key = [0xa1, 0xb2, 0xc3, 0xd4];
    let data: Vec<u8> = (0..100u8).collect();
    for split_at in [0, 1, 3, 8, 13, 99] {
        let mut masked = data.clone();
        let mut mask = Mask { key, at: 0 };
        let (a, b) = masked.split_at_mut(split_at);
        mask.apply(a);
        mask.apply(b);
        let expected: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(masked, expected, "split at {split_at}");
    }
}
