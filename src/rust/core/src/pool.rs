//! Large payload buffers kept for reuse.
//!
//! The first write to freshly mapped memory takes a page fault for every
//! 4 KiB page: for a 100 MB payload that costs several times the copy itself
//! (about 100 ms against 20 ms on the project's machines). A buffer that held
//! the previous large payload is already mapped, so serialization and frame
//! reads take one from here when they can. The pool holds at most
//! `MAX_BUFFERS` buffers and `MAX_BYTES` bytes in all; smaller buffers are
//! never kept.

use std::collections::TryReserveError;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Buffers below this capacity are cheap to map afresh and are not kept.
pub const MIN_POOLED: usize = 1 << 20;
const MAX_BUFFERS: usize = 4;
const MAX_BYTES: usize = 512 << 20;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn with_pool<T>(f: impl FnOnce(&mut Vec<Vec<u8>>) -> T) -> T {
    f(&mut POOL.lock().unwrap_or_else(PoisonError::into_inner))
}

/// An empty buffer with room for `len` bytes: the smallest kept buffer that
/// is large enough, or a new one (reserved, not filled).
pub fn take(len: usize) -> Result<Vec<u8>, TryReserveError> {
    if len >= MIN_POOLED {
        let kept = with_pool(|pool| {
            let index = (0..pool.len())
                .filter(|&i| pool[i].capacity() >= len)
                .min_by_key(|&i| pool[i].capacity())?;
            Some(pool.swap_remove(index))
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
        let index = (0..pool.len()).max_by_key(|&i| pool[i].capacity())?;
        Some(pool.swap_remove(index))
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
    let dropped = with_pool(|pool| {
        pool.push(buffer);
        let mut dropped = Vec::new();
        while pool.len() > MAX_BUFFERS || pool.iter().map(Vec::capacity).sum::<usize>() > MAX_BYTES
        {
            let Some(smallest) = (0..pool.len()).min_by_key(|&i| pool[i].capacity()) else {
                break;
            };
            dropped.push(pool.swap_remove(smallest));
        }
        dropped
    });
    drop(dropped);
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
    with_pool(|pool| pool.iter().map(Vec::capacity).sum())
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
    }
}
