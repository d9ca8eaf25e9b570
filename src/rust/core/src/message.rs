//! Message bodies. Wire layout of every body (after the frame's length):
//! byte 0 kind, byte 1 flags (see `flags`; 0 unless named there), bytes 2..8
//! zero, bytes 8..16 task id (u64 big-endian), then the payload.

pub(crate) const HEADER_LEN: usize = 16;

/// Largest message accepted from a peer that has not yet been welcomed (a
/// host's CHALLENGE, WELCOME or REFUSE; a daemon's HELLO), on every
/// transport: an uninvited peer costs at most this much memory.
pub(crate) const GREETING_MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Hello = 1,
    Welcome = 2,
    Refuse = 3,
    Task = 4,
    Result = 5,
    Cancel = 6,
    Exit = 7,
    Heartbeat = 8,
    /// From a daemon: it takes no more tasks (see `DaemonLink::leave`).
    Leaving = 9,
    /// From the host, first: its nonce (see `greeting`).
    Challenge = 10,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "HELLO",
            Kind::Welcome => "WELCOME",
            Kind::Refuse => "REFUSE",
            Kind::Task => "TASK",
            Kind::Result => "RESULT",
            Kind::Cancel => "CANCEL",
            Kind::Exit => "EXIT",
            Kind::Heartbeat => "HEARTBEAT",
            Kind::Leaving => "LEAVING",
            Kind::Challenge => "CHALLENGE",
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Hello,
            2 => Kind::Welcome,
            3 => Kind::Refuse,
            4 => Kind::Task,
            5 => Kind::Result,
            6 => Kind::Cancel,
            7 => Kind::Exit,
            8 => Kind::Heartbeat,
            9 => Kind::Leaving,
            10 => Kind::Challenge,
            _ => return None,
        })
    }
}

/// The flags a message of a kind may carry (byte 1 of its header); any
/// other bit set, or a flag on another kind, is a malformed header.
pub(crate) mod flags {
    /// On a TASK: the task is for every daemon (`everywhere()`, or a
    /// broadcast), so a relay runs it on each of its own daemons.
    pub const EVERYWHERE: u8 = 1;
    /// On a RESULT: the payload is an error value (the evaluation failed).
    pub const FAILURE: u8 = 1;
    /// On a RESULT: the payload is not a value but a transport outcome's
    /// `errorValue` code (i32 big-endian, 4 bytes), from a relay whose own
    /// daemon could not give a value (timed out, lost, cancelled).
    pub const CODE: u8 = 2;
}

/// A message's kind and flags: bytes 0 and 1 of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub kind: Kind,
    pub flags: u8,
}

impl From<Kind> for Tag {
    fn from(kind: Kind) -> Tag {
        Tag { kind, flags: 0 }
    }
}

impl Kind {
    pub(crate) fn with(self, flags: u8) -> Tag {
        Tag { kind: self, flags }
    }

    /// The flags this kind may carry.
    fn allowed_flags(self) -> u8 {
        match self {
            Kind::Task => flags::EVERYWHERE,
            Kind::Result => flags::FAILURE | flags::CODE,
            _ => 0,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub kind: Kind,
    pub flags: u8,
    pub id: u64,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn new(kind: Kind, id: u64, payload: Vec<u8>) -> Message {
        Message {
            kind,
            flags: 0,
            id,
            payload,
        }
    }

    #[cfg(test)]
    pub fn signal(kind: Kind, id: u64) -> Message {
        Message::new(kind, id, Vec::new())
    }
}

pub(crate) fn encode_header(tag: impl Into<Tag>, id: u64) -> [u8; HEADER_LEN] {
    let tag = tag.into();
    let mut header = [0u8; HEADER_LEN];
    header[0] = tag.kind as u8;
    header[1] = tag.flags;
    header[8..].copy_from_slice(&id.to_be_bytes());
    header
}

pub(crate) fn decode_header(header: &[u8; HEADER_LEN]) -> Result<(Tag, u64), String> {
    let kind =
        Kind::from_byte(header[0]).ok_or_else(|| format!("unknown message kind {}", header[0]))?;
    if header[1] & !kind.allowed_flags() != 0 {
        return Err(format!(
            "flags {:#04x} not defined for a {} message",
            header[1],
            kind.name()
        ));
    }
    if header[2..8].iter().any(|&b| b != 0) {
        return Err("non-zero reserved bytes in message header".to_string());
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[8..]);
    Ok((kind.with(header[1]), u64::from_be_bytes(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let header = encode_header(Kind::Result, 0x0102_0304_0506_0708);
        assert_eq!(header, [5, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            decode_header(&header),
            Ok((Kind::Result.into(), 0x0102_0304_0506_0708))
        );
    }

    #[test]
    fn header_carries_the_flags_of_its_kind_only() {
        let header = encode_header(Kind::Task.with(flags::EVERYWHERE), 3);
        assert_eq!(header[1], 1);
        assert_eq!(
            decode_header(&header),
            Ok((Kind::Task.with(flags::EVERYWHERE), 3))
        );
        let both = Kind::Result.with(flags::FAILURE | flags::CODE);
        assert_eq!(decode_header(&encode_header(both, 4)), Ok((both, 4)));
        assert!(decode_header(&encode_header(Kind::Task.with(2), 1)).is_err());
        assert!(decode_header(&encode_header(Kind::Cancel.with(1), 1)).is_err());
        let mut header = encode_header(Kind::Task, 1);
        header[5] = 1;
        assert!(decode_header(&header).is_err());
    }

    #[test]
    fn header_rejects_unknown_kind_and_flags() {
        let mut header = encode_header(Kind::Task, 1);
        header[0] = 99;
        assert!(decode_header(&header).unwrap_err().contains("99"));
        let mut header = encode_header(Kind::Task, 1);
        header[1] = 2;
        assert!(decode_header(&header).is_err());
        let mut header = encode_header(Kind::Heartbeat, 0);
        header[1] = 1;
        assert!(decode_header(&header).is_err());
        assert!(decode_header(&[0; 16]).is_err());
    }
}
