//! Test helpers: host and daemon options, and a simulated daemon that speaks
//! the wire protocol on its own (independently of the crate's framing code).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mirai_core::{DaemonLink, DaemonOptions, Host, HostOptions, Outcome, Received};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const VERSION: &str = "9.9.9";
pub const SP_HEADER: [u8; 8] = [0x00, b'S', b'P', 0x00, 0x00, 0x10, 0x00, 0x00];
pub const SECOND: Duration = Duration::from_secs(1);
pub const PATIENCE: Duration = Duration::from_secs(10);

pub const HELLO: u8 = 1;
pub const WELCOME: u8 = 2;
pub const REFUSE: u8 = 3;
pub const TASK: u8 = 4;
pub const RESULT: u8 = 5;
pub const CANCEL: u8 = 6;
pub const EXIT: u8 = 7;
pub const CHALLENGE: u8 = 10;

/// A fresh abstract socket URL, unique within and across test processes.
pub fn abstract_url() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "abstract://mirai-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn host_options(url: &str, dispatcher: bool) -> HostOptions {
    HostOptions {
        urls: vec![url.to_string()],
        dispatcher,
        token: None,
        max_message_bytes: 0,
        version: VERSION.to_string(),
        ..HostOptions::default()
    }
}

pub fn listen(url: &str, dispatcher: bool) -> Host {
    Host::listen(host_options(url, dispatcher)).unwrap()
}

pub fn daemon_options(url: &str) -> DaemonOptions {
    DaemonOptions {
        url: url.to_string(),
        asyncdial: false,
        token: None,
        max_message_bytes: 0,
        version: VERSION.to_string(),
        tls: None,
    }
}

pub fn connect(url: &str) -> DaemonLink {
    let link = DaemonLink::connect(daemon_options(url)).unwrap();
    assert_eq!(link.wait_connected(PATIENCE), Ok(true));
    link
}

/// Connects `n` daemons one after another, so rows follow this order.
pub fn connect_in_order(host: &Host, n: usize) -> Vec<DaemonLink> {
    let url = &host.urls()[0];
    (0..n)
        .map(|i| {
            let link = connect(url);
            assert_eq!(host.wait_connections(i + 1, PATIENCE), i + 1);
            link
        })
        .collect()
}

pub fn expect_task(link: &DaemonLink) -> (u64, Vec<u8>) {
    match link.recv(PATIENCE) {
        Received::Task { id, payload, .. } => (id, payload),
        other => panic!("expected a task, got {other:?}"),
    }
}

pub fn outcome(host: &Host, id: u64) -> Outcome {
    assert!(host.wait(id, PATIENCE), "task {id} did not resolve");
    host.take(id).expect("resolved task has an outcome")
}

pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---- raw protocol ------------------------------------------------------

pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    id: u64,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut head = [0u8; 24];
    head[..8].copy_from_slice(&(16 + payload.len() as u64).to_be_bytes());
    head[8] = kind;
    head[16..].copy_from_slice(&id.to_be_bytes());
    w.write_all(&head).await?;
    w.write_all(payload).await
}

/// As `write_frame`, framed as NNG's IPC transport is (ipc://, abstract://):
/// the message type byte 1 before the length.
pub async fn write_ipc_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    id: u64,
    payload: &[u8],
) -> std::io::Result<()> {
    w.write_all(&[1]).await?;
    write_frame(w, kind, id, payload).await
}

/// As `read_frame`, for NNG's IPC framing (see `write_ipc_frame`).
pub async fn read_ipc_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<(u8, u64, Vec<u8>)> {
    if r.read_u8().await.ok()? != 1 {
        return None;
    }
    read_frame(r).await
}

/// `None` at end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<(u8, u64, Vec<u8>)> {
    let len = r.read_u64().await.ok()?;
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await.ok()?;
    let id = u64::from_be_bytes(body[8..16].try_into().unwrap());
    Some((body[0], id, body[16..].to_vec()))
}

/// Handshake and HELLO (sent at once, without the host's secret, so
/// without waiting for its CHALLENGE); returns the host's answer (kind,
/// payload).
pub async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    hello: &str,
) -> Option<(u8, Vec<u8>)> {
    s.write_all(&SP_HEADER).await.ok()?;
    write_frame(s, HELLO, 0, hello.as_bytes()).await.ok()?;
    s.flush().await.ok()?;
    let mut header = [0u8; 8];
    s.read_exact(&mut header).await.ok()?;
    assert_eq!(header, SP_HEADER);
    assert_eq!(read_frame(s).await?.0, CHALLENGE);
    read_frame(s)
        .await
        .map(|(kind, _, payload)| (kind, payload))
}

/// A host's CHALLENGE (a fixed nonce).
pub fn challenge_text() -> String {
    format!("nonce={}\n", "5a".repeat(16))
}

pub fn hello_text() -> String {
    format!("version={VERSION}\npid=1\n")
}

/// True once the peer has closed the stream (EOF or reset), reading and
/// discarding anything before that.
pub async fn closed_by_peer<R: AsyncRead + Unpin>(r: &mut R) -> bool {
    let mut sink = [0u8; 1024];
    loop {
        match tokio::time::timeout(PATIENCE, r.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}
