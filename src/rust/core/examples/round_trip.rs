//! Measures the crate's own overhead: sequential round trips host -> daemon
//! -> host over an abstract socket (mean, median, p95 and p99 of 20,000
//! after a warm-up), and a burst of tasks through the dispatcher with four
//! echoing daemons. `cargo run --release --example round_trip`
use std::time::{Duration, Instant};

use mirai_core::{DaemonLink, DaemonOptions, Host, HostOptions, Received};

const VERSION: &str = "bench";

fn echo_daemon(url: &str) -> std::thread::JoinHandle<()> {
    let link = DaemonLink::connect(DaemonOptions {
        url: url.to_string(),
        version: VERSION.to_string(),
        ..DaemonOptions::default()
    })
    .expect("connect");
    assert_eq!(link.wait_connected(Duration::from_secs(5)), Ok(true));
    std::thread::spawn(move || loop {
        match link.recv(Duration::from_secs(1)) {
            Received::Task { id, payload, .. } => {
                if link.send_result(id, payload).is_err() {
                    return;
                }
            }
            Received::Timeout => {}
            _ => return,
        }
    })
}

fn main() {
    let url = format!("abstract://mirai-bench-{}", std::process::id());
    let host = Host::listen(HostOptions {
        urls: vec![url.clone()],
        dispatcher: true,
        token: None,
        max_message_bytes: 0,
        version: VERSION.to_string(),
        tls: None,
        handshake_timeout: None,
        ..HostOptions::default()
    })
    .expect("listen");
    let mut daemons = vec![echo_daemon(&url)];
    host.wait_connections(1, Duration::from_secs(5));

    for _ in 0..2_000 {
        let id = host.submit(vec![0u8; 64], None);
        assert!(host.wait(id, Duration::from_secs(5)));
        host.take(id);
    }
    let rounds = 20_000u32;
    let mut trips = Vec::with_capacity(rounds as usize);
    let started = Instant::now();
    for _ in 0..rounds {
        let trip = Instant::now();
        let id = host.submit(vec![0u8; 64], None);
        assert!(host.wait(id, Duration::from_secs(5)));
        host.take(id);
        trips.push(trip.elapsed());
    }
    let per_trip = started.elapsed() / rounds;
    trips.sort_unstable();
    let at = |q: f64| trips[((trips.len() - 1) as f64 * q).round() as usize];
    println!(
        "sequential round trip (one daemon thread): mean {per_trip:?}, median {:?}, p95 {:?}, p99 {:?}",
        at(0.5),
        at(0.95),
        at(0.99)
    );

    for _ in 0..3 {
        daemons.push(echo_daemon(&url));
    }
    host.wait_connections(4, Duration::from_secs(5));
    let tasks = 200_000;
    let started = Instant::now();
    let ids: Vec<u64> = (0..tasks)
        .map(|_| host.submit(vec![0u8; 64], None))
        .collect();
    for id in ids {
        assert!(host.wait(id, Duration::from_secs(10)));
        host.take(id);
    }
    let elapsed = started.elapsed();
    println!(
        "burst: {tasks} tasks through 4 daemon threads in {elapsed:?} ({:.0} tasks/s)",
        f64::from(tasks) / elapsed.as_secs_f64()
    );
    host.close(true);
    for daemon in daemons {
        let _ = daemon.join();
    }
}
