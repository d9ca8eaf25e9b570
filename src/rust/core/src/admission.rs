//! What a connection may cost before its peer is welcomed: at most `limit`
//! connections of a host are in their greeting at once (TLS and WebSocket
//! handshakes, then the greeting itself); one more is closed as soon as it
//! is accepted. Whatever the network sends, the host's descriptors then
//! stay bounded (welcomed daemons aside), and so does the memory of
//! connections not yet welcomed (see `GREETING_MAX_BYTES`). Refusals, and
//! failures to accept, are logged at most once a second, with a count.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::runtime::{log, runtime};

/// The connections of one host in their greeting.
pub(crate) struct Admission {
    permits: Arc<Semaphore>,
    limit: usize,
    refused: Throttled,
    closed: Throttled,
}

/// A place among the connections in their greeting, given back when
/// dropped (once the peer is welcomed, or its connection closed).
#[derive(Debug)]
pub(crate) struct Admitted(#[allow(dead_code)] OwnedSemaphorePermit);

impl Admission {
    /// `None`: `default_limit()`.
    pub(crate) fn new(limit: Option<usize>) -> Arc<Admission> {
        let limit = limit.unwrap_or_else(default_limit).max(1);
        Arc::new(Admission {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            refused: Throttled::new(refused_line),
            closed: Throttled::new(closed_line),
        })
    }

    /// Logs (throttled) that a connection admitted was closed in its
    /// greeting, and why.
    pub(crate) fn closed_in_greeting(&self, why: String) {
        self.closed.note(why);
    }

    /// A place for a connection just accepted; `None` when every place is
    /// taken: the caller closes the connection at once.
    pub(crate) fn try_admit(&self) -> Option<Admitted> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(Admitted(permit)),
            Err(_) => {
                self.refused.note(self.limit.to_string());
                None
            }
        }
    }
}

/// After a failed accept (out of descriptors, say), the accept loop waits
/// this long before trying again.
pub(crate) const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

pub(crate) fn accept_failed_line(count: u64, error: &str) -> String {
    let s = if count == 1 { "" } else { "s" };
    format!("accept failed {count} time{s}: {error}")
}

fn closed_line(count: u64, last: &str) -> String {
    match count {
        1 => last.to_string(),
        n => format!(
            "{last} (and {} more connections closed in their greeting)",
            n - 1
        ),
    }
}

fn refused_line(count: u64, limit: &str) -> String {
    let s = if count == 1 { "" } else { "s" };
    format!("closed {count} connection{s} at once: {limit} connections already in their greeting")
}

/// The default bound on connections in their greeting: an eighth of this
/// process's limit on open files, at least 16 and at most 256 (128 for the
/// common limit of 1024).
pub(crate) fn default_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct passed.
    let files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (files / 8).clamp(16, 256)
}

/// A log line for events of one kind, at most once a second: the first at
/// once; those that follow within the second as one line with their count,
/// when the second is up.
pub(crate) struct Throttled {
    state: Arc<Mutex<ThrottleState>>,
    line: fn(u64, &str) -> String,
}

struct ThrottleState {
    last_logged: Option<Instant>,
    /// Events not yet logged, and the detail of the latest.
    pending: u64,
    detail: String,
    scheduled: bool,
}

const THROTTLE: Duration = Duration::from_secs(1);

impl Throttled {
    /// `line(count, detail)` is the text logged for `count` events, the
    /// latest with `detail`.
    pub(crate) fn new(line: fn(u64, &str) -> String) -> Throttled {
        Throttled {
            state: Arc::new(Mutex::new(ThrottleState {
                last_logged: None,
                pending: 0,
                detail: String::new(),
                scheduled: false,
            })),
            line,
        }
    }

    pub(crate) fn note(&self, detail: String) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let due = state.last_logged.map(|last| last + THROTTLE);
        if due.is_none_or(|due| due <= now) && state.pending == 0 {
            state.last_logged = Some(now);
            drop(state);
            log(format_args!("{}", (self.line)(1, &detail)));
            return;
        }
        state.pending += 1;
        state.detail = detail;
        if state.scheduled {
            return;
        }
        state.scheduled = true;
        let at = due.unwrap_or(now).max(now);
        let (shared, line) = (self.state.clone(), self.line);
        runtime().spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
            let (count, detail) = (std::mem::take(&mut state.pending), state.detail.clone());
            state.scheduled = false;
            state.last_logged = Some(Instant::now());
            drop(state);
            log(format_args!("{}", line(count, &detail)));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_given_back_and_the_default_is_bounded() {
        let admission = Admission::new(Some(2));
        let first = admission.try_admit();
        let second = admission.try_admit();
        assert!(first.is_some() && second.is_some());
        assert!(admission.try_admit().is_none());
        drop(first);
        assert!(admission.try_admit().is_some());
        assert!((16..=256).contains(&default_limit()));
    }

    #[test]
    fn a_burst_is_logged_as_one_line_a_second_later() {
        static LINES: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
        fn line(count: u64, detail: &str) -> String {
            LINES.lock().unwrap().push((count, detail.to_string()));
            String::new()
        }
        let throttled = Throttled::new(line);
        for i in 0..1000 {
            throttled.note(i.to_string());
        }
        assert_eq!(*LINES.lock().unwrap(), [(1, "0".to_string())]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while LINES.lock().unwrap().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(LINES.lock().unwrap()[1], (999, "999".to_string()));
    }
}
