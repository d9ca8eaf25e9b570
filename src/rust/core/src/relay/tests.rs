//! A host, a relay dialled into it with a host of its own, and daemons of
//! the relay's, over abstract sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::host::HostOptions;

const PATIENCE: Duration = Duration::from_secs(10);
const VERSION: &str = "0.0.1";

fn url() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "abstract://mirai-relay-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn listen(dispatcher: bool) -> Host {
    Host::listen(HostOptions {
        urls: vec![url()],
        dispatcher,
        version: VERSION.to_string(),
        ..HostOptions::default()
    })
    .unwrap()
}

fn options(host: &Host) -> DaemonOptions {
    DaemonOptions {
        url: host.urls()[0].clone(),
        version: VERSION.to_string(),
        ..DaemonOptions::default()
    }
}

/// A daemon of the relay's that sees CANCELs as messages.
fn daemon(local: &Host, n: usize) -> DaemonLink {
    let link = DaemonLink::connect_as(options(local), true).unwrap();
    assert_eq!(link.wait_connected(PATIENCE), Ok(true));
    assert_eq!(local.wait_connections(n, PATIENCE), n);
    link
}

struct Setup {
    upstream: Host,
    local: Host,
    relay: Relay,
}

fn setup() -> Setup {
    let upstream = listen(false);
    let local = listen(true);
    let relay = Relay::start(options(&upstream), local.clone()).unwrap();
    assert_eq!(upstream.wait_connections(1, PATIENCE), 1);
    Setup {
        upstream,
        local,
        relay,
    }
}

/// A relay with one daemon of its own, and a task submitted at the host:
/// its id there, and at the daemon.
fn one_task(payload: &[u8]) -> (Setup, DaemonLink, u64, u64) {
    let s = setup();
    let d = daemon(&s.local, 1);
    let id = s.upstream.submit(payload.to_vec(), None);
    let (local_id, got, everywhere) = task(&d);
    assert_eq!((got.as_slice(), everywhere), (payload, false));
    (s, d, id, local_id)
}

fn task(link: &DaemonLink) -> (u64, Vec<u8>, bool) {
    match link.recv(PATIENCE) {
        Received::Task {
            id,
            payload,
            everywhere,
        } => (id, payload, everywhere),
        other => panic!("expected a task, got {other:?}"),
    }
}

fn outcome(host: &Host, id: u64) -> Outcome {
    assert!(host.wait(id, PATIENCE), "task {id} did not resolve");
    host.take(id).unwrap()
}

#[test]
fn payloads_pass_through_untouched_both_ways_failures_marked() {
    let (s, d, id, local_id) = one_task(b"the task");
    d.send_result(local_id, b"the value".to_vec()).unwrap();
    assert_eq!(
        outcome(&s.upstream, id),
        Outcome::Value(b"the value".to_vec())
    );
    let failing = s.upstream.submit(b"stop()".to_vec(), None);
    let (local_id, _, _) = task(&d);
    d.send_failure(local_id, b"an error".to_vec()).unwrap();
    assert_eq!(
        outcome(&s.upstream, failing),
        Outcome::Failure(b"an error".to_vec())
    );
}

#[test]
fn a_cancel_reaches_the_daemon_running_the_task_which_then_is_free() {
    let (s, d, id, local_id) = one_task(b"slow");
    let queued = s.upstream.submit(b"next".to_vec(), None);
    assert!(s.upstream.cancel(id));
    assert_eq!(outcome(&s.upstream, id), Outcome::Error(Outcome::CANCELLED));
    assert_eq!(d.recv(PATIENCE), Received::Cancel { id: local_id });
    // The relay's dispatcher sends the next task once the daemon answered
    // the cancelled one.
    d.send_result(local_id, Vec::new()).unwrap();
    let (next_id, payload, _) = task(&d);
    assert_eq!(payload, b"next");
    d.send_result(next_id, b"ok".to_vec()).unwrap();
    assert_eq!(outcome(&s.upstream, queued), Outcome::Value(b"ok".to_vec()));
    assert_eq!(s.local.status().completed, 2);
}

#[test]
fn a_task_lost_with_its_daemon_comes_back_as_its_code() {
    let (s, d, id, _) = one_task(b"fatal");
    d.close();
    drop(d);
    assert_eq!(
        outcome(&s.upstream, id),
        Outcome::Error(Outcome::CONNECTION_RESET)
    );
}

#[test]
fn everywhere_runs_on_every_local_daemon_and_answers_the_first_failure_else_the_first_value() {
    let s = setup();
    let first = daemon(&s.local, 1);
    let second = daemon(&s.local, 2);
    let ids = s.upstream.everywhere(b"setup".to_vec(), 1);
    assert_eq!(ids.len(), 1);
    let (a, payload_a, everywhere_a) = task(&first);
    let (b, payload_b, everywhere_b) = task(&second);
    assert_eq!((payload_a, everywhere_a), (b"setup".to_vec(), true));
    assert_eq!((payload_b, everywhere_b), (b"setup".to_vec(), true));
    second.send_failure(b, b"failed".to_vec()).unwrap();
    assert!(!s.upstream.wait(ids[0], Duration::from_millis(50)));
    first.send_result(a, b"fine".to_vec()).unwrap();
    assert_eq!(
        outcome(&s.upstream, ids[0]),
        Outcome::Failure(b"failed".to_vec())
    );

    let ids = s.upstream.everywhere(b"again".to_vec(), 1);
    let (a, _, _) = task(&first);
    let (b, _, _) = task(&second);
    second.send_result(b, b"second".to_vec()).unwrap();
    first.send_result(a, b"first".to_vec()).unwrap();
    assert_eq!(
        outcome(&s.upstream, ids[0]),
        Outcome::Value(b"first".to_vec())
    );
}

#[test]
fn the_relay_ends_with_its_host_and_its_daemons_are_told_to_exit() {
    let s = setup();
    let d = daemon(&s.local, 1);
    assert_eq!(s.relay.wait(Duration::ZERO), Ok(false));
    s.upstream.close(true);
    assert_eq!(s.relay.wait(PATIENCE), Ok(true));
    assert_eq!(d.recv(PATIENCE), Received::Exit);
    let late = s.local.submit(b"late".to_vec(), None);
    assert_eq!(outcome(&s.local, late), Outcome::Error(Outcome::CLOSED));
}

#[test]
fn a_relay_that_cannot_reach_its_host_says_why() {
    let local = listen(true);
    let opts = DaemonOptions {
        url: url(),
        version: VERSION.to_string(),
        ..DaemonOptions::default()
    };
    let relay = Relay::start(opts, local.clone()).unwrap();
    assert!(relay.wait(PATIENCE).is_err());
}

#[test]
fn combined_prefers_the_first_outcome_that_is_not_a_value() {
    let value = |b: &[u8]| Outcome::Value(b.to_vec());
    assert_eq!(combined(vec![value(b"a"), value(b"b")]), value(b"a"));
    assert_eq!(
        combined(vec![
            value(b"a"),
            Outcome::Error(19),
            Outcome::Failure(vec![])
        ]),
        Outcome::Error(19)
    );
    assert_eq!(combined(Vec::new()), Outcome::Error(Outcome::CLOSED));
}
