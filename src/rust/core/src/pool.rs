//! Large payload buffers kept for reuse.
//!
//! The first write to freshly mapped memory takes a page fault for every
//! 4 KiB page: for a 100 MB payload that costs several times the copy itself
//! (about 100 ms against 20 ms on the project's machines). A buffer that held
//! the previous large payload is already mapped, so serialization and frame
//! reads take one from here when they can. The pool holds at most
//! `MAX_BUFFERS` buffers and `MAX_BYTES` bytes in all; smaller buffers are
//! never kept. Beyond `KEPT_BYTES`, buffers are kept only for `RETAIN` after
//! they were given back: long enough for the next of a series of large
//! transfers to reuse them, not so long that one large transfer leaves the
//! process holding gigabytes.

use std::collections::TryReserveError;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Buffers below this capacity are cheap to map afresh and are not kept.
pub const MIN_POOLED: usize = 1 << 20;
const MAX_BUFFERS: usize = 4;
const MAX_BYTES: usize = 4 << 30;
/// Kept for as long as the process lives.
const KEPT_BYTES: usize = 512 << 20;
#[cfg(not(test))]
const RETAIN: Duration = Duration::from_secs(10);
#[cfg(test)]
const RETAIN: Duration = Duration::from_millis(200);

struct Kept {
    buffer: Vec<u8>,
    given: Instant,
}

struct Pool {
    kept: Vec<Kept>,
    /// A thread is on its way to drop what is kept beyond `KEPT_BYTES`.
    trimming: bool,
}

impl Pool {
    fn bytes(&self) -> usize {
        self.kept.iter().map(|k| k.buffer.capacity()).sum()
    }

    fn remove(&mut self, index: usize) -> Vec<u8> {
        self.kept.swap_remove(index).buffer
    }

    /// Drops, largest first, buffers given back at least `RETAIN` ago until
    /// the pool is within `KEPT_BYTES`. Returns `None` when it is, else how
    /// long until the next kept buffer expires.
    fn trim(&mut self, now: Instant, dropped: &mut Vec<Vec<u8>>) -> Option<Duration> {
        while self.bytes() > KEPT_BYTES {
            let age = |i: usize| now.saturating_duration_since(self.kept[i].given);
            let expired = (0..self.kept.len())
                .filter(|&i| age(i) >= RETAIN)
                .max_by_key(|&i| self.kept[i].buffer.capacity());
            match expired {
                Some(index) => dropped.push(self.remove(index)),
                None => {
                    let oldest = (0..self.kept.len()).map(age).max().unwrap_or_default();
                    return Some(RETAIN.saturating_sub(oldest));
                }
            }
        }
        None
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    kept: Vec::new(),
    trimming: false,
});

fn with_pool<T>(f: impl FnOnce(&mut Pool) -> T) -> T {
    f(&mut POOL.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Runs on its own thread while the pool holds more than `KEPT_BYTES`.
fn trim_when_expired() {
    let mut wait = RETAIN;
    loop {
        std::thread::sleep(wait);
        let mut dropped = Vec::new();
        let next = with_pool(|pool| {
            let next = pool.trim(Instant::now(), &mut dropped);
            pool.trimming = next.is_some();
            next
        });
        // Unmapped outside the lock.
        drop(dropped);
        match next {
            Some(left) => wait = left.max(Duration::from_millis(1)),
            None => return,
        }
    }
}

/// An empty buffer with room for `len` bytes: the smallest kept buffer that
/// is large enough, or a new one (reserved, not filled).
pub fn take(len: usize) -> Result<Vec<u8>, TryReserveError> {
    if len >= MIN_POOLED {
        let kept = with_pool(|pool| {
            let index = (0..pool.kept.len())
                .filter(|&i| pool.kept[i].buffer.capacity() >= len)
                .min_by_key(|&i| pool.kept[i].buffer.capacity())?;
            Some(pool.remove(index))
        });
        if let Some(buffer) = kept {
            return Ok(buffer);
        }
    }
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(len)?;
    Ok(buffer)
}

/// The largest kept buffer, emptied, for output whose size is not known in
/// advance; `None` when nothing is kept.
pub fn take_largest() -> Option<Vec<u8>> {
    with_pool(|pool| {
        let index = (0..pool.kept.len()).max_by_key(|&i| pool.kept[i].buffer.capacity())?;
        Some(pool.remove(index))
    })
}

/// Keeps `buffer` for reuse if it is large enough to be worth it and fits
/// the pool's bounds (dropping smaller kept buffers to make room).
pub fn give(mut buffer: Vec<u8>) {
    let capacity = buffer.capacity();
    if !(MIN_POOLED..=MAX_BYTES).contains(&capacity) {
        return;
    }
    buffer.clear();
    let mut dropped = Vec::new();
    let start_trimming = with_pool(|pool| {
        pool.kept.push(Kept {
            buffer,
            given: Instant::now(),
        });
        while pool.kept.len() > MAX_BUFFERS || pool.bytes() > MAX_BYTES {
            let Some(smallest) =
                (0..pool.kept.len()).min_by_key(|&i| pool.kept[i].buffer.capacity())
            else {
                break;
            };
            dropped.push(pool.remove(smallest));
        }
        let start = pool.bytes() > KEPT_BYTES && !pool.trimming;
        pool.trimming |= start;
        start
    });
    drop(dropped);
    if start_trimming {
        let started = std::thread::Builder::new()
            .name("mirai-pool".into())
            .spawn(trim_when_expired);
        if started.is_err() {
            // No thread: keep no more than what is kept for good.
            let mut dropped = Vec::new();
            with_pool(|pool| {
                pool.trim(Instant::now() + RETAIN, &mut dropped);
                pool.trimming = false;
            });
            drop(dropped);
        }
    }
}

/// `buffer` as `Bytes` that hand the buffer back to the pool when the last
/// reference to them is dropped (after the frame has been written).
pub fn into_bytes(buffer: Vec<u8>) -> Bytes {
    if buffer.capacity() >= MIN_POOLED {
        Bytes::from_owner(Returned(buffer))
    } else {
        Bytes::from(buffer)
    }
}

struct Returned(Vec<u8>);

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
fn kept_bytes() -> usize {
    with_pool(|pool| pool.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The pool is process-wide: one test exercises it, so that no other
    // test of this module races it.
    #[test]
    fn keeps_large_buffers_within_bounds_and_reuses_them() {
        give(Vec::with_capacity(MIN_POOLED - 1));
        assert_eq!(kept_bytes(), 0, "a small buffer is not kept");

        let mut big = take(3 * MIN_POOLED).expect("reserve");
        big.extend_from_slice(&[7u8; 16]);
        let address = big.as_ptr();
        give(big);
        assert_eq!(kept_bytes(), 3 * MIN_POOLED);

        let again = take(2 * MIN_POOLED).expect("reserve");
        assert_eq!(again.as_ptr(), address, "the kept buffer is reused");
        assert!(again.is_empty(), "a reused buffer comes back empty");
        assert_eq!(kept_bytes(), 0);

        let bytes = into_bytes(again);
        drop(bytes);
        assert_eq!(kept_bytes(), 3 * MIN_POOLED, "dropped Bytes return it");
        assert_eq!(take_largest().map(|b| b.as_ptr()), Some(address));

        for _ in 0..MAX_BUFFERS + 2 {
            give(Vec::with_capacity(MIN_POOLED));
        }
        give(Vec::with_capacity(MAX_BYTES + 1));
        assert!(kept_bytes() <= MAX_BUFFERS * MIN_POOLED);
        while take_largest().is_some() {}

        // Beyond KEPT_BYTES, a buffer is kept for RETAIN only (reserved
        // here, never touched: no memory is committed).
        give(Vec::with_capacity(MIN_POOLED));
        give(Vec::with_capacity(KEPT_BYTES));
        give(Vec::with_capacity(KEPT_BYTES + 1));
        assert_eq!(kept_bytes(), MIN_POOLED + 2 * KEPT_BYTES + 1);
        let large = take(KEPT_BYTES + 1).expect("reserve");
        assert_eq!(large.capacity(), KEPT_BYTES + 1, "reused while young");
        give(large);
        let deadline = Instant::now() + RETAIN * 20;
        while kept_bytes() > KEPT_BYTES {
            assert!(Instant::now() < deadline, "never trimmed");
            std::thread::sleep(RETAIN / 4);
        }
        // Largest first, until within KEPT_BYTES; the rest is kept for good.
        assert_eq!(kept_bytes(), MIN_POOLED);
        std::thread::sleep(RETAIN * 2);
        assert_eq!(kept_bytes(), MIN_POOLED);
        while take_largest().is_some() {}
    }
}
