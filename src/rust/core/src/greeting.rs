//! The greeting, on every new connection before any task (after the SP
//! handshakes, which both sides send at once):
//!
//! ```text
//! host   -> daemon  CHALLENGE  the host's nonce
//! daemon -> host    HELLO      version, pid, the daemon's nonce, and with a
//!                              secret its proof
//! host   -> daemon  WELCOME    version, with a secret the host's proof, the
//!                              daemon's RNG stream, the liveness bound (ms)
//!                or REFUSE     the reason
//! ```
//!
//! A proof is HMAC-SHA256, keyed with the secret, of a label naming the
//! prover's side and both nonces (16 random bytes each). So a HELLO seen on
//! the network cannot be replayed (the next CHALLENGE differs), neither
//! side's proof stands for the other's, and a daemon given the secret knows
//! it reached a host that holds it. The secret itself never travels.
//!
//! Bodies are UTF-8 `key=value` lines; unknown keys are ignored.

use std::time::Duration;

use ring::hmac;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::frame::{FrameError, FrameReader, FrameWriter};
use crate::message::{Kind, Message, GREETING_MAX_BYTES};
use crate::rng::{self, Stream};

/// Bytes of each side's nonce.
pub(crate) const NONCE_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub nonce: Vec<u8>,
}

/// The daemon's identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Hello {
    pub version: String,
    pub pid: i64,
    /// The scheduler job the daemon runs in (from the job scripts of the
    /// package's cluster launcher), shown in the host's status.
    pub job: Option<String>,
    pub nonce: Vec<u8>,
    pub proof: Option<Vec<u8>>,
}

/// The longest job identity kept from a HELLO; longer ones are cut.
pub(crate) const JOB_MAX_CHARS: usize = 128;

/// Who a daemon says it is, in its HELLO.
pub(crate) struct Identity<'a> {
    pub version: &'a str,
    pub pid: i64,
    pub job: Option<String>,
}

/// What the host tells a daemon it welcomes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Welcome {
    pub version: String,
    pub proof: Option<Vec<u8>>,
    /// The daemon's L'Ecuyer-CMRG stream (its `.Random.seed`).
    pub stream: Option<Stream>,
    /// The bound on a dead link's life both sides keep (see `liveness`).
    pub link_timeout: Option<Duration>,
}

/// Which side a proof is made by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Daemon,
    Host,
}

pub(crate) fn nonce() -> Vec<u8> {
    rand::random::<[u8; NONCE_BYTES]>().to_vec()
}

fn signed(side: Side, host_nonce: &[u8], daemon_nonce: &[u8]) -> Vec<u8> {
    let label: &[u8] = match side {
        Side::Daemon => b"mirai greeting: daemon\0",
        Side::Host => b"mirai greeting: host\0",
    };
    [label, host_nonce, daemon_nonce].concat()
}

/// `side`'s proof that it holds `secret`, for this pair of nonces.
pub(crate) fn prove(secret: &str, side: Side, host_nonce: &[u8], daemon_nonce: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let message = signed(side, host_nonce, daemon_nonce);
    hmac::sign(&key, &message).as_ref().to_vec()
}

/// Whether `proof` is `side`'s proof for this pair of nonces (compared in
/// constant time); false for a nonce of the wrong length.
pub(crate) fn verify(
    secret: &str,
    side: Side,
    host_nonce: &[u8],
    daemon_nonce: &[u8],
    proof: &[u8],
) -> bool {
    if host_nonce.len() != NONCE_BYTES || daemon_nonce.len() != NONCE_BYTES {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let message = signed(side, host_nonce, daemon_nonce);
    hmac::verify(&key, &message, proof).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The `key=value` lines of a greeting message named `what`.
fn fields<'a>(payload: &'a [u8], what: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    let text = std::str::from_utf8(payload).map_err(|_| format!("{what} is not UTF-8"))?;
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.split_once('=')
                .ok_or_else(|| format!("{what} line without '=': {line:?}"))
        })
        .collect()
}

fn hex_field(value: &str, what: &str, key: &str) -> Result<Vec<u8>, String> {
    unhex(value).ok_or_else(|| format!("{what} has a bad {key}"))
}

impl Challenge {
    pub fn encode(&self) -> Vec<u8> {
        format!("nonce={}\n", hex(&self.nonce)).into_bytes()
    }

    pub fn decode(payload: &[u8]) -> Result<Challenge, String> {
        let mut nonce = None;
        for (key, value) in fields(payload, "CHALLENGE")? {
            if key == "nonce" {
                nonce = Some(hex_field(value, "CHALLENGE", key)?);
            }
        }
        let nonce = nonce.ok_or("CHALLENGE without a nonce")?;
        Ok(Challenge { nonce })
    }
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!(
            "version={}\npid={}\nnonce={}\n",
            self.version,
            self.pid,
            hex(&self.nonce)
        );
        if let Some(job) = &self.job {
            text.push_str(&format!("job={job}\n"));
        }
        if let Some(proof) = &self.proof {
            text.push_str(&format!("proof={}\n", hex(proof)));
        }
        text.into_bytes()
    }

    pub fn decode(payload: &[u8]) -> Result<Hello, String> {
        let mut hello = Hello::default();
        let mut has_version = false;
        for (key, value) in fields(payload, "HELLO")? {
            match key {
                "version" => {
                    hello.version = value.to_string();
                    has_version = true;
                }
                "pid" => {
                    hello.pid = value
                        .parse()
                        .map_err(|_| format!("HELLO has a bad pid: {value:?}"))?
                }
                "job" if !value.is_empty() => {
                    hello.job = Some(value.chars().take(JOB_MAX_CHARS).collect())
                }
                "nonce" => hello.nonce = hex_field(value, "HELLO", key)?,
                "proof" => hello.proof = Some(hex_field(value, "HELLO", key)?),
                _ => {}
            }
        }
        if !has_version {
            return Err("HELLO without a version".to_string());
        }
        Ok(hello)
    }
}

impl Welcome {
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("version={}\n", self.version);
        if let Some(proof) = &self.proof {
            text.push_str(&format!("proof={}\n", hex(proof)));
        }
        if let Some(stream) = &self.stream {
            text.push_str(&format!("rs={}\n", rng::encode(stream)));
        }
        if let Some(bound) = self.link_timeout {
            text.push_str(&format!("timeout={}\n", bound.as_millis()));
        }
        text.into_bytes()
    }

    pub fn decode(payload: &[u8]) -> Result<Welcome, String> {
        let mut welcome = Welcome::default();
        for (key, value) in fields(payload, "WELCOME")? {
            match key {
                "version" => welcome.version = value.to_string(),
                "proof" => welcome.proof = Some(hex_field(value, "WELCOME", key)?),
                "timeout" => {
                    let ms = value
                        .parse()
                        .map_err(|_| format!("WELCOME has a bad timeout: {value:?}"))?;
                    welcome.link_timeout = Some(Duration::from_millis(ms));
                }
                "rs" => {
                    welcome.stream = Some(
                        rng::decode(value)
                            .ok_or_else(|| format!("WELCOME has a bad rs: {value:?}"))?,
                    )
                }
                _ => {}
            }
        }
        Ok(welcome)
    }
}

/// How a greeting failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The peer broke the protocol, or the connection failed.
    Broken(String),
    /// Refused, with the reason (a host sends it to the daemon in REFUSE).
    Refused(String),
    /// The host closed the connection before its CHALLENGE, as it does at
    /// once when it has as many connections in their greeting as it takes:
    /// worth dialling again.
    Closed(String),
}

fn broken(e: impl std::fmt::Display) -> Failure {
    Failure::Broken(e.to_string())
}

/// The next message, which must be of `kind`; at most `GREETING_MAX_BYTES`.
async fn expect<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    kind: Kind,
) -> Result<Message, Failure> {
    let message = reader
        .read_message(GREETING_MAX_BYTES)
        .await
        .map_err(broken)?
        .ok_or_else(|| Failure::Broken(format!("closed before {}", kind.name())))?;
    if message.kind != kind {
        return Err(Failure::Broken(format!(
            "expected {}, got {}",
            kind.name(),
            message.kind.name()
        )));
    }
    Ok(message)
}

/// What the host learnt from a daemon's greeting.
pub(crate) struct Heard {
    pub hello: Hello,
    pub host_nonce: Vec<u8>,
}

/// The host's side, up to its answer: sends CHALLENGE, then reads and
/// checks HELLO (the version, and with `secret` the daemon's proof).
pub(crate) async fn hear_daemon<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    version: &str,
    secret: Option<&str>,
) -> Result<Heard, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let host_nonce = nonce();
    let challenge = Challenge {
        nonce: host_nonce.clone(),
    };
    writer.write_handshake().await.map_err(broken)?;
    writer
        .write_parts(Kind::Challenge, 0, &challenge.encode())
        .await
        .map_err(broken)?;
    writer.flush().await.map_err(broken)?;
    reader.read_handshake().await.map_err(broken)?;
    let message = expect(reader, Kind::Hello).await?;
    let hello = Hello::decode(&message.payload).map_err(Failure::Broken)?;
    if hello.version != version {
        return Err(Failure::Refused(format!(
            "version mismatch: host has {version}, daemon has {}",
            hello.version
        )));
    }
    if let Some(secret) = secret {
        let proved = hello
            .proof
            .as_deref()
            .is_some_and(|proof| verify(secret, Side::Daemon, &host_nonce, &hello.nonce, proof));
        if !proved {
            return Err(Failure::Refused("daemon not invited".to_string()));
        }
    }
    Ok(Heard { hello, host_nonce })
}

/// The WELCOME for a daemon heard so: with `secret`, the host's proof.
pub(crate) fn welcome(
    heard: &Heard,
    version: &str,
    secret: Option<&str>,
    stream: Option<Stream>,
    link_timeout: Duration,
) -> Vec<u8> {
    Welcome {
        version: version.to_string(),
        proof: secret.map(|s| prove(s, Side::Host, &heard.host_nonce, &heard.hello.nonce)),
        stream,
        link_timeout: Some(link_timeout),
    }
    .encode()
}

/// The daemon's side: reads CHALLENGE, sends HELLO (`me`, and with
/// `secret` its proof), reads the answer; a daemon given `secret` accepts
/// only a WELCOME that proves the host holds it too.
pub(crate) async fn meet_host<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    me: &Identity<'_>,
    secret: Option<&str>,
) -> Result<Welcome, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let closed = |e: FrameError| match e {
        FrameError::Truncated => Failure::Closed("closed by the host at once".to_string()),
        FrameError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Failure::Closed(format!("closed by the host at once ({e})"))
        }
        other => broken(other),
    };
    writer.write_handshake().await.map_err(broken)?;
    writer.flush().await.map_err(broken)?;
    reader.read_handshake().await.map_err(closed)?;
    let challenge = Challenge::decode(&expect(reader, Kind::Challenge).await?.payload)
        .map_err(Failure::Broken)?;
    let daemon_nonce = nonce();
    let hello = Hello {
        version: me.version.to_string(),
        pid: me.pid,
        job: me.job.clone(),
        nonce: daemon_nonce.clone(),
        proof: secret.map(|s| prove(s, Side::Daemon, &challenge.nonce, &daemon_nonce)),
    };
    writer
        .write_parts(Kind::Hello, 0, &hello.encode())
        .await
        .map_err(broken)?;
    writer.flush().await.map_err(broken)?;
    let answer = reader
        .read_message(GREETING_MAX_BYTES)
        .await
        .map_err(broken)?
        .ok_or_else(|| broken("connection closed by the host"))?;
    match answer.kind {
        Kind::Welcome => {
            let welcome = Welcome::decode(&answer.payload).map_err(Failure::Broken)?;
            if let Some(secret) = secret {
                let proved = welcome.proof.as_deref().is_some_and(|proof| {
                    verify(secret, Side::Host, &challenge.nonce, &daemon_nonce, proof)
                });
                if !proved {
                    return Err(Failure::Refused(
                        "the host did not prove that it holds the secret".to_string(),
                    ));
                }
            }
            Ok(welcome)
        }
        Kind::Refuse => Err(Failure::Refused(
            String::from_utf8_lossy(&answer.payload).into_owned(),
        )),
        other => Err(Failure::Broken(format!(
            "answered HELLO with {} instead of WELCOME",
            other.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Framing;
    use crate::runtime::block_on;
    use tokio::io::DuplexStream;

    type Reader = FrameReader<tokio::io::ReadHalf<DuplexStream>>;
    type Writer = FrameWriter<tokio::io::WriteHalf<DuplexStream>>;

    fn ends() -> ((Reader, Writer), (Reader, Writer)) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let half = |s: DuplexStream| {
            let (r, w) = tokio::io::split(s);
            (
                FrameReader::new(r, Framing::Stream),
                FrameWriter::new(w, Framing::Stream),
            )
        };
        (half(a), half(b))
    }

    fn me() -> Identity<'static> {
        Identity {
            version: "1.0",
            pid: 7,
            job: Some("1234_7".into()),
        }
    }

    /// A host and a daemon greet each other with these secrets; the host
    /// welcomes with `stream`.
    fn greet(
        host_secret: Option<&str>,
        daemon_secret: Option<&str>,
    ) -> (Result<Heard, Failure>, Result<Welcome, Failure>) {
        block_on(async {
            let ((mut hr, mut hw), (mut dr, mut dw)) = ends();
            let host = async {
                let heard = hear_daemon(&mut hr, &mut hw, "1.0", host_secret).await;
                match &heard {
                    Ok(heard) => {
                        let stream = Some([10407, 1, 2, 3, 4, 5, 6]);
                        let bound = Duration::from_secs(9);
                        let body = welcome(heard, "1.0", host_secret, stream, bound);
                        hw.write_parts(Kind::Welcome, 0, &body).await.unwrap();
                    }
                    Err(Failure::Refused(why)) => {
                        hw.write_parts(Kind::Refuse, 0, why.as_bytes())
                            .await
                            .unwrap();
                    }
                    Err(_) => {}
                }
                hw.flush().await.unwrap();
                heard
            };
            let me = me();
            let daemon = meet_host(&mut dr, &mut dw, &me, daemon_secret);
            tokio::join!(host, daemon)
        })
    }

    #[test]
    fn both_sides_prove_the_secret_and_the_daemon_gets_its_stream() {
        let (heard, welcome) = greet(Some("s3cret"), Some("s3cret"));
        let hello = heard.unwrap().hello;
        assert_eq!((hello.pid, hello.job), (7, Some("1234_7".into())));
        assert_eq!(welcome.unwrap().stream, Some([10407, 1, 2, 3, 4, 5, 6]));
        let (heard, welcome) = greet(None, None);
        assert!(heard.is_ok() && welcome.is_ok());
    }

    #[test]
    fn a_wrong_or_missing_secret_is_refused_on_either_side() {
        let refused = |r: &Result<Welcome, Failure>| matches!(r, Err(Failure::Refused(_)));
        let (heard, welcome) = greet(Some("s3cret"), Some("guess"));
        assert_eq!(
            heard.err(),
            Some(Failure::Refused("daemon not invited".into()))
        );
        assert!(refused(&welcome));
        let (heard, welcome) = greet(Some("s3cret"), None);
        assert!(heard.is_err() && refused(&welcome));
        // A host that does not hold the daemon's secret.
        let (heard, welcome) = greet(None, Some("s3cret"));
        assert!(heard.is_ok());
        assert_eq!(
            welcome.err(),
            Some(Failure::Refused(
                "the host did not prove that it holds the secret".into()
            ))
        );
    }

    #[test]
    fn a_recorded_hello_cannot_be_replayed() {
        block_on(async {
            // A greeting seen on the network: the daemon's side of it.
            let ((mut hr, mut hw), (mut dr, mut dw)) = ends();
            let me = me();
            let heard = tokio::select! {
                heard = hear_daemon(&mut hr, &mut hw, "1.0", Some("s3cret")) => heard,
                _ = meet_host(&mut dr, &mut dw, &me, Some("s3cret")) => unreachable!(),
            };
            let recorded = heard.unwrap().hello;
            // Sent again to a new challenge.
            let ((mut hr, mut hw), (mut dr, mut dw)) = ends();
            let replay = async {
                dw.write_handshake().await.unwrap();
                dw.write_parts(Kind::Hello, 0, &recorded.encode())
                    .await
                    .unwrap();
                dw.flush().await.unwrap();
                dr.read_handshake().await.unwrap();
            };
            let (heard, ()) =
                tokio::join!(hear_daemon(&mut hr, &mut hw, "1.0", Some("s3cret")), replay);
            assert_eq!(
                heard.err(),
                Some(Failure::Refused("daemon not invited".into()))
            );
        });
    }

    #[test]
    fn a_host_that_closes_at_once_is_told_apart() {
        block_on(async {
            let ((hr, hw), (mut dr, mut dw)) = ends();
            drop((hr, hw));
            let met = meet_host(&mut dr, &mut dw, &me(), None).await;
            assert!(
                matches!(met, Err(Failure::Closed(_)) | Err(Failure::Broken(_))),
                "{met:?}"
            );
        });
    }

    #[test]
    fn messages_round_trip() {
        let challenge = Challenge { nonce: nonce() };
        assert_eq!(Challenge::decode(&challenge.encode()), Ok(challenge));
        let hello = Hello {
            version: "2.5.0".into(),
            pid: 42,
            job: Some("1234_7".into()),
            nonce: nonce(),
            proof: Some(vec![1, 2, 255]),
        };
        assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
        let long = format!("version=1\njob={}\n", "9".repeat(1000));
        let cut = Hello::decode(long.as_bytes()).unwrap().job.unwrap();
        assert_eq!(cut.len(), JOB_MAX_CHARS);
        assert_eq!(Hello::decode(b"version=1\njob=\n").unwrap().job, None);
        let welcome = Welcome {
            version: "2.5.0".into(),
            proof: Some(vec![7; 32]),
            stream: Some([10407, 1, -2, 3, -4, 5, i32::MIN]),
            link_timeout: Some(Duration::from_millis(1500)),
        };
        assert_eq!(Welcome::decode(&welcome.encode()), Ok(welcome));
        assert_eq!(Welcome::decode(b"version=1\n").unwrap().stream, None);
    }

    #[test]
    fn bad_messages_are_errors() {
        assert!(Hello::decode(b"pid=1\n").is_err());
        assert!(Hello::decode(b"version=1\npid=x\n").is_err());
        assert!(Hello::decode(b"version\n").is_err());
        assert!(Hello::decode(&[0xff, 0xfe]).is_err());
        assert!(Hello::decode(b"version=1\nnonce=abc\n").is_err());
        assert!(Hello::decode(b"version=1\nproof=zz\n").is_err());
        assert!(Challenge::decode(b"other=1\n").is_err());
        assert!(Welcome::decode(b"rs=1,2\n").is_err());
        assert!(Welcome::decode(b"timeout=-1\n").is_err());
        let bare = Hello::decode(b"version=1\n").unwrap();
        assert_eq!((bare.pid, bare.nonce.len(), bare.proof), (0, 0, None));
    }

    #[test]
    fn a_proof_holds_for_its_side_secret_and_nonces_only() {
        let (host, daemon) = (nonce(), nonce());
        let proof = prove("s3cret", Side::Daemon, &host, &daemon);
        assert!(verify("s3cret", Side::Daemon, &host, &daemon, &proof));
        assert!(!verify("s3cret", Side::Host, &host, &daemon, &proof));
        assert!(!verify("other", Side::Daemon, &host, &daemon, &proof));
        assert!(!verify("s3cret", Side::Daemon, &nonce(), &daemon, &proof));
        assert!(!verify("s3cret", Side::Daemon, &host, &nonce(), &proof));
        assert!(!verify("s3cret", Side::Daemon, &host[..8], &daemon, &proof));
        assert!(!verify(
            "s3cret",
            Side::Daemon,
            &host,
            &daemon,
            &proof[..31]
        ));
    }
}
