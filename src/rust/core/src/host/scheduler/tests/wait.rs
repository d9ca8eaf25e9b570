//! How long the oldest task has waited in the queue, as an autoscaler reads
//! it from `status`.

use super::*;

fn oldest_wait(host: &mut Harness) -> Duration {
    let now = host.now;
    host.scheduler.oldest_wait(now)
}

#[test]
fn the_oldest_wait_is_that_of_the_first_task_still_queued() {
    let mut host = Harness::new(DISPATCHER);
    assert_eq!(oldest_wait(&mut host), Duration::ZERO);
    let first = host.submit(1);
    host.now += Duration::from_millis(300);
    host.submit(1);
    host.now += Duration::from_millis(200);
    assert_eq!(oldest_wait(&mut host), Duration::from_millis(500));
    // cancelled while queued: the next one is the oldest
    assert!(host.scheduler.cancel(first));
    assert_eq!(oldest_wait(&mut host), Duration::from_millis(200));
    // sent to a daemon: none waits
    let d0 = host.connect();
    assert_eq!(host.tasks_sent(), [(d0, 2)]);
    assert_eq!(oldest_wait(&mut host), Duration::ZERO);
}

#[test]
fn a_task_queued_again_counts_its_wait_from_its_submission() {
    let mut host = Harness::with(DISPATCHER, 0, 1);
    host.scheduler.start_healing();
    let d0 = host.connect();
    let first = host.submit(1);
    host.now += Duration::from_millis(100);
    host.submit(1);
    assert_eq!(host.tasks_sent(), [(d0, first)]);
    host.now += Duration::from_millis(400);
    assert_eq!(oldest_wait(&mut host), Duration::from_millis(400));
    // d0 dies evaluating the first task (to be replaced): it goes back
    // ahead of the second
    host.drop_link(d0);
    assert_eq!(host.counts(), (2, 0, 0));
    assert_eq!(oldest_wait(&mut host), Duration::from_millis(500));
}
