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

#[derive(Clone, Copy)]
struct Bounds {
    max_buffers: usize,
    max_bytes: usize,
    /// The smallest kept buffers that fit together within this are kept for
    /// as long as the process lives; the others for `retain` after use.
    kept_bytes: usize,
    retain: Duration,
}

const BOUNDS: Bounds = Bounds {
    max_buffers: 4,
    max_bytes: (1usize << 30).saturating_mul(4),
    kept_bytes: 512 << 20,
    retain: Duration::from_secs(10),
};

struct Kept {
    buffer: Vec<u8>,
    /// When it last came back holding a payload.
    used: Instant,
}

struct Pool {
    bounds: Bounds,
    kept: Vec<Kept>,
    /// Address and last use of buffers lent out (at most `max_buffers`), so
    /// that one lent for a small output and given back does not count as
    /// used again.
    lent: Vec<(usize, Instant)>,
    /// A thread is on its way to drop the buffers beyond `kept_bytes`.
    trimming: bool,
}

impl Pool {
    const fn new(bounds: Bounds) -> Pool {
        Pool {
            bounds,
            kept: Vec::new(),
            lent: Vec::new(),
            trimming: false,
        }
    }

    fn keeps(&self, capacity: usize) -> bool {
        (MIN_POOLED..=self.bounds.max_bytes).contains(&capacity)
    }

    fn bytes(&self) -> usize {
        self.kept.iter().map(|k| k.buffer.capacity()).sum()
    }

    fn lend(&mut self, index: usize) -> Vec<u8> {
        let Kept { buffer, used } = self.kept.swap_remove(index);
        self.lent.push((buffer.as_ptr() as usize, used));
        if self.lent.len() > self.bounds.max_buffers {
            self.lent.remove(0);
        }
        buffer
    }

    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        let index = (0..self.kept.len())
            .filter(|&i| self.kept[i].buffer.capacity() >= len)
            .min_by_key(|&i| self.kept[i].buffer.capacity())?;
        Some(self.lend(index))
    }

    fn take_largest(&mut self) -> Option<Vec<u8>> {
        let index = (0..self.kept.len()).max_by_key(|&i| self.kept[i].buffer.capacity())?;
        Some(self.lend(index))
    }

    /// Keeps `buffer` (of a capacity `keeps`), evicting the smallest kept
    /// buffers beyond the bounds into `evicted`. True when a trimmer must
    /// be started.
    fn give(&mut self, mut buffer: Vec<u8>, now: Instant, evicted: &mut Vec<Vec<u8>>) -> bool {
        let address = buffer.as_ptr() as usize;
        let lent = self.lent.iter().position(|&(a, _)| a == address);
        let last_use = lent.map(|i| self.lent.swap_remove(i).1);
        let carried_payload = buffer.len() >= buffer.capacity() / 2;
        let used = match last_use {
            Some(used) if !carried_payload => used,
            _ => now,
        };
        buffer.clear();
        self.kept.push(Kept { buffer, used });
        while self.kept.len() > self.bounds.max_buffers || self.bytes() > self.bounds.max_bytes {
            let Some(smallest) =
                (0..self.kept.len()).min_by_key(|&i| self.kept[i].buffer.capacity())
            else {
                break;
            };
            evicted.push(self.kept.swap_remove(smallest).buffer);
        }
        let start = self.bytes() > self.bounds.kept_bytes && !self.trimming;
        self.trimming |= start;
        start
    }

    /// Drops into `dropped` the buffers outside the permanent set (the
    /// smallest that fit together within `kept_bytes`) unused for `retain`.
    /// Returns how long until the next of the others expires, if any.
    fn trim(&mut self, now: Instant, dropped: &mut Vec<Vec<u8>>) -> Option<Duration> {
        let mut order: Vec<usize> = (0..self.kept.len()).collect();
        order.sort_by_key(|&i| self.kept[i].buffer.capacity());
        let mut permanent = 0usize;
        let mut expired = Vec::new();
        let mut next: Option<Duration> = None;
        for i in order {
            let capacity = self.kept[i].buffer.capacity();
            if permanent + capacity <= self.bounds.kept_bytes {
                permanent += capacity;
                continue;
            }
            let idle = now.saturating_duration_since(self.kept[i].used);
            match self.bounds.retain.checked_sub(idle) {
                Some(left) if !left.is_zero() => {
                    next = Some(next.map_or(left, |n| n.min(left)));
                }
                _ => expired.push(i),
            }
        }
        // Highest index first, so that `swap_remove` moves no index still
        // to be removed.
        expired.sort_unstable_by(|a, b| b.cmp(a));
        for i in expired {
            dropped.push(self.kept.swap_remove(i).buffer);
        }
        next
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new(BOUNDS));

fn lock(pool: &Mutex<Pool>) -> std::sync::MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An empty buffer with room for `len` bytes: the smallest kept buffer that
/// is large enough, or a new one (reserved, not filled).
pub fn take(len: usize) -> Result<Vec<u8>, TryReserveError> {
    if len >= MIN_POOLED {
        if let Some(buffer) = lock(&POOL).take(len) {
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
    lock(&POOL).take_largest()
}

/// Keeps `buffer` for reuse if it is large enough to be worth it and fits
/// the pool's bounds (dropping smaller kept buffers to make room).
pub fn give(buffer: Vec<u8>) {
    give_to(&POOL, buffer);
}

fn give_to(pool: &'static Mutex<Pool>, buffer: Vec<u8>) {
    let mut evicted = Vec::new();
    let start_trimmer = {
        let mut pool = lock(pool);
        if !pool.keeps(buffer.capacity()) {
            return;
        }
        pool.give(buffer, Instant::now(), &mut evicted)
    };
    // Unmapped outside the lock.
    drop(evicted);
    if start_trimmer {
        let retain = lock(pool).bounds.retain;
        let started = std::thread::Builder::new()
            .name("mirai-pool".into())
            .spawn(move || trim_when_idle(pool, retain));
        if started.is_err() {
            // No thread: keep no more than what is kept for good.
            let mut dropped = Vec::new();
            let mut pool = lock(pool);
            pool.trim(Instant::now() + retain, &mut dropped);
            pool.trimming = false;
        }
    }
}

/// Runs on its own thread while the pool holds buffers beyond `kept_bytes`.
fn trim_when_idle(pool: &Mutex<Pool>, mut wait: Duration) {
    loop {
        std::thread::sleep(wait);
        let mut dropped = Vec::new();
        let next = {
            let mut pool = lock(pool);
            let next = pool.trim(Instant::now(), &mut dropped);
            pool.trimming = next.is_some();
            next
        };
        drop(dropped);
        match next {
            Some(left) => wait = left.max(Duration::from_millis(1)),
            None => return,
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
    lock(&POOL).bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Bounds = Bounds {
        max_buffers: 4,
        max_bytes: 16 * MIN_POOLED,
        kept_bytes: 4 * MIN_POOLED,
        retain: Duration::from_secs(10),
    };

    fn buffer(capacity: usize, len: usize) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(capacity);
        buffer.resize(len, 1);
        buffer
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    // The process-wide pool: only this test uses it, and only with buffers
    // of at most 3 MiB, which no other test's frame (8 MiB) can take.
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

        for _ in 0..BOUNDS.max_buffers + 2 {
            give(Vec::with_capacity(MIN_POOLED));
        }
        assert!(kept_bytes() <= BOUNDS.max_buffers * MIN_POOLED);
        assert!(!lock(&POOL).keeps(BOUNDS.max_bytes + 1));
        while take_largest().is_some() {}
    }

    #[test]
    fn beyond_the_permanent_set_buffers_are_kept_only_while_in_use() {
        let mut pool = Pool::new(SMALL);
        let mut evicted = Vec::new();
        let t0 = Instant::now();
        assert!(!pool.give(buffer(MIN_POOLED, 0), t0, &mut evicted));
        assert!(!pool.give(buffer(3 * MIN_POOLED, 0), t0, &mut evicted));
        // Past kept_bytes: a trimmer is needed (once).
        assert!(pool.give(buffer(8 * MIN_POOLED, 8 * MIN_POOLED), t0, &mut evicted));
        assert!(!pool.give(buffer(2 * MIN_POOLED, 0), t0, &mut evicted));
        assert!(evicted.is_empty());

        // Lent for a small output, it does not count as used again...
        let mut large = pool.take(5 * MIN_POOLED).expect("kept");
        assert_eq!(large.capacity(), 8 * MIN_POOLED);
        large.extend_from_slice(&[1; 16]);
        pool.give(large, t0 + secs(9), &mut evicted);
        let mut dropped = Vec::new();
        assert_eq!(pool.trim(t0 + secs(4), &mut dropped), Some(secs(6)));
        assert!(dropped.is_empty());
        // ... and goes once unused for `retain`, as does the 3 MiB buffer,
        // which does not fit beside the 1 and 2 MiB ones, kept for good.
        assert_eq!(pool.trim(t0 + secs(10), &mut dropped), None);
        let mut gone: Vec<usize> = dropped.iter().map(Vec::capacity).collect();
        gone.sort_unstable();
        assert_eq!(gone, [3 * MIN_POOLED, 8 * MIN_POOLED]);
        assert_eq!(pool.bytes(), 3 * MIN_POOLED);

        // One that carried a payload counts as used when it comes back.
        let t1 = t0 + secs(20);
        pool.give(buffer(8 * MIN_POOLED, 6 * MIN_POOLED), t1, &mut evicted);
        let large = pool.take(8 * MIN_POOLED).expect("kept");
        pool.give(
            buffer_like(large, 5 * MIN_POOLED),
            t1 + secs(5),
            &mut evicted,
        );
        dropped.clear();
        assert_eq!(pool.trim(t1 + secs(10), &mut dropped), Some(secs(5)));
        assert_eq!(pool.trim(t1 + secs(15), &mut dropped), None);
        assert_eq!(dropped.len(), 1);

        // A young large buffer never costs the permanent set its buffers.
        let mut pool = Pool::new(SMALL);
        pool.give(buffer(3 * MIN_POOLED, 0), t0, &mut evicted);
        pool.give(buffer(12 * MIN_POOLED, 0), t0 + secs(8), &mut evicted);
        assert_eq!(pool.trim(t0 + secs(12), &mut dropped), Some(secs(6)));
        assert_eq!(pool.bytes(), 15 * MIN_POOLED);

        // Bounds: the smallest buffers are evicted first.
        assert!(evicted.is_empty());
        let mut pool = Pool::new(SMALL);
        for _ in 0..SMALL.max_buffers {
            pool.give(buffer(MIN_POOLED, 0), t0, &mut evicted);
        }
        pool.give(buffer(15 * MIN_POOLED, 0), t0, &mut evicted);
        assert_eq!(pool.bytes(), 16 * MIN_POOLED);
        assert_eq!(evicted.len(), 3);
    }

    fn buffer_like(mut buffer: Vec<u8>, len: usize) -> Vec<u8> {
        buffer.resize(len, 2);
        buffer
    }

    #[test]
    fn a_trimmer_thread_releases_what_goes_unused() {
        static TRIMMED: Mutex<Pool> = Mutex::new(Pool::new(Bounds {
            retain: Duration::from_millis(100),
            ..SMALL
        }));
        give_to(&TRIMMED, buffer(MIN_POOLED, 0));
        give_to(&TRIMMED, buffer(8 * MIN_POOLED, 8 * MIN_POOLED));
        assert!(lock(&TRIMMED).trimming);
        let deadline = Instant::now() + secs(10);
        while lock(&TRIMMED).bytes() > MIN_POOLED {
            assert!(Instant::now() < deadline, "never trimmed");
            std::thread::sleep(Duration::from_millis(20));
        }
        while lock(&TRIMMED).trimming {
            assert!(Instant::now() < deadline, "the trimmer never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(lock(&TRIMMED).bytes(), MIN_POOLED);
    }
}
