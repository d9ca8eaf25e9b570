//! What becomes of the tasks of a daemon that dies: retried at most as
//! often as allowed when it was evaluating them, queued again for free when
//! it had not started them; and what waits while daemons are replaced.

use super::*;

#[test]
fn without_the_dispatcher_tasks_queued_behind_the_running_one_are_requeued_free() {
    let mut host = Harness::with(DIRECT, 0, 1);
    let d0 = host.connect();
    let d1 = host.connect();
    let ids: Vec<u64> = (0..4)
        .map(|i| {
            host.scheduler
                .enqueue(Bytes::from(format!("task {i}")), None, host.now)
                .0
        })
        .collect();
    assert_eq!(host.tasks_sent(), [(d0, 1), (d1, 2), (d0, 3), (d1, 4)]);
    // d0 dies evaluating task 1; task 3 waited behind it.
    host.drop_link(d0);
    let frames = host.frames();
    assert_eq!(
        frames.iter().map(|f| (f.daemon, f.id)).collect::<Vec<_>>(),
        [(d1, 1), (d1, 3)]
    );
    assert_eq!(frames[1].payload, Bytes::from_static(b"task 2"));
    assert_eq!(host.counts(), (0, 4, 0));
    // d1 holds 2, 4, 1, 3 in that order and dies evaluating task 2: only
    // task 2 spends its retry. Task 1 was not started there, so it is not
    // failed for having no retry left.
    let d2 = host.connect();
    host.drop_link(d1);
    assert_eq!(host.tasks_sent(), [(d2, 2), (d2, 4), (d2, 1), (d2, 3)]);
    for id in ids {
        assert!(!host.scheduler.is_resolved(id));
    }
    // d2 dies evaluating task 2 again: its second death fails it.
    let d3 = host.connect();
    host.drop_link(d2);
    assert_eq!(host.outcome(2), error(Outcome::CONNECTION_RESET));
    assert_eq!(host.tasks_sent(), [(d3, 4), (d3, 1), (d3, 3)]);
    for id in [4, 1, 3] {
        assert!(host.answer(d3, id));
        assert_eq!(host.outcome(id), value(id));
    }
}

#[test]
fn without_retries_a_task_never_started_still_goes_to_another_daemon() {
    let mut host = Harness::new(DIRECT);
    let d0 = host.connect();
    let d1 = host.connect();
    host.submit_tasks(3);
    assert_eq!(host.tasks_sent(), [(d0, 1), (d1, 2), (d0, 3)]);
    host.drop_link(d0);
    assert_eq!(host.outcome(1), error(Outcome::CONNECTION_RESET));
    assert_eq!(host.tasks_sent(), [(d1, 3)]);
    assert!(host.answer(d1, 2));
    assert!(host.answer(d1, 3));
    assert_eq!(host.outcome(3), value(3));
}

#[test]
fn a_cancelled_task_still_running_is_the_one_its_daemon_died_on() {
    let mut host = Harness::with(DIRECT, 0, 1);
    let d0 = host.connect();
    let d1 = host.connect();
    host.submit_tasks(3);
    assert_eq!(host.tasks_sent(), [(d0, 1), (d1, 2), (d0, 3)]);
    assert!(host.scheduler.cancel(1));
    host.frames();
    host.drop_link(d0);
    assert_eq!(host.tasks_sent(), [(d1, 3)]);
    // Task 3 kept its retry: d1 dying on it sends it once more.
    let d2 = host.connect();
    assert!(host.answer(d1, 2));
    host.drop_link(d1);
    assert_eq!(host.tasks_sent(), [(d2, 3)]);
}

#[test]
fn with_the_dispatcher_the_task_held_is_the_one_its_daemon_died_on() {
    let mut host = Harness::with(DISPATCHER, 0, 1);
    let d0 = host.connect();
    let d1 = host.connect();
    host.submit_tasks(2);
    host.frames();
    host.drop_link(d0);
    assert_eq!(host.counts(), (1, 1, 0));
    assert!(host.answer(d1, 2));
    assert_eq!(host.tasks_sent(), [(d1, 1)]);
    host.drop_link(d1);
    assert_eq!(host.outcome(1), error(Outcome::CONNECTION_RESET));
}

#[test]
fn while_daemons_are_replaced_a_retried_task_waits_for_the_replacement() {
    let mut host = Harness::with(DISPATCHER, 0, 1);
    host.scheduler.start_healing();
    let d0 = host.connect();
    host.submit_tasks(2);
    host.frames();
    host.drop_link(d0);
    assert!(!host.scheduler.is_resolved(1));
    assert_eq!(host.counts(), (2, 0, 0));
    let d1 = host.connect();
    assert_eq!(host.tasks_sent(), [(d1, 1)]);
    assert!(host.answer(d1, 1));
    assert_eq!(host.outcome(1), value(1));
}

#[test]
fn once_replacing_stops_with_no_daemon_left_what_waits_resolves_to_19() {
    let mut host = Harness::with(DISPATCHER, 0, 1);
    host.scheduler.start_healing();
    let d0 = host.connect();
    let d1 = host.connect();
    host.submit_tasks(3);
    host.frames();
    host.drop_link(d0);
    // A daemon is still connected: stopping leaves the tasks to it.
    host.scheduler
        .stop_healing("5 daemons died within 60 s".to_string());
    assert_eq!(
        host.scheduler.status(&[]).healing,
        Healing::Stopped("5 daemons died within 60 s".to_string())
    );
    assert!(!host.scheduler.is_resolved(1));
    assert!(host.answer(d1, 2));
    assert_eq!(host.tasks_sent(), [(d1, 1)]);
    // The last one dies: what waits resolves, and so does a new task.
    host.drop_link(d1);
    assert_eq!(host.outcome(1), error(Outcome::CONNECTION_RESET));
    assert_eq!(host.outcome(3), error(Outcome::CONNECTION_RESET));
    assert_eq!(host.counts(), (0, 0, 1));
    let late = host.submit(1);
    assert_eq!(host.outcome(late), error(Outcome::CONNECTION_RESET));
    // A daemon launched by hand is given tasks again.
    let d2 = host.connect();
    let next = host.submit(1);
    assert_eq!(host.tasks_sent(), [(d2, next)]);
}

#[test]
fn stopping_with_no_daemon_connected_resolves_what_waits() {
    let mut host = Harness::with(DISPATCHER, 0, 1);
    host.scheduler.start_healing();
    host.submit_tasks(2);
    host.scheduler.stop_healing("crash loop".to_string());
    assert_eq!(host.outcome(1), error(Outcome::CONNECTION_RESET));
    assert_eq!(host.outcome(2), error(Outcome::CONNECTION_RESET));
    assert_eq!(host.counts(), (0, 0, 0));
}

#[test]
fn deaths_count_daemons_lost_but_not_those_that_leave_or_are_closed() {
    let mut host = Harness::new(DISPATCHER);
    let d0 = host.connect();
    let d1 = host.connect();
    let d2 = host.connect();
    host.drop_link(d0);
    host.scheduler.on_leaving(host.links[d1]);
    host.drop_link(d1);
    assert_eq!(host.scheduler.status(&[]).deaths, 1);
    host.scheduler.close(false);
    host.drop_link(d2);
    assert_eq!(host.scheduler.status(&[]).deaths, 1);
}

#[test]
fn a_daemon_died_failing_if_it_never_connected_or_died_on_its_first_work() {
    // Each daemon below is the first of its host: process 100.
    assert!(Harness::new(DIRECT).scheduler.died_failing(100));
    // it worked, then was lost holding more: not failing
    let mut host = Harness::new(DIRECT);
    let d0 = host.connect();
    host.submit_tasks(2);
    assert!(host.answer(d0, 1));
    host.drop_link(d0);
    assert!(!host.scheduler.died_failing(100));
    // lost while idle: not failing
    let mut host = Harness::new(DIRECT);
    let d0 = host.connect();
    host.drop_link(d0);
    assert!(!host.scheduler.died_failing(100));
    // lost holding its first task: failing
    let mut host = Harness::new(DIRECT);
    let d0 = host.connect();
    host.submit(1);
    host.drop_link(d0);
    assert!(host.scheduler.died_failing(100));
    // lost holding an everywhere task: failing
    let mut host = Harness::new(DIRECT);
    host.scheduler.broadcast(Bytes::from_static(b"setup"));
    let d0 = host.connect();
    host.drop_link(d0);
    assert!(host.scheduler.died_failing(100));
}

#[test]
fn a_daemon_that_dies_on_an_everywhere_task_spends_no_retry_of_the_next() {
    let mut host = Harness::with(DISPATCHER, 0, 1);
    host.scheduler.start_healing();
    host.scheduler.broadcast(Bytes::from_static(b"setup"));
    let d0 = host.connect();
    host.submit(1);
    assert_eq!(host.tasks_sent(), [(d0, 1), (d0, 2)]);
    host.drop_link(d0);
    let d1 = host.connect();
    assert_eq!(host.tasks_sent(), [(d1, 1), (d1, 2)]);
    host.drop_link(d1);
    let d2 = host.connect();
    assert_eq!(host.tasks_sent(), [(d2, 1), (d2, 2)]);
    // Once the everywhere task is answered, task 2 is what d2 evaluates.
    assert!(!host.answer(d2, 1));
    host.drop_link(d2);
    let d3 = host.connect();
    assert_eq!(host.tasks_sent(), [(d3, 1), (d3, 2)]);
    assert!(!host.answer(d3, 1));
    host.drop_link(d3);
    assert_eq!(host.outcome(2), error(Outcome::CONNECTION_RESET));
}
