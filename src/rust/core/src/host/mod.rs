//! The host: listeners, one reader task and one writer task per daemon link,
//! the dispatcher and the results registry.
//!
//! - `scheduler`: the dispatcher's decisions (which task goes where, retries,
//!   timeouts, the bound on the queue, results), with no I/O;
//! - `link`: the accept loops, and each link's greeting and reader;
//! - `timer`: resolves tasks whose deadline passed;
//! - `healer`: replaces the launched daemons that die;
//! - here: the `Host` API, and `Shared`, which they all hold.
//!
//! Threads: `submit`, `wait`, `take`, ... run on the caller's thread (R's
//! main thread); accept loops, link tasks and the timeout timer run on
//! `runtime()`. All of them share the `Scheduler` behind the single mutex
//! `Shared::state`. While it is held, the only other locks taken are a link
//! outbox's own small mutex (to queue a frame, or to write one straight to
//! the socket) and the process-wide count of resolutions, and no code
//! holding either takes `Shared::state`. Frames therefore leave in the order
//! in which the scheduler decided them (a CANCEL never overtakes its TASK).
//! Tasks are only staged in their outbox under the lock; `Locked` writes
//! them once it has let go of the lock, so that one thread's socket writes
//! do not hold up the others.
//! Waiters on `Shared::state` are woken whenever a task resolves, a link
//! comes or goes, or the queue shrinks, after the change was made under it.
//! Resolution callbacks (`on_resolve`) are run under `Shared::state`, and
//! must not take it.

mod healer;
mod link;
mod scheduler;
mod timer;

use std::mem;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use self::link::LinkOutlet;
use self::scheduler::{Scheduler, RESOLUTIONS};
use crate::admission::Admission;
use crate::launcher::Process;
use crate::liveness;
use crate::rng::{next_stream, Stream};
use crate::runtime::runtime;
use crate::sync::{Guard, Monitor, Wake, SPIN};
use crate::tls::TlsServerConfig;
use crate::transport::{self, ListenOptions};
use crate::url::Url;
use crate::Error;

pub use self::scheduler::{Callback, Healing};

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The daemon's result payload.
    Value(Vec<u8>),
    /// The daemon's result payload, an error value: the daemon sent it as
    /// a failure (see `DaemonLink::send_result`).
    Failure(Vec<u8>),
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
    /// Most connections in their greeting at once (see `Admission`);
    /// `None`: a default from the limit on open files.
    pub max_greeting: Option<usize>,
    /// The L'Ecuyer-CMRG stream (a `.Random.seed`) before the first that
    /// a daemon is given in its WELCOME; each daemon welcomed gets the next
    /// (R's `parallel::nextRNGStream()`). `None`: no stream is given.
    pub rng_stream: Option<[i32; 7]>,
    /// A link whose peer has gone silent (machine or network gone) is
    /// dropped within this long (see `liveness`); the daemons welcomed
    /// keep the same bound. `None`: 60 s.
    pub link_timeout: Option<Duration>,
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
    /// The most bytes the queue has held.
    pub peak_queued_bytes: u64,
    pub daemons: Vec<DaemonRow>,
    /// Daemon links that ended without the daemon leaving or the host
    /// closing: daemons that died, were killed or were cut off.
    pub deaths: u64,
    pub healing: Healing,
    /// How long the oldest task waiting in the queue has waited since it
    /// was submitted (zero when none waits): what an autoscaler reads.
    pub oldest_wait: Duration,
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
    state: Monitor<Scheduler<LinkOutlet>>,
    timer: Notify,
    /// The accept loops and the timer, aborted by `close`.
    background: Mutex<Vec<JoinHandle<()>>>,
    urls: Vec<String>,
    token: Option<String>,
    version: String,
    max_message_bytes: u64,
    greeting_timeout: Duration,
    /// The stream given to the last daemon welcomed (see
    /// `HostOptions::rng_stream`).
    stream: Mutex<Option<Stream>>,
    /// The bound on connections in their greeting, and their log.
    admission: Arc<Admission>,
    link_timeout: Duration,
}

/// The scheduler under its mutex. Dropping it unlocks, then writes the
/// frames staged meanwhile.
struct Locked<'a>(Option<Guard<'a, Scheduler<LinkOutlet>>>);

impl Locked<'_> {
    /// Wakes the threads waiting for a change (if any), with the state
    /// still locked.
    fn wake(&self) {
        if let Some(guard) = &self.0 {
            guard.wake();
        }
    }

    /// As dropping it, then wakes the threads that were waiting for a
    /// change: they do not wake only to block on the mutex.
    fn unlock_and_wake(mut self) {
        if let Some(guard) = self.0.take() {
            unlock_and_flush(guard).wake();
        }
    }
}

/// Unlocks, then writes the frames staged under the lock.
fn unlock_and_flush(mut guard: Guard<'_, Scheduler<LinkOutlet>>) -> Wake<'_> {
    let staged = guard.take_staged();
    let wake = guard.unlock();
    for outbox in staged {
        outbox.flush();
    }
    wake
}

impl Deref for Locked<'_> {
    type Target = Scheduler<LinkOutlet>;
    fn deref(&self) -> &Scheduler<LinkOutlet> {
        self.0.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Scheduler<LinkOutlet> {
        self.0.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(guard) = self.0.take() {
            // Waiters were woken under the lock where a change called for it.
            let _ = unlock_and_flush(guard);
        }
    }
}

impl Shared {
    /// The next daemon's RNG stream, if the host gives them.
    fn next_stream(&self) -> Option<Stream> {
        let mut stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        *stream = stream.as_ref().map(next_stream);
        *stream
    }

    fn lock(&self) -> Locked<'_> {
        Locked(Some(self.state.lock()))
    }

    /// Blocks until `done` holds or `timeout` passes; returns the final state.
    /// First polls for at most `spin` (see `SPIN`).
    fn wait_until(
        &self,
        timeout: Duration,
        spin: Duration,
        done: impl Fn(&Scheduler<LinkOutlet>) -> bool,
    ) -> Locked<'_> {
        Locked(Some(self.state.wait_until(timeout, spin, done)))
    }

    fn close(&self, send_exit: bool) {
        let mut state = self.lock();
        if !state.close(send_exit) {
            return;
        }
        state.wake();
        drop(state);
        let background = mem::take(
            &mut *self
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for handle in &background {
            handle.abort();
        }
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
        let admission = Admission::new(opts.max_greeting);
        let listeners = transport::listen_all(
            &urls,
            &ListenOptions {
                tls: opts.tls.as_ref(),
                handshake_timeout: greeting_timeout,
                admission: &admission,
            },
        )?;
        let shared = Arc::new(Shared {
            state: Monitor::new(Scheduler::new(
                opts.dispatcher,
                opts.max_queue_bytes,
                opts.retries,
            )),
            timer: Notify::new(),
            background: Mutex::new(Vec::new()),
            urls: listeners.iter().map(|(_, u)| u.to_string()).collect(),
            token: opts.token,
            version: opts.version,
            max_message_bytes: opts.max_message_bytes,
            greeting_timeout,
            stream: Mutex::new(opts.rng_stream),
            admission,
            link_timeout: opts.link_timeout.unwrap_or(liveness::DEFAULT_BOUND),
        });
        let mut background = Vec::with_capacity(listeners.len() + 1);
        for (listener, _) in listeners {
            background.push(runtime().spawn(link::accept_loop(shared.clone(), listener)));
        }
        background.push(runtime().spawn(timer::run_timer(shared.clone())));
        *shared
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = background;
        Ok(Host {
            handle: Arc::new(HostHandle { shared }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The listening URLs, with the real port where port 0 was asked for.
    pub fn urls(&self) -> Vec<String> {
        self.shared().urls.clone()
    }

    /// Queues or sends the task at once, whatever the bound on the queue;
    /// returns its id. After `close` the task resolves at once to
    /// `Outcome::Error(7)`.
    pub fn submit(&self, payload: impl Into<Bytes>, timeout_ms: Option<u64>) -> u64 {
        let shared = self.shared();
        let mut state = shared.lock();
        let (id, earliest_deadline) =
            state.enqueue(payload.into(), deadline_after(timeout_ms), Instant::now());
        state.wake();
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
        let (id, earliest_deadline) =
            state.enqueue(payload, deadline_after(timeout_ms), Instant::now());
        state.wake();
        drop(state);
        if earliest_deadline {
            shared.timer.notify_one();
        }
        Ok(id)
    }

    /// Sends `payload` as a task to every daemon connected now, and to each
    /// daemon that connects later before any other task. Its results are
    /// discarded and it is not counted in `status`. Forgotten at `close`.
    pub fn broadcast(&self, payload: impl Into<Bytes>) {
        let payload = payload.into();
        self.shared().lock().broadcast(payload);
    }

    /// As `broadcast`, but the daemons connected now (and, until there are
    /// `min`, the next to connect) are each sent the payload as a task of
    /// their own, counted in `status`, whose ids this returns: their results
    /// are taken as any task's. Such a task whose daemon's link drops
    /// resolves to `Outcome::Error(19)`, never retried on another daemon.
    pub fn everywhere(&self, payload: impl Into<Bytes>, min: usize) -> Vec<u64> {
        let payload = payload.into();
        let mut state = self.shared().lock();
        let ids = state.everywhere(payload, min);
        state.wake();
        ids
    }

    /// Runs `callback` once, when the task resolves (at once if it has):
    /// on the thread that resolves it, under the host's lock, so it must
    /// not call back into this host.
    pub fn on_resolve(&self, id: u64, callback: Callback) {
        let mut state = self.shared().lock();
        if let Some(callback) = state.on_resolve(id, callback) {
            drop(state);
            callback();
        }
    }

    /// Waits at most `timeout` until one of `tasks` (of any hosts) has
    /// resolved; returns the index of the first resolved one.
    pub fn wait_any(tasks: &[(&Host, u64)], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now().checked_add(timeout);
        let first_resolved = || tasks.iter().position(|(host, id)| host.is_resolved(*id));
        let mut seen = *RESOLUTIONS.lock();
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
            seen = *RESOLUTIONS.wait_until(left, Duration::ZERO, |&count| count != seen);
        }
    }

    /// True once the task has resolved (also after its result was taken);
    /// blocks at most `timeout`.
    pub fn wait(&self, id: u64, timeout: Duration) -> bool {
        self.shared()
            .wait_until(timeout, SPIN, |s| !s.is_pending(id))
            .is_resolved(id)
    }

    pub fn is_resolved(&self, id: u64) -> bool {
        self.shared().lock().is_resolved(id)
    }

    /// Removes and returns the outcome of a resolved task.
    pub fn take(&self, id: u64) -> Option<Outcome> {
        self.shared().lock().take(id)
    }

    /// Drops the outcome now, or when it arrives. The task itself still runs.
    pub fn forget(&self, id: u64) {
        self.shared().lock().forget(id);
    }

    /// Resolves a pending task to `Outcome::Error(20)`; a daemon holding it is
    /// sent CANCEL. False when the task was not pending.
    pub fn cancel(&self, id: u64) -> bool {
        let mut state = self.shared().lock();
        let cancelled = state.cancel(id);
        state.wake();
        cancelled
    }

    pub fn connections(&self) -> usize {
        self.shared().lock().connections()
    }

    /// Waits until at least `n` daemons are connected, at most `timeout`;
    /// returns the number connected.
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> usize {
        self.shared()
            .wait_until(timeout, Duration::ZERO, |s| {
                s.is_closed() || s.connections() >= n
            })
            .connections()
    }

    /// Replaces the daemons of `processes` (launched to serve this host)
    /// when they die, giving each replacement `stdin` (see
    /// `Process::respawn`), until the host closes or the replacements keep
    /// dying (see `healer`). Meanwhile a task whose daemon died waits for a
    /// replacement even when no daemon is left.
    pub fn heal(&self, processes: Vec<Process>, stdin: Option<Vec<u8>>) {
        let shared = &self.handle.shared;
        {
            let mut state = shared.lock();
            if state.is_closed() {
                return;
            }
            state.start_healing();
        }
        let task = runtime().spawn(healer::heal(Arc::downgrade(shared), processes, stdin));
        shared
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
    }

    pub fn status(&self) -> Status {
        let shared = self.shared();
        let mut state = shared.lock();
        let oldest_wait = state.oldest_wait(Instant::now());
        Status {
            oldest_wait,
            ..state.status(&shared.urls)
        }
    }

    /// Stops listening and closes every link, sending EXIT first when
    /// `send_exit`; every unresolved task resolves to `Outcome::Error(7)`.
    /// Idempotent.
    pub fn close(&self, send_exit: bool) {
        self.shared().close(send_exit);
    }
}

/// When a task given `timeout_ms` from now times out (`None`: never).
fn deadline_after(timeout_ms: Option<u64>) -> Option<Instant> {
    timeout_ms.and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)))
}
