//! Networking core of the mirai R package: URLs, transports, the wire
//! protocol, the host's dispatcher and the daemon's side of the link.
//! Nothing in this crate touches R.

mod daemon;
mod error;
mod frame;
mod host;
mod launcher;
mod message;
mod outbox;
pub mod pool;
mod tls;
mod transport;
pub mod url;
#[doc(hidden)]
pub mod wire;
mod ws;

use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

pub use daemon::{DaemonLink, DaemonOptions, Received};
pub use error::Error;
pub use host::{Callback, DaemonRow, Host, HostOptions, Outcome, Status};
pub use launcher::Process;
pub use tls::{zero_config, TlsClientConfig, TlsServerConfig, ZeroConfig};

/// The process-wide I/O runtime: built on first use, two worker threads
/// named `mirai-io`. Every background task of this crate runs on it.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mirai-io")
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("mirai: cannot start the I/O runtime: {e}"))
    })
}

/// Blocks SIGPIPE on the calling thread: a write to a peer that has gone
/// then fails with `EPIPE`. In R's process, SIGPIPE runs R's handler, which
/// raises an R error: on a thread of ours that would be fatal.
pub(crate) fn block_sigpipe() {
    // SAFETY: plain libc calls on a signal set owned here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// The process-wide count of task resolutions (of every host), so that a
/// thread can wait for any one of tasks that belong to several hosts.
pub(crate) struct Resolutions {
    /// (resolutions so far, threads waiting)
    count: Mutex<(u64, usize)>,
    changed: Condvar,
}

impl Resolutions {
    fn lock(&self) -> MutexGuard<'_, (u64, usize)> {
        self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn count(&self) -> u64 {
        self.lock().0
    }

    /// Waits at most `timeout` for the count to pass `seen`; returns it.
    pub(crate) fn wait_past(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        let mut count = self.lock();
        if count.0 == seen {
            count.1 += 1;
            count = self
                .changed
                .wait_timeout_while(count, timeout, |c| c.0 == seen)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            count.1 -= 1;
        }
        count.0
    }
}

pub(crate) fn resolutions() -> &'static Resolutions {
    static RESOLUTIONS: Resolutions = Resolutions {
        count: Mutex::new((0, 0)),
        changed: Condvar::new(),
    };
    &RESOLUTIONS
}

/// Counts one task resolution, waking `Host::wait_any`.
pub(crate) fn note_resolution() {
    let resolutions = resolutions();
    let mut count = resolutions.lock();
    count.0 += 1;
    if count.1 > 0 {
        resolutions.changed.notify_all();
    }
}

/// A log line on standard error; one that cannot be written (stderr closed)
/// is dropped, where `eprintln!` would panic.
pub fn log(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "mirai: {line}");
}

/// How long `Host::wait` and `DaemonLink::recv` poll, yielding the CPU
/// between polls, before they sleep on their condition variable. An answer
/// that comes within this time then costs no wake-up of the waiting thread
/// (tens of µs on a VM whose idle vCPU must be woken); a longer wait costs at
/// most this much CPU per call (R's loops call with slices of 200 ms).
pub(crate) const SPIN: Duration = Duration::from_micros(100);

/// Re-checks `done` under `mutex` until it holds or `limit` has passed,
/// yielding between checks; returns the guard, locked, either way.
fn spin_until<'a, T>(
    mutex: &'a Mutex<T>,
    mut guard: MutexGuard<'a, T>,
    limit: Duration,
    done: impl Fn(&T) -> bool,
) -> MutexGuard<'a, T> {
    if limit.is_zero() || done(&guard) {
        return guard;
    }
    let started = Instant::now();
    while !done(&guard) && started.elapsed() < limit {
        drop(guard);
        std::thread::yield_now();
        guard = mutex.lock().unwrap_or_else(PoisonError::into_inner);
    }
    guard
}

/// State guarded by a mutex and watched through a condition variable, which
/// counts the threads waiting on it so that changes notify only when needed.
pub(crate) trait Watched {
    fn waiters(&mut self) -> &mut usize;
}

/// Blocks until `done` holds for the state under `mutex` or `timeout` passes,
/// first polling for at most `spin`; returns the guard, locked, either way.
pub(crate) fn wait_until<'a, T: Watched>(
    mutex: &'a Mutex<T>,
    changed: &Condvar,
    timeout: Duration,
    spin: Duration,
    done: impl Fn(&T) -> bool,
) -> MutexGuard<'a, T> {
    let deadline = Instant::now().checked_add(timeout);
    let guard = mutex.lock().unwrap_or_else(PoisonError::into_inner);
    let mut state = spin_until(mutex, guard, spin.min(timeout), &done);
    while !done(&state) {
        let now = Instant::now();
        let left = match deadline {
            Some(deadline) if deadline > now => deadline - now,
            Some(_) => break,
            None => Duration::from_secs(3600),
        };
        *state.waiters() += 1;
        state = changed
            .wait_timeout(state, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        *state.waiters() -= 1;
    }
    state
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_threads_block_sigpipe() {
        let blocked = super::runtime()
            .block_on(super::runtime().spawn(async {
                let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
                let mask = status
                    .lines()
                    .find_map(|line| line.strip_prefix("SigBlk:"))
                    .unwrap()
                    .trim()
                    .to_string();
                u64::from_str_radix(&mask, 16).unwrap()
            }))
            .unwrap();
        assert_ne!(
            blocked & (1 << (libc::SIGPIPE - 1)),
            0,
            "SigBlk {blocked:x}"
        );
    }
}
