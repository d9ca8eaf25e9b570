//! Times zero-config TLS set-up: a single-use CA and a server certificate
//! (ECDSA P-256, rcgen), the host's rustls configuration, and the daemon's
//! configuration from the CA's PEM; then one TLS round trip over loopback.
//! `cargo run --release --example zero_config`
use std::time::{Duration, Instant};

use mirai_core::{
    zero_config, DaemonLink, DaemonOptions, Host, HostOptions, Received, TlsClientConfig,
};

fn main() {
    let mut times = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let zero = zero_config("127.0.0.1").expect("zero_config");
        TlsClientConfig::from_pem(&zero.ca_pem).expect("client config");
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "zero-config TLS set-up (CA + certificate + both configs), 50 runs: min {:?}, median {:?}, max {:?}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );

    let started = Instant::now();
    let zero = zero_config("127.0.0.1").expect("zero_config");
    let host = Host::listen(HostOptions {
        urls: vec!["tls+tcp://127.0.0.1:0".to_string()],
        dispatcher: true,
        version: "bench".to_string(),
        tls: Some(zero.server),
        ..HostOptions::default()
    })
    .expect("listen");
    let link = DaemonLink::connect(DaemonOptions {
        url: host.urls()[0].clone(),
        version: "bench".to_string(),
        tls: Some(TlsClientConfig::from_pem(&zero.ca_pem).expect("client config")),
        ..DaemonOptions::default()
    })
    .expect("connect");
    assert_eq!(link.wait_connected(Duration::from_secs(5)), Ok(true));
    println!(
        "listen + TLS handshake + greeting over tls+tcp://127.0.0.1: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let id = host.submit(vec![0u8; 64], None);
    if let Received::Task { id, payload, .. } = link.recv(Duration::from_secs(5)) {
        link.send_result(id, payload).expect("send");
    }
    assert!(host.wait(id, Duration::from_secs(5)));
    println!("first round trip over TLS: {:?}", started.elapsed());
}
