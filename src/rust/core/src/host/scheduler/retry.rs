//! What becomes of the tasks of a daemon whose link ends without its
//! leaving, and what waits meanwhile.
//!
//! - The daemon evaluates the tasks it holds one at a time, earliest sent
//!   first: only that one can have killed it. It is sent again while it has
//!   retries left, and resolves to `CONNECTION_RESET` after that; every
//!   other task it held is queued again without spending a retry. Where
//!   the earliest is an `everywhere` task not yet answered, none spends one.
//! - With no daemon left: where launched daemons are being replaced
//!   (`Healing::On`), everything waits for the replacements; where nobody
//!   replaces them, a task that was being evaluated when its daemon died
//!   (most likely what killed them) resolves at once rather than wait for a
//!   daemon that may never come; once replacing has stopped, every task
//!   waiting, and every task submitted later, resolves at once.

use super::{Outcome, Outlet, Place, Scheduler};

/// Whether the daemons that die are replaced (see `host::healer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healing {
    /// Nobody replaces them: daemons come and go as they dial in.
    Off,
    /// The daemons launched with the host are replaced when they die.
    On,
    /// Replacing stopped, for this reason (the daemons kept dying).
    Stopped(String),
}

/// What becomes of a task that a dead daemon held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Queued again, its retries untouched: the daemon had not started it.
    Requeue,
    /// Queued again, spending a retry.
    Retry,
    /// Resolved to `CONNECTION_RESET`.
    Fail,
}

fn fate(started: bool, retries_left: u32) -> Fate {
    if !started {
        Fate::Requeue
    } else if retries_left > 0 {
        Fate::Retry
    } else {
        Fate::Fail
    }
}

impl<O: Outlet> Scheduler<O> {
    /// The error a task submitted now resolves to at once, if any.
    pub(super) fn refusal(&self) -> Option<i32> {
        if self.closed {
            Some(Outcome::CLOSED)
        } else if matches!(self.healing, Healing::Stopped(_)) && self.links.is_empty() {
            Some(Outcome::CONNECTION_RESET)
        } else {
            None
        }
    }

    /// Daemons that die are replaced from now on: what they held waits.
    pub(in crate::host) fn start_healing(&mut self) {
        if !self.closed {
            self.healing = Healing::On;
        }
    }

    /// Replacing stopped (`reason`): with no daemon left, every task waiting
    /// resolves to `CONNECTION_RESET`, as does every later one until a daemon
    /// connects.
    pub(in crate::host) fn stop_healing(&mut self, reason: String) {
        if self.closed {
            return;
        }
        self.healing = Healing::Stopped(reason);
        if self.links.is_empty() {
            self.fail_waiting(false);
        }
    }

    /// Whether the daemon of process `pid`, gone, died failing: it never
    /// connected, or it died holding work (a task, or an `everywhere` task)
    /// without having completed a task. One killed while it worked, or
    /// while idle, did not.
    pub(in crate::host) fn died_failing(&self, pid: i64) -> bool {
        let mut rows = self.daemons.iter().filter(|row| row.pid == pid).peekable();
        if rows.peek().is_none() {
            return true;
        }
        !rows.any(|row| row.complete > 0) && self.died_working.contains(&pid)
    }

    /// Whether a daemon of process `pid` said LEAVING.
    pub(in crate::host) fn has_left(&self, pid: i64) -> bool {
        self.left.contains(&pid)
    }

    /// Resolves the tasks waiting in the queue to `CONNECTION_RESET`: every
    /// one, or only those whose daemon died evaluating them.
    fn fail_waiting(&mut self, only_retried: bool) {
        let failing: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                (t.retried || !only_retried) && !t.resolved && matches!(t.place, Place::Queued)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in failing {
            if let Some(task) = self.tasks.remove(&id) {
                self.awaiting -= 1;
                self.queued_bytes -= task.len;
                self.deliver(
                    id,
                    Outcome::Error(Outcome::CONNECTION_RESET),
                    task.forgotten,
                );
            }
        }
    }

    /// The link is gone. The tasks it held are queued again ahead of every
    /// other, in the order they were sent, or resolve (see the module's
    /// rules). A link that ends without its daemon having said LEAVING is
    /// counted as a death.
    pub(in crate::host) fn drop_link(&mut self, link_id: u64) {
        let Some(link) = self.links.remove(&link_id) else {
            return;
        };
        if !link.leaving {
            self.deaths += 1;
            if link.holding > 0 || !link.setup.is_empty() {
                if let Some(row) = self.daemons.get(link.row) {
                    self.died_working.insert(row.pid);
                }
            }
        }
        if let Some(row) = self.daemons.get_mut(link.row) {
            row.online = false;
        }
        if let Some(pos) = self.rotation.iter().position(|&l| l == link_id) {
            self.rotation.remove(pos);
        }
        if link.holding > 0 {
            let mut held: Vec<(u64, u64)> = self
                .tasks
                .iter()
                .filter(|(_, t)| matches!(t.place, Place::Sent(l) if l == link_id))
                .map(|(&id, t)| (t.sent_order, id))
                .collect();
            held.sort_unstable();
            let setup_first = link.setup.front().map(|&(order, _)| order);
            let mut requeued = Vec::with_capacity(held.len());
            for (i, &(order, id)) in held.iter().enumerate() {
                let Some(task) = self.tasks.get_mut(&id) else {
                    continue;
                };
                if task.resolved {
                    self.tasks.remove(&id);
                    continue;
                }
                let started = i == 0 && setup_first.is_none_or(|first| order < first);
                // (an `everywhere` task, for that daemon only, is never sent
                // elsewhere)
                let fate = if task.everywhere {
                    Fate::Fail
                } else {
                    fate(started, task.retries_left)
                };
                match fate {
                    Fate::Fail => self.fail_sent(id, Outcome::CONNECTION_RESET),
                    requeue => {
                        if requeue == Fate::Retry {
                            task.retries_left -= 1;
                            task.retried = true;
                        }
                        task.place = Place::Queued;
                        self.executing -= 1;
                        self.awaiting += 1;
                        let len = task.len;
                        self.add_queued_bytes(len);
                        requeued.push(id);
                    }
                }
            }
            for &id in requeued.iter().rev() {
                self.queue.push_front(id);
            }
            if !requeued.is_empty() {
                self.pump();
            }
        }
        if self.links.is_empty() {
            match self.healing {
                Healing::Off => self.fail_waiting(true),
                Healing::On => {}
                Healing::Stopped(_) => self.fail_waiting(false),
            }
        }
        link.outlet.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_task_being_evaluated_spends_a_retry() {
        assert_eq!(fate(true, 1), Fate::Retry);
        assert_eq!(fate(true, 0), Fate::Fail);
        assert_eq!(fate(false, 0), Fate::Requeue);
        assert_eq!(fate(false, 3), Fate::Requeue);
    }
}
