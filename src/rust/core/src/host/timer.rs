//! Resolves each task whose deadline passed: sleeps until the earliest
//! deadline, or until `submit` tells it of an earlier one.

use std::sync::Arc;
use std::time::Instant;

use super::Shared;

pub(super) async fn run_timer(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut state = shared.lock();
            if state.expire(Instant::now()) {
                state.wake();
            }
            state.next_deadline()
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                    _ = shared.timer.notified() => {}
                }
            }
            None => shared.timer.notified().await,
        }
    }
}
