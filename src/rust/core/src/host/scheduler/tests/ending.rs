//! Tasks cancelled, or timed out, before their result.

use super::*;

#[test]
fn a_queued_task_cancelled_resolves_and_is_never_sent() {
    let mut host = Harness::new(DISPATCHER);
    host.submit(30);
    host.submit(20);
    assert_eq!(host.scheduler.status(&[]).queued_bytes, 50);
    assert!(host.scheduler.cancel(1));
    assert_eq!(host.outcome(1), error(Outcome::CANCELLED));
    assert!(host.scheduler.is_resolved(1));
    assert_eq!(host.scheduler.status(&[]).queued_bytes, 20);
    assert_eq!(host.counts(), (1, 0, 0));
    assert!(!host.scheduler.cancel(1));
    assert!(!host.scheduler.cancel(99));
    let d0 = host.connect();
    assert_eq!(host.tasks_sent(), [(d0, 2)]);
}

#[test]
fn a_sent_task_cancelled_resolves_at_once_but_holds_its_daemon_until_it_answers() {
    let mut host = Harness::new(DISPATCHER);
    let d0 = host.connect();
    host.submit_tasks(2);
    assert_eq!(host.tasks_sent(), [(d0, 1)]);
    assert!(host.scheduler.cancel(1));
    assert_eq!(host.sent(), [(d0, Kind::Cancel, 1)]);
    assert_eq!(host.outcome(1), error(Outcome::CANCELLED));
    assert_eq!(host.counts(), (1, 0, 0));
    assert!(!host.scheduler.cancel(1));
    // The daemon's late answer is dropped, and frees it for the next task.
    assert!(host.answer(d0, 1));
    assert_eq!(host.outcome(1), None);
    assert_eq!(host.tasks_sent(), [(d0, 2)]);
    assert_eq!(host.counts(), (0, 1, 1));
}

#[test]
fn tasks_time_out_at_their_deadline_and_the_dispatcher_cancels_them_at_their_daemon() {
    let mut host = Harness::new(DISPATCHER);
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let d0 = host.connect();
    assert_eq!(host.submit_until(at(10)), (1, true));
    assert_eq!(host.submit_until(at(5)), (2, true));
    assert_eq!(host.submit_until(at(20)), (3, false));
    assert_eq!(host.tasks_sent(), [(d0, 1)]);
    assert_eq!(host.scheduler.next_deadline(), Some(at(5)));
    assert!(!host.scheduler.expire(at(4)));
    assert!(host.frames().is_empty());
    assert!(host.scheduler.expire(at(10)));
    assert_eq!(host.outcome(1), error(Outcome::TIMED_OUT));
    assert_eq!(host.outcome(2), error(Outcome::TIMED_OUT));
    assert!(!host.scheduler.is_resolved(3));
    assert_eq!(host.sent(), [(d0, Kind::Cancel, 1)]);
    assert_eq!(host.scheduler.next_deadline(), Some(at(20)));
    // Task 3 waits for the daemon, busy until task 1's answer.
    assert!(host.answer(d0, 1));
    assert_eq!(host.tasks_sent(), [(d0, 3)]);
    assert!(host.scheduler.expire(at(20)));
    assert_eq!(host.outcome(3), error(Outcome::TIMED_OUT));
    assert_eq!(host.scheduler.next_deadline(), None);
}

#[test]
fn without_the_dispatcher_a_timed_out_task_is_not_cancelled_at_its_daemon() {
    let mut host = Harness::new(DIRECT);
    let start = Instant::now();
    let d0 = host.connect();
    host.submit_until(start + Duration::from_secs(1));
    assert_eq!(host.tasks_sent(), [(d0, 1)]);
    assert!(host.scheduler.expire(start + Duration::from_secs(1)));
    assert_eq!(host.outcome(1), error(Outcome::TIMED_OUT));
    assert!(host.frames().is_empty());
    // An answer after the deadline is dropped.
    assert!(host.answer(d0, 1));
    assert_eq!(host.outcome(1), None);
}
