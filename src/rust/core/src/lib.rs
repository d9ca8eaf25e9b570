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
mod transport;
pub mod url;

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

pub use daemon::{DaemonLink, DaemonOptions, Received};
pub use error::Error;
pub use host::{DaemonRow, Host, HostOptions, Outcome, Status};
pub use launcher::Process;

/// The process-wide I/O runtime: built on first use, two worker threads
/// named `mirai-io`. Every background task of this crate runs on it.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mirai-io")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("mirai: cannot start the I/O runtime: {e}"))
    })
}

pub(crate) fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("mirai: {line}");
}

/// How long `Host::wait` and `DaemonLink::recv` poll, yielding the CPU
/// between polls, before they sleep on their condition variable. An answer
/// that comes within this time then costs no wake-up of the waiting thread
/// (tens of µs on a VM whose idle vCPU must be woken); a longer wait costs at
/// most this much CPU per call (R's loops call with slices of 200 ms).
pub(crate) const SPIN: Duration = Duration::from_micros(100);

/// Re-checks `done` under `mutex` until it holds or `limit` has passed,
/// yielding between checks; returns the guard, locked, either way.
pub(crate) fn spin_until<'a, T>(
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
