//! The scheduler driven directly, with outlets that record the frames
//! handed to them: no socket, no runtime, no clock but the deadlines and
//! the times of submission given (`Harness::now`, moved by the tests).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Sent,
    Later,
    Staged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    daemon: usize,
    kind: Kind,
    flags: u8,
    id: u64,
    payload: Bytes,
    how: How,
}

type Journal = Rc<RefCell<Vec<Frame>>>;

/// Records each frame, in order, with the daemon it is for. Its `Staged`
/// is that daemon's number.
struct Recorder {
    daemon: usize,
    journal: Journal,
    closed: Rc<Cell<bool>>,
}

impl Recorder {
    fn record(&self, tag: Tag, id: u64, payload: Bytes, how: How) {
        self.journal.borrow_mut().push(Frame {
            daemon: self.daemon,
            kind: tag.kind,
            flags: tag.flags,
            id,
            payload,
            how,
        });
    }
}

impl Outlet for Recorder {
    type Staged = usize;

    fn send(&self, kind: impl Into<Tag>, id: u64, payload: Bytes) {
        self.record(kind.into(), id, payload, How::Sent);
    }

    fn send_later(&self, kind: impl Into<Tag>, id: u64, payload: Bytes) {
        self.record(kind.into(), id, payload, How::Later);
    }

    fn stage(&self, kind: impl Into<Tag>, id: u64, payload: Bytes) -> Option<usize> {
        self.record(kind.into(), id, payload, How::Staged);
        Some(self.daemon)
    }

    fn close(&self) {
        self.closed.set(true);
    }
}

/// A scheduler and its simulated daemons, numbered in order of arrival.
struct Harness {
    scheduler: Scheduler<Recorder>,
    journal: Journal,
    links: Vec<u64>,
    closed: Vec<Rc<Cell<bool>>>,
    /// The time tasks are submitted at.
    now: Instant,
}

const DISPATCHER: bool = true;
const DIRECT: bool = false;

impl Harness {
    fn new(dispatcher: bool) -> Harness {
        Harness::with(dispatcher, 0, 0)
    }

    fn with(dispatcher: bool, max_queue_bytes: u64, retries: u32) -> Harness {
        Harness {
            scheduler: Scheduler::new(dispatcher, max_queue_bytes, retries),
            journal: Journal::default(),
            links: Vec::new(),
            closed: Vec::new(),
            now: Instant::now(),
        }
    }

    /// A daemon connects; returns its number. Its WELCOME, its first frame,
    /// is checked and left out of the journal.
    fn connect(&mut self) -> usize {
        let daemon = self.links.len();
        let closed = Rc::new(Cell::new(false));
        let recorder = Recorder {
            daemon,
            journal: self.journal.clone(),
            closed: closed.clone(),
        };
        let before = self.journal.borrow().len();
        let link = self
            .scheduler
            .add_link(
                recorder,
                100 + daemon as i64,
                None,
                Bytes::from_static(b"hi"),
            )
            .expect("open");
        let welcome = self.journal.borrow_mut().remove(before);
        assert_eq!((welcome.daemon, welcome.kind), (daemon, Kind::Welcome));
        self.links.push(link);
        self.closed.push(closed);
        daemon
    }

    fn submit(&mut self, len: usize) -> u64 {
        self.scheduler
            .enqueue(Bytes::from(vec![7; len]), None, self.now)
            .0
    }

    /// Submits `n` tasks of one byte.
    fn submit_tasks(&mut self, n: usize) {
        for _ in 0..n {
            self.submit(1);
        }
    }

    fn submit_until(&mut self, deadline: Instant) -> (u64, bool) {
        self.scheduler
            .enqueue(Bytes::from_static(b"task"), Some(deadline), self.now)
    }

    /// The frames handed over since the last call.
    fn frames(&mut self) -> Vec<Frame> {
        mem::take(&mut *self.journal.borrow_mut())
    }

    /// The (daemon, kind, id) of every frame since the last call.
    fn sent(&mut self) -> Vec<(usize, Kind, u64)> {
        self.frames()
            .into_iter()
            .map(|f| (f.daemon, f.kind, f.id))
            .collect()
    }

    /// The (daemon, id, how handed over) of every frame since the last call.
    fn writes(&mut self) -> Vec<(usize, u64, How)> {
        self.frames()
            .into_iter()
            .map(|f| (f.daemon, f.id, f.how))
            .collect()
    }

    /// The (daemon, task id) of every frame since the last call, which
    /// must all be TASKs.
    fn tasks_sent(&mut self) -> Vec<(usize, u64)> {
        self.frames()
            .into_iter()
            .map(|f| {
                assert_eq!(f.kind, Kind::Task, "{f:?}");
                (f.daemon, f.id)
            })
            .collect()
    }

    /// The daemon answers task `id` with the id's bytes.
    fn answer(&mut self, daemon: usize, id: u64) -> bool {
        let link = self.links[daemon];
        self.scheduler
            .on_result(link, id, Outcome::Value(id.to_be_bytes().to_vec()))
    }

    fn drop_link(&mut self, daemon: usize) {
        self.scheduler.drop_link(self.links[daemon]);
    }

    fn outcome(&mut self, id: u64) -> Option<Outcome> {
        self.scheduler.take(id)
    }

    fn counts(&self) -> (u64, u64, u64) {
        let status = self.scheduler.status(&[]);
        (status.awaiting, status.executing, status.completed)
    }
}

fn value(id: u64) -> Option<Outcome> {
    Some(Outcome::Value(id.to_be_bytes().to_vec()))
}

fn error(code: i32) -> Option<Outcome> {
    Some(Outcome::Error(code))
}

#[test]
fn queued_tasks_go_out_in_the_order_submitted() {
    let mut host = Harness::new(DISPATCHER);
    let ids: Vec<u64> = (0..6).map(|_| host.submit(10)).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    assert!(host.frames().is_empty());
    assert_eq!(host.counts(), (6, 0, 0));
    let d0 = host.connect();
    let d1 = host.connect();
    assert_eq!(host.tasks_sent(), [(d0, 1), (d1, 2)]);
    assert!(host.answer(d1, 2));
    assert_eq!(host.tasks_sent(), [(d1, 3)]);
    assert!(host.answer(d0, 1));
    assert_eq!(host.tasks_sent(), [(d0, 4)]);
    assert!(host.answer(d0, 4));
    assert!(host.answer(d1, 3));
    assert_eq!(host.tasks_sent(), [(d0, 5), (d1, 6)]);
    assert_eq!(host.counts(), (0, 2, 4));
    for id in 1..=4 {
        assert_eq!(host.outcome(id), value(id));
    }
    assert_eq!(host.outcome(5), None);
}

#[test]
fn the_dispatcher_sends_one_task_at_a_time_to_the_longest_idle_daemon() {
    let mut host = Harness::new(DISPATCHER);
    let d0 = host.connect();
    let d1 = host.connect();
    host.submit_tasks(3);
    // The first task to an idle daemon is staged, for the host to write
    // once it lets go of its lock.
    assert_eq!(host.writes(), [(d0, 1, How::Staged), (d1, 2, How::Staged)]);
    assert_eq!(host.scheduler.take_staged(), [d0, d1]);
    assert!(host.scheduler.take_staged().is_empty());
    assert_eq!(host.counts(), (1, 2, 0));
    assert!(host.answer(d1, 2));
    assert_eq!(host.tasks_sent(), [(d1, 3)]);
    assert!(host.answer(d1, 3));
    assert!(host.answer(d0, 1));
    // d1 has been idle longest.
    host.submit(1);
    assert_eq!(host.tasks_sent(), [(d1, 4)]);
    host.submit(1);
    assert_eq!(host.tasks_sent(), [(d0, 5)]);
    let status = host.scheduler.status(&[]);
    let rows: Vec<(u64, u64, i64)> = status
        .daemons
        .iter()
        .map(|r| (r.assigned, r.complete, r.pid))
        .collect();
    assert_eq!(rows, [(2, 1, 100), (3, 2, 101)]);
}

#[test]
fn without_the_dispatcher_tasks_go_round_robin_at_once() {
    let mut host = Harness::new(DIRECT);
    let d0 = host.connect();
    let d1 = host.connect();
    let d2 = host.connect();
    host.submit_tasks(7);
    // A daemon already holding a task gets the next through its writer
    // task (`Later`), so that a burst goes out in few writes.
    assert_eq!(
        host.writes(),
        [
            (d0, 1, How::Staged),
            (d1, 2, How::Staged),
            (d2, 3, How::Staged),
            (d0, 4, How::Later),
            (d1, 5, How::Later),
            (d2, 6, How::Later),
            (d0, 7, How::Later),
        ]
    );
    assert_eq!(host.counts(), (0, 7, 0));
    // A daemon that leaves is skipped from then on.
    host.scheduler.on_leaving(host.links[d1]);
    assert_eq!(host.sent(), [(d1, Kind::Exit, 0)]);
    host.submit_tasks(4);
    let mut to: Vec<usize> = host.tasks_sent().iter().map(|&(d, _)| d).collect();
    to.sort_unstable();
    assert_eq!(to, [d0, d0, d2, d2]);
}

#[test]
fn a_task_whose_daemon_drops_is_sent_again_first_until_its_retries_run_out() {
    let mut host = Harness::with(DISPATCHER, 0, 1);
    let d0 = host.connect();
    let d1 = host.connect();
    let first = host
        .scheduler
        .enqueue(Bytes::from_static(b"first"), None, host.now)
        .0;
    host.submit_tasks(2);
    assert_eq!(host.tasks_sent(), [(d0, 1), (d1, 2)]);
    host.drop_link(d0);
    assert!(host.closed[d0].get());
    assert!(!host.scheduler.is_resolved(first));
    assert_eq!(host.counts(), (2, 1, 0));
    // Task 1 goes ahead of task 3, which was waiting, with its payload.
    assert!(host.answer(d1, 2));
    let frames = host.frames();
    assert_eq!(
        frames.iter().map(|f| (f.daemon, f.id)).collect::<Vec<_>>(),
        [(d1, 1)]
    );
    assert_eq!(frames[0].payload, Bytes::from_static(b"first"));
    // Its one retry is spent: losing d1 too resolves it.
    let d2 = host.connect();
    assert_eq!(host.tasks_sent(), [(d2, 3)]);
    host.drop_link(d1);
    assert_eq!(host.outcome(1), error(Outcome::CONNECTION_RESET));
    assert!(host.frames().is_empty());
    assert_eq!(host.counts(), (0, 1, 1));
    assert!(host.answer(d2, 3));
    assert_eq!(host.outcome(3), value(3));
}

#[test]
fn with_no_daemon_left_a_retried_task_fails_but_a_task_never_sent_waits() {
    let mut host = Harness::with(DISPATCHER, 0, 3);
    let d0 = host.connect();
    host.submit_tasks(2);
    assert_eq!(host.tasks_sent(), [(d0, 1)]);
    host.drop_link(d0);
    assert_eq!(host.outcome(1), error(Outcome::CONNECTION_RESET));
    assert!(!host.scheduler.is_resolved(2));
    assert_eq!(host.counts(), (1, 0, 0));
    let d1 = host.connect();
    assert_eq!(host.tasks_sent(), [(d1, 2)]);
}

#[test]
fn without_retries_a_task_lost_with_its_daemon_resolves_to_connection_reset() {
    let mut host = Harness::new(DISPATCHER);
    let d0 = host.connect();
    let d1 = host.connect();
    host.submit_tasks(2);
    assert_eq!(host.tasks_sent(), [(d0, 1), (d1, 2)]);
    host.drop_link(d0);
    assert_eq!(host.outcome(1), error(Outcome::CONNECTION_RESET));
    assert!(!host.scheduler.is_resolved(2));
    assert_eq!(host.counts(), (0, 1, 0));
    assert_eq!(host.scheduler.connections(), 1);
    assert!(!host.scheduler.status(&[]).daemons[d0].online);
    // A late answer on the dropped link is ignored.
    assert!(!host.answer(d0, 1));
}

#[test]
fn the_queue_bound_counts_the_bytes_of_tasks_not_yet_sent() {
    let mut host = Harness::with(DISPATCHER, 100, 0);
    assert!(
        host.scheduler.has_room(1000),
        "an empty queue takes any task"
    );
    host.submit(60);
    assert!(host.scheduler.has_room(40));
    assert!(!host.scheduler.has_room(41));
    host.submit(40);
    assert!(!host.scheduler.has_room(1));
    // Sent tasks leave the queue's count.
    let d0 = host.connect();
    assert_eq!(host.tasks_sent(), [(d0, 1)]);
    assert_eq!(host.scheduler.status(&[]).queued_bytes, 40);
    assert!(host.scheduler.has_room(60));
    assert!(!host.scheduler.has_room(61));
    // So do cancelled ones; and a lost task queued again counts again.
    assert!(host.scheduler.cancel(2));
    assert_eq!(host.scheduler.status(&[]).queued_bytes, 0);
    let mut retrying = Harness::with(DISPATCHER, 100, 1);
    let d0 = retrying.connect();
    let d1 = retrying.connect();
    retrying.submit(70);
    retrying.submit(10);
    assert_eq!(retrying.tasks_sent(), [(d0, 1), (d1, 2)]);
    assert!(retrying.scheduler.has_room(100));
    retrying.drop_link(d0);
    assert_eq!(retrying.scheduler.status(&[]).queued_bytes, 70);
    assert!(!retrying.scheduler.has_room(31));
    // No bound: always room.
    let mut unbounded = Harness::new(DISPATCHER);
    unbounded.submit(1 << 20);
    assert!(unbounded.scheduler.has_room(u64::MAX));
}

#[test]
fn broadcast_tasks_reach_every_daemon_before_any_other_task() {
    let mut host = Harness::new(DIRECT);
    let d0 = host.connect();
    host.submit(1);
    host.scheduler.broadcast(Bytes::from_static(b"setup"));
    assert_eq!(host.tasks_sent(), [(d0, 1), (d0, 2)]);
    host.submit_tasks(2);
    assert_eq!(host.tasks_sent(), [(d0, 3), (d0, 4)]);
    let d1 = host.connect();
    let frames = host.frames();
    assert_eq!(
        frames.iter().map(|f| (f.daemon, f.id)).collect::<Vec<_>>(),
        [(d1, 2)]
    );
    assert_eq!(frames[0].payload, Bytes::from_static(b"setup"));
    // Not counted, and its answers are dropped.
    assert_eq!(host.counts(), (0, 3, 0));
    assert!(!host.answer(d1, 2));
    assert!(!host.scheduler.is_pending(2));
}

#[test]
fn everywhere_gives_each_daemon_connected_now_a_task_counted_and_answered() {
    for dispatcher in [DISPATCHER, DIRECT] {
        let mut host = Harness::new(dispatcher);
        let d0 = host.connect();
        let d1 = host.connect();
        host.submit(1);
        assert_eq!(host.tasks_sent(), [(d0, 1)]);
        let ids = host.scheduler.everywhere(Bytes::from_static(b"setup"), 1);
        assert_eq!(ids, [2, 3]);
        // Sent at once, even to the busy daemon.
        assert_eq!(host.tasks_sent(), [(d0, 2), (d1, 3)]);
        assert_eq!(host.counts(), (0, 3, 0));
        // With the dispatcher, a daemon holding one is not sent other tasks;
        // without, they go round-robin as ever.
        host.submit(1);
        if dispatcher {
            assert!(host.tasks_sent().is_empty());
        } else {
            assert_eq!(host.tasks_sent(), [(d1, 5)]);
        }
        assert!(host.answer(d1, 3));
        assert_eq!(host.outcome(3), value(3));
        if dispatcher {
            assert_eq!(host.tasks_sent(), [(d1, 5)]);
        }
        assert!(host.answer(d0, 1));
        assert!(host.answer(d0, 2));
        assert_eq!(host.outcome(2), value(2));
        assert_eq!(host.counts(), (0, 1, 3));
        // A later daemon is sent the payload under the id whose answers are
        // dropped.
        let d2 = host.connect();
        assert_eq!(host.tasks_sent(), [(d2, 4)]);
        assert!(!host.answer(d2, 4));
        let rows = host.scheduler.status(&[]).daemons;
        assert_eq!(
            rows.iter().map(|r| r.assigned).collect::<Vec<_>>(),
            [2, 2, 0]
        );
    }
}

#[test]
fn everywhere_and_broadcast_tasks_carry_their_flag_and_others_do_not() {
    let mut host = Harness::new(DISPATCHER);
    host.connect();
    host.submit(1);
    host.scheduler.everywhere(Bytes::from_static(b"setup"), 1);
    host.scheduler.broadcast(Bytes::from_static(b"config"));
    host.connect();
    let tasks: Vec<(usize, &'static [u8], u8)> = host
        .journal
        .borrow()
        .iter()
        .filter(|f| f.kind == Kind::Task)
        .map(|f| {
            let payload: &'static [u8] = match &f.payload[..] {
                b"setup" => b"setup",
                b"config" => b"config",
                _ => b"task",
            };
            (f.daemon, payload, f.flags)
        })
        .collect();
    let every = flags::EVERYWHERE;
    assert_eq!(
        tasks,
        [
            (0, &b"task"[..], 0),
            (0, &b"setup"[..], every),
            (0, &b"config"[..], every),
            (1, &b"setup"[..], every),
            (1, &b"config"[..], every),
        ]
    );
}

#[test]
fn everywhere_reserves_tasks_for_the_next_daemons_up_to_min() {
    let mut host = Harness::new(DISPATCHER);
    let d0 = host.connect();
    let ids = host.scheduler.everywhere(Bytes::from_static(b"setup"), 3);
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(host.tasks_sent(), [(d0, 1)]);
    assert_eq!(host.counts(), (2, 1, 0));
    host.submit(1);
    // Each of the next two daemons takes a reserved one first, the third
    // the payload under the dropped id; then the queued task.
    let d1 = host.connect();
    assert_eq!(host.tasks_sent(), [(d1, 2)]);
    let d2 = host.connect();
    assert_eq!(host.tasks_sent(), [(d2, 3)]);
    let d3 = host.connect();
    assert_eq!(host.tasks_sent(), [(d3, 4), (d3, 5)]);
    assert_eq!(host.counts(), (0, 4, 0));
    assert!(host.answer(d2, 3));
    assert_eq!(host.outcome(3), value(3));
    // A reserved task can be cancelled, and is then bound to no daemon.
    let more = host.scheduler.everywhere(Bytes::from_static(b"more"), 5);
    assert_eq!(more.len(), 5);
    assert_eq!(host.tasks_sent().len(), 4);
    assert!(host.scheduler.cancel(more[4]));
    assert_eq!(host.outcome(more[4]), error(Outcome::CANCELLED));
    let d4 = host.connect();
    assert_eq!(
        host.tasks_sent(),
        [(d4, 4), (d4, more[4] + 1)],
        "the dropped id of each payload"
    );
    // Reserved tasks resolve as closed when the host closes; so does every
    // one asked for afterwards.
    let waiting = host.scheduler.everywhere(Bytes::from_static(b"last"), 7);
    assert!(host.scheduler.close(false));
    assert_eq!(host.outcome(waiting[6]), error(Outcome::CLOSED));
    let closed = host.scheduler.everywhere(Bytes::from_static(b"late"), 2);
    assert_eq!(closed.len(), 2);
    assert_eq!(host.outcome(closed[0]), error(Outcome::CLOSED));
}

#[test]
fn an_everywhere_task_whose_daemon_is_lost_is_not_retried() {
    let mut host = Harness::with(DISPATCHER, 0, 3);
    let d0 = host.connect();
    let d1 = host.connect();
    let ids = host.scheduler.everywhere(Bytes::from_static(b"setup"), 0);
    assert_eq!(host.tasks_sent(), [(d0, ids[0]), (d1, ids[1])]);
    host.drop_link(d0);
    assert_eq!(host.outcome(ids[0]), error(Outcome::CONNECTION_RESET));
    assert!(host.tasks_sent().is_empty());
    assert_eq!(host.counts(), (0, 1, 0));
}

#[test]
fn the_peak_of_queued_bytes_is_kept() {
    let mut host = Harness::new(DISPATCHER);
    host.submit(30);
    host.submit(20);
    let d0 = host.connect();
    host.submit(10);
    let status = host.scheduler.status(&[]);
    assert_eq!((status.queued_bytes, status.peak_queued_bytes), (30, 50));
    assert!(host.answer(d0, 1));
    assert_eq!(host.scheduler.status(&[]).peak_queued_bytes, 50);
}

#[test]
fn a_leaving_daemon_is_sent_exit_after_its_tasks_and_no_more_tasks() {
    let mut host = Harness::new(DISPATCHER);
    let d0 = host.connect();
    host.submit(1);
    host.scheduler.on_leaving(host.links[d0]);
    host.submit(1);
    assert_eq!(host.sent(), [(d0, Kind::Task, 1), (d0, Kind::Exit, 0)]);
    assert!(host.answer(d0, 1));
    assert!(host.frames().is_empty());
    let d1 = host.connect();
    assert_eq!(host.tasks_sent(), [(d1, 2)]);
}

#[test]
fn an_oversized_result_fails_its_task_rather_than_retrying_it() {
    let mut host = Harness::with(DISPATCHER, 0, 2);
    let d0 = host.connect();
    host.submit(1);
    assert_eq!(host.tasks_sent(), [(d0, 1)]);
    host.scheduler.on_oversized(host.links[d0], 1);
    assert_eq!(host.outcome(1), error(Outcome::MESSAGE_TOO_LARGE));
    host.drop_link(d0);
    host.connect();
    assert!(host.frames().is_empty());
    assert_eq!(host.counts(), (0, 0, 0));
}

#[test]
fn closing_resolves_every_task_and_every_later_one_and_sends_exit() {
    let mut host = Harness::new(DISPATCHER);
    let d0 = host.connect();
    host.submit_tasks(2);
    host.frames();
    assert!(host.scheduler.close(true));
    assert_eq!(host.sent(), [(d0, Kind::Exit, 0)]);
    assert!(host.closed[d0].get());
    assert_eq!(host.outcome(1), error(Outcome::CLOSED));
    assert_eq!(host.outcome(2), error(Outcome::CLOSED));
    assert_eq!(host.counts(), (0, 0, 0));
    assert!(!host.scheduler.close(true));
    assert_eq!(host.submit(1), 3);
    assert_eq!(host.outcome(3), error(Outcome::CLOSED));
    let late = Recorder {
        daemon: 1,
        journal: host.journal.clone(),
        closed: Rc::default(),
    };
    assert_eq!(host.scheduler.add_link(late, 0, None, Bytes::new()), None);
    assert!(host.frames().is_empty());
}

#[test]
fn callbacks_run_once_when_their_task_resolves() {
    let mut host = Harness::new(DISPATCHER);
    let ran = Arc::new(AtomicUsize::new(0));
    let callback = || -> Callback {
        let ran = ran.clone();
        Box::new(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
    };
    host.submit_tasks(2);
    assert!(host.scheduler.on_resolve(1, callback()).is_none());
    assert!(host.scheduler.on_resolve(1, callback()).is_none());
    assert!(host.scheduler.on_resolve(2, callback()).is_none());
    let d0 = host.connect();
    assert!(host.answer(d0, 1));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    // A resolved task, or one never submitted, gives the callback back.
    assert!(host.scheduler.on_resolve(1, callback()).is_some());
    assert!(host.scheduler.on_resolve(9, callback()).is_some());
    assert!(host.scheduler.cancel(2));
    assert_eq!(ran.load(Ordering::SeqCst), 3);
}

#[test]
fn a_forgotten_task_runs_but_keeps_no_result() {
    let mut host = Harness::new(DISPATCHER);
    let d0 = host.connect();
    host.submit(1);
    host.scheduler.forget(1);
    assert_eq!(host.tasks_sent(), [(d0, 1)]);
    assert!(host.answer(d0, 1));
    assert!(host.scheduler.is_resolved(1));
    assert_eq!(host.outcome(1), None);
    assert_eq!(host.counts(), (0, 0, 1));
}

#[test]
fn only_the_daemon_holding_a_task_can_answer_it() {
    let mut host = Harness::new(DISPATCHER);
    let d0 = host.connect();
    let d1 = host.connect();
    host.submit(1);
    assert_eq!(host.tasks_sent(), [(d0, 1)]);
    assert!(!host.answer(d1, 1));
    assert!(!host.scheduler.on_result(99, 1, Outcome::Value(Vec::new())));
    assert!(!host.scheduler.is_resolved(1));
    assert!(!host.scheduler.is_resolved(0));
    assert!(!host.scheduler.is_resolved(2));
    assert!(host.answer(d0, 1));
    assert_eq!(host.outcome(1), value(1));
}

#[test]
fn a_table_emptied_after_a_burst_gives_its_memory_back() {
    let mut table: HashMap<u64, [u8; 64]> = HashMap::new();
    for id in 0..200_000 {
        table.insert(id, [0; 64]);
    }
    let peak = table.capacity();
    for id in 0..199_900 {
        table.remove(&id);
        shrink_if_sparse(&mut table);
    }
    assert_eq!(table.len(), 100);
    assert!(table.capacity() <= 8192, "{} of {peak}", table.capacity());
    // a small table is left alone (its reported capacity moves a little
    // as removals leave tombstones, but it is not reallocated)
    let mut small: HashMap<u64, u8> = (0..1000).map(|id| (id, 0)).collect();
    for id in 0..999 {
        small.remove(&id);
        shrink_if_sparse(&mut small);
    }
    assert!(small.capacity() > 1000, "{}", small.capacity());
}

mod ending;
mod retry;
mod wait;
