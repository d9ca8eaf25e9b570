//! The dispatcher's decisions, apart from I/O: which task goes to which
//! daemon link, what is retried when a link drops, what times out, what the
//! bound on the queue lets in, and the results. No socket and no clock
//! inside: frames leave through each link's `Outlet`, and the time comes in
//! with `enqueue` and `expire`. The host keeps a `Scheduler` under its lock
//! (see `Locked`); the unit tests drive one directly. Tasks ended early
//! (cancelled, timed out) are `ending`'s; what becomes of the tasks of a
//! daemon that dies is `retry`'s.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::mem;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{DaemonRow, Outcome, Status};
use crate::message::{flags, Kind, Tag};
use crate::sync::Monitor;

mod ending;
mod everywhere;
mod retry;

pub use self::retry::Healing;

/// Run once when a task resolves (see `Host::on_resolve`).
pub type Callback = Box<dyn FnOnce() + Send>;

/// The outgoing side of a daemon link, as the scheduler uses it. Frames
/// leave in the order they are handed over, whichever method hands them.
/// A frame for a link that has ended is dropped: the scheduler learns of
/// the end from `Scheduler::drop_link`.
pub(crate) trait Outlet {
    /// What writes the frames `stage` queued (see `Locked`).
    type Staged;
    /// Writes the frame now if the link is idle, else queues it.
    fn send(&self, kind: impl Into<Tag>, id: u64, payload: Bytes);
    /// Queues the frame for the link's writer task (a burst for a busy
    /// daemon then goes out in few writes).
    fn send_later(&self, kind: impl Into<Tag>, id: u64, payload: Bytes);
    /// Queues the frame without writing it; the caller writes it through
    /// what this returns once it has let go of its lock.
    fn stage(&self, kind: impl Into<Tag>, id: u64, payload: Bytes) -> Option<Self::Staged>;
    /// Ends the link: its reader stops, and what was sent is still written.
    fn close(&self);
}

/// The process-wide count of task resolutions (of every host), so that a
/// thread can wait for any one of tasks that belong to several hosts.
pub(super) static RESOLUTIONS: Monitor<u64> = Monitor::new(0);

/// Counts one task resolution, waking `Host::wait_any`.
fn note_resolution() {
    let mut count = RESOLUTIONS.lock();
    *count += 1;
    count.wake();
}

enum Place {
    Queued,
    Sent(u64),
    /// An `everywhere` task waiting for the next daemon to connect.
    Reserved,
}

/// An entry lives in `Scheduler::tasks` while the task is queued or held
/// by a daemon, even after it resolved by timeout or cancellation: the
/// daemon is busy until its (discarded) result comes back.
struct Task {
    place: Place,
    /// Held until the task leaves the scheduler, as a task that its daemon
    /// had not started when it died is sent again whatever its retries
    /// (shared with the link's outbox, not copied); emptied once resolved.
    payload: Bytes,
    len: u64,
    retries_left: u32,
    /// Its daemon died evaluating it, and it was queued again to be retried.
    retried: bool,
    resolved: bool,
    forgotten: bool,
    /// An `everywhere` task: for its daemon only, never sent to another.
    everywhere: bool,
    /// When it was last sent, in `Scheduler::sends`: of the tasks a daemon
    /// holds, it evaluates the earliest sent first.
    sent_order: u64,
    /// When it was submitted (`None` for an `everywhere` task, which never
    /// waits in the queue).
    submitted: Option<Instant>,
}

/// A payload for every daemon (`Scheduler::everywhere`): each link that
/// connects later is sent it first, as a task of its own from `reserved`
/// while any is left, else as `id`, whose results are dropped.
struct Everywhere {
    id: u64,
    payload: Bytes,
    reserved: VecDeque<u64>,
}

struct Link<O> {
    outlet: O,
    row: usize,
    holding: u64,
    /// The daemon said LEAVING: it is sent no more tasks.
    leaving: bool,
    /// The `everywhere` tasks sent to it and not yet answered, as
    /// (`Task::sent_order`, id): one of them may be what it evaluates.
    setup: VecDeque<(u64, u64)>,
}

pub(crate) struct Scheduler<O: Outlet> {
    dispatcher: bool,
    closed: bool,
    next_task: u64,
    tasks: HashMap<u64, Task>,
    /// Task ids in submission order; ids no longer queued are skipped.
    queue: VecDeque<u64>,
    results: HashMap<u64, Outcome>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_link: u64,
    links: HashMap<u64, Link<O>>,
    /// Dispatcher mode: links holding nothing, longest idle first; ids of
    /// links gone or busy are skipped.
    idle: VecDeque<u64>,
    /// Direct mode: live links in arrival order, served round-robin.
    rotation: Vec<u64>,
    rotation_next: usize,
    daemons: Vec<DaemonRow>,
    awaiting: u64,
    executing: u64,
    completed: u64,
    /// Tasks sent so far (see `Task::sent_order`).
    sends: u64,
    /// Links that ended without their daemon leaving or the host closing.
    deaths: u64,
    healing: Healing,
    /// The processes of the daemons that said LEAVING.
    left: HashSet<i64>,
    /// The processes of the daemons whose link ended, without their
    /// leaving, while they held a task or an `everywhere` task.
    died_working: HashSet<i64>,
    max_queue_bytes: u64,
    queued_bytes: u64,
    /// The most `queued_bytes` has been.
    peak_queued_bytes: u64,
    retries: u32,
    /// Payloads of `everywhere` and `broadcast`, in order: every link is
    /// sent them all, first.
    everywhere: Vec<Everywhere>,
    callbacks: HashMap<u64, Vec<Callback>>,
    /// Outlets holding frames staged since the last `take_staged`.
    staged: Vec<O::Staged>,
}

/// Gives back the memory of a table left mostly empty after a burst: one at
/// most an eighth full shrinks to about twice its entries, so that each
/// removal costs O(1) amortized and a table that grows again is not thrashed.
fn shrink_if_sparse<V>(table: &mut HashMap<u64, V>) {
    const KEPT: usize = 4096;
    if table.capacity() > KEPT && table.len() < table.capacity() / 8 {
        table.shrink_to((table.len() * 2).max(KEPT));
    }
}

impl<O: Outlet> Scheduler<O> {
    /// `dispatcher`: each task goes to an idle daemon, else round-robin at
    /// once; see `HostOptions` for the bound on the queue and retries.
    pub(super) fn new(dispatcher: bool, max_queue_bytes: u64, retries: u32) -> Scheduler<O> {
        Scheduler {
            dispatcher,
            closed: false,
            next_task: 1,
            tasks: HashMap::new(),
            queue: VecDeque::new(),
            results: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_link: 0,
            links: HashMap::new(),
            idle: VecDeque::new(),
            rotation: Vec::new(),
            rotation_next: 0,
            daemons: Vec::new(),
            awaiting: 0,
            executing: 0,
            completed: 0,
            sends: 0,
            deaths: 0,
            healing: Healing::Off,
            left: HashSet::new(),
            died_working: HashSet::new(),
            max_queue_bytes,
            queued_bytes: 0,
            peak_queued_bytes: 0,
            retries,
            everywhere: Vec::new(),
            callbacks: HashMap::new(),
            staged: Vec::new(),
        }
    }

    /// What was staged since the last call, to write once unlocked.
    pub(super) fn take_staged(&mut self) -> Vec<O::Staged> {
        mem::take(&mut self.staged)
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(super) fn connections(&self) -> usize {
        self.links.len()
    }

    pub(super) fn status(&self, urls: &[String]) -> Status {
        Status {
            connections: self.links.len(),
            urls: urls.to_vec(),
            awaiting: self.awaiting,
            executing: self.executing,
            completed: self.completed,
            queued_bytes: self.queued_bytes,
            peak_queued_bytes: self.peak_queued_bytes,
            daemons: self.daemons.clone(),
            deaths: self.deaths,
            healing: self.healing.clone(),
            oldest_wait: Duration::ZERO,
        }
    }

    /// How long the oldest task waiting in the queue has waited at `now`,
    /// since it was submitted (zero when none waits). The queue is in
    /// submission order (a task queued again goes to the front, ahead of
    /// later ones, as it was sent before them): its first entry still
    /// queued is the oldest. Entries no longer queued are dropped from the
    /// front on the way, as `pump` does.
    pub(super) fn oldest_wait(&mut self, now: Instant) -> Duration {
        while let Some(&task_id) = self.queue.front() {
            match self.tasks.get(&task_id) {
                Some(Task {
                    place: Place::Queued,
                    submitted,
                    ..
                }) => {
                    return submitted.map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
                }
                _ => {
                    self.queue.pop_front();
                }
            }
        }
        Duration::ZERO
    }

    fn deliver(&mut self, id: u64, outcome: Outcome, forgotten: bool) {
        if !forgotten {
            self.results.insert(id, outcome);
        }
        if let Some(callbacks) = self.callbacks.remove(&id) {
            for callback in callbacks {
                callback();
            }
        }
        note_resolution();
    }

    /// Whether a task of `len` bytes fits the bound on the queue's bytes:
    /// any task does while the queue is empty.
    pub(super) fn has_room(&self, len: u64) -> bool {
        self.closed
            || self.max_queue_bytes == 0
            || self.queued_bytes == 0
            || self.queued_bytes.saturating_add(len) <= self.max_queue_bytes
    }

    /// Queues a new task, submitted `now`, which times out at `deadline`,
    /// and sends what can be sent. Returns its id, and whether its deadline
    /// is now the earliest (the timer must be told).
    pub(super) fn enqueue(
        &mut self,
        payload: Bytes,
        deadline: Option<Instant>,
        now: Instant,
    ) -> (u64, bool) {
        let id = self.next_task;
        self.next_task += 1;
        if let Some(code) = self.refusal() {
            self.results.insert(id, Outcome::Error(code));
            note_resolution();
            return (id, false);
        }
        let len = payload.len() as u64;
        self.tasks.insert(
            id,
            Task {
                place: Place::Queued,
                payload,
                len,
                retries_left: self.retries,
                retried: false,
                resolved: false,
                forgotten: false,
                everywhere: false,
                sent_order: 0,
                submitted: Some(now),
            },
        );
        self.awaiting += 1;
        self.add_queued_bytes(len);
        self.queue.push_back(id);
        let mut earliest_deadline = false;
        if let Some(deadline) = deadline {
            earliest_deadline = self
                .deadlines
                .peek()
                .is_none_or(|Reverse((d, _))| deadline < *d);
            self.deadlines.push(Reverse((deadline, id)));
            self.purge_stale_deadlines();
        }
        self.pump();
        (id, earliest_deadline)
    }

    fn add_queued_bytes(&mut self, len: u64) {
        self.queued_bytes += len;
        self.peak_queued_bytes = self.peak_queued_bytes.max(self.queued_bytes);
    }

    fn new_task_id(&mut self) -> u64 {
        let id = self.next_task;
        self.next_task += 1;
        id
    }

    pub(super) fn is_pending(&self, id: u64) -> bool {
        self.tasks.get(&id).is_some_and(|t| !t.resolved)
    }

    /// True once task `id` has resolved (also after its result was taken).
    pub(super) fn is_resolved(&self, id: u64) -> bool {
        id > 0 && id < self.next_task && !self.is_pending(id)
    }

    /// Keeps `callback` for when the task resolves; gives it back if the
    /// task is not pending.
    pub(super) fn on_resolve(&mut self, id: u64, callback: Callback) -> Option<Callback> {
        if self.is_pending(id) {
            self.callbacks.entry(id).or_default().push(callback);
            None
        } else {
            Some(callback)
        }
    }

    pub(super) fn take(&mut self, id: u64) -> Option<Outcome> {
        let outcome = self.results.remove(&id);
        shrink_if_sparse(&mut self.results);
        outcome
    }

    pub(super) fn forget(&mut self, id: u64) {
        self.results.remove(&id);
        shrink_if_sparse(&mut self.results);
        if let Some(task) = self.tasks.get_mut(&id) {
            task.forgotten = true;
        }
    }

    fn next_target(&mut self) -> Option<u64> {
        if self.dispatcher {
            while let Some(link_id) = self.idle.pop_front() {
                if self
                    .links
                    .get(&link_id)
                    .is_some_and(|l| l.holding == 0 && !l.leaving)
                {
                    return Some(link_id);
                }
            }
            None
        } else if self.rotation.is_empty() {
            None
        } else {
            let link_id = self.rotation[self.rotation_next % self.rotation.len()];
            self.rotation_next = (self.rotation_next + 1) % self.rotation.len();
            Some(link_id)
        }
    }

    /// Removes task `id`, sent to a daemon, and resolves it to error `code`
    /// unless it has resolved already.
    fn fail_sent(&mut self, id: u64, code: i32) {
        if let Some(task) = self.tasks.remove(&id) {
            if !task.resolved {
                self.executing -= 1;
                self.deliver(id, Outcome::Error(code), task.forgotten);
            }
        }
    }

    /// Sends queued tasks, oldest first, while a link can take one.
    fn pump(&mut self) {
        // No daemon can take a task (the common case while a burst is
        // submitted): the queue's front is not even looked at.
        let no_target = if self.dispatcher {
            self.idle.is_empty()
        } else {
            self.rotation.is_empty()
        };
        if no_target {
            return;
        }
        while let Some(&task_id) = self.queue.front() {
            if !matches!(
                self.tasks.get(&task_id),
                Some(Task {
                    place: Place::Queued,
                    ..
                })
            ) {
                self.queue.pop_front();
                continue;
            }
            let Some(link_id) = self.next_target() else {
                break;
            };
            self.queue.pop_front();
            self.send(task_id, link_id);
        }
    }

    fn send(&mut self, task_id: u64, link_id: u64) {
        let (Some(link), Some(task)) = (self.links.get_mut(&link_id), self.tasks.get_mut(&task_id))
        else {
            return;
        };
        if !matches!(task.place, Place::Queued) {
            return;
        }
        task.place = Place::Sent(link_id);
        task.sent_order = self.sends;
        self.sends += 1;
        let payload = task.payload.clone();
        self.queued_bytes -= task.len;
        self.awaiting -= 1;
        self.executing += 1;
        link.holding += 1;
        if let Some(row) = self.daemons.get_mut(link.row) {
            row.assigned += 1;
        }
        // A send fails only once the writer has ended; the link is then being
        // dropped and `drop_link` resolves this task. A daemon that already
        // holds tasks (without the dispatcher) gets this one through the
        // writer task, so that a burst is written in a few large writes;
        // an idle one gets it written once the lock is released.
        if link.holding > 1 {
            link.outlet.send_later(Kind::Task, task_id, payload);
        } else if let Some(staged) = link.outlet.stage(Kind::Task, task_id, payload) {
            self.staged.push(staged);
        }
    }

    /// Sends WELCOME (with `welcome` as its payload) and the `everywhere`
    /// tasks, and adds the link of the daemon with `pid` (in scheduler job
    /// `job`), which is given tasks at once: a daemon
    /// that has been welcomed is counted, and its first task follows its
    /// WELCOME. `None` once closed.
    pub(super) fn add_link(
        &mut self,
        outlet: O,
        pid: i64,
        job: Option<String>,
        welcome: Bytes,
    ) -> Option<u64> {
        if self.closed {
            return None;
        }
        outlet.send(Kind::Welcome, 0, welcome);
        let link_id = self.next_link;
        self.next_link += 1;
        let row = self.daemons.len();
        self.daemons.push(DaemonRow {
            online: true,
            assigned: 0,
            complete: 0,
            pid,
            job,
        });
        self.links.insert(
            link_id,
            Link {
                outlet,
                row,
                holding: 0,
                leaving: false,
                setup: VecDeque::with_capacity(self.everywhere.len()),
            },
        );
        for i in 0..self.everywhere.len() {
            let everywhere = &mut self.everywhere[i];
            let payload = everywhere.payload.clone();
            match everywhere.reserved.pop_front() {
                Some(id) => self.send_everywhere(id, link_id, payload),
                None => {
                    let id = everywhere.id;
                    if let Some(link) = self.links.get_mut(&link_id) {
                        link.outlet
                            .send(Kind::Task.with(flags::EVERYWHERE), id, payload);
                        link.setup.push_back((self.sends, id));
                        self.sends += 1;
                    }
                }
            }
        }
        if self.dispatcher {
            self.idle.push_back(link_id);
        } else {
            self.rotation.push(link_id);
        }
        self.pump();
        Some(link_id)
    }

    /// Takes a result that link `link_id` sent for task `task_id`; false
    /// (and nothing changed) unless that link holds that task.
    pub(super) fn on_result(&mut self, link_id: u64, task_id: u64, outcome: Outcome) -> bool {
        let Some(link) = self.links.get_mut(&link_id) else {
            return false;
        };
        if !matches!(self.tasks.get(&task_id), Some(Task { place: Place::Sent(l), .. }) if *l == link_id)
        {
            if let Some(pos) = link.setup.iter().position(|&(_, id)| id == task_id) {
                link.setup.remove(pos);
            }
            return false;
        }
        let Some(task) = self.tasks.remove(&task_id) else {
            return false;
        };
        shrink_if_sparse(&mut self.tasks);
        link.holding -= 1;
        let now_idle = link.holding == 0 && !link.leaving;
        if let Some(row) = self.daemons.get_mut(link.row) {
            row.complete += 1;
        }
        self.completed += 1;
        if !task.resolved {
            self.executing -= 1;
            self.deliver(task_id, outcome, task.forgotten);
        }
        if self.dispatcher && now_idle {
            self.idle.push_back(link_id);
            self.pump();
        }
        true
    }

    /// The daemon takes no more tasks (it reached its `maxtasks`, `idletime`
    /// or `walltime`): it is sent none, and EXIT, which follows every task
    /// already sent to it, so that it evaluates those before it exits. Sent
    /// before the daemon's last result, so that no task follows that result.
    pub(super) fn on_leaving(&mut self, link_id: u64) {
        let Some(link) = self.links.get_mut(&link_id) else {
            return;
        };
        link.leaving = true;
        link.outlet.send(Kind::Exit, 0, Bytes::new());
        if let Some(row) = self.daemons.get(link.row) {
            self.left.insert(row.pid);
        }
        if let Some(pos) = self.rotation.iter().position(|&l| l == link_id) {
            self.rotation.remove(pos);
        }
    }

    /// The daemon sent a result beyond the size limit, so its connection is
    /// being closed: task `id` (if this link holds it) resolves to
    /// `MESSAGE_TOO_LARGE` rather than being retried on another daemon, only
    /// to be too large there too.
    pub(super) fn on_oversized(&mut self, link_id: u64, id: u64) {
        if !matches!(self.tasks.get(&id), Some(Task { place: Place::Sent(l), .. }) if *l == link_id)
        {
            return;
        }
        if let Some(link) = self.links.get_mut(&link_id) {
            link.holding -= 1;
        }
        self.fail_sent(id, Outcome::MESSAGE_TOO_LARGE);
    }

    /// Closes every link, sending EXIT first when `send_exit`; every
    /// unresolved task resolves to `CLOSED`, and so does every task queued
    /// later. False if closed already.
    pub(super) fn close(&mut self, send_exit: bool) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        let links = mem::take(&mut self.links);
        for link in links.into_values() {
            if send_exit {
                link.outlet.send(Kind::Exit, 0, Bytes::new());
            }
            link.outlet.close();
            if let Some(row) = self.daemons.get_mut(link.row) {
                row.online = false;
            }
        }
        let tasks = mem::take(&mut self.tasks);
        for (id, task) in tasks {
            if !task.resolved {
                self.deliver(id, Outcome::Error(Outcome::CLOSED), task.forgotten);
            }
        }
        self.queue.clear();
        self.idle.clear();
        self.rotation.clear();
        self.deadlines.clear();
        self.everywhere.clear();
        self.awaiting = 0;
        self.executing = 0;
        self.queued_bytes = 0;
        for (_, callbacks) in mem::take(&mut self.callbacks) {
            for callback in callbacks {
                callback();
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
