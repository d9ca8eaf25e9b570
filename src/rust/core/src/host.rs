//! The host: listeners, one reader task and one writer task per daemon link,
//! the dispatcher and the results registry.
//!
//! Threads: `submit`, `wait`, `take`, ... run on the caller's thread (R's
//! main thread); accept loops, link tasks and the timeout timer run on
//! `runtime()`. All of them share `State` behind the single mutex
//! `Shared::state`. While it is held, the only other lock taken is a link
//! outbox's own small mutex (to queue a frame, or to write one straight to
//! the socket), and no code holding an outbox's mutex takes
//! `Shared::state`. Frames therefore leave in the order in which `State`
//! decided them (a CANCEL never overtakes its TASK). Tasks are only staged
//! in their outbox under the lock; `Locked` writes them once it has let go
//! of the lock, so that one thread's socket writes do not hold up the
//! others.
//! `Shared::changed` is signalled whenever a task resolves, a link comes
//! or goes, or the queue shrinks, after the change was made under
//! `Shared::state`. Resolution callbacks (`on_resolve`) and the process-wide
//! resolution count (`wait_any`) are run under `Shared::state`; neither
//! takes it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::mem;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::frame::{FrameError, FrameReader, FrameWriter};
use crate::message::{same_secret, Hello, Kind, Message};
use crate::outbox::{Outbox, Sender};
use crate::tls::TlsServerConfig;
use crate::transport::{self, Connection, ListenOptions, Listener};
use crate::url::Url;
use crate::{log, note_resolution, resolutions, runtime, wait_until, Error, Watched, SPIN};

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The daemon's result payload.
    Value(Vec<u8>),
    /// A transport outcome, as an `errorValue` code.
    Error(i32),
}

impl Outcome {
    pub const TIMED_OUT: i32 = 5;
    pub const CLOSED: i32 = 7;
    pub const CONNECTION_RESET: i32 = 19;
    /// A result larger than the host's `max_message_bytes` (NNG's code).
    pub const MESSAGE_TOO_LARGE: i32 = 24;
    pub const CANCELLED: i32 = 20;
}

#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    pub urls: Vec<String>,
    pub dispatcher: bool,
    /// When set, a daemon must present this token in its HELLO.
    pub token: Option<String>,
    /// Largest message body accepted from a daemon; 0 means no limit.
    pub max_message_bytes: u64,
    pub version: String,
    /// Certificate and key for `tls+tcp://` and `wss://` URLs (required by
    /// them; see `TlsServerConfig` and `zero_config`).
    pub tls: Option<TlsServerConfig>,
    /// How long a new connection may take for its TLS / WebSocket
    /// handshakes, and again for its greeting; `None`: 10 s.
    pub handshake_timeout: Option<Duration>,
    /// Bound on the bytes of tasks waiting in the queue (not yet sent to a
    /// daemon), enforced by `try_submit`; 0 means no bound.
    pub max_queue_bytes: u64,
    /// How many times a task whose daemon's link dropped while holding it is
    /// queued again (at the front); past that it resolves to
    /// `Outcome::Error(19)`.
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub connections: usize,
    pub urls: Vec<String>,
    pub awaiting: u64,
    pub executing: u64,
    pub completed: u64,
    /// Bytes of the tasks waiting in the queue.
    pub queued_bytes: u64,
    pub daemons: Vec<DaemonRow>,
}

/// One row per daemon link ever welcomed, in order of arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRow {
    pub online: bool,
    pub assigned: u64,
    pub complete: u64,
    pub pid: i64,
    /// The scheduler job the daemon said it runs in, if any.
    pub job: Option<String>,
}

const GREETING_TIMEOUT: Duration = Duration::from_secs(10);
const HELLO_MAX_BYTES: u64 = 64 * 1024;

/// A listening host. Clones share it; dropping the last clone closes it.
#[derive(Clone)]
pub struct Host {
    handle: Arc<HostHandle>,
}

struct HostHandle {
    shared: Arc<Shared>,
}

impl Drop for HostHandle {
    fn drop(&mut self) {
        self.shared.close(false);
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    timer: Notify,
    token: Option<String>,
    version: String,
    max_message_bytes: u64,
    greeting_timeout: Duration,
}

/// Run once when a task resolves (see `Host::on_resolve`).
pub type Callback = Box<dyn FnOnce() + Send>;

enum Place {
    Queued,
    Sent(u64),
}

/// An entry lives in `State::tasks` while the task is queued or held by a
/// daemon, even after it resolved by timeout or cancellation: the daemon is
/// busy until its (discarded) result comes back.
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

struct Link {
    outbox: Outbox,
    stop: Arc<Notify>,
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

#[derive(Default)]
struct State {
    dispatcher: bool,
    closed: bool,
    urls: Vec<String>,
    background: Vec<JoinHandle<()>>,
    next_task: u64,
    tasks: HashMap<u64, Task>,
    /// Task ids in submission order; ids no longer queued are skipped.
    queue: VecDeque<u64>,
    results: HashMap<u64, Outcome>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_link: u64,
    links: HashMap<u64, Link>,
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
    waiters: usize,
    max_queue_bytes: u64,
    queued_bytes: u64,
    retries: u32,
    /// Payloads of `everywhere` tasks, in order, with the id each was sent
    /// with: every link is sent them all, first.
    everywhere: Vec<(u64, Bytes)>,
    callbacks: HashMap<u64, Vec<Callback>>,
    /// Outboxes holding frames staged under the lock, for `Locked` to flush.
    staged: Vec<Sender>,
}

/// `State` under its mutex. Dropping it unlocks, then writes the frames
/// staged meanwhile.
struct Locked<'a>(Option<MutexGuard<'a, State>>);

impl Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.0.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.0.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut guard) = self.0.take() else {
            return;
        };
        if guard.staged.is_empty() {
            return;
        }
        let staged = mem::take(&mut guard.staged);
        drop(guard);
        for outbox in staged {
            outbox.flush();
        }
    }
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

impl State {
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

    fn has_room(&self, len: u64) -> bool {
        self.closed
            || self.max_queue_bytes == 0
            || self.queued_bytes == 0
            || self.queued_bytes.saturating_add(len) <= self.max_queue_bytes
    }

    /// Queues a new task and sends what can be sent. Returns its id, and
    /// whether its deadline is now the earliest (the timer must be told).
    fn enqueue(&mut self, payload: Bytes, timeout_ms: Option<u64>) -> (u64, bool) {
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
        self.queued_bytes += len;
        self.queue.push_back(id);
        let mut earliest_deadline = false;
        if let Some(ms) = timeout_ms {
            if let Some(deadline) = Instant::now().checked_add(Duration::from_millis(ms)) {
                earliest_deadline = self
                    .deadlines
                    .peek()
                    .is_none_or(|Reverse((d, _))| deadline < *d);
                self.deadlines.push(Reverse((deadline, id)));
                self.purge_stale_deadlines();
            }
        }
        self.pump();
        (id, earliest_deadline)
    }

    fn is_pending(&self, id: u64) -> bool {
        self.tasks.get(&id).is_some_and(|t| !t.resolved)
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

    /// Sends queued tasks, oldest first, while a link can take one.
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
            let _ = link.outbox.send_later(Kind::Task, task_id, payload);
        } else if link.outbox.stage(Kind::Task, task_id, payload).is_ok() {
            self.staged.push(link.outbox.sender());
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

    fn expire(&mut self, now: Instant) -> bool {
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
                            let _ = link.outbox.send(Kind::Cancel, id, Vec::new());
                        }
                    }
                }
            }
        }
        any
    }
}

impl Shared {
    fn lock(&self) -> Locked<'_> {
        Locked(Some(
            self.state.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    fn wake(&self, state: &State) {
        if state.waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// Blocks until `done` holds or `timeout` passes; returns the final state.
    /// First polls for at most `spin` (see `SPIN`).
    fn wait_until(
        &self,
        timeout: Duration,
        spin: Duration,
        done: impl Fn(&State) -> bool,
    ) -> Locked<'_> {
        Locked(Some(wait_until(
            &self.state,
            &self.changed,
            timeout,
            spin,
            done,
        )))
    }

    /// Sends WELCOME and adds the link, in one critical section: a daemon
    /// that has been welcomed is counted, and its first task follows its
    /// WELCOME.
    fn register(&self, outbox: Outbox, hello: Hello, stop: Arc<Notify>) -> Option<u64> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        let welcome = format!("version={}", self.version).into_bytes();
        let _ = outbox.send(Kind::Welcome, 0, welcome);
        for (id, payload) in &state.everywhere {
            let _ = outbox.send(Kind::Task, *id, payload.clone());
        }
        let link_id = state.next_link;
        state.next_link += 1;
        let row = state.daemons.len();
        state.daemons.push(DaemonRow {
            online: true,
            assigned: 0,
            complete: 0,
            pid: hello.pid,
            job: hello.job,
        });
        state.links.insert(
            link_id,
            Link {
                outbox,
                stop,
                row,
                holding: 0,
                leaving: false,
            },
        );
        if state.dispatcher {
            state.idle.push_back(link_id);
        } else {
            state.rotation.push(link_id);
        }
        state.pump();
        self.wake(&state);
        Some(link_id)
    }

    fn on_result(&self, link_id: u64, task_id: u64, payload: Vec<u8>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(link) = state.links.get_mut(&link_id) else {
            return;
        };
        if !matches!(state.tasks.get(&task_id), Some(Task { place: Place::Sent(l), .. }) if *l == link_id)
        {
            return;
        }
        let Some(task) = state.tasks.remove(&task_id) else {
            return;
        };
        shrink_if_sparse(&mut state.tasks);
        link.holding -= 1;
        let now_idle = link.holding == 0 && !link.leaving;
        if let Some(row) = state.daemons.get_mut(link.row) {
            row.complete += 1;
        }
        state.completed += 1;
        if !task.resolved {
            state.executing -= 1;
            state.deliver(task_id, Outcome::Value(payload), task.forgotten);
        }
        if state.dispatcher && now_idle {
            state.idle.push_back(link_id);
            state.pump();
        }
        // Signalled after unlocking, so that the waiter does not wake only
        // to block on the mutex still held here.
        let wake = state.waiters > 0;
        drop(guard);
        if wake {
            self.changed.notify_all();
        }
    }

    /// The daemon takes no more tasks (it reached its `maxtasks`, `idletime`
    /// or `walltime`): it is sent none, and EXIT, which follows every task
    /// already sent to it, so that it evaluates those before it exits. Sent
    /// before the daemon's last result, so that no task follows that result.
    fn on_leaving(&self, link_id: u64) {
        let mut state = self.lock();
        let Some(link) = state.links.get_mut(&link_id) else {
            return;
        };
        link.leaving = true;
        let _ = link.outbox.send(Kind::Exit, 0, Vec::new());
        if let Some(pos) = state.rotation.iter().position(|&l| l == link_id) {
            state.rotation.remove(pos);
        }
    }

    /// The daemon sent a result beyond the size limit, so its connection is
    /// being closed: task `id` (if this link holds it) resolves to
    /// `MESSAGE_TOO_LARGE` rather than being retried on another daemon, only
    /// to be too large there too.
    fn on_oversized(&self, link_id: u64, id: u64) {
        let mut state = self.lock();
        if !matches!(state.tasks.get(&id), Some(Task { place: Place::Sent(l), .. }) if *l == link_id)
        {
            return;
        }
        if let Some(link) = state.links.get_mut(&link_id) {
            link.holding -= 1;
        }
        state.fail_sent(id, Outcome::MESSAGE_TOO_LARGE);
        self.wake(&state);
    }

    fn drop_link(&self, link_id: u64) {
        let mut state = self.lock();
        let Some(link) = state.links.remove(&link_id) else {
            return;
        };
        if let Some(row) = state.daemons.get_mut(link.row) {
            row.online = false;
        }
        if let Some(pos) = state.rotation.iter().position(|&l| l == link_id) {
            state.rotation.remove(pos);
        }
        if link.holding > 0 {
            let mut held: Vec<u64> = state
                .tasks
                .iter()
                .filter(|(_, t)| matches!(t.place, Place::Sent(l) if l == link_id))
                .map(|(&id, _)| id)
                .collect();
            held.sort_unstable();
            let mut retried = Vec::new();
            for id in held {
                let Some(task) = state.tasks.get_mut(&id) else {
                    continue;
                };
                if !task.resolved && task.retries_left > 0 && task.payload.is_some() {
                    task.retries_left -= 1;
                    task.retried = true;
                    task.place = Place::Queued;
                    let len = task.len;
                    state.executing -= 1;
                    state.awaiting += 1;
                    state.queued_bytes += len;
                    retried.push(id);
                } else {
                    state.fail_sent(id, Outcome::CONNECTION_RESET);
                }
            }
            // Oldest first, ahead of everything that was waiting.
            for &id in retried.iter().rev() {
                state.queue.push_front(id);
            }
            if !retried.is_empty() {
                state.pump();
            }
        }
        if state.links.is_empty() {
            state.fail_retried_tasks();
        }
        link.stop.notify_one();
        self.wake(&state);
    }

    fn close(&self, send_exit: bool) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        let background = mem::take(&mut state.background);
        for handle in &background {
            handle.abort();
        }
        let links = mem::take(&mut state.links);
        for link in links.into_values() {
            if send_exit {
                let _ = link.outbox.send(Kind::Exit, 0, Vec::new());
            }
            link.stop.notify_one();
            if let Some(row) = state.daemons.get_mut(link.row) {
                row.online = false;
            }
        }
        let tasks = mem::take(&mut state.tasks);
        for (id, task) in tasks {
            if !task.resolved {
                state.deliver(id, Outcome::Error(Outcome::CLOSED), task.forgotten);
            }
        }
        state.queue.clear();
        state.idle.clear();
        state.rotation.clear();
        state.deadlines.clear();
        state.everywhere.clear();
        state.awaiting = 0;
        state.executing = 0;
        state.queued_bytes = 0;
        for (_, callbacks) in mem::take(&mut state.callbacks) {
            for callback in callbacks {
                callback();
            }
        }
        self.wake(&state);
        drop(state);
        wait_until_stopped(&background);
    }
}

/// Waits (at most a second) for aborted listener tasks to finish, so that
/// their sockets are closed and their addresses free when `close` returns.
/// On a runtime thread it cannot block, and leaves them to finish later.
fn wait_until_stopped(tasks: &[JoinHandle<()>]) {
    if tokio::runtime::Handle::try_current().is_ok() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    for task in tasks {
        while !task.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Host {
    /// Binds every URL before returning; fails if any cannot be bound.
    pub fn listen(opts: HostOptions) -> Result<Host, Error> {
        let urls = opts
            .urls
            .iter()
            .map(|u| u.parse::<Url>())
            .collect::<Result<Vec<Url>, Error>>()?;
        let greeting_timeout = opts.handshake_timeout.unwrap_or(GREETING_TIMEOUT);
        let listeners = transport::listen_all(
            &urls,
            &ListenOptions {
                tls: opts.tls.as_ref(),
                max_message_bytes: opts.max_message_bytes,
                handshake_timeout: greeting_timeout,
            },
        )?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                dispatcher: opts.dispatcher,
                max_queue_bytes: opts.max_queue_bytes,
                retries: opts.retries,
                next_task: 1,
                urls: listeners.iter().map(|(_, u)| u.to_string()).collect(),
                ..State::default()
            }),
            changed: Condvar::new(),
            timer: Notify::new(),
            token: opts.token,
            version: opts.version,
            max_message_bytes: opts.max_message_bytes,
            greeting_timeout,
        });
        let mut background = Vec::with_capacity(listeners.len() + 1);
        for (listener, _) in listeners {
            background.push(runtime().spawn(accept_loop(shared.clone(), listener)));
        }
        background.push(runtime().spawn(run_timer(shared.clone())));
        shared.lock().background = background;
        Ok(Host {
            handle: Arc::new(HostHandle { shared }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The listening URLs, with the real port where port 0 was asked for.
    pub fn urls(&self) -> Vec<String> {
        self.shared().lock().urls.clone()
    }

    /// Queues or sends the task at once, whatever the bound on the queue;
    /// returns its id. After `close` the task resolves at once to
    /// `Outcome::Error(7)`.
    pub fn submit(&self, payload: impl Into<Bytes>, timeout_ms: Option<u64>) -> u64 {
        let shared = self.shared();
        let mut state = shared.lock();
        let (id, earliest_deadline) = state.enqueue(payload.into(), timeout_ms);
        shared.wake(&state);
        drop(state);
        if earliest_deadline {
            shared.timer.notify_one();
        }
        id
    }

    /// As `submit`, within the bound on the queue's bytes
    /// (`HostOptions::max_queue_bytes`): waits at most `wait` for room, then
    /// gives the payload back. A task larger than the bound is taken when
    /// the queue is empty.
    pub fn try_submit(
        &self,
        payload: Bytes,
        timeout_ms: Option<u64>,
        wait: Duration,
    ) -> Result<u64, Bytes> {
        let shared = self.shared();
        let len = payload.len() as u64;
        let mut state = shared.wait_until(wait, Duration::ZERO, |s| s.has_room(len));
        if !state.has_room(len) {
            return Err(payload);
        }
        let (id, earliest_deadline) = state.enqueue(payload, timeout_ms);
        shared.wake(&state);
        drop(state);
        if earliest_deadline {
            shared.timer.notify_one();
        }
        Ok(id)
    }

    /// Sends `payload` as a task to every daemon connected now, and to each
    /// daemon that connects later before any other task. Its results are
    /// discarded and it is not counted in `status`. Forgotten at `close`.
    pub fn everywhere(&self, payload: impl Into<Bytes>) {
        let payload = payload.into();
        let mut state = self.shared().lock();
        if state.closed {
            return;
        }
        let id = state.next_task;
        state.next_task += 1;
        for link in state.links.values().filter(|l| !l.leaving) {
            let _ = link.outbox.send(Kind::Task, id, payload.clone());
        }
        state.everywhere.push((id, payload));
    }

    /// Runs `callback` once, when the task resolves (at once if it has):
    /// on the thread that resolves it, under the host's lock, so it must
    /// not call back into this host.
    pub fn on_resolve(&self, id: u64, callback: Callback) {
        let mut state = self.shared().lock();
        if state.is_pending(id) {
            state.callbacks.entry(id).or_default().push(callback);
        } else {
            drop(state);
            callback();
        }
    }

    /// Waits at most `timeout` until one of `tasks` (of any hosts) has
    /// resolved; returns the index of the first resolved one.
    pub fn wait_any(tasks: &[(&Host, u64)], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now().checked_add(timeout);
        let first_resolved = || tasks.iter().position(|(host, id)| host.is_resolved(*id));
        let mut seen = resolutions().count();
        loop {
            if let Some(index) = first_resolved() {
                return Some(index);
            }
            let left = match deadline {
                Some(deadline) => deadline.checked_duration_since(Instant::now())?,
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return None;
            }
            seen = resolutions().wait_past(seen, left);
        }
    }

    /// True once the task has resolved (also after its result was taken);
    /// blocks at most `timeout`.
    pub fn wait(&self, id: u64, timeout: Duration) -> bool {
        let state = self
            .shared()
            .wait_until(timeout, SPIN, |s| !s.is_pending(id));
        id > 0 && id < state.next_task && !state.is_pending(id)
    }

    pub fn is_resolved(&self, id: u64) -> bool {
        let state = self.shared().lock();
        id > 0 && id < state.next_task && !state.is_pending(id)
    }

    /// Removes and returns the outcome of a resolved task.
    pub fn take(&self, id: u64) -> Option<Outcome> {
        let mut state = self.shared().lock();
        let outcome = state.results.remove(&id);
        shrink_if_sparse(&mut state.results);
        outcome
    }

    /// Drops the outcome now, or when it arrives. The task itself still runs.
    pub fn forget(&self, id: u64) {
        let mut state = self.shared().lock();
        state.results.remove(&id);
        shrink_if_sparse(&mut state.results);
        if let Some(task) = state.tasks.get_mut(&id) {
            task.forgotten = true;
        }
    }

    /// Resolves a pending task to `Outcome::Error(20)`; a daemon holding it is
    /// sent CANCEL. False when the task was not pending.
    pub fn cancel(&self, id: u64) -> bool {
        let shared = self.shared();
        let mut state = shared.lock();
        let abandoned = state.abandon(id, Outcome::CANCELLED);
        if let Abandoned::Sent(link_id) = abandoned {
            if let Some(link) = state.links.get(&link_id) {
                let _ = link.outbox.send(Kind::Cancel, id, Vec::new());
            }
        }
        shared.wake(&state);
        !matches!(abandoned, Abandoned::NotPending)
    }

    pub fn connections(&self) -> usize {
        self.shared().lock().links.len()
    }

    /// Waits until at least `n` daemons are connected, at most `timeout`;
    /// returns the number connected.
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> usize {
        self.shared()
            .wait_until(timeout, Duration::ZERO, |s| s.closed || s.links.len() >= n)
            .links
            .len()
    }

    pub fn status(&self) -> Status {
        let state = self.shared().lock();
        Status {
            connections: state.links.len(),
            urls: state.urls.clone(),
            awaiting: state.awaiting,
            executing: state.executing,
            completed: state.completed,
            queued_bytes: state.queued_bytes,
            daemons: state.daemons.clone(),
        }
    }

    /// Stops listening and closes every link, sending EXIT first when
    /// `send_exit`; every unresolved task resolves to `Outcome::Error(7)`.
    /// Idempotent.
    pub fn close(&self, send_exit: bool) {
        self.shared().close(send_exit);
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    loop {
        match listener.accept().await {
            Ok(connection) => {
                tokio::spawn(serve(shared.clone(), connection));
            }
            Err(e) => {
                log(format_args!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn run_timer(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut state = shared.lock();
            if state.expire(Instant::now()) {
                shared.wake(&state);
            }
            state
                .deadlines
                .peek()
                .map(|Reverse((deadline, _))| *deadline)
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                    _ = shared.timer.notified() => {}
                }
            }
            None => shared.timer.notified().await,
        }
    }
}

enum Greeting {
    Broken(String),
    Refused(String),
}

async fn greet<R, W>(
    shared: &Shared,
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
) -> Result<Hello, Greeting>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let broken = |e: &dyn std::fmt::Display| Greeting::Broken(e.to_string());
    writer.write_handshake().await.map_err(|e| broken(&e))?;
    writer.flush().await.map_err(|e| broken(&e))?;
    reader.read_handshake().await.map_err(|e| broken(&e))?;
    let limit = match shared.max_message_bytes {
        0 => HELLO_MAX_BYTES,
        max => max.min(HELLO_MAX_BYTES),
    };
    let message = reader
        .read_message(limit)
        .await
        .map_err(|e| broken(&e))?
        .ok_or_else(|| Greeting::Broken("closed before HELLO".to_string()))?;
    if message.kind != Kind::Hello {
        return Err(Greeting::Broken(format!(
            "expected HELLO, got {}",
            message.kind.name()
        )));
    }
    let hello = Hello::decode(&message.payload).map_err(Greeting::Broken)?;
    if hello.version != shared.version {
        return Err(Greeting::Refused(format!(
            "version mismatch: host has {}, daemon has {}",
            shared.version, hello.version
        )));
    }
    if let Some(token) = &shared.token {
        if !hello
            .token
            .as_deref()
            .is_some_and(|t| same_secret(t, token))
        {
            return Err(Greeting::Refused("daemon not invited".to_string()));
        }
    }
    Ok(hello)
}

async fn serve(shared: Arc<Shared>, connection: Connection) {
    let Connection { read, write, peer } = connection;
    let mut reader = FrameReader::new(read);
    let mut writer = FrameWriter::new(write);
    let hello = match tokio::time::timeout(
        shared.greeting_timeout,
        greet(&shared, &mut reader, &mut writer),
    )
    .await
    {
        Ok(Ok(hello)) => hello,
        Ok(Err(Greeting::Refused(reason))) => {
            log(format_args!("refused daemon from {peer}: {reason}"));
            let refuse = Message::new(Kind::Refuse, 0, reason.into_bytes());
            if writer.write_message(&refuse).await.is_ok() && writer.flush().await.is_ok() {
                let _ = writer.shutdown().await;
            }
            return;
        }
        Ok(Err(Greeting::Broken(why))) => {
            log(format_args!("closed connection from {peer}: {why}"));
            return;
        }
        Err(_) => {
            log(format_args!(
                "closed connection from {peer}: no HELLO within {:?}",
                shared.greeting_timeout
            ));
            return;
        }
    };
    let stop = Arc::new(Notify::new());
    let (outbox, writing) = Outbox::new(writer, stop.clone(), peer.clone());
    let Some(link_id) = shared.register(outbox, hello, stop.clone()) else {
        return;
    };
    tokio::spawn(writing);
    let ended = tokio::select! {
        ended = read_loop(&shared, link_id, &mut reader) => Some(ended),
        _ = stop.notified() => None,
    };
    if let Some(Err(why)) = ended {
        log(format_args!("closed connection from {peer}: {why}"));
    }
    shared.drop_link(link_id);
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Shared,
    link_id: u64,
    reader: &mut FrameReader<R>,
) -> Result<(), String> {
    loop {
        let message = match reader.read_message(shared.max_message_bytes).await {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(e) => {
                if let FrameError::TooLarge { id: Some(id), .. } = e {
                    shared.on_oversized(link_id, id);
                }
                return Err(e.to_string());
            }
        };
        match message.kind {
            Kind::Result => shared.on_result(link_id, message.id, message.payload),
            Kind::Leaving => shared.on_leaving(link_id),
            Kind::Heartbeat => {}
            other => return Err(format!("unexpected {} message from a daemon", other.name())),
        }
    }
}

impl Watched for State {
    fn waiters(&mut self) -> &mut usize {
        &mut self.waiters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
