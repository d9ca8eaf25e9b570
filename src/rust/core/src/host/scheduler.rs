//! The dispatcher's decisions, apart from I/O: which task goes to which
//! daemon link, what is retried when a link drops, what times out, what the
//! bound on the queue lets in, and the results. No socket and no clock
//! inside: frames leave through each link's `Outlet`, and the time comes in
//! with `enqueue` and `expire`. The host keeps a `Scheduler` under its lock
//! (see `Locked`); the unit tests drive one directly.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::mem;
use std::time::Instant;

use bytes::Bytes;

use super::{DaemonRow, Outcome, Status};
use crate::message::Kind;
use crate::sync::Monitor;

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
    fn send(&self, kind: Kind, id: u64, payload: Bytes);
    /// Queues the frame for the link's writer task (a burst for a busy
    /// daemon then goes out in few writes).
    fn send_later(&self, kind: Kind, id: u64, payload: Bytes);
    /// Queues the frame without writing it; the caller writes it through
    /// what this returns once it has let go of its lock.
    fn stage(&self, kind: Kind, id: u64, payload: Bytes) -> Option<Self::Staged>;
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
    /// Held while queued, and while sent if it may be retried (shared with
    /// the link's outbox, not copied).
    payload: Option<Bytes>,
    len: u64,
    retries_left: u32,
    /// Sent to a daemon that died, and queued again to be retried.
    retried: bool,
    resolved: bool,
    forgotten: bool,
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
}

enum Abandoned {
    NotPending,
    Queued,
    Sent(u64),
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

/// An `everywhere` task: never retried, as it is meant for one daemon. Its
/// payload is held by the `Everywhere` entry or the link's outbox.
fn everywhere_task(place: Place, len: usize) -> Task {
    Task {
        place,
        payload: None,
        len: len as u64,
        retries_left: 0,
        retried: false,
        resolved: false,
        forgotten: false,
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
        }
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

    /// Queues a new task, which times out at `deadline`, and sends what can
    /// be sent. Returns its id, and whether its deadline is now the earliest
    /// (the timer must be told).
    pub(super) fn enqueue(&mut self, payload: Bytes, deadline: Option<Instant>) -> (u64, bool) {
        let id = self.next_task;
        self.next_task += 1;
        if self.closed {
            self.results.insert(id, Outcome::Error(Outcome::CLOSED));
            note_resolution();
            return (id, false);
        }
        let len = payload.len() as u64;
        self.tasks.insert(
            id,
            Task {
                place: Place::Queued,
                payload: Some(payload),
                len,
                retries_left: self.retries,
                retried: false,
                resolved: false,
                forgotten: false,
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

    /// Sends `payload` as a task to every link now, and to each later link
    /// before any other task. Its results are dropped, and it is not
    /// counted.
    pub(super) fn broadcast(&mut self, payload: Bytes) {
        if self.closed {
            return;
        }
        let id = self.new_task_id();
        for link in self.links.values().filter(|l| !l.leaving) {
            link.outlet.send(Kind::Task, id, payload.clone());
        }
        self.everywhere.push(Everywhere {
            id,
            payload,
            reserved: VecDeque::new(),
        });
    }

    /// As `broadcast`, but each link connected now is sent the payload as a
    /// task of its own, counted and answered as any task (never retried on
    /// another daemon); so are the next links to connect, until there are
    /// `min` such tasks. Returns their ids, those of the links connected now
    /// first, in order of arrival. Once closed, each resolves at once to
    /// `CLOSED`.
    pub(super) fn everywhere(&mut self, payload: Bytes, min: usize) -> Vec<u64> {
        let mut ids = Vec::new();
        if self.closed {
            for _ in 0..min {
                let id = self.new_task_id();
                self.results.insert(id, Outcome::Error(Outcome::CLOSED));
                note_resolution();
                ids.push(id);
            }
            return ids;
        }
        let mut links: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, l)| !l.leaving)
            .map(|(&id, _)| id)
            .collect();
        links.sort_unstable();
        for link_id in links {
            let id = self.new_task_id();
            self.tasks
                .insert(id, everywhere_task(Place::Queued, payload.len()));
            self.awaiting += 1;
            self.send_everywhere(id, link_id, payload.clone());
            ids.push(id);
        }
        let mut reserved = VecDeque::new();
        while ids.len() < min {
            let id = self.new_task_id();
            self.tasks
                .insert(id, everywhere_task(Place::Reserved, payload.len()));
            self.awaiting += 1;
            reserved.push_back(id);
            ids.push(id);
        }
        let id = self.new_task_id();
        self.everywhere.push(Everywhere {
            id,
            payload,
            reserved,
        });
        ids
    }

    /// Sends task `id` (an `everywhere` task, awaiting) to link `link_id`,
    /// whatever it holds already, and counts it as sent.
    fn send_everywhere(&mut self, id: u64, link_id: u64, payload: Bytes) {
        let (Some(link), Some(task)) = (self.links.get_mut(&link_id), self.tasks.get_mut(&id))
        else {
            return;
        };
        task.place = Place::Sent(link_id);
        self.awaiting -= 1;
        self.executing += 1;
        link.holding += 1;
        if let Some(row) = self.daemons.get_mut(link.row) {
            row.assigned += 1;
        }
        link.outlet.send(Kind::Task, id, payload);
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

    /// Resolves a pending task to `CANCELLED`; a daemon holding it is sent
    /// CANCEL. False when the task was not pending.
    pub(super) fn cancel(&mut self, id: u64) -> bool {
        let abandoned = self.abandon(id, Outcome::CANCELLED);
        if let Abandoned::Sent(link_id) = abandoned {
            if let Some(link) = self.links.get(&link_id) {
                link.outlet.send(Kind::Cancel, id, Bytes::new());
            }
        }
        !matches!(abandoned, Abandoned::NotPending)
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

    /// With no daemon left, a task queued again after its daemon died is most
    /// likely what killed them: it resolves to 19 rather than waiting for a
    /// daemon that may never come. Tasks never sent keep waiting.
    fn fail_retried_tasks(&mut self) {
        let retried: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.retried && !t.resolved && matches!(t.place, Place::Queued))
            .map(|(&id, _)| id)
            .collect();
        for id in retried {
            if let Some(task) = self.tasks.remove(&id) {
                self.awaiting -= 1;
                self.queued_bytes -= task.len;
                self.deliver(
                    id,
                    Outcome::Error(Outcome::CONNECTION_RESET),
                    task.forgotten,
                );
            }
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
        let payload = if task.retries_left > 0 {
            task.payload.clone()
        } else {
            task.payload.take()
        }
        .unwrap_or_default();
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

    fn abandon(&mut self, id: u64, code: i32) -> Abandoned {
        let Some(task) = self.tasks.get_mut(&id) else {
            return Abandoned::NotPending;
        };
        if task.resolved {
            return Abandoned::NotPending;
        }
        let forgotten = task.forgotten;
        let abandoned = match task.place {
            Place::Queued => {
                self.queued_bytes -= task.len;
                self.tasks.remove(&id);
                self.awaiting -= 1;
                Abandoned::Queued
            }
            Place::Reserved => {
                self.tasks.remove(&id);
                self.awaiting -= 1;
                for everywhere in &mut self.everywhere {
                    everywhere.reserved.retain(|&r| r != id);
                }
                Abandoned::Queued
            }
            Place::Sent(link_id) => {
                task.resolved = true;
                self.executing -= 1;
                Abandoned::Sent(link_id)
            }
        };
        self.deliver(id, Outcome::Error(code), forgotten);
        abandoned
    }

    /// Keeps the heap from growing with deadlines of tasks long finished.
    fn purge_stale_deadlines(&mut self) {
        if self.deadlines.len() > 1024 && self.deadlines.len() > 2 * self.tasks.len() {
            let tasks = &self.tasks;
            self.deadlines
                .retain(|Reverse((_, id))| tasks.get(id).is_some_and(|t| !t.resolved));
        }
    }

    /// The earliest deadline not yet expired (perhaps of a task since
    /// resolved).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines
            .peek()
            .map(|Reverse((deadline, _))| *deadline)
    }

    /// Resolves every pending task whose deadline is not after `now` to
    /// `TIMED_OUT`; true if any was.
    pub(super) fn expire(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            match self.abandon(id, Outcome::TIMED_OUT) {
                Abandoned::NotPending => {}
                Abandoned::Queued => any = true,
                Abandoned::Sent(link_id) => {
                    any = true;
                    // With the dispatcher, a timed-out task stops using its
                    // daemon, as a cancelled one does.
                    if self.dispatcher {
                        if let Some(link) = self.links.get(&link_id) {
                            link.outlet.send(Kind::Cancel, id, Bytes::new());
                        }
                    }
                }
            }
        }
        any
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
            },
        );
        for i in 0..self.everywhere.len() {
            let everywhere = &mut self.everywhere[i];
            let payload = everywhere.payload.clone();
            match everywhere.reserved.pop_front() {
                Some(id) => self.send_everywhere(id, link_id, payload),
                None => {
                    let id = everywhere.id;
                    if let Some(link) = self.links.get(&link_id) {
                        link.outlet.send(Kind::Task, id, payload);
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
    pub(super) fn on_result(&mut self, link_id: u64, task_id: u64, payload: Vec<u8>) -> bool {
        let Some(link) = self.links.get_mut(&link_id) else {
            return false;
        };
        if !matches!(self.tasks.get(&task_id), Some(Task { place: Place::Sent(l), .. }) if *l == link_id)
        {
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
            self.deliver(task_id, Outcome::Value(payload), task.forgotten);
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

    /// The link is gone: each task it held is queued again, ahead of every
    /// other, while it has retries left, and resolves to `CONNECTION_RESET`
    /// otherwise.
    pub(super) fn drop_link(&mut self, link_id: u64) {
        let Some(link) = self.links.remove(&link_id) else {
            return;
        };
        if let Some(row) = self.daemons.get_mut(link.row) {
            row.online = false;
        }
        if let Some(pos) = self.rotation.iter().position(|&l| l == link_id) {
            self.rotation.remove(pos);
        }
        if link.holding > 0 {
            let mut held: Vec<u64> = self
                .tasks
                .iter()
                .filter(|(_, t)| matches!(t.place, Place::Sent(l) if l == link_id))
                .map(|(&id, _)| id)
                .collect();
            held.sort_unstable();
            let mut retried = Vec::new();
            for id in held {
                let Some(task) = self.tasks.get_mut(&id) else {
                    continue;
                };
                if !task.resolved && task.retries_left > 0 && task.payload.is_some() {
                    task.retries_left -= 1;
                    task.retried = true;
                    task.place = Place::Queued;
                    let len = task.len;
                    self.executing -= 1;
                    self.awaiting += 1;
                    self.add_queued_bytes(len);
                    retried.push(id);
                } else {
                    self.fail_sent(id, Outcome::CONNECTION_RESET);
                }
            }
            // Oldest first, ahead of everything that was waiting.
            for &id in retried.iter().rev() {
                self.queue.push_front(id);
            }
            if !retried.is_empty() {
                self.pump();
            }
        }
        if self.links.is_empty() {
            self.fail_retried_tasks();
        }
        link.outlet.close();
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
