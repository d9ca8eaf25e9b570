//! Keeps the daemons launched with a host at their number: a daemon that
//! dies is started again, after a back-off that grows while daemons keep
//! dying failing (before connecting, or on their first work); past
//! `Guard`'s limit replacing
//! stops (a crash loop: a broken set-up, or tasks that kill every daemon),
//! which the scheduler then reports and acts on (see `stop_healing`).
//!
//! A daemon that exits with status 0 after saying LEAVING (its `maxtasks`,
//! `idletime` or `walltime` reached) left on purpose and is not replaced.
//! The healer polls the processes from a task on the runtime, which `close`
//! aborts with the host's other background tasks.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::Shared;
use crate::launcher::Process;
use crate::runtime::log;

const POLL: Duration = Duration::from_millis(50);
/// The back-off after the first death of a daemon that died failing;
/// it doubles with each further one in the window, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Deaths of daemons that died failing are counted over this window.
const WINDOW: Duration = Duration::from_secs(60);
/// At least this many such deaths in the window stop replacing.
const MIN_LIMIT: usize = 5;

/// Decides, death by death, whether and when to replace a daemon.
pub(super) struct Guard {
    limit: usize,
    window: Duration,
    /// When the daemons that died failing died, in the window.
    recent: VecDeque<Instant>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    ReplaceAfter(Duration),
    /// Stop replacing, for this reason.
    Stop(String),
}

impl Guard {
    /// For a pool of `n` daemons: replacing stops after the larger of
    /// `MIN_LIMIT` and `n` deaths within `WINDOW` of daemons that died
    /// failing.
    pub(super) fn new(n: usize) -> Guard {
        Guard {
            limit: n.max(MIN_LIMIT),
            window: WINDOW,
            recent: VecDeque::new(),
        }
    }

    /// A daemon died at `now`; `failing` if it never connected or died on
    /// its first work (see `Scheduler::died_failing`): one that worked, or
    /// idled, and was then lost is replaced at once, and not counted.
    pub(super) fn on_death(&mut self, now: Instant, failing: bool) -> Verdict {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= self.window)
        {
            self.recent.pop_front();
        }
        if !failing {
            return Verdict::ReplaceAfter(Duration::ZERO);
        }
        self.recent.push_back(now);
        let count = self.recent.len();
        if count >= self.limit {
            return Verdict::Stop(format!(
                "{count} daemons died within {} s before completing a task",
                self.window.as_secs()
            ));
        }
        let doublings = u32::try_from(count - 1).unwrap_or(u32::MAX).min(16);
        Verdict::ReplaceAfter(
            FIRST_BACKOFF
                .saturating_mul(1 << doublings)
                .min(MAX_BACKOFF),
        )
    }
}

/// One daemon of the pool: the process running now, or the last one (to
/// start again, the same way) and when to start it.
struct Slot {
    process: Process,
    running: bool,
    due: Option<Instant>,
}

/// Watches `processes` until the host closes (or drops), replacing those
/// that die; each replacement is given `stdin` (see `Process::respawn`).
pub(super) async fn heal(shared: Weak<Shared>, processes: Vec<Process>, stdin: Option<Vec<u8>>) {
    let mut guard = Guard::new(processes.len());
    let mut slots: Vec<Slot> = processes
        .into_iter()
        .map(|process| Slot {
            process,
            running: true,
            due: None,
        })
        .collect();
    loop {
        tokio::time::sleep(POLL).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.lock().is_closed() {
            return;
        }
        let now = Instant::now();
        for slot in &mut slots {
            if slot.running {
                let Some(code) = slot.process.exit_code() else {
                    continue;
                };
                slot.running = false;
                let pid = i64::from(slot.process.pid());
                let (left, failing) = {
                    let state = shared.lock();
                    (state.has_left(pid), state.died_failing(pid))
                };
                if code == 0 && left {
                    continue;
                }
                match guard.on_death(now, failing) {
                    Verdict::ReplaceAfter(delay) => slot.due = Some(now + delay),
                    Verdict::Stop(reason) => {
                        stop(&shared, reason);
                        return;
                    }
                }
            } else if slot.due.is_some_and(|due| due <= now) {
                slot.due = None;
                match slot.process.respawn(stdin.as_deref()) {
                    Ok(process) => {
                        slot.process = process;
                        slot.running = true;
                        if shared.lock().is_closed() {
                            slot.process.kill();
                            return;
                        }
                    }
                    Err(e) => {
                        log(format_args!("cannot replace a daemon: {e}"));
                        if let Verdict::Stop(reason) = guard.on_death(now, true) {
                            stop(&shared, reason);
                            return;
                        }
                        slot.due = Some(now + MAX_BACKOFF);
                    }
                }
            }
        }
    }
}

fn stop(shared: &Arc<Shared>, reason: String) {
    log(format_args!(
        "launched daemons are no longer replaced: {reason}"
    ));
    let mut state = shared.lock();
    state.stop_healing(reason);
    state.wake();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_lost_while_working_or_idle_is_replaced_at_once() {
        let mut guard = Guard::new(2);
        let now = Instant::now();
        for i in 0..100 {
            assert_eq!(
                guard.on_death(now + Duration::from_millis(i), false),
                Verdict::ReplaceAfter(Duration::ZERO)
            );
        }
    }

    #[test]
    fn replacements_that_keep_dying_back_off_then_stop() {
        let mut guard = Guard::new(2);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(
            guard.on_death(at(0), true),
            Verdict::ReplaceAfter(Duration::from_millis(250))
        );
        assert_eq!(
            guard.on_death(at(1), true),
            Verdict::ReplaceAfter(Duration::from_millis(500))
        );
        // a death that was not failing neither counts nor waits
        assert_eq!(
            guard.on_death(at(2), false),
            Verdict::ReplaceAfter(Duration::ZERO)
        );
        assert_eq!(
            guard.on_death(at(3), true),
            Verdict::ReplaceAfter(Duration::from_secs(1))
        );
        assert_eq!(
            guard.on_death(at(4), true),
            Verdict::ReplaceAfter(Duration::from_secs(2))
        );
        assert_eq!(
            guard.on_death(at(5), true),
            Verdict::Stop("5 daemons died within 60 s before completing a task".to_string())
        );
    }

    #[test]
    fn deaths_older_than_the_window_are_forgotten() {
        let mut guard = Guard::new(1);
        let start = Instant::now();
        for i in 0..4 {
            assert!(matches!(
                guard.on_death(start + Duration::from_secs(i), true),
                Verdict::ReplaceAfter(_)
            ));
        }
        // 61 s on, the first two have left the window
        assert_eq!(
            guard.on_death(start + Duration::from_secs(61), true),
            Verdict::ReplaceAfter(Duration::from_secs(1))
        );
    }

    #[test]
    fn the_back_off_is_capped_and_the_limit_grows_with_the_pool() {
        let mut guard = Guard::new(40);
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..39 {
            match guard.on_death(now, true) {
                Verdict::ReplaceAfter(delay) => last = delay,
                Verdict::Stop(why) => panic!("stopped early: {why}"),
            }
        }
        assert_eq!(last, MAX_BACKOFF);
        assert!(matches!(guard.on_death(now, true), Verdict::Stop(_)));
    }
}
