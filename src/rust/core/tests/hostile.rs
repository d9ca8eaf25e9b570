//! Peers that never become daemons, and networks that fail: what they may
//! cost the host, and how soon a link that died is noticed.
mod common;

use std::time::Duration;

use common::*;
use mirai_core::{Host, HostOptions};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads what the host sends first: its SP handshake (8 bytes) when the
/// connection was admitted to its greeting, nothing (end of stream) when it
/// was closed at once.
async fn first_bytes(s: &mut TcpStream) -> usize {
    let mut got = [0u8; 8];
    let mut n = 0;
    while n < got.len() {
        match tokio::time::timeout(PATIENCE, s.read(&mut got[n..])).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(more)) => n += more,
            Err(_) => panic!("neither greeted nor closed"),
        }
    }
    n
}

#[test]
fn connections_beyond_the_bound_on_greetings_are_closed_at_once() {
    let host = Host::listen(HostOptions {
        urls: vec!["tcp://127.0.0.1:0".into(), "ws://127.0.0.1:0/".into()],
        max_greeting: Some(4),
        handshake_timeout: Some(Duration::from_secs(120)),
        ..host_options("", true)
    })
    .unwrap();
    let urls = host.urls();
    let tcp = urls[0].trim_start_matches("tcp://").to_string();
    let ws = urls[1]
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string();
    let rt = test_runtime();
    rt.block_on(async {
        let mut idle = Vec::new();
        for _ in 0..4 {
            let mut s = TcpStream::connect(&tcp).await.unwrap();
            assert_eq!(first_bytes(&mut s).await, 8, "admitted");
            idle.push(s);
        }
        for _ in 0..5 {
            let mut s = TcpStream::connect(&tcp).await.unwrap();
            assert_eq!(first_bytes(&mut s).await, 0, "closed at once");
        }
        // The bound is the host's, over all its listeners: a WebSocket
        // connection is closed before its upgrade (else held 120 s).
        let mut s = TcpStream::connect(&ws).await.unwrap();
        assert!(closed_by_peer(&mut s).await, "closed at once");
        // Places come back as their connections end.
        idle.truncate(1);
    });
    let link = {
        let mut link = None;
        eventually("a place in the greeting", || {
            let candidate = mirai_core::DaemonLink::connect(daemon_options(&urls[0])).unwrap();
            let welcomed = candidate.wait_connected(PATIENCE) == Ok(true);
            link = welcomed.then_some(candidate);
            welcomed
        });
        link.unwrap()
    };
    let id = host.submit(b"ping".to_vec(), None);
    let (got, payload) = expect_task(&link);
    assert_eq!((got, payload), (id, b"ping".to_vec()));
}

#[test]
fn a_daemon_closed_at_once_dials_again_until_a_place_is_free() {
    let host = Host::listen(HostOptions {
        max_greeting: Some(1),
        handshake_timeout: Some(Duration::from_secs(120)),
        ..host_options("tcp://127.0.0.1:0", true)
    })
    .unwrap();
    let url = host.urls()[0].clone();
    let addr = url.trim_start_matches("tcp://").to_string();
    let rt = test_runtime();
    let mut idle = rt.block_on(TcpStream::connect(&addr)).unwrap();
    assert_eq!(rt.block_on(first_bytes(&mut idle)), 8);
    // Without asyncdial, the daemon is closed at once and dials again; the
    // place frees while it does.
    let link = mirai_core::DaemonLink::connect(daemon_options(&url)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(idle);
    assert_eq!(link.wait_connected(PATIENCE), Ok(true));
}

#[test]
fn an_invited_daemon_and_its_host_prove_the_secret_to_each_other() {
    let host = Host::listen(HostOptions {
        token: Some("c0ffee".into()),
        rng_stream: Some([10407, 1, 2, 3, 4, 5, 6]),
        ..host_options("tcp://127.0.0.1:0", true)
    })
    .unwrap();
    let url = host.urls()[0].clone();
    let mut opts = daemon_options(&url);
    opts.token = Some("c0ffee".into());
    let first = mirai_core::DaemonLink::connect(opts.clone()).unwrap();
    assert_eq!(first.wait_connected(PATIENCE), Ok(true));
    let second = mirai_core::DaemonLink::connect(opts.clone()).unwrap();
    assert_eq!(second.wait_connected(PATIENCE), Ok(true));
    // Each daemon welcomed gets the next stream of the host's sequence.
    let (a, b) = (first.rng_stream().unwrap(), second.rng_stream().unwrap());
    assert_eq!(a[0], 10407);
    assert_ne!(a, b);
    assert_eq!(mirai_core::next_stream(&a), b);

    // A host that does not hold the daemon's secret is not trusted.
    let stranger = Host::listen(host_options("tcp://127.0.0.1:0", true)).unwrap();
    opts.url = stranger.urls()[0].clone();
    let lost = mirai_core::DaemonLink::connect(opts).unwrap();
    match lost.wait_connected(PATIENCE) {
        Err(mirai_core::Error::Refused(why)) => assert!(why.contains("secret"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
