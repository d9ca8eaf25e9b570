//! A standalone dispatcher's relay: it dials into a host as a daemon does
//! (a `DaemonLink`) and hands the tasks it receives to a `Host` of its own,
//! whose daemons run them; their outcomes go back to the host as RESULTs.
//! Payloads pass through as they came, in both directions: nothing here
//! reads them.
//!
//! Threads: `inbound` (named `mirai-relay-in`) takes TASK and CANCEL from
//! the link and submits to, or cancels on, the local host; `outbound`
//! (`mirai-relay-out`) takes each local outcome and sends it on. They meet
//! in `Table`, under its own mutex, and through a channel of the local ids
//! resolved, which the local host's resolution callbacks feed. Both block,
//! neither polls. A task's entry is in `Table` before its callback is set,
//! so that `outbound` always finds it.
//!
//! A task for every daemon (TASK with `flags::EVERYWHERE`: `everywhere()`,
//! or a broadcast) runs on each local daemon (at least one: it waits for
//! the first to connect), and is answered once all have answered: with the
//! first that is not a value (a failure or a transport code), else with the
//! first daemon's value.
//!
//! When the link ends (the host sent EXIT, closed, or went away), the local
//! host is closed with EXIT to its daemons, and `Relay::wait` returns.

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::daemon::{DaemonLink, DaemonOptions, Received};
use crate::host::{Host, Outcome};
use crate::launcher::spawn_thread;
use crate::sync::Monitor;
use crate::Error;

/// How long `inbound` sleeps on the link between two checks that cost
/// nothing but a wake-up; a message wakes it at once.
const INBOUND_SLICE: Duration = Duration::from_secs(60);

/// A relay running; dropping it closes the link (see `Relay::close`).
pub struct Relay {
    shared: Arc<Shared>,
}

struct Shared {
    link: DaemonLink,
    local: Host,
    table: Mutex<Table>,
    /// `None` while the link lives; then how it ended.
    ended: Monitor<Option<Result<(), Error>>>,
}

#[derive(Default)]
struct Table {
    /// By the host's task id.
    relayed: HashMap<u64, Relayed>,
    /// Local task id to the host's.
    upstream: HashMap<u64, u64>,
}

/// A task of the host's, as the local tasks it became.
struct Relayed {
    local: Vec<u64>,
    /// By position in `local`.
    outcomes: Vec<Option<Outcome>>,
    left: usize,
}

impl Relay {
    /// Dials the host (in the background, as `DaemonLink::connect`) and
    /// relays what it sends to `local`, until the link ends. Fails for a
    /// URL that cannot be dialled at all, or when a thread cannot start.
    pub fn start(opts: DaemonOptions, local: Host) -> Result<Relay, Error> {
        let link = DaemonLink::connect_as(opts, true)?;
        let shared = Arc::new(Shared {
            link,
            local,
            table: Mutex::new(Table::default()),
            ended: Monitor::new(None),
        });
        let (resolved, outcomes) = channel();
        let spawned = spawn_thread("mirai-relay-out", {
            let shared = shared.clone();
            move || outbound(&shared, outcomes)
        })
        .and_then(|()| {
            spawn_thread("mirai-relay-in", {
                let shared = shared.clone();
                move || inbound(&shared, resolved)
            })
        });
        if let Err(e) = spawned {
            shared.link.close();
            return Err(e);
        }
        Ok(Relay { shared })
    }

    /// Waits at most `timeout` for the relay to end: `Ok(true)` once the
    /// link has ended after the host welcomed it, `Ok(false)` while it
    /// lives, the error when it never got through (refused, or the dial
    /// failed without `asyncdial`).
    pub fn wait(&self, timeout: Duration) -> Result<bool, Error> {
        let ended = self
            .shared
            .ended
            .wait_until(timeout, Duration::ZERO, Option::is_some);
        match &*ended {
            None => Ok(false),
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    /// Closes the link; the relay then ends as when the host goes away.
    /// Idempotent.
    pub fn close(&self) {
        self.shared.link.close();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn relay_task(&self, id: u64, payload: Vec<u8>, everywhere: bool, resolved: &Sender<u64>) {
        let local = if everywhere {
            self.local.everywhere(payload, 1)
        } else {
            vec![self.local.submit(payload, None)]
        };
        if local.is_empty() {
            let _ = self.link.send_outcome(id, Outcome::Error(Outcome::CLOSED));
            return;
        }
        {
            let mut table = self.table();
            for &local_id in &local {
                table.upstream.insert(local_id, id);
            }
            table.relayed.insert(
                id,
                Relayed {
                    outcomes: local.iter().map(|_| None).collect(),
                    left: local.len(),
                    local: local.clone(),
                },
            );
        }
        for local_id in local {
            let resolved = resolved.clone();
            self.local.on_resolve(
                local_id,
                Box::new(move || {
                    let _ = resolved.send(local_id);
                }),
            );
        }
    }

    /// Cancels the local tasks of the host's task `id`: their daemons are
    /// sent CANCEL, and the outcome (cancelled) goes back as any other.
    fn cancel(&self, id: u64) {
        let local = match self.table().relayed.get(&id) {
            Some(relayed) => relayed.local.clone(),
            None => return,
        };
        for local_id in local {
            self.local.cancel(local_id);
        }
    }

    /// Records the outcome of local task `local_id`; returns the host's
    /// task and its outcome once every local task of it has one.
    fn settle(&self, local_id: u64, outcome: Outcome) -> Option<(u64, Outcome)> {
        let mut table = self.table();
        let id = table.upstream.remove(&local_id)?;
        let relayed = table.relayed.get_mut(&id)?;
        let at = relayed.local.iter().position(|&l| l == local_id)?;
        relayed.outcomes[at] = Some(outcome);
        relayed.left -= 1;
        if relayed.left > 0 {
            return None;
        }
        let relayed = table.relayed.remove(&id)?;
        Some((
            id,
            combined(relayed.outcomes.into_iter().flatten().collect()),
        ))
    }
}

/// The outcome of a task run by several daemons: the first that is not a
/// value, else the first.
fn combined(mut outcomes: Vec<Outcome>) -> Outcome {
    let at = outcomes
        .iter()
        .position(|o| !matches!(o, Outcome::Value(_)))
        .unwrap_or(0);
    if at < outcomes.len() {
        outcomes.swap_remove(at)
    } else {
        Outcome::Error(Outcome::CLOSED)
    }
}

fn inbound(shared: &Shared, resolved: Sender<u64>) {
    loop {
        match shared.link.recv_spinning(INBOUND_SLICE, Duration::ZERO) {
            Received::Task {
                id,
                payload,
                everywhere,
            } => shared.relay_task(id, payload, everywhere, &resolved),
            Received::Cancel { id } => shared.cancel(id),
            Received::Timeout => {}
            Received::Exit | Received::Closed => break,
        }
    }
    let how = match shared.link.wait_connected(Duration::ZERO) {
        Ok(_) | Err(Error::Closed) => Ok(()),
        Err(e) => Err(e),
    };
    shared.local.close(true);
    shared.link.close();
    let mut ended = shared.ended.lock();
    *ended = Some(how);
    ended.wake();
}

/// Ends once every sender is gone: `inbound`'s and the callbacks of the
/// local tasks, which all resolve when the local host closes.
fn outbound(shared: &Shared, resolved: Receiver<u64>) {
    for local_id in resolved {
        let Some(outcome) = shared.local.take(local_id) else {
            continue;
        };
        if let Some((id, outcome)) = shared.settle(local_id, outcome) {
            let _ = shared.link.send_outcome(id, outcome);
        }
    }
}

#[cfg(test)]
mod tests;
