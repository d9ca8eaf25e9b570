//! The daemon's side of a link: dials the host in the background, greets it,
//! then queues what arrives until the caller's thread picks it up.
//!
//! Threads: `recv`, `send_result`, `wait_connected` and `close` run on the
//! caller's thread; dialling and reading run on `runtime()`; they meet in
//! `LinkState`, in the `Monitor` `LinkShared::state`, whose waiters are woken
//! after each change made under it. `send_result` writes the frame itself when
//! the link is idle (see `outbox`), outside that mutex.
//!
//! Cancellation: `recv` records the task it hands out as the one being
//! evaluated, and `send_result` clears it, both under `LinkShared::state`; a
//! CANCEL for that task interrupts the evaluating thread (SIGINT) under the
//! same mutex, so it can never reach a later task. A CANCEL for a task still
//! in the inbox drops it and answers it with an empty RESULT (the host has
//! resolved it already and only waits for the daemon to be free); any other
//! is ignored. The thread's interrupt may still be taken outside the task
//! (after `recv` returned, before evaluation began, or as the task ended):
//! `take_cancel_signal` tells it that the interrupt was a CANCEL's.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::frame::{FrameError, FrameReader, FrameWriter};
use crate::greeting::{meet_host, Failure, Identity, Welcome};
use crate::liveness;
use crate::message::{flags, Kind, Tag};
use crate::outbox::Outbox;
use crate::rng::Stream;
use crate::runtime::{log, runtime};
use crate::sync::{Guard, Monitor, SPIN};
use crate::tls::TlsClientConfig;
use crate::transport::{self, Connection, DialFailure, DialOptions, Framed};
use crate::url::Url;
use crate::{Error, Outcome};

#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    pub url: String,
    /// Retry with backoff (10 ms doubling to 1 s) until the host answers.
    pub asyncdial: bool,
    pub token: Option<String>,
    /// Largest message body accepted from the host; 0 means no limit.
    pub max_message_bytes: u64,
    pub version: String,
    /// The CA(s) trusted for `tls+tcp://` and `wss://` URLs (required by
    /// them); the host's certificate must also name the URL's host.
    pub tls: Option<TlsClientConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// `everywhere`: a task for every daemon (see `message::flags`).
    Task {
        id: u64,
        payload: Vec<u8>,
        everywhere: bool,
    },
    /// The host cancelled task `id`: only on a relay's link (see `relay`),
    /// which passes it on; a daemon's link acts on it itself.
    Cancel {
        id: u64,
    },
    Exit,
    Closed,
    Timeout,
}

const FIRST_RETRY: Duration = Duration::from_millis(10);
const LAST_RETRY: Duration = Duration::from_secs(1);
const GREETING_TIMEOUT: Duration = Duration::from_secs(10);
/// See `Attempt::Closed`: with the back-off, about 4 s of trying.
const CLOSED_RETRIES: u32 = 10;
/// Set by the job scripts of the package's cluster launcher to the job (and
/// array task) the daemon runs in, which the daemon names in its HELLO.
pub const JOB_VARIABLE: &str = "MIRAI_JOB";

enum Phase {
    Dialling,
    Welcomed,
    Failed(Error),
    Closed,
}

struct LinkState {
    phase: Phase,
    inbox: VecDeque<Received>,
    outbox: Option<Outbox>,
    background: Option<AbortHandle>,
    /// The task handed out by `recv` and not yet answered by `send_result`.
    current: Option<u64>,
    /// The thread that called `recv` for `current`, to interrupt on CANCEL
    /// when `interrupt` is set.
    evaluator: Option<libc::pthread_t>,
    interrupt: bool,
    /// Set when a CANCEL sent SIGINT; cleared by `take_cancel_signal` and
    /// when `recv` hands out the next task.
    cancel_signalled: bool,
    /// The RNG stream the host gave in its WELCOME.
    stream: Option<Stream>,
    /// The signal raised when the connection is lost during a task.
    signal_when_lost: Option<i32>,
    /// A relay's link: a CANCEL is queued for `recv` as `Received::Cancel`.
    forward_cancels: bool,
}

struct LinkShared {
    state: Monitor<LinkState>,
}

impl LinkShared {
    fn lock(&self) -> Guard<'_, LinkState> {
        self.state.lock()
    }

    fn fail(&self, error: Error) {
        let mut state = self.lock();
        if matches!(state.phase, Phase::Dialling) {
            state.phase = Phase::Failed(error);
        }
        state.wake();
    }

    /// No task running, and none received waiting to run.
    fn is_idle(&self) -> bool {
        let state = self.lock();
        state.current.is_none() && state.inbox.is_empty()
    }

    fn cancel(&self, id: u64) {
        let mut state = self.lock();
        if state.forward_cancels {
            state.inbox.push_back(Received::Cancel { id });
            state.unlock().wake();
        } else if state.current == Some(id) {
            state.current = None;
            if let (true, Some(thread)) = (state.interrupt, state.evaluator) {
                // SAFETY: `thread` is the live thread that called `recv` and
                // has not yet called `send_result` for this task; sending it
                // a signal has no other precondition.
                unsafe {
                    libc::pthread_kill(thread, libc::SIGINT);
                }
                state.cancel_signalled = true;
            }
        } else if let Some(at) = state
            .inbox
            .iter()
            .position(|r| matches!(r, Received::Task { id: queued, .. } if *queued == id))
        {
            state.inbox.remove(at);
            if let Some(outbox) = &state.outbox {
                let _ = outbox.send(Kind::Result.into(), id, Vec::new());
            }
        }
    }

    fn push(&self, received: Received) {
        let mut state = self.lock();
        state.inbox.push_back(received);
        state.unlock().wake();
    }
}

/// A daemon's link to its host. Dropping it closes the link.
pub struct DaemonLink {
    shared: Arc<LinkShared>,
}

impl DaemonLink {
    /// Returns at once; dialling goes on in the background. Fails only for a
    /// URL that cannot be parsed or whose transport is not supported.
    pub fn connect(opts: DaemonOptions) -> Result<DaemonLink, Error> {
        DaemonLink::connect_as(opts, false)
    }

    /// As `connect`, for a relay: with `forward_cancels`, `recv` returns
    /// each CANCEL as `Received::Cancel`, and none interrupts a thread.
    pub(crate) fn connect_as(
        opts: DaemonOptions,
        forward_cancels: bool,
    ) -> Result<DaemonLink, Error> {
        let url: Url = opts.url.parse()?;
        url.require_supported()?;
        if url.scheme.is_tls() && opts.tls.is_none() {
            return Err(Error::Url(format!(
                "{url}: a TLS URL needs a TLS configuration (the CA certificate)"
            )));
        }
        let shared = Arc::new(LinkShared {
            state: Monitor::new(LinkState {
                phase: Phase::Dialling,
                inbox: VecDeque::new(),
                outbox: None,
                background: None,
                current: None,
                evaluator: None,
                interrupt: false,
                cancel_signalled: false,
                stream: None,
                signal_when_lost: None,
                forward_cancels,
            }),
        });
        let background = runtime()
            .spawn(run_link(shared.clone(), url, opts))
            .abort_handle();
        let mut state = shared.lock();
        if matches!(state.phase, Phase::Closed) {
            background.abort();
        } else {
            state.background = Some(background);
        }
        drop(state);
        Ok(DaemonLink { shared })
    }

    /// `Ok(true)` once welcomed, `Ok(false)` while still dialling after
    /// `timeout`; an error when refused, when the connection failed (without
    /// asyncdial) or after the link closed.
    pub fn wait_connected(&self, timeout: Duration) -> Result<bool, Error> {
        let state = self.shared.state.wait_until(timeout, Duration::ZERO, |s| {
            !matches!(s.phase, Phase::Dialling)
        });
        match &state.phase {
            Phase::Dialling => Ok(false),
            Phase::Welcomed => Ok(true),
            Phase::Failed(e) => Err(e.clone()),
            Phase::Closed => Err(Error::Closed),
        }
    }

    /// The L'Ecuyer-CMRG stream (a `.Random.seed`) the host gave this
    /// daemon when it welcomed it, if any; `None` until welcomed.
    pub fn rng_stream(&self) -> Option<[i32; 7]> {
        self.shared.lock().stream
    }

    /// With `on`, a CANCEL for the task being evaluated (handed out by
    /// `recv`, not yet answered by `send_result`) sends SIGINT to the thread
    /// that took it from `recv`, whose signal handler must expect it (R's
    /// sets R's pending interrupt). Off by default: the CANCEL is ignored.
    pub fn interrupt_on_cancel(&self, on: bool) {
        self.shared.lock().interrupt = on;
    }

    /// With `Some(signal)`, the connection's loss (not `close`) while a task
    /// is being evaluated raises `signal`: SIGINT at the thread that took the
    /// task from `recv` (as a CANCEL does), any other at the process, whose
    /// default action for most signals ends it.
    pub fn signal_when_lost(&self, signal: Option<i32>) {
        self.shared.lock().signal_when_lost = signal;
    }

    /// Whether a CANCEL has sent SIGINT since the last task was handed out
    /// and since the last call; clears it. The evaluating thread asks when
    /// an interrupt reaches it outside a task: the signal can land between
    /// `recv` and the start of evaluation, or just after the task's end.
    pub fn take_cancel_signal(&self) -> bool {
        std::mem::take(&mut self.shared.lock().cancel_signalled)
    }

    /// The next message from the host, oldest first; `Closed` once the link
    /// is gone and everything received was taken; `Timeout` after `timeout`.
    /// A task returned is the one being evaluated until `send_result`.
    pub fn recv(&self, timeout: Duration) -> Received {
        self.recv_spinning(timeout, SPIN)
    }

    /// As `recv`, polling first for at most `spin` (see `SPIN`).
    pub(crate) fn recv_spinning(&self, timeout: Duration, spin: Duration) -> Received {
        let mut state = self.shared.state.wait_until(timeout, spin, |s| {
            !s.inbox.is_empty() || matches!(s.phase, Phase::Failed(_) | Phase::Closed)
        });
        match state.inbox.pop_front() {
            Some(received) => {
                if let Received::Task { id, .. } = received {
                    state.cancel_signalled = false;
                    state.current = Some(id);
                    // SAFETY: pthread_self has no preconditions.
                    state.evaluator = Some(unsafe { libc::pthread_self() });
                }
                received
            }
            None if matches!(state.phase, Phase::Failed(_) | Phase::Closed) => Received::Closed,
            None => Received::Timeout,
        }
    }

    /// Tells the host that this daemon takes no more tasks: it sends none
    /// after those already on their way, then EXIT (which `recv` returns
    /// after them). Fails once the link has ended.
    pub fn leave(&self) -> Result<(), Error> {
        let sender = self
            .shared
            .lock()
            .outbox
            .as_ref()
            .ok_or(Error::Closed)?
            .sender();
        sender.send(Kind::Leaving.into(), 0, Vec::new())
    }

    /// Sends the task's result; from here on a CANCEL for it is ignored.
    pub fn send_result(&self, id: u64, payload: Vec<u8>) -> Result<(), Error> {
        self.send_tagged(id, Kind::Result.into(), crate::pool::into_bytes(payload))
    }

    /// As `send_result`, for a result that is an error value (the task
    /// failed): a relay tells it from a value by this alone.
    pub fn send_failure(&self, id: u64, payload: Vec<u8>) -> Result<(), Error> {
        let tag = Kind::Result.with(flags::FAILURE);
        self.send_tagged(id, tag, crate::pool::into_bytes(payload))
    }

    /// Sends a RESULT for task `id` that is the host's outcome as is.
    pub(crate) fn send_outcome(&self, id: u64, outcome: Outcome) -> Result<(), Error> {
        let (flags, payload) = match outcome {
            Outcome::Value(payload) => (0, crate::pool::into_bytes(payload)),
            Outcome::Failure(payload) => (flags::FAILURE, crate::pool::into_bytes(payload)),
            Outcome::Error(code) => (flags::CODE, Bytes::copy_from_slice(&code.to_be_bytes())),
        };
        self.send_tagged(id, Kind::Result.with(flags), payload)
    }

    fn send_tagged(&self, id: u64, tag: Tag, payload: Bytes) -> Result<(), Error> {
        let sender = {
            let mut state = self.shared.lock();
            if state.current == Some(id) {
                state.current = None;
            }
            state.outbox.as_ref().ok_or(Error::Closed)?.sender()
        };
        sender.send(tag, id, payload)
    }

    /// Closes the link, once the results already sent are written out (or
    /// the connection failed, or after a time that their size sets; see
    /// `Outbox::close_and_wait`): the process may exit next. Idempotent.
    pub fn close(&self) {
        let outbox = {
            let mut state = self.shared.lock();
            if !matches!(state.phase, Phase::Failed(_)) {
                state.phase = Phase::Closed;
            }
            if let Some(background) = state.background.take() {
                background.abort();
            }
            state.wake();
            state.outbox.take()
        };
        if let Some(outbox) = outbox {
            if !outbox.close_and_wait() {
                log(format_args!(
                    "closed the link with results still unwritten: the host did not take them in time"
                ));
            }
        }
    }
}

impl Drop for DaemonLink {
    fn drop(&mut self) {
        self.close();
    }
}

struct Greeted {
    reader: FrameReader<transport::ReadHalf>,
    writer: FrameWriter<transport::WriteHalf>,
    welcome: Welcome,
    /// Heartbeats, for a link over TCP.
    heartbeat: Option<Duration>,
}

/// How a connection attempt ended.
enum Attempt {
    Welcomed(Box<Greeted>),
    /// Refused, or a TLS configuration that cannot work: trying again
    /// cannot help.
    Refused(Error),
    /// The host closed the connection at once (as it does when it has as
    /// many connections in their greeting as it takes): dialled again
    /// even without `asyncdial`, up to `CLOSED_RETRIES` times.
    Closed(Error),
    /// Dialled again with `asyncdial` only.
    Failed(Error),
}

async fn attempt(url: &Url, opts: &DaemonOptions) -> Attempt {
    let dial_options = DialOptions {
        tls: opts.tls.as_ref(),
    };
    let connection = match transport::dial(url, &dial_options).await {
        Ok(connection) => connection,
        Err(DialFailure {
            error: e @ (Error::Refused(_) | Error::Url(_)),
            ..
        }) => return Attempt::Refused(e),
        Err(DialFailure {
            connected: true,
            error,
        }) => return Attempt::Closed(error),
        Err(DialFailure { error, .. }) => return Attempt::Failed(error),
    };
    let lost = |why: String| Error::Io(format!("cannot connect to {url}: {why}"));
    match tokio::time::timeout(GREETING_TIMEOUT, greet(connection, opts)).await {
        Ok(Ok(greeted)) => Attempt::Welcomed(Box::new(greeted)),
        Ok(Err(Failure::Refused(why))) => Attempt::Refused(Error::Refused(why)),
        Ok(Err(Failure::Closed(why))) => Attempt::Closed(lost(why)),
        Ok(Err(Failure::Broken(why))) => Attempt::Failed(lost(why)),
        Err(_) => Attempt::Failed(lost(format!(
            "no answer to HELLO within {GREETING_TIMEOUT:?}"
        ))),
    }
}

async fn run_link(shared: Arc<LinkShared>, url: Url, opts: DaemonOptions) {
    let mut retry = FIRST_RETRY;
    let mut closed_retries = CLOSED_RETRIES;
    let greeted = loop {
        match attempt(&url, &opts).await {
            Attempt::Welcomed(greeted) => break greeted,
            Attempt::Refused(e) => return shared.fail(e),
            Attempt::Closed(_) if !opts.asyncdial && closed_retries > 0 => closed_retries -= 1,
            Attempt::Closed(e) | Attempt::Failed(e) if !opts.asyncdial => return shared.fail(e),
            Attempt::Closed(_) | Attempt::Failed(_) => {}
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    };
    let Greeted {
        mut reader,
        writer,
        welcome,
        heartbeat,
    } = *greeted;
    let stop = Arc::new(Notify::new());
    let (outbox, writing) = Outbox::new(writer, stop.clone(), url.to_string(), heartbeat);
    {
        let mut state = shared.lock();
        if !matches!(state.phase, Phase::Dialling) {
            return;
        }
        state.phase = Phase::Welcomed;
        state.outbox = Some(outbox);
        state.stream = welcome.stream;
        state.wake();
    }
    tokio::spawn(writing);
    let ended = tokio::select! {
        ended = read_loop(&shared, &mut reader, opts.max_message_bytes) => Some(ended),
        _ = stop.notified() => None,
    };
    if let Some(Err(why)) = ended {
        log(format_args!("closed connection to {url}: {why}"));
    }
    let mut state = shared.lock();
    if matches!(state.phase, Phase::Welcomed) {
        state.phase = Phase::Closed;
        if let (Some(signal), Some(_)) = (state.signal_when_lost, state.current) {
            raise_during_task(&state, signal);
        }
    }
    state.outbox = None;
    state.wake();
}

fn raise_during_task(state: &LinkState, signal: i32) {
    match state.evaluator {
        // SAFETY: as in `LinkShared::cancel`: the thread that took the
        // current task is live until it sends its result.
        Some(thread) if signal == libc::SIGINT => unsafe {
            libc::pthread_kill(thread, signal);
        },
        // SAFETY: kill with this process's id has no precondition.
        _ => unsafe {
            libc::kill(libc::getpid(), signal);
        },
    }
}

async fn greet(connection: Connection, opts: &DaemonOptions) -> Result<Greeted, Failure> {
    let Framed {
        mut reader,
        mut writer,
        message_limit,
        socket,
        ..
    } = connection.framed();
    let me = Identity {
        version: &opts.version,
        pid: i64::from(std::process::id()),
        job: std::env::var(JOB_VARIABLE)
            .ok()
            .filter(|job| !job.is_empty()),
    };
    let welcome = meet_host(&mut reader, &mut writer, &me, opts.token.as_deref()).await?;
    if let Some(limit) = &message_limit {
        limit.set(opts.max_message_bytes);
    }
    let bound = welcome.link_timeout.unwrap_or(liveness::DEFAULT_BOUND);
    if let Some(socket) = socket {
        liveness::set_liveness(socket, bound);
    }
    Ok(Greeted {
        reader,
        writer,
        welcome,
        heartbeat: socket.map(|_| liveness::heartbeat_interval(bound)),
    })
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &LinkShared,
    reader: &mut FrameReader<R>,
    max: u64,
) -> Result<(), String> {
    // A host that closes while a heartbeat of ours is unread in its socket
    // (as at `daemons(0)`) resets the connection: that is an ordinary end
    // when no task is running or waiting here, or after an EXIT, and is not
    // logged.
    let mut exiting = false;
    loop {
        let message = match reader.read_message(max).await {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(FrameError::Io(e))
                if e.kind() == std::io::ErrorKind::ConnectionReset
                    && (exiting || shared.is_idle()) =>
            {
                return Ok(())
            }
            Err(_) if exiting => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        match message.kind {
            Kind::Task => shared.push(Received::Task {
                id: message.id,
                payload: message.payload,
                everywhere: message.flags & flags::EVERYWHERE != 0,
            }),
            Kind::Cancel => shared.cancel(message.id),
            Kind::Exit => {
                shared.push(Received::Exit);
                exiting = true;
            }
            Kind::Heartbeat => {}
            other => return Err(format!("unexpected {} message from the host", other.name())),
        }
    }
}
