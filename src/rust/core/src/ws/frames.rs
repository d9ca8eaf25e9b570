//! The frames of RFC 6455 that NNG's mapping uses: headers, masking.

use std::io;

use super::Role;

pub(super) const OP_CONTINUATION: u8 = 0x0;
pub(super) const OP_TEXT: u8 = 0x1;
pub(super) const OP_BINARY: u8 = 0x2;
pub(super) const OP_CLOSE: u8 = 0x8;
pub(super) const OP_PING: u8 = 0x9;
pub(super) const OP_PONG: u8 = 0xa;
pub(super) const FIN: u8 = 0x80;
/// RFC 6455: a control frame's payload is at most this long.
pub(super) const CONTROL_MAX: u64 = 125;

/// A frame's header, as `parse_header` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(super) fin: bool,
    pub(super) opcode: u8,
    pub(super) len: u64,
    pub(super) mask: Option<[u8; 4]>,
}

pub(super) fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// The frame header at the start of `bytes` and its length; `None` while
/// more bytes are needed.
pub(crate) fn parse_header(bytes: &[u8]) -> io::Result<Option<(FrameHeader, usize)>> {
    let [first, second, rest @ ..] = bytes else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(invalid("WebSocket frame with reserved bits set"));
    }
    let (len, mut used) = match second & 0x7f {
        126 => match rest.get(..2) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match rest.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if len >> 63 != 0 {
        return Err(invalid("WebSocket frame length with its top bit set"));
    }
    let mask = if second & 0x80 != 0 {
        let Some(key) = bytes.get(used..used + 4) else {
            return Ok(None);
        };
        used += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    let header = FrameHeader {
        fin: first & FIN != 0,
        opcode: first & 0x0f,
        len,
        mask,
    };
    Ok(Some((header, used)))
}

/// Appends the header of a final frame of `opcode` with `len` bytes.
pub(super) fn put_header(out: &mut Vec<u8>, opcode: u8, len: u64, mask: Option<[u8; 4]>) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.push(FIN | opcode);
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// A masking key and the position in the payload reached so far.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mask {
    pub(super) key: [u8; 4],
    pub(super) at: usize,
}

impl Mask {
    /// XORs the next `data.len()` payload bytes with the key, in place.
    pub(super) fn apply(&mut self, data: &mut [u8]) {
        let mut phase = [0u8; 8];
        for (i, b) in phase.iter_mut().enumerate() {
            *b = self.key[(self.at + i) % 4];
        }
        let wide = u64::from_ne_bytes(phase);
        let mut words = data.chunks_exact_mut(8);
        for word in &mut words {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
        }
        for (i, b) in words.into_remainder().iter_mut().enumerate() {
            *b ^= phase[i];
        }
        self.at = (self.at + data.len()) % 4;
    }
}

pub(super) fn mask_for(role: Role) -> Option<Mask> {
    match role {
        Role::Client => Some(Mask {
            key: rand::random(),
            at: 0,
        }),
        Role::Server => None,
    }
}

pub(super) fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed in the middle of a WebSocket frame",
    )
}
