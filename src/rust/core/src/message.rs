//! Message bodies. Wire layout of every body (after the frame's length):
//! byte 0 kind, byte 1 flags (0), bytes 2..8 zero, bytes 8..16 task id (u64
//! big-endian), then the payload.

pub(crate) const HEADER_LEN: usize = 16;

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
            _ => return None,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub kind: Kind,
    pub id: u64,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn new(kind: Kind, id: u64, payload: Vec<u8>) -> Message {
        Message { kind, id, payload }
    }

    #[cfg(test)]
    pub fn signal(kind: Kind, id: u64) -> Message {
        Message::new(kind, id, Vec::new())
    }
}

pub(crate) fn encode_header(kind: Kind, id: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0] = kind as u8;
    header[8..].copy_from_slice(&id.to_be_bytes());
    header
}

pub(crate) fn decode_header(header: &[u8; HEADER_LEN]) -> Result<(Kind, u64), String> {
    let kind =
        Kind::from_byte(header[0]).ok_or_else(|| format!("unknown message kind {}", header[0]))?;
    if header[1..8].iter().any(|&b| b != 0) {
        return Err("non-zero flags or reserved bytes in message header".to_string());
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[8..]);
    Ok((kind, u64::from_be_bytes(id)))
}

/// The daemon's identity, sent as UTF-8 `key=value\n` lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Hello {
    pub version: String,
    pub token: Option<String>,
    pub pid: i64,
    /// The scheduler job the daemon runs in (from the job scripts of the
    /// package's cluster launcher), shown in the host's status.
    pub job: Option<String>,
}

/// The longest job identity kept from a HELLO; longer ones are cut.
pub(crate) const JOB_MAX_CHARS: usize = 128;

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("version={}\n", self.version);
        if let Some(token) = &self.token {
            text.push_str(&format!("token={token}\n"));
        }
        text.push_str(&format!("pid={}\n", self.pid));
        if let Some(job) = &self.job {
            text.push_str(&format!("job={job}\n"));
        }
        text.into_bytes()
    }

    pub fn decode(payload: &[u8]) -> Result<Hello, String> {
        let text = std::str::from_utf8(payload).map_err(|_| "HELLO is not UTF-8".to_string())?;
        let mut hello = Hello::default();
        let mut has_version = false;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("HELLO line without '=': {line:?}"))?;
            match key {
                "version" => {
                    hello.version = value.to_string();
                    has_version = true;
                }
                "token" => hello.token = Some(value.to_string()),
                "pid" => {
                    hello.pid = value
                        .parse()
                        .map_err(|_| format!("HELLO has a bad pid: {value:?}"))?
                }
                "job" if !value.is_empty() => {
                    hello.job = Some(value.chars().take(JOB_MAX_CHARS).collect())
                }
                _ => {}
            }
        }
        if !has_version {
            return Err("HELLO without a version".to_string());
        }
        Ok(hello)
    }
}

/// Compares secrets in time that depends only on their lengths.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
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
            Ok((Kind::Result, 0x0102_0304_0506_0708))
        );
    }

    #[test]
    fn header_rejects_unknown_kind_and_flags() {
        let mut header = encode_header(Kind::Task, 1);
        header[0] = 99;
        assert!(decode_header(&header).unwrap_err().contains("99"));
        let mut header = encode_header(Kind::Task, 1);
        header[1] = 1;
        assert!(decode_header(&header).is_err());
        assert!(decode_header(&[0; 16]).is_err());
    }

    #[test]
    fn hello_round_trips() {
        let hello = Hello {
            version: "2.5.0".into(),
            token: Some("beef".into()),
            pid: 42,
            job: Some("1234_7".into()),
        };
        assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
        let bare = Hello::decode(b"version=1\n").unwrap();
        assert_eq!((bare.token, bare.pid, bare.job), (None, 0, None));
        let long = format!("version=1\njob={}\n", "9".repeat(1000));
        let cut = Hello::decode(long.as_bytes()).unwrap().job.unwrap();
        assert_eq!(cut.len(), JOB_MAX_CHARS);
        assert_eq!(Hello::decode(b"version=1\njob=\n").unwrap().job, None);
        assert!(Hello::decode(b"pid=1\n").is_err());
        assert!(Hello::decode(b"version=1\npid=x\n").is_err());
        assert!(Hello::decode(b"version\n").is_err());
        assert!(Hello::decode(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
