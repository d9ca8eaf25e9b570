//! Tasks that end before their result: cancelled by the user, or past their
//! deadline. A queued task leaves the queue; a sent one resolves at once but
//! holds its daemon until the daemon answers (the answer is then dropped),
//! and is sent CANCEL (with the dispatcher, a timed-out task too, so that it
//! stops using its daemon).

use std::cmp::Reverse;
use std::time::Instant;

use bytes::Bytes;

use super::{Outcome, Outlet, Place, Scheduler};
use crate::message::Kind;

pub(super) enum Abandoned {
    NotPending,
    Queued,
    Sent(u64),
}

impl<O: Outlet> Scheduler<O> {
    /// Resolves a pending task to `CANCELLED`; a daemon holding it is sent
    /// CANCEL. False when the task was not pending.
    pub(in crate::host) fn cancel(&mut self, id: u64) -> bool {
        let abandoned = self.abandon(id, Outcome::CANCELLED);
        if let Abandoned::Sent(link_id) = abandoned {
            if let Some(link) = self.links.get(&link_id) {
                link.outlet.send(Kind::Cancel, id, Bytes::new());
            }
        }
        !matches!(abandoned, Abandoned::NotPending)
    }

    pub(super) fn abandon(&mut self, id: u64, code: i32) -> Abandoned {
        let Some(task) = self.tasks.get_mut(&id) else {
            return Abandoned::NotPending;
        };
        if task.resolved {
            return Abandoned::NotPending;
        }
        let forgotten = task.forgotten;
        let abandoned = match task.place {
            Place::Queued => {
                self.queued_bytes -= task.len;
                self.tasks.remove(&id);
                self.awaiting -= 1;
                Abandoned::Queued
            }
            Place::Reserved => {
                self.tasks.remove(&id);
                self.awaiting -= 1;
                for everywhere in &mut self.everywhere {
                    everywhere.reserved.retain(|&r| r != id);
                }
                Abandoned::Queued
            }
            Place::Sent(link_id) => {
                task.resolved = true;
                task.payload = Bytes::new();
                self.executing -= 1;
                Abandoned::Sent(link_id)
            }
        };
        self.deliver(id, Outcome::Error(code), forgotten);
        abandoned
    }

    /// Keeps the heap from growing with deadlines of tasks long finished.
    pub(super) fn purge_stale_deadlines(&mut self) {
        if self.deadlines.len() > 1024 && self.deadlines.len() > 2 * self.tasks.len() {
            let tasks = &self.tasks;
            self.deadlines
                .retain(|Reverse((_, id))| tasks.get(id).is_some_and(|t| !t.resolved));
        }
    }

    /// The earliest deadline not yet expired (perhaps of a task since
    /// resolved).
    pub(in crate::host) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines
            .peek()
            .map(|Reverse((deadline, _))| *deadline)
    }

    /// Resolves every pending task whose deadline is not after `now` to
    /// `TIMED_OUT`; true if any was.
    pub(in crate::host) fn expire(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            match self.abandon(id, Outcome::TIMED_OUT) {
                Abandoned::NotPending => {}
                Abandoned::Queued => any = true,
                Abandoned::Sent(link_id) => {
                    any = true;
                    // With the dispatcher, a timed-out task stops using its
                    // daemon, as a cancelled one does.
                    if self.dispatcher {
                        if let Some(link) = self.links.get(&link_id) {
                            link.outlet.send(Kind::Cancel, id, Bytes::new());
                        }
                    }
                }
            }
        }
        any
    }
}
