mod common;

use std::time::{Duration, Instant};

use common::*;
use mirai_core::{DaemonLink, Error, Host, Outcome, Received};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn round_trip(url: &str) {
    let host = listen(url, true);
    let url = host.urls()[0].clone();
    let link = connect(&url);
    assert_eq!(host.wait_connections(1, PATIENCE), 1);
    let id = host.submit(b"task".to_vec(), None);
    assert!(!host.is_resolved(id));
    let (got, payload) = expect_task(&link);
    assert_eq!((got, payload.as_slice()), (id, &b"task"[..]));
    link.send_result(id, b"value".to_vec()).unwrap();
    assert_eq!(outcome(&host, id), Outcome::Value(b"value".to_vec()));
    assert!(host.is_resolved(id));
    assert!(host.wait(id, Duration::ZERO));
    let status = host.status();
    assert_eq!(
        (
            status.connections,
            status.awaiting,
            status.executing,
            status.completed
        ),
        (1, 0, 0, 1)
    );
    assert_eq!(status.urls, vec![url]);
    assert_eq!(status.daemons.len(), 1);
    let row = &status.daemons[0];
    assert_eq!(
        (row.online, row.assigned, row.complete, row.pid),
        (true, 1, 1, i64::from(std::process::id()))
    );
    host.close(false);
}

#[test]
fn round_trip_over_tcp_with_port_0() {
    let host = listen("tcp://127.0.0.1:0", true);
    let url = &host.urls()[0];
    assert!(
        url.starts_with("tcp://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    round_trip("tcp://127.0.0.1:0");
}

#[test]
fn an_empty_host_listens_on_all_interfaces_and_is_never_dialled() {
    let host = listen("tcp://:0", true);
    let url = host.urls()[0].clone();
    let port = url.strip_prefix("tcp://:").expect("the empty host is kept");
    assert_ne!(port, "0");
    let link = connect(&format!("tcp://127.0.0.1:{port}"));
    assert_eq!(host.wait_connections(1, PATIENCE), 1);
    let id = host.submit(b"task".to_vec(), None);
    assert_eq!(expect_task(&link).0, id);
    link.send_result(id, b"value".to_vec()).unwrap();
    assert_eq!(outcome(&host, id), Outcome::Value(b"value".to_vec()));
    let err = DaemonLink::connect(daemon_options(&url))
        .and_then(|link| link.wait_connected(PATIENCE))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Url(m) if m.contains("missing host")),
        "{err}"
    );
    let ws = listen("ws://:0/path", true);
    assert!(ws.urls()[0].starts_with("ws://:"), "{:?}", ws.urls());
}

#[test]
fn round_trip_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let host = listen("tcp://[::1]:0", true);
    let url = &host.urls()[0];
    assert!(
        url.starts_with("tcp://[::1]:") && !url.ends_with(":0"),
        "{url}"
    );
    round_trip("tcp://[::1]:0");
}

#[test]
fn round_trip_over_ipc() {
    let path = std::env::temp_dir().join(format!("mirai-test-{}.sock", std::process::id()));
    let url = format!("ipc://{}", path.display());
    round_trip(&url);
    eventually("the socket file to be removed", || !path.exists());
}

#[test]
fn round_trip_over_abstract() {
    round_trip(&abstract_url());
}

#[test]
fn large_payloads_travel_intact() {
    let host = listen(&abstract_url(), true);
    let link = connect(&host.urls()[0]);
    let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    let id = host.submit(big.clone(), None);
    let (got, payload) = expect_task(&link);
    assert_eq!(got, id);
    assert!(payload == big);
    link.send_result(id, payload).unwrap();
    assert!(outcome(&host, id) == Outcome::Value(big));
}

#[test]
fn bad_urls_fail_early() {
    // ws://, wss:// and tls+tcp:// are supported now: see tests/secure.rs.
    assert!(matches!(
        Host::listen(host_options("tcp://nohost", true)),
        Err(Error::Url(_))
    ));
    assert!(matches!(
        DaemonLink::connect(daemon_options("tcp:/x:1")),
        Err(Error::Url(_))
    ));
}

#[test]
fn listen_fails_on_a_port_in_use_and_binds_all_urls() {
    let first = listen("tcp://127.0.0.1:0", true);
    let taken = first.urls()[0].clone();
    let err = Host::listen(host_options(&taken, true)).err().unwrap();
    assert!(
        matches!(&err, Error::Io(m) if m.starts_with(&format!("cannot listen at {taken}"))),
        "{err}"
    );
    let mut opts = host_options("tcp://127.0.0.1:0", true);
    opts.urls.push(abstract_url());
    let host = Host::listen(opts).unwrap();
    let urls = host.urls();
    assert_eq!(urls.len(), 2);
    let a = connect(&urls[0]);
    let b = connect(&urls[1]);
    assert_eq!(host.wait_connections(2, PATIENCE), 2);
    drop((a, b));
}

#[test]
fn failed_dial_names_the_url() {
    let host = listen("tcp://127.0.0.1:0", true);
    let url = host.urls()[0].clone();
    host.close(false);
    drop(host);
    let link = DaemonLink::connect(daemon_options(&url)).unwrap();
    let err = link.wait_connected(PATIENCE).unwrap_err();
    assert_eq!(
        err,
        Error::Io(format!("cannot connect to {url}: Connection refused"))
    );
    assert_eq!(link.recv(Duration::ZERO), Received::Closed);
}

#[test]
fn asyncdial_retries_until_the_host_listens() {
    let url = abstract_url();
    let mut opts = daemon_options(&url);
    opts.asyncdial = true;
    let link = DaemonLink::connect(opts).unwrap();
    assert_eq!(link.wait_connected(Duration::from_millis(50)), Ok(false));
    let host = listen(&url, true);
    assert_eq!(link.wait_connected(PATIENCE), Ok(true));
    assert_eq!(host.wait_connections(1, PATIENCE), 1);
}

#[test]
fn version_mismatch_and_bad_token_are_refused() {
    let mut opts = host_options(&abstract_url(), true);
    opts.token = Some("c0ffee".into());
    let host = Host::listen(opts).unwrap();
    let url = host.urls()[0].clone();

    let mut wrong_version = daemon_options(&url);
    wrong_version.token = Some("c0ffee".into());
    wrong_version.version = "0.0.1".into();
    let link = DaemonLink::connect(wrong_version).unwrap();
    assert_eq!(
        link.wait_connected(PATIENCE),
        Err(Error::Refused(format!(
            "version mismatch: host has {VERSION}, daemon has 0.0.1"
        )))
    );

    for token in [
        None,
        Some("c0ffef".to_string()),
        Some("c0ffee0".to_string()),
    ] {
        let mut uninvited = daemon_options(&url);
        uninvited.token = token;
        let link = DaemonLink::connect(uninvited).unwrap();
        assert_eq!(
            link.wait_connected(PATIENCE),
            Err(Error::Refused("daemon not invited".into()))
        );
    }
    assert_eq!(host.connections(), 0);

    let mut invited = daemon_options(&url);
    invited.token = Some("c0ffee".into());
    let link = DaemonLink::connect(invited).unwrap();
    assert_eq!(link.wait_connected(PATIENCE), Ok(true));
    assert_eq!(host.wait_connections(1, PATIENCE), 1);
    assert_eq!(host.status().daemons.len(), 1);
}

#[test]
fn dispatcher_is_fifo_and_never_gives_a_busy_daemon_a_second_task() {
    let host = listen(&abstract_url(), true);
    let links = connect_in_order(&host, 3);
    let ids: Vec<u64> = (0..30u8).map(|i| host.submit(vec![i], None)).collect();
    let mut received = Vec::new();
    let mut held: Vec<Option<u64>> = links.iter().map(|l| Some(expect_task(l).0)).collect();
    received.extend(held.iter().flatten());
    let status = host.status();
    assert_eq!((status.awaiting, status.executing), (27, 3));
    for link in &links {
        assert_eq!(link.recv(Duration::from_millis(20)), Received::Timeout);
    }
    // Finish tasks in a rotating order; each daemon gets its next task only
    // after returning its current one, and tasks leave in submission order.
    let mut turn = 0;
    while held.iter().any(Option::is_some) {
        let k = turn % links.len();
        turn += 1;
        let Some(id) = held[k].take() else { continue };
        links[k].send_result(id, vec![]).unwrap();
        assert!(host.wait(id, PATIENCE));
        if received.len() < ids.len() {
            let (next, _) = expect_task(&links[k]);
            received.push(next);
            held[k] = Some(next);
        }
        for (j, link) in links.iter().enumerate() {
            if held[j].is_some() && j != k {
                assert_eq!(link.recv(Duration::ZERO), Received::Timeout);
            }
        }
    }
    assert_eq!(received, ids);
    let status = host.status();
    assert_eq!(
        (status.awaiting, status.executing, status.completed),
        (0, 0, 30)
    );
    assert_eq!(status.daemons.iter().map(|d| d.assigned).sum::<u64>(), 30);
    assert!(status
        .daemons
        .iter()
        .all(|d| d.assigned == 10 && d.complete == 10));
}

#[test]
fn direct_mode_sends_round_robin_at_once() {
    let host = listen(&abstract_url(), false);
    let early: Vec<u64> = (0..2).map(|_| host.submit(vec![], None)).collect();
    assert_eq!(host.status().awaiting, 2);
    let links = connect_in_order(&host, 3);
    for id in &early {
        assert_eq!(expect_task(&links[0]).0, *id);
    }
    let ids: Vec<u64> = (0..9).map(|_| host.submit(vec![], None)).collect();
    let status = host.status();
    assert_eq!((status.awaiting, status.executing), (0, 11));
    let mut per_link: Vec<Vec<u64>> = vec![vec![]; 3];
    for (k, link) in links.iter().enumerate() {
        for _ in 0..3 {
            per_link[k].push(expect_task(link).0);
        }
        assert_eq!(link.recv(Duration::from_millis(20)), Received::Timeout);
    }
    let mut expected: Vec<Vec<u64>> = vec![vec![]; 3];
    for (i, id) in ids.iter().enumerate() {
        expected[i % 3].push(*id);
    }
    assert_eq!(per_link, expected);
    for (k, link) in links.iter().enumerate() {
        for &id in &per_link[k] {
            link.send_result(id, vec![k as u8]).unwrap();
        }
    }
    for (k, ids) in per_link.iter().enumerate() {
        for &id in ids {
            assert_eq!(outcome(&host, id), Outcome::Value(vec![k as u8]));
        }
    }
}

/// A payload unique to `tag`; `big` ones (8 MB) are far beyond what a socket
/// buffer holds, so their frames are written partly by the sending thread
/// and partly by the link's writer task.
fn patterned(tag: u64, big: bool) -> Vec<u8> {
    let len = if big { 8 << 20 } else { (tag % 300) as usize };
    let block: Vec<u8> = (0..251u64).map(|i| (i ^ tag) as u8).collect();
    let mut payload = Vec::with_capacity(len);
    while payload.len() < len {
        let more = (len - payload.len()).min(block.len());
        payload.extend_from_slice(&block[..more]);
    }
    payload
}

#[test]
fn concurrent_submits_and_large_payloads_arrive_intact_and_in_order() {
    // Direct mode: many tasks outstanding per link, all written at once.
    let host = listen(&abstract_url(), false);
    let url = host.urls()[0].clone();
    let daemons: Vec<_> = (0..2)
        .map(|_| {
            let link = connect(&url);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    match link.recv(PATIENCE) {
                        Received::Task { id, payload, .. } => {
                            seen.push(id);
                            link.send_result(id, payload).unwrap();
                        }
                        Received::Exit | Received::Closed => return seen,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();
    assert_eq!(host.wait_connections(2, PATIENCE), 2);
    let submitted: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4u64)
            .map(|thread| {
                let host = host.clone();
                scope.spawn(move || {
                    (0..60u64)
                        .map(|seq| {
                            let tag = thread * 1000 + seq;
                            let big = seq % 20 == 7;
                            (host.submit(patterned(tag, big), None), tag)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    for &(id, tag) in &submitted {
        let big = tag % 1000 % 20 == 7;
        assert!(
            outcome(&host, id) == Outcome::Value(patterned(tag, big)),
            "task {id} came back altered"
        );
    }
    host.close(true);
    let mut all = Vec::new();
    for daemon in daemons {
        let seen = daemon.join().unwrap();
        // The host decides and writes under one lock, so each link carries
        // its tasks in id order, whichever thread submitted them.
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        all.extend(seen);
    }
    all.sort_unstable();
    let mut ids: Vec<u64> = submitted.iter().map(|&(id, _)| id).collect();
    ids.sort_unstable();
    assert_eq!(all, ids);
}

#[test]
fn a_dropped_link_resets_exactly_its_tasks() {
    for dispatcher in [true, false] {
        let host = listen(&abstract_url(), dispatcher);
        let links = connect_in_order(&host, 3);
        let ids: Vec<u64> = (0..3).map(|_| host.submit(vec![], None)).collect();
        let held: Vec<u64> = links.iter().map(|l| expect_task(l).0).collect();
        let mut links = links;
        let dropped = links.remove(1);
        dropped.close();
        assert_eq!(
            outcome(&host, held[1]),
            Outcome::Error(Outcome::CONNECTION_RESET)
        );
        for (link, id) in links.iter().zip([held[0], held[2]]) {
            assert!(!host.is_resolved(id));
            link.send_result(id, b"ok".to_vec()).unwrap();
            assert_eq!(outcome(&host, id), Outcome::Value(b"ok".to_vec()));
        }
        let mut sorted = held.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
        let status = host.status();
        assert_eq!(status.connections, 2);
        assert_eq!(
            status.daemons.iter().map(|d| d.online).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(
            (status.awaiting, status.executing, status.completed),
            (0, 0, 2)
        );
    }
}

#[test]
fn timeout_resolves_to_5_and_the_late_result_is_discarded() {
    let host = listen(&abstract_url(), true);
    let link = connect(&host.urls()[0]);
    let started = Instant::now();
    let slow = host.submit(b"slow".to_vec(), Some(50));
    let queued = host.submit(b"queued".to_vec(), Some(30));
    let next = host.submit(b"next".to_vec(), None);
    assert_eq!(expect_task(&link).0, slow);
    assert_eq!(outcome(&host, queued), Outcome::Error(Outcome::TIMED_OUT));
    assert_eq!(outcome(&host, slow), Outcome::Error(Outcome::TIMED_OUT));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(host.status().executing, 0);
    assert_eq!(link.recv(Duration::from_millis(20)), Received::Timeout);
    link.send_result(slow, b"late".to_vec()).unwrap();
    assert_eq!(expect_task(&link).0, next);
    assert_eq!(host.take(slow), None);
    link.send_result(next, b"on time".to_vec()).unwrap();
    assert_eq!(outcome(&host, next), Outcome::Value(b"on time".to_vec()));
    let status = host.status();
    assert_eq!(
        (status.awaiting, status.executing, status.completed),
        (0, 0, 2)
    );
}

#[test]
fn cancel_resolves_to_20_and_tells_the_daemon() {
    let host = listen(&abstract_url(), true);
    let link = connect(&host.urls()[0]);
    let running = host.submit(vec![], None);
    let queued = host.submit(vec![], None);
    assert_eq!(expect_task(&link).0, running);
    assert!(host.cancel(queued));
    assert!(host.cancel(running));
    assert!(!host.cancel(running));
    // The CANCEL is handled by the link itself (see tests/features.rs).
    assert_eq!(link.recv(Duration::from_millis(20)), Received::Timeout);
    assert_eq!(outcome(&host, running), Outcome::Error(Outcome::CANCELLED));
    assert_eq!(outcome(&host, queued), Outcome::Error(Outcome::CANCELLED));
    link.send_result(running, vec![]).unwrap();
    let after = host.submit(vec![], None);
    assert_eq!(expect_task(&link).0, after);
}

#[test]
fn forget_drops_results_now_or_on_arrival() {
    let host = listen(&abstract_url(), false);
    let link = connect(&host.urls()[0]);
    let early = host.submit(vec![1], None);
    let late = host.submit(vec![2], None);
    assert_eq!(expect_task(&link).0, early);
    assert_eq!(expect_task(&link).0, late);
    link.send_result(early, vec![1]).unwrap();
    assert!(host.wait(early, PATIENCE));
    host.forget(early);
    host.forget(late);
    link.send_result(late, vec![2]).unwrap();
    eventually("the forgotten result to arrive", || {
        host.status().completed == 2
    });
    assert!(host.is_resolved(late));
    assert_eq!(host.take(early), None);
    assert_eq!(host.take(late), None);
}

#[test]
fn close_resolves_to_7_and_sends_exit() {
    let host = listen(&abstract_url(), true);
    let url = host.urls()[0].clone();
    let link = connect(&url);
    let running = host.submit(vec![], None);
    let queued = host.submit(vec![], Some(60_000));
    assert_eq!(expect_task(&link).0, running);
    let waiter = {
        let host = host.clone();
        std::thread::spawn(move || host.wait(queued, PATIENCE))
    };
    std::thread::sleep(Duration::from_millis(20));
    host.close(true);
    host.close(true);
    assert!(waiter.join().unwrap());
    assert_eq!(outcome(&host, running), Outcome::Error(Outcome::CLOSED));
    assert_eq!(outcome(&host, queued), Outcome::Error(Outcome::CLOSED));
    assert_eq!(link.recv(PATIENCE), Received::Exit);
    assert_eq!(link.recv(PATIENCE), Received::Closed);
    assert!(link.send_result(running, vec![]).is_err());
    let after = host.submit(vec![], None);
    assert_eq!(outcome(&host, after), Outcome::Error(Outcome::CLOSED));
    let status = host.status();
    assert_eq!(
        (status.connections, status.awaiting, status.executing),
        (0, 0, 0)
    );
    assert!(!status.daemons[0].online);
    let late = DaemonLink::connect(daemon_options(&url)).unwrap();
    assert!(late.wait_connected(PATIENCE).is_err());
}

#[test]
fn a_daemon_sees_closed_when_the_host_goes_away() {
    let host = listen(&abstract_url(), true);
    let url = host.urls()[0].clone();
    let link = connect(&url);
    assert_eq!(link.recv(Duration::from_millis(10)), Received::Timeout);
    drop(host);
    assert_eq!(link.recv(PATIENCE), Received::Closed);
    let again = DaemonLink::connect(daemon_options(&url)).unwrap();
    assert!(matches!(again.wait_connected(PATIENCE), Err(Error::Io(_))));
}

#[test]
fn waits_are_bounded() {
    let host = listen(&abstract_url(), true);
    let id = host.submit(vec![], None);
    let started = Instant::now();
    assert!(!host.wait(id, Duration::from_millis(30)));
    assert_eq!(host.wait_connections(1, Duration::from_millis(30)), 0);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!host.wait(id + 100, Duration::from_millis(5)));
    assert!(!host.is_resolved(0));
    let link = DaemonLink::connect(daemon_options(&host.urls()[0])).unwrap();
    assert_eq!(expect_task(&link).0, id);
    assert_eq!(link.recv(Duration::from_millis(30)), Received::Timeout);
}

// ---- malformed input: only the offending connection closes ---------------

/// A connected, welcomed daemon that answers every task with its payload.
fn echo_daemon(url: &str) -> (DaemonLink, std::thread::JoinHandle<()>) {
    let link = connect(url);
    let worker = DaemonLink::connect(daemon_options(url)).unwrap();
    assert_eq!(worker.wait_connected(PATIENCE), Ok(true));
    let thread = std::thread::spawn(move || loop {
        match worker.recv(PATIENCE) {
            Received::Task { id, payload, .. } => worker.send_result(id, payload).unwrap(),
            Received::Timeout => continue,
            _ => return,
        }
    });
    (link, thread)
}

fn still_works(host: &Host) {
    for i in 0..5u8 {
        let id = host.submit(vec![i], None);
        assert_eq!(outcome(host, id), Outcome::Value(vec![i]));
    }
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let mut opts = host_options("tcp://127.0.0.1:0", true);
    opts.max_message_bytes = 1024;
    let host = Host::listen(opts).unwrap();
    let url = host.urls()[0].clone();
    let addr = url.trim_start_matches("tcp://").to_string();
    let (_idle, echo) = echo_daemon(&url);
    assert_eq!(host.wait_connections(2, PATIENCE), 2);
    // The idle daemon takes no task after the first, which it never answers.
    let parked = host.submit(vec![], None);
    let _ = parked;
    still_works(&host);

    let rt = test_runtime();
    rt.block_on(async {
        // Wrong SP handshake.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(closed_by_peer(&mut s).await);

        // Oversize length in HELLO.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&SP_HEADER).await.unwrap();
        s.write_all(&9_999_999_999u64.to_be_bytes()).await.unwrap();
        assert!(closed_by_peer(&mut s).await);

        // A message other than HELLO first.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&SP_HEADER).await.unwrap();
        write_frame(&mut s, RESULT, 1, b"x").await.unwrap();
        assert!(closed_by_peer(&mut s).await);

        // Welcomed, then a frame beyond the limit.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(
            greet(&mut s, &hello_text()).await.map(|a| a.0),
            Some(WELCOME)
        );
        s.write_all(&2048u64.to_be_bytes()).await.unwrap();
        assert!(closed_by_peer(&mut s).await);

        // Welcomed, then a truncated frame and a half-close.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(
            greet(&mut s, &hello_text()).await.map(|a| a.0),
            Some(WELCOME)
        );
        s.write_all(&100u64.to_be_bytes()).await.unwrap();
        s.write_all(&[RESULT, 0, 0]).await.unwrap();
        s.shutdown().await.unwrap();
        assert!(closed_by_peer(&mut s).await);

        // Welcomed, then an unknown message kind.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(
            greet(&mut s, &hello_text()).await.map(|a| a.0),
            Some(WELCOME)
        );
        write_frame(&mut s, 99, 0, b"").await.unwrap();
        assert!(closed_by_peer(&mut s).await);

        // Welcomed, then a message a daemon must not send.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(
            greet(&mut s, &hello_text()).await.map(|a| a.0),
            Some(WELCOME)
        );
        write_frame(&mut s, TASK, 0, b"").await.unwrap();
        assert!(closed_by_peer(&mut s).await);

        // A malformed HELLO.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(greet(&mut s, "pid=1\n").await, None);
    });
    still_works(&host);
    eventually("bad links to be dropped", || host.connections() == 2);
    let status = host.status();
    assert_eq!(status.daemons.iter().filter(|d| d.online).count(), 2);
    host.close(true);
    echo.join().unwrap();
}

#[test]
fn a_result_for_a_task_held_elsewhere_is_ignored() {
    let host = listen("tcp://127.0.0.1:0", true);
    let url = host.urls()[0].clone();
    let link = connect(&url);
    let id = host.submit(vec![], None);
    assert_eq!(expect_task(&link).0, id);
    let addr = url.trim_start_matches("tcp://").to_string();
    test_runtime().block_on(async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            greet(&mut s, &hello_text()).await.map(|a| a.0),
            Some(WELCOME)
        );
        write_frame(&mut s, RESULT, id, b"forged").await.unwrap();
        write_frame(&mut s, RESULT, 12345, b"unknown")
            .await
            .unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    assert!(!host.is_resolved(id));
    link.send_result(id, b"real".to_vec()).unwrap();
    assert_eq!(outcome(&host, id), Outcome::Value(b"real".to_vec()));
}

#[test]
fn handles_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Host>();
    send_sync::<DaemonLink>();
    send_sync::<mirai_core::Process>();
    send_sync::<Outcome>();
}

#[test]
fn many_timeouts_resolve_and_finished_deadlines_are_dropped() {
    let host = listen(&abstract_url(), false);
    let link = connect(&host.urls()[0]);
    let ids: Vec<u64> = (0..5000)
        .map(|_| host.submit(vec![], Some(3_600_000)))
        .collect();
    for &id in &ids {
        assert_eq!(expect_task(&link).0, id);
        link.send_result(id, vec![]).unwrap();
    }
    for &id in &ids {
        assert_eq!(outcome(&host, id), Outcome::Value(vec![]));
    }
    let short: Vec<u64> = (0..2000).map(|_| host.submit(vec![], Some(20))).collect();
    for &id in &short {
        assert_eq!(outcome(&host, id), Outcome::Error(Outcome::TIMED_OUT));
    }
}

#[test]
fn status_names_the_job_a_daemon_said_it_runs_in() {
    let host = listen("tcp://127.0.0.1:0", true);
    let addr = host.urls()[0].trim_start_matches("tcp://").to_string();
    test_runtime().block_on(async {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let hello = format!("{}job=4711_3\n", hello_text());
        assert_eq!(greet(&mut s, &hello).await.map(|a| a.0), Some(WELCOME));
        let mut t = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(
            greet(&mut t, &hello_text()).await.map(|a| a.0),
            Some(WELCOME)
        );
        eventually("both daemons to be welcomed", || host.connections() == 2);
        let jobs: Vec<Option<String>> = host.status().daemons.into_iter().map(|d| d.job).collect();
        assert_eq!(jobs, vec![Some("4711_3".to_string()), None]);
    });
    host.close(false);
}
