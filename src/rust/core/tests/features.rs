//! Cancellation at the daemon, `everywhere`, retries, the bounded queue,
//! waiting on tasks of several hosts and resolution callbacks.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use mirai_core::{DaemonLink, Host, HostOptions, Outcome, Received};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

// ---- cancellation at the daemon ------------------------------------------

static SIGINTS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_sigint(_: libc::c_int) {
    SIGINTS.fetch_add(1, Ordering::SeqCst);
}

/// A host written by hand, to send CANCELs at chosen moments.
struct RawHost {
    rt: tokio::runtime::Runtime,
    stream: TcpStream,
}

impl RawHost {
    fn accept(rt: tokio::runtime::Runtime, listener: TcpListener) -> RawHost {
        let stream = rt.block_on(async {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(&SP_HEADER).await.unwrap();
            write_frame(&mut stream, CHALLENGE, 0, challenge_text().as_bytes())
                .await
                .unwrap();
            let mut header = [0u8; 8];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut header)
                .await
                .unwrap();
            let (kind, _, _) = read_frame(&mut stream).await.unwrap();
            assert_eq!(kind, HELLO);
            write_frame(&mut stream, WELCOME, 0, b"version=9.9.9")
                .await
                .unwrap();
            stream
        });
        RawHost { rt, stream }
    }

    fn send(&mut self, kind: u8, id: u64) {
        self.rt
            .block_on(write_frame(&mut self.stream, kind, id, b"x"))
            .unwrap();
    }

    fn expect_result(&mut self, id: u64) {
        let (kind, got, _) = self.rt.block_on(read_frame(&mut self.stream)).unwrap();
        assert_eq!((kind, got), (RESULT, id));
    }
}

fn expect_task_id(link: &DaemonLink, id: u64) {
    match link.recv(PATIENCE) {
        Received::Task { id: got, .. } => assert_eq!(got, id),
        other => panic!("expected task {id}, got {other:?}"),
    }
}

#[test]
fn cancel_interrupts_only_the_task_being_evaluated() {
    // SAFETY: installs a handler that only touches an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            count_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let rt = test_runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let link = DaemonLink::connect(daemon_options(&url)).unwrap();
    link.interrupt_on_cancel(true);
    let mut host = RawHost::accept(rt, listener);
    assert_eq!(link.wait_connected(PATIENCE), Ok(true));

    for id in 1..=3 {
        host.send(TASK, id);
    }
    // This thread is now evaluating task 1.
    expect_task_id(&link, 1);
    // Task 2 is queued at the daemon: dropped silently. Task 1 is interrupted.
    host.send(CANCEL, 2);
    host.send(CANCEL, 1);
    eventually("the interrupt", || SIGINTS.load(Ordering::SeqCst) == 1);
    // The evaluating thread can tell that interrupt from one sent by others,
    // once.
    assert!(link.take_cancel_signal());
    assert!(!link.take_cancel_signal());
    // Once only, and never after the result was sent.
    host.send(CANCEL, 1);
    // The dropped task is answered, so that the host knows the daemon free.
    host.expect_result(2);
    link.send_result(1, b"interrupted".to_vec()).unwrap();
    host.expect_result(1);
    host.send(CANCEL, 1);
    host.send(CANCEL, 99);
    expect_task_id(&link, 3);
    link.send_result(3, b"done".to_vec()).unwrap();
    host.expect_result(3);
    // A CANCEL for the task just answered arrives while the next one runs.
    host.send(CANCEL, 3);
    host.send(TASK, 4);
    expect_task_id(&link, 4);
    host.send(TASK, 5);
    expect_task_id(&link, 5);
    assert_eq!(SIGINTS.load(Ordering::SeqCst), 1);
    assert!(!link.take_cancel_signal());
    // A signal whose interrupt was taken inside its task is forgotten when
    // the next task is handed out.
    host.send(CANCEL, 5);
    eventually("the second interrupt", || {
        SIGINTS.load(Ordering::SeqCst) == 2
    });
    link.send_result(5, b"interrupted".to_vec()).unwrap();
    host.expect_result(5);
    host.send(TASK, 6);
    expect_task_id(&link, 6);
    assert!(!link.take_cancel_signal());
}

#[test]
fn without_interrupts_a_cancel_still_drops_queued_tasks() {
    let host = listen(&abstract_url(), false);
    let link = connect(&host.urls()[0]);
    let running = host.submit(vec![1], None);
    let queued = host.submit(vec![2], None);
    let after = host.submit(vec![3], None);
    eventually("three tasks at the daemon", || host.status().executing == 3);
    assert_eq!(expect_task(&link).0, running);
    assert!(host.cancel(queued));
    assert!(host.cancel(running));
    // The daemon answers the task it dropped.
    eventually("the dropped task's answer", || host.status().completed == 1);
    assert_eq!(expect_task(&link).0, after);
    link.send_result(running, vec![]).unwrap();
    link.send_result(after, vec![7]).unwrap();
    assert_eq!(outcome(&host, after), Outcome::Value(vec![7]));
    assert_eq!(outcome(&host, running), Outcome::Error(Outcome::CANCELLED));
}

#[test]
fn a_task_cancelled_before_the_daemon_took_it_frees_the_daemon() {
    let host = listen(&abstract_url(), true);
    let link = connect(&host.urls()[0]);
    let cancelled = host.submit(b"cancelled".to_vec(), None);
    eventually("the task to be sent", || host.status().executing == 1);
    assert!(host.cancel(cancelled));
    std::thread::sleep(Duration::from_millis(100));
    let next = host.submit(b"next".to_vec(), None);
    assert_eq!(expect_task(&link), (next, b"next".to_vec()));
    link.send_result(next, b"ok".to_vec()).unwrap();
    assert_eq!(outcome(&host, next), Outcome::Value(b"ok".to_vec()));
}

#[test]
fn a_timeout_with_the_dispatcher_cancels_at_the_daemon() {
    let host = listen(&abstract_url(), true);
    let link = connect(&host.urls()[0]);
    let slow = host.submit(vec![], Some(30));
    assert_eq!(expect_task(&link).0, slow);
    assert_eq!(outcome(&host, slow), Outcome::Error(Outcome::TIMED_OUT));
    // The link received the CANCEL; the daemon's result is still awaited.
    link.send_result(slow, vec![]).unwrap();
    let next = host.submit(vec![], None);
    assert_eq!(expect_task(&link).0, next);
}

// ---- everywhere ------------------------------------------------------------

#[test]
fn broadcast_reaches_every_daemon_now_and_later_first() {
    for dispatcher in [true, false] {
        let host = listen(&abstract_url(), dispatcher);
        let url = host.urls()[0].clone();
        let first = connect(&url);
        host.wait_connections(1, PATIENCE);
        host.broadcast(b"setup".to_vec());
        let task = host.submit(b"task".to_vec(), None);
        let (setup_id, payload) = expect_task(&first);
        assert_eq!(payload, b"setup");
        assert_eq!(expect_task(&first), (task, b"task".to_vec()));
        // Its result is discarded and not counted.
        first.send_result(setup_id, b"ignored".to_vec()).unwrap();
        assert_eq!(host.take(setup_id), None);
        // A busy daemon has the next one queued behind its task.
        host.broadcast(b"more".to_vec());
        assert_eq!(expect_task(&first).1, b"more");
        first.send_result(task, b"ok".to_vec()).unwrap();
        assert_eq!(outcome(&host, task), Outcome::Value(b"ok".to_vec()));

        let queued = host.submit(b"queued".to_vec(), None);
        let second = connect(&url);
        host.wait_connections(2, PATIENCE);
        if dispatcher {
            // `first` is idle: it takes the queued task.
            assert_eq!(expect_task(&first).0, queued);
        }
        assert_eq!(expect_task(&second).1, b"setup");
        assert_eq!(expect_task(&second).1, b"more");
        if !dispatcher {
            assert_eq!(expect_task(&first).0, queued);
        }
        let status = host.status();
        assert_eq!((status.awaiting, status.executing), (0, 1));
        assert_eq!(status.completed, 1);
        assert_eq!(
            status
                .daemons
                .iter()
                .map(|d| d.assigned)
                .collect::<Vec<_>>(),
            [2, 0]
        );
    }
}

// ---- retries ---------------------------------------------------------------

fn retrying_host(dispatcher: bool, retries: u32) -> Host {
    Host::listen(HostOptions {
        retries,
        ..host_options(&abstract_url(), dispatcher)
    })
    .unwrap()
}

/// The link of `alive` that receives `task`, removed from `alive`.
fn take_holder(alive: &mut Vec<DaemonLink>, task: u64) -> DaemonLink {
    let mut holder = None;
    eventually("a daemon to receive the task", || {
        holder = alive.iter().position(|link| {
            matches!(link.recv(Duration::from_millis(5)), Received::Task { id, .. } if id == task)
        });
        holder.is_some()
    });
    alive.remove(holder.unwrap_or_default())
}

#[test]
fn a_task_whose_daemons_die_is_retried_up_to_the_limit_then_gives_19() {
    let host = retrying_host(true, 2);
    let mut alive = connect_in_order(&host, 4);
    let fatal = host.submit(b"fatal".to_vec(), None);
    for attempt in 0..3 {
        let holder = take_holder(&mut alive, fatal);
        assert!(!host.is_resolved(fatal), "{attempt}");
        holder.close();
        eventually("the link to drop", || host.connections() == 3 - attempt);
    }
    assert_eq!(
        outcome(&host, fatal),
        Outcome::Error(Outcome::CONNECTION_RESET)
    );
    let other = host.submit(b"other".to_vec(), None);
    assert_eq!(expect_task(&alive[0]).0, other);
    alive[0].send_result(other, b"fine".to_vec()).unwrap();
    assert_eq!(outcome(&host, other), Outcome::Value(b"fine".to_vec()));
    let status = host.status();
    assert_eq!(
        (status.awaiting, status.executing, status.completed),
        (0, 0, 1)
    );
}

#[test]
fn a_retried_task_gives_19_when_no_daemon_is_left_but_new_tasks_wait() {
    let host = retrying_host(true, 5);
    let url = host.urls()[0].clone();
    let mut alive = connect_in_order(&host, 2);
    let fatal = host.submit(b"fatal".to_vec(), None);
    for _ in 0..2 {
        take_holder(&mut alive, fatal).close();
    }
    assert_eq!(
        outcome(&host, fatal),
        Outcome::Error(Outcome::CONNECTION_RESET)
    );
    let later = host.submit(b"later".to_vec(), None);
    assert!(!host.wait(later, Duration::from_millis(50)));
    let link = connect(&url);
    assert_eq!(expect_task(&link).0, later);
}

#[test]
fn without_the_dispatcher_a_retried_task_goes_to_another_daemon() {
    let host = retrying_host(false, 1);
    let links = connect_in_order(&host, 2);
    let task = host.submit(b"t".to_vec(), None);
    let (held, other) = match links[0].recv(Duration::from_millis(500)) {
        Received::Task { id, .. } if id == task => (&links[0], &links[1]),
        Received::Timeout => (&links[1], &links[0]),
        got => panic!("{got:?}"),
    };
    held.close();
    assert_eq!(expect_task(other), (task, b"t".to_vec()));
    other.send_result(task, b"ok".to_vec()).unwrap();
    assert_eq!(outcome(&host, task), Outcome::Value(b"ok".to_vec()));
}

// ---- the bounded queue -----------------------------------------------------

fn bounded_host(max_queue_bytes: u64) -> Host {
    Host::listen(HostOptions {
        max_queue_bytes,
        ..host_options(&abstract_url(), true)
    })
    .unwrap()
}

#[test]
fn the_queue_never_holds_more_than_its_bound() {
    let host = bounded_host(100);
    let none = Duration::ZERO;
    let a = host
        .try_submit(Bytes::from(vec![0; 60]), None, none)
        .unwrap();
    let refused = host.try_submit(Bytes::from(vec![1; 60]), None, none);
    assert_eq!(refused.unwrap_err().len(), 60);
    host.try_submit(Bytes::from(vec![2; 40]), None, none)
        .unwrap();
    assert_eq!(host.status().queued_bytes, 100);
    assert!(host
        .try_submit(Bytes::from(vec![3; 1]), None, none)
        .is_err());
    // Cancelling a queued task makes room.
    assert!(host.cancel(a));
    assert_eq!(host.status().queued_bytes, 40);
    host.try_submit(Bytes::from(vec![4; 60]), None, none)
        .unwrap();
    // A task larger than the bound goes when the queue is empty.
    let big = bounded_host(100);
    big.try_submit(Bytes::from(vec![5; 500]), None, none)
        .unwrap();
    assert!(big.try_submit(Bytes::from(vec![6; 1]), None, none).is_err());
}

#[test]
fn ten_thousand_tasks_of_1_mb_never_hold_more_than_the_bound_in_the_queue() {
    const TASKS: usize = 10_000;
    let mb = 1 << 20;
    let host = bounded_host(4 * mb);
    let url = host.urls()[0].clone();
    let (done, finished) = mpsc::channel();
    let submitter = {
        let host = host.clone();
        std::thread::spawn(move || {
            let block = Bytes::from(vec![7u8; mb as usize]);
            let mut most = 0;
            for _ in 0..TASKS {
                let mut payload = block.clone();
                while let Err(back) = host.try_submit(payload, None, Duration::from_millis(200)) {
                    payload = back;
                }
                most = most.max(host.status().queued_bytes);
            }
            done.send(most).unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(host.status().queued_bytes, 4 * mb);
    let link = connect(&url);
    for _ in 0..TASKS {
        let (id, payload) = expect_task(&link);
        assert_eq!(payload.len() as u64, mb);
        link.send_result(id, vec![]).unwrap();
        assert!(host.status().queued_bytes <= 4 * mb);
    }
    let most = finished.recv_timeout(PATIENCE).unwrap();
    assert!(most <= 4 * mb, "{most}");
    submitter.join().unwrap();
    eventually("all complete", || host.status().completed == TASKS as u64);
}

// ---- waiting on several hosts, and callbacks ---------------------------------

#[test]
fn wait_any_wakes_for_a_task_of_any_host() {
    let one = listen(&abstract_url(), true);
    let two = listen(&abstract_url(), true);
    let link_one = connect(&one.urls()[0]);
    let link_two = connect(&two.urls()[0]);
    let a = one.submit(vec![], None);
    let b = two.submit(vec![], None);
    let tasks = [(&one, a), (&two, b)];
    assert_eq!(Host::wait_any(&tasks, Duration::from_millis(30)), None);
    let (id, _) = expect_task(&link_two);
    let answer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        link_two.send_result(id, vec![]).unwrap();
        link_two
    });
    let started = Instant::now();
    assert_eq!(Host::wait_any(&tasks, PATIENCE), Some(1));
    assert!(started.elapsed() < Duration::from_secs(5));
    let _link_two = answer.join().unwrap();
    let (id, _) = expect_task(&link_one);
    link_one.send_result(id, vec![]).unwrap();
    assert!(one.wait(a, PATIENCE));
    assert_eq!(Host::wait_any(&tasks, Duration::ZERO), Some(0));
}

#[test]
fn on_resolve_runs_once_when_the_task_resolves() {
    let host = listen(&abstract_url(), true);
    let link = connect(&host.urls()[0]);
    let (fired, seen) = mpsc::channel();
    let running = host.submit(vec![], None);
    let never_sent = host.submit(vec![], None);
    for (tag, id) in [("running", running), ("never_sent", never_sent)] {
        let fired = fired.clone();
        host.on_resolve(id, Box::new(move || fired.send(tag).unwrap()));
    }
    assert!(seen.recv_timeout(Duration::from_millis(30)).is_err());
    let (id, _) = expect_task(&link);
    link.send_result(id, b"v".to_vec()).unwrap();
    assert_eq!(seen.recv_timeout(PATIENCE), Ok("running"));
    // Already resolved: at once.
    let again = fired.clone();
    host.on_resolve(running, Box::new(move || again.send("again").unwrap()));
    assert_eq!(seen.try_recv(), Ok("again"));
    // Closing resolves the rest, once each.
    host.close(false);
    assert_eq!(seen.recv_timeout(PATIENCE), Ok("never_sent"));
    drop(fired);
    assert!(seen.recv_timeout(Duration::from_millis(50)).is_err());
}
