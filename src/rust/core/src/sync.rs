//! How the caller's thread and the runtime's threads meet: a `Monitor` is a
//! state under a mutex, with a condition variable that counts the threads
//! waiting on it, so that a change notifies only when someone waits. The
//! host, each daemon link and the process-wide count of resolutions each
//! keep their state in one.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long `Host::wait` and `DaemonLink::recv` poll, yielding the CPU
/// between polls, before they sleep on their condition variable. An answer
/// that comes within this time then costs no wake-up of the waiting thread
/// (tens of µs on a VM whose idle vCPU must be woken); a longer wait costs at
/// most this much CPU per call (R's loops call with slices of 200 ms).
pub(crate) const SPIN: Duration = Duration::from_micros(100);

/// With no deadline (a timeout too large for `Instant`), a wait re-checks
/// this often.
const FOREVER_SLICE: Duration = Duration::from_secs(3600);

pub(crate) struct Monitor<T> {
    slot: Mutex<Slot<T>>,
    changed: Condvar,
}

struct Slot<T> {
    value: T,
    /// Threads blocked on `Monitor::changed`.
    waiters: usize,
}

/// The state of a `Monitor`, locked.
pub(crate) struct Guard<'a, T> {
    slot: MutexGuard<'a, Slot<T>>,
    changed: &'a Condvar,
}

/// Wakes the threads that were waiting when its `Guard` was unlocked.
#[must_use = "the waiting threads are woken only by `Wake::wake`"]
pub(crate) struct Wake<'a>(Option<&'a Condvar>);

impl<T> Monitor<T> {
    pub(crate) const fn new(value: T) -> Monitor<T> {
        Monitor {
            slot: Mutex::new(Slot { value, waiters: 0 }),
            changed: Condvar::new(),
        }
    }

    /// Locks the state; a panic of another thread holding it is ignored
    /// (every change made under it leaves the state consistent).
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        Guard {
            slot: self.lock_slot(),
            changed: &self.changed,
        }
    }

    fn lock_slot(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until `done` holds or `timeout` passes, first polling for at
    /// most `spin` (see `SPIN`); returns the state, locked, either way.
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        spin: Duration,
        done: impl Fn(&T) -> bool,
    ) -> Guard<'_, T> {
        let deadline = Instant::now().checked_add(timeout);
        let mut slot = self.spin_until(spin.min(timeout), &done);
        while !done(&slot.value) {
            let now = Instant::now();
            let left = match deadline {
                Some(deadline) if deadline > now => deadline - now,
                Some(_) => break,
                None => FOREVER_SLICE,
            };
            slot.waiters += 1;
            slot = self
                .changed
                .wait_timeout(slot, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            slot.waiters -= 1;
        }
        Guard {
            slot,
            changed: &self.changed,
        }
    }

    /// Re-checks `done` until it holds or `limit` has passed, yielding
    /// between checks; returns the slot, locked, either way.
    fn spin_until(&self, limit: Duration, done: impl Fn(&T) -> bool) -> MutexGuard<'_, Slot<T>> {
        let mut slot = self.lock_slot();
        if limit.is_zero() || done(&slot.value) {
            return slot;
        }
        let started = Instant::now();
        while !done(&slot.value) && started.elapsed() < limit {
            drop(slot);
            std::thread::yield_now();
            slot = self.lock_slot();
        }
        slot
    }
}

impl<'a, T> Guard<'a, T> {
    /// Wakes every waiting thread (if any) now, with the state still locked.
    pub(crate) fn wake(&self) {
        if self.slot.waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// Unlocks the state. The `Wake` returned wakes the threads waiting
    /// now: woken after the unlock, they do not wake only to block on the
    /// mutex.
    pub(crate) fn unlock(self) -> Wake<'a> {
        let wake = (self.slot.waiters > 0).then_some(self.changed);
        drop(self.slot);
        Wake(wake)
    }
}

impl Wake<'_> {
    pub(crate) fn wake(self) {
        if let Some(changed) = self.0 {
            changed.notify_all();
        }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.slot.value
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.slot.value
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::Duration;

    use super::{Guard, Monitor, SPIN};

    /// Once a thread sleeps on `monitor`'s condition variable, `change`s
    /// its state from another thread.
    fn change_when_waited<T: Send + 'static>(
        monitor: &Arc<Monitor<T>>,
        change: impl FnOnce(Guard<'_, T>) + Send + 'static,
    ) -> JoinHandle<()> {
        let monitor = monitor.clone();
        std::thread::spawn(move || {
            while monitor.lock().slot.waiters == 0 {
                std::thread::yield_now();
            }
            change(monitor.lock());
        })
    }

    #[test]
    fn a_wait_returns_when_the_state_changes_or_at_its_timeout() {
        let monitor = Arc::new(Monitor::new(0u32));
        let changer = change_when_waited(&monitor, |mut state| {
            *state = 1;
            state.unlock().wake();
        });
        let state = monitor.wait_until(Duration::from_secs(60), SPIN, |&v| v == 1);
        assert_eq!((*state, state.slot.waiters), (1, 0));
        drop(state);
        changer.join().unwrap();
        let state = monitor.wait_until(Duration::from_millis(20), SPIN, |&v| v == 2);
        assert_eq!((*state, state.slot.waiters), (1, 0));
    }

    #[test]
    fn a_wait_without_a_deadline_still_returns_on_a_change() {
        let monitor = Arc::new(Monitor::new(false));
        let changer = change_when_waited(&monitor, |mut state| {
            *state = true;
            state.wake();
        });
        assert!(*monitor.wait_until(Duration::MAX, Duration::ZERO, |&done| done));
        changer.join().unwrap();
    }
}
