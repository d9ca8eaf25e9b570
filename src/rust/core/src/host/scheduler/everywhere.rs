//! Tasks for every daemon: `broadcast` (uncounted, results dropped) and
//! `everywhere` (one counted task per daemon, now and up to a minimum).

use std::collections::VecDeque;

use bytes::Bytes;

use super::{note_resolution, Everywhere, Outcome, Outlet, Place, Scheduler, Task};
use crate::message::{flags, Kind};

/// An `everywhere` task: never retried, as it is meant for one daemon. Its
/// payload is held by the `Everywhere` entry or the link's outbox.
fn everywhere_task(place: Place, len: usize) -> Task {
    Task {
        place,
        payload: Bytes::new(),
        len: len as u64,
        retries_left: 0,
        retried: false,
        resolved: false,
        forgotten: false,
        everywhere: true,
        sent_order: 0,
        submitted: None,
    }
}

impl<O: Outlet> Scheduler<O> {
    /// Sends `payload` as a task to every link now, and to each later link
    /// before any other task. Its results are dropped, and it is not
    /// counted.
    pub(in crate::host) fn broadcast(&mut self, payload: Bytes) {
        if self.closed {
            return;
        }
        let id = self.new_task_id();
        for link in self.links.values_mut().filter(|l| !l.leaving) {
            link.outlet
                .send(Kind::Task.with(flags::EVERYWHERE), id, payload.clone());
            link.setup.push_back((self.sends, id));
            self.sends += 1;
        }
        self.everywhere.push(Everywhere {
            id,
            payload,
            reserved: VecDeque::new(),
        });
    }

    /// As `broadcast`, but each link connected now is sent the payload as a
    /// task of its own, counted and answered as any task (never retried on
    /// another daemon); so are the next links to connect, until there are
    /// `min` such tasks. Returns their ids, those of the links connected now
    /// first, in order of arrival. Once closed, each resolves at once to
    /// `CLOSED`.
    pub(in crate::host) fn everywhere(&mut self, payload: Bytes, min: usize) -> Vec<u64> {
        let mut ids = Vec::new();
        if self.closed {
            for _ in 0..min {
                let id = self.new_task_id();
                self.results.insert(id, Outcome::Error(Outcome::CLOSED));
                note_resolution();
                ids.push(id);
            }
            return ids;
        }
        let mut links: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, l)| !l.leaving)
            .map(|(&id, _)| id)
            .collect();
        links.sort_unstable();
        for link_id in links {
            let id = self.new_task_id();
            self.tasks
                .insert(id, everywhere_task(Place::Queued, payload.len()));
            self.awaiting += 1;
            self.send_everywhere(id, link_id, payload.clone());
            ids.push(id);
        }
        let mut reserved = VecDeque::new();
        while ids.len() < min {
            let id = self.new_task_id();
            self.tasks
                .insert(id, everywhere_task(Place::Reserved, payload.len()));
            self.awaiting += 1;
            reserved.push_back(id);
            ids.push(id);
        }
        let id = self.new_task_id();
        self.everywhere.push(Everywhere {
            id,
            payload,
            reserved,
        });
        ids
    }

    /// Sends task `id` (an `everywhere` task, awaiting) to link `link_id`,
    /// whatever it holds already, and counts it as sent.
    pub(super) fn send_everywhere(&mut self, id: u64, link_id: u64, payload: Bytes) {
        let (Some(link), Some(task)) = (self.links.get_mut(&link_id), self.tasks.get_mut(&id))
        else {
            return;
        };
        task.place = Place::Sent(link_id);
        task.sent_order = self.sends;
        self.sends += 1;
        self.awaiting -= 1;
        self.executing += 1;
        link.holding += 1;
        if let Some(row) = self.daemons.get_mut(link.row) {
            row.assigned += 1;
        }
        link.outlet
            .send(Kind::Task.with(flags::EVERYWHERE), id, payload);
    }
}
