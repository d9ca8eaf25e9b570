//! Proof of the wire format with a real NNG peer: `nngcat` (Debian's
//! nng-utils, libnng) dials a listener built from this crate's transport and
//! framing, completes the SP handshake (tcp) or the WebSocket upgrade with
//! the SP sub-protocol (ws), and a message goes each way.
mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::PATIENCE;
use mirai_core::wire::RawListener;

const RESULT: u8 = 5;
const TASK: u8 = 4;

fn body(kind: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8; 16];
    body[0] = kind;
    body[8..].copy_from_slice(&id.to_be_bytes());
    body.extend_from_slice(payload);
    body
}

/// Kills the child (ours, by its handle) when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nngcat(url: &str, file: &std::path::Path) -> (Peer, Arc<Mutex<Vec<u8>>>) {
    // nngcat writes what it receives with stdio, fully buffered on a pipe:
    // stdbuf (coreutils) makes it unbuffered, so that it shows at once.
    if Command::new("nngcat").arg("--version").output().is_err() {
        panic!(
            "nngcat is not on PATH: run tools/setup.sh, which installs Debian's nng-utils \
             (apt-get install -y nng-utils)"
        );
    }
    let child = Command::new("stdbuf")
        .args([
            "-o0",
            "nngcat",
            "--pair0",
            "--dial",
            url,
            "--raw",
            "--recv-timeout",
            "20",
            "--file",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run stdbuf -o0 nngcat ({e}): run tools/setup.sh"));
    let mut peer = Peer(child);
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = peer.0.stdout.take().expect("stdout is piped");
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (peer, output)
}

fn exchange_with_nngcat(url: &str) {
    let listener = RawListener::bind(url).unwrap();
    let url = listener.url().to_string();
    let dir = std::env::temp_dir().join(format!("mirai-nngcat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name: String = url
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let file = dir.join(format!("{name}.msg"));
    let from_nngcat = body(RESULT, 7, b"from nngcat");
    std::fs::write(&file, &from_nngcat).unwrap();

    let (_peer, output) = nngcat(&url, &file);
    let from_mirai = body(TASK, 9, b"from mirai");
    mirai_core::runtime().block_on(async {
        tokio::time::timeout(PATIENCE, async {
            let mut peer = listener.accept().await.unwrap();
            // Over tcp the 8-byte SP header goes each way; over ws nothing
            // does (the adapter stands in for it on both sides).
            peer.handshake().await.unwrap();
            let got = peer.recv(1 << 20).await.unwrap();
            assert_eq!(got, Some((RESULT, 7, b"from nngcat".to_vec())), "{url}");
            peer.send(TASK, 9, b"from mirai").await.unwrap();
            // Keep the connection open until nngcat has printed.
            let deadline = Instant::now() + PATIENCE;
            while output.lock().unwrap().len() < from_mirai.len() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no exchange with nngcat over {url}"));
    });
    assert_eq!(*output.lock().unwrap(), from_mirai, "{url}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn nngcat_exchanges_messages_over_tcp() {
    exchange_with_nngcat("tcp://127.0.0.1:0");
}

#[test]
fn nngcat_exchanges_messages_over_ws() {
    exchange_with_nngcat("ws://127.0.0.1:0/nng");
}

#[test]
fn nngcat_exchanges_messages_over_ipc() {
    let path = std::env::temp_dir().join(format!("mirai-nngcat-{}.ipc", std::process::id()));
    exchange_with_nngcat(&format!("ipc://{}", path.display()));
}

#[test]
fn nngcat_exchanges_messages_over_abstract_sockets() {
    exchange_with_nngcat(&format!("abstract://mirai-nngcat-{}", std::process::id()));
}
