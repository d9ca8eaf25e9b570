//! tls+tcp://, ws:// and wss:// over real loopback sockets: round trips
//! (IPv4, IPv6, port 0, paths), certificate checks, encrypted keys, and bad
//! peers that must close only their own connection.
mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use mirai_core::{
    zero_config, DaemonLink, DaemonOptions, Error, Host, HostOptions, Outcome, TlsClientConfig,
    TlsServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

fn has_ipv6() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

fn secure_host(urls: &[&str], tls: Option<TlsServerConfig>) -> Host {
    Host::listen(HostOptions {
        urls: urls.iter().map(|u| u.to_string()).collect(),
        tls,
        handshake_timeout: Some(Duration::from_millis(500)),
        ..host_options("", true)
    })
    .unwrap()
}

fn secure_daemon(url: &str, ca_pem: Option<&str>) -> DaemonLink {
    DaemonLink::connect(DaemonOptions {
        tls: ca_pem.map(|pem| TlsClientConfig::from_pem(pem).unwrap()),
        ..daemon_options(url)
    })
    .unwrap()
}

fn connected(url: &str, ca_pem: Option<&str>) -> DaemonLink {
    let link = secure_daemon(url, ca_pem);
    assert_eq!(link.wait_connected(PATIENCE), Ok(true), "{url}");
    link
}

/// A task out and its result back, through `link`.
fn exchange(host: &Host, link: &DaemonLink, size: usize) {
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let id = host.submit(payload.clone(), None);
    let (got, received) = expect_task(link);
    assert_eq!(got, id);
    assert!(received == payload);
    link.send_result(id, received).unwrap();
    assert_eq!(outcome(host, id), Outcome::Value(payload));
}

/// Listens at `url` (port 0), checks the real port is reported, and runs
/// small and large round trips through one daemon.
fn round_trip(url: &str, tls: Option<(TlsServerConfig, &str)>) {
    let (server, ca) = match tls {
        Some((server, ca)) => (Some(server), Some(ca)),
        None => (None, None),
    };
    let host = secure_host(&[url], server);
    let real = host.urls()[0].clone();
    let prefix = url.split(":0").next().unwrap();
    assert!(real.starts_with(prefix) && !real.contains(":0/") && !real.ends_with(":0"));
    let link = connected(&real, ca);
    assert_eq!(host.wait_connections(1, PATIENCE), 1);
    for size in [0, 100, 3 << 20] {
        exchange(&host, &link, size);
    }
    host.close(false);
}

#[test]
fn tls_tcp_round_trips_with_zero_config() {
    let zero = zero_config("127.0.0.1").unwrap();
    round_trip("tls+tcp://127.0.0.1:0", Some((zero.server, &zero.ca_pem)));
    if has_ipv6() {
        let zero = zero_config("::1").unwrap();
        round_trip("tls+tcp://[::1]:0", Some((zero.server, &zero.ca_pem)));
    }
}

#[test]
fn ws_round_trips_with_and_without_a_path() {
    round_trip("ws://127.0.0.1:0/mirai", None);
    round_trip("ws://127.0.0.1:0", None);
    if has_ipv6() {
        round_trip("ws://[::1]:0/1", None);
    }
}

#[test]
fn wss_round_trips_with_zero_config() {
    let zero = zero_config("127.0.0.1").unwrap();
    round_trip("wss://127.0.0.1:0/x", Some((zero.server, &zero.ca_pem)));
    if has_ipv6() {
        let zero = zero_config("::1").unwrap();
        round_trip("wss://[::1]:0/", Some((zero.server, &zero.ca_pem)));
    }
}

#[test]
fn zero_config_for_loopback_also_names_localhost() {
    let zero = zero_config("127.0.0.1").unwrap();
    let host = secure_host(&["tls+tcp://127.0.0.1:0"], Some(zero.server));
    let port = host.urls()[0].rsplit(':').next().unwrap().to_string();
    let link = connected(&format!("tls+tcp://localhost:{port}"), Some(&zero.ca_pem));
    exchange(&host, &link, 10);
}

#[test]
fn two_ws_paths_share_one_port_and_unknown_paths_get_404() {
    let host = secure_host(&["ws://127.0.0.1:0/1", "ws://127.0.0.1:0/2"], None);
    let urls = host.urls();
    let port = urls[0]
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert_eq!(
        urls,
        vec![
            format!("ws://127.0.0.1:{port}/1"),
            format!("ws://127.0.0.1:{port}/2")
        ]
    );
    let one = connected(&urls[0], None);
    let two = connected(&urls[1], None);
    assert_eq!(host.wait_connections(2, PATIENCE), 2);
    for _ in 0..4 {
        let id = host.submit(b"x".to_vec(), None);
        let link = match one.recv(Duration::from_millis(200)) {
            mirai_core::Received::Task { id: got, .. } => {
                assert_eq!(got, id);
                &one
            }
            _ => {
                assert_eq!(expect_task(&two).0, id);
                &two
            }
        };
        link.send_result(id, b"y".to_vec()).unwrap();
        assert_eq!(outcome(&host, id), Outcome::Value(b"y".to_vec()));
    }

    let rt = test_runtime();
    rt.block_on(async {
        let mut raw = TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        raw.write_all(
            b"GET /3 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Protocol: pair.sp.nanomsg.org\r\n\r\n",
        )
        .await
        .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, raw.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    });
    let lost = secure_daemon(&format!("ws://127.0.0.1:{port}/nowhere"), None);
    let err = lost.wait_connected(PATIENCE).unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    // The same path twice is an error; one URL's own error names it.
    let err = Host::listen(HostOptions {
        urls: vec!["ws://127.0.0.1:0/a".into(), "ws://127.0.0.1:0/a".into()],
        ..host_options("", true)
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("/a"), "{err}");
}

#[test]
fn wrong_ca_is_refused_even_with_asyncdial() {
    let zero = zero_config("127.0.0.1").unwrap();
    let other = zero_config("127.0.0.1").unwrap();
    for scheme in ["tls+tcp://", "wss://"] {
        let host = secure_host(
            &[&format!("{scheme}127.0.0.1:0")],
            Some(zero.server.clone()),
        );
        let url = host.urls()[0].clone();
        for asyncdial in [false, true] {
            let link = DaemonLink::connect(DaemonOptions {
                asyncdial,
                tls: Some(TlsClientConfig::from_pem(&other.ca_pem).unwrap()),
                ..daemon_options(&url)
            })
            .unwrap();
            let started = Instant::now();
            let err = link.wait_connected(PATIENCE).unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(5));
            let text = err.to_string();
            assert!(matches!(err, Error::Refused(_)), "{err:?}");
            assert!(
                text.starts_with(&format!(
                    "TLS handshake with {url} failed: invalid peer certificate"
                )) && text.contains("UnknownIssuer"),
                "{text}"
            );
        }
        assert_eq!(host.connections(), 0);
    }
}

#[test]
fn hostname_mismatch_is_refused() {
    let zero = zero_config("example.org").unwrap();
    let host = secure_host(&["tls+tcp://127.0.0.1:0"], Some(zero.server));
    let link = secure_daemon(&host.urls()[0], Some(&zero.ca_pem));
    let err = link.wait_connected(PATIENCE).unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("not valid for name"), "{err}");

    let zero = zero_config("10.9.8.7").unwrap();
    let host = secure_host(&["wss://127.0.0.1:0/"], Some(zero.server));
    let link = secure_daemon(&host.urls()[0], Some(&zero.ca_pem));
    let err = link.wait_connected(PATIENCE).unwrap_err();
    assert!(
        err.to_string().contains("not valid for name \"127.0.0.1\""),
        "{err}"
    );
}

#[test]
fn openssl_certificate_with_an_encrypted_key() {
    let (cert, key, ca) = (
        fixture("server-cert.pem"),
        fixture("server-key-encrypted.pem"),
        fixture("ca.pem"),
    );
    let server = TlsServerConfig::from_pem(&cert, &key, Some("secret")).unwrap();
    round_trip("tls+tcp://127.0.0.1:0", Some((server.clone(), &ca)));
    round_trip("wss://127.0.0.1:0/", Some((server, &ca)));

    let err = TlsServerConfig::from_pem(&cert, &key, Some("wrong")).unwrap_err();
    assert!(err.to_string().contains("wrong password"), "{err}");
    let err = TlsServerConfig::from_pem(&cert, &key, None).unwrap_err();
    assert!(err.to_string().contains("no password"), "{err}");
    // Certificate and key in one text.
    TlsServerConfig::from_pem(
        &format!("{cert}{key}"),
        &format!("{cert}{key}"),
        Some("secret"),
    )
    .unwrap();
}

#[test]
fn tls_urls_without_a_configuration_are_errors_naming_the_url() {
    for url in ["tls+tcp://127.0.0.1:0", "wss://127.0.0.1:0/p"] {
        let err = Host::listen(host_options(url, true)).err().unwrap();
        assert!(err.to_string().contains(url), "{err}");
        let err = DaemonLink::connect(daemon_options(url)).err().unwrap();
        assert!(err.to_string().contains(url), "{err}");
    }
}

#[test]
fn tls_dial_to_a_host_gone_away_is_a_clean_error() {
    let zero = zero_config("127.0.0.1").unwrap();
    for scheme in ["tls+tcp://", "wss://"] {
        let host = secure_host(
            &[&format!("{scheme}127.0.0.1:0")],
            Some(zero.server.clone()),
        );
        let url = host.urls()[0].clone();
        host.close(false);
        drop(host);
        let link = secure_daemon(&url, Some(&zero.ca_pem));
        let err = link.wait_connected(PATIENCE).unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
        assert!(err.to_string().contains(&url), "{err}");
    }
}

/// A silent peer and a garbage-sending peer on `url` are closed (the silent
/// one after the 500 ms handshake timeout) while `link` keeps working and
/// a new daemon can join.
fn bad_peers_close_only_themselves(host: &Host, link: &DaemonLink, ca: Option<&str>) {
    let url = host.urls()[0].clone();
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let authority = authority.to_string();
    let rt = test_runtime();
    let mut silent = rt.block_on(TcpStream::connect(&authority)).unwrap();
    let mut garbage = rt.block_on(TcpStream::connect(&authority)).unwrap();
    rt.block_on(garbage.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, b'\n', b'\r', 9]))
        .unwrap();
    rt.block_on(garbage.write_all(b"\r\n\r\nGET\r\n\r\n"))
        .unwrap();
    let started = Instant::now();
    exchange(host, link, 1000);
    let newcomer = connected(&url, ca);
    assert_eq!(host.wait_connections(2, PATIENCE), 2);
    drop(newcomer);
    eventually("the newcomer to leave", || host.connections() == 1);
    exchange(host, link, 10);
    assert!(rt.block_on(closed_by_peer(&mut garbage)));
    assert!(rt.block_on(closed_by_peer(&mut silent)));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    exchange(host, link, 10);
}

#[test]
fn half_open_and_garbage_peers_on_tls_and_ws_listeners() {
    let zero = zero_config("127.0.0.1").unwrap();
    for (url, tls) in [
        ("tls+tcp://127.0.0.1:0", true),
        ("ws://127.0.0.1:0/", false),
        ("wss://127.0.0.1:0/", true),
    ] {
        let host = secure_host(&[url], tls.then(|| zero.server.clone()));
        let ca = tls.then_some(zero.ca_pem.as_str());
        let link = connected(&host.urls()[0], ca);
        bad_peers_close_only_themselves(&host, &link, ca);
    }
}

async fn raw_ws(url: &str) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "pair.sp.nanomsg.org".parse().unwrap(),
    );
    let addr = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, tcp)
        .await
        .unwrap()
        .0
}

/// Reads until the host closes the WebSocket; false if it stays open.
async fn ws_closed(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> bool {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn ws_text_frames_and_oversize_messages_close_the_connection() {
    let host = Host::listen(HostOptions {
        max_message_bytes: 4096,
        ..host_options("ws://127.0.0.1:0/t", true)
    })
    .unwrap();
    let url = host.urls()[0].clone();
    let link = connected(&url, None);
    let rt = test_runtime();
    rt.block_on(async {
        // Greeted properly, then a text frame.
        let mut ws = raw_ws(&url).await;
        let mut hello = vec![1u8];
        hello.extend_from_slice(&[0; 15]);
        hello.extend_from_slice(hello_text().as_bytes());
        ws.send(Message::binary(hello)).await.unwrap();
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => assert_eq!(b[0], CHALLENGE),
            other => panic!("expected CHALLENGE, got {other:?}"),
        }
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => assert_eq!(b[0], WELCOME),
            other => panic!("expected WELCOME, got {other:?}"),
        }
        ws.send(Message::text("hello")).await.unwrap();
        assert!(ws_closed(&mut ws).await);

        // A ping is answered with a pong (after the host's CHALLENGE).
        let mut ws = raw_ws(&url).await;
        ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => assert_eq!(b[0], CHALLENGE),
            other => panic!("expected CHALLENGE, got {other:?}"),
        }
        match tokio::time::timeout(PATIENCE, ws.next()).await {
            Ok(Some(Ok(Message::Pong(data)))) => assert_eq!(&data[..], b"p"),
            other => panic!("expected a pong, got {other:?}"),
        }

        // Beyond max_message_bytes.
        let mut ws = raw_ws(&url).await;
        let _ = ws.send(Message::binary(vec![1u8; 10_000])).await;
        assert!(ws_closed(&mut ws).await);
    });
    assert_eq!(host.wait_connections(1, PATIENCE), 1);
    exchange(&host, &link, 100);
}

/// A client frame's header, masked with the key 0 (so the payload goes as is).
fn masked_header(first: u8, len: u64) -> Vec<u8> {
    let mut header = vec![first, 0x80 | 127];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&[0; 4]);
    header
}

#[test]
fn ws_peers_are_held_to_the_greeting_limit_before_their_message_arrives() {
    // No limit after the greeting, and a long greeting timeout: only the
    // greeting's own limit (64 KiB) can close these peers.
    let host = Host::listen(HostOptions {
        token: Some("secret".into()),
        handshake_timeout: Some(Duration::from_secs(120)),
        ..host_options("ws://127.0.0.1:0/", true)
    })
    .unwrap();
    let url = host.urls()[0].clone();
    let rt = test_runtime();
    rt.block_on(async {
        // One frame announced as 1 GiB, of which 100 KiB are sent.
        let mut big = raw_ws(&url).await;
        let tcp = big.get_mut();
        tcp.write_all(&masked_header(0x82, 1 << 30)).await.unwrap();
        let _ = tcp.write_all(&vec![0u8; 100 << 10]).await;
        assert!(closed_by_peer(tcp).await, "1 GiB frame");

        // 100 fragments of 1 KiB, the message never finished.
        let mut fragmented = raw_ws(&url).await;
        let tcp = fragmented.get_mut();
        for i in 0..100 {
            let first = if i == 0 { 0x02 } else { 0x00 };
            let mut frame = masked_header(first, 1024);
            frame.extend_from_slice(&[0u8; 1024]);
            if tcp.write_all(&frame).await.is_err() {
                break;
            }
        }
        assert!(closed_by_peer(tcp).await, "fragments");
    });
    let mut opts = daemon_options(&url);
    opts.token = Some("secret".into());
    let link = DaemonLink::connect(opts).unwrap();
    assert_eq!(link.wait_connected(PATIENCE), Ok(true));
    exchange(&host, &link, 100_000);
}
