//! The outgoing side of a link. When the link is idle, the thread that sends
//! a frame writes it to the socket itself, without blocking and without
//! waking any other thread; whatever the socket does not take at once (and
//! every frame for a stream without that direct path, such as TLS) goes to
//! the link's writer task on `runtime()`.
//!
//! Every frame is first appended to `Lane::queue` under the `Shared::lane`
//! mutex, so frames go out in the order in which their senders took it.
//! A frame may also be staged: queued without being written or waking the
//! writer task, for its sender to `flush` once it has let go of its own
//! locks.
//!
//! Invariant: bytes reach the stream only
//! (a) from the writer task, while it has taken the `FrameWriter` out of
//!     `Lane::writer`, or
//! (b) from a direct write made under the `Shared::lane` mutex while the
//!     writer is parked in `Lane::writer` (its buffer empty): it writes the
//!     queue's frames from the front, and drops from the queue what it
//!     wrote before the mutex is released.
//! The writer task parks the writer again only under the mutex with the
//! queue empty and the buffer flushed. So writers never interleave bytes,
//! and the wire carries the queue in order.
//!
//! Heartbeats: with an interval, the writer task sends HEARTBEAT when the
//! link wrote nothing during a whole interval, so that a quiet link still
//! has data in flight for its peer's kernel to acknowledge (see
//! `transport::set_liveness`). The writes themselves only set a flag.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::frame::{frame_head, FrameHead, FrameWriter, Framing};
use crate::message::{Kind, Tag};
use crate::runtime::log;
use crate::transport::WriteHalf;
use crate::Error;

/// A queued frame.
struct Pending {
    head: FrameHead,
    /// Shared with the host where it keeps a task for retries: no copy.
    payload: Bytes,
    /// Leading bytes of the frame already written by a direct write.
    written: usize,
}

struct Lane {
    /// Parked here while the writer task is idle, with nothing buffered;
    /// `None` while the task writes with it, and once the task has ended.
    writer: Option<FrameWriter<WriteHalf>>,
    /// Frames not yet (entirely) written, oldest first.
    queue: VecDeque<Pending>,
    /// The `Outbox` is gone: the task writes what is queued, then shuts the
    /// stream down.
    closed: bool,
    /// Nothing more will be written: the task ended, or a write failed.
    dead: bool,
    /// A failed direct write's error, for the writer task to report.
    failure: Option<io::Error>,
    /// Bytes of the batch the writer task has taken out of `queue` and is
    /// writing.
    batch_bytes: usize,
    /// Something was written since the last heartbeat tick.
    wrote: bool,
    #[cfg(test)]
    stats: Stats,
}

/// How frames were written (unit tests check that each path was taken).
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    /// Frames whose last byte a direct write wrote.
    pub direct: u64,
    /// Direct writes that stopped inside a frame.
    pub partial: u64,
    /// Frames whose last byte the writer task wrote.
    pub queued: u64,
}

struct Shared {
    lane: Mutex<Lane>,
    framing: Framing,
    /// Wakes the writer task: something was queued, or the outbox closed or
    /// failed.
    wake: Notify,
    /// Signalled (under `lane`) when the writer task ends.
    ended: Condvar,
}

/// `Outbox::close_and_wait` waits this long, plus the time the bytes still
/// to write take at `SLOWEST_RATE` bytes per second.
const CLOSE_WAIT: Duration = Duration::from_secs(30);
const SLOWEST_RATE: f64 = 10e6;

/// Most frames one direct write takes from the queue (two slices each).
const DIRECT_FRAMES: usize = 32;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Lane> {
        self.lane.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, tag: Tag, id: u64, payload: Bytes) -> Result<(), Error> {
        let mut lane = self.lock();
        self.push(&mut lane, tag, id, payload)?;
        self.write_queued(lane);
        Ok(())
    }

    /// Appends a frame to the queue; fails once the link has ended.
    fn push(&self, lane: &mut Lane, tag: Tag, id: u64, payload: Bytes) -> Result<(), Error> {
        if lane.closed || lane.dead {
            return Err(Error::Closed);
        }
        lane.queue.push_back(Pending {
            head: frame_head(self.framing, tag, id, payload.len()),
            payload,
            written: 0,
        });
        Ok(())
    }

    /// The direct path: while the writer is parked, writes the queued frames,
    /// oldest first, as far as the socket takes them at once; wakes the
    /// writer task for whatever is left.
    fn write_queued(&self, mut lane: MutexGuard<'_, Lane>) {
        if lane.queue.is_empty() {
            return;
        }
        let written = match &lane.writer {
            Some(writer) if writer.is_flushed() => {
                let mut parts = Vec::with_capacity(2 * DIRECT_FRAMES);
                for pending in lane.queue.iter().take(DIRECT_FRAMES) {
                    let head = pending
                        .head
                        .as_slice()
                        .get(pending.written..)
                        .unwrap_or(&[]);
                    let skip = pending.written.saturating_sub(pending.head.len());
                    let payload = pending.payload.get(skip..).unwrap_or(&[]);
                    parts.extend(
                        [head, payload]
                            .into_iter()
                            .filter(|part| !part.is_empty())
                            .map(IoSlice::new),
                    );
                }
                writer.get_ref().try_write_now(&parts)
            }
            _ => None,
        };
        match written {
            Some(Ok(n)) => lane.advance(n),
            Some(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Some(Err(e)) => {
                // As when the writer task fails: these frames are lost, the
                // link is ending, and later sends fail.
                lane.dead = true;
                lane.failure = Some(e);
            }
            None => {}
        }
        let left = !lane.queue.is_empty() || lane.failure.is_some();
        drop(lane);
        if left {
            self.wake.notify_one();
        }
    }
}

impl Lane {
    fn unwritten_bytes(&self) -> usize {
        let queued: usize = self
            .queue
            .iter()
            .map(|p| p.head.len() + p.payload.len() - p.written)
            .sum();
        queued + self.batch_bytes
    }

    /// Drops from the queue the `n` bytes a direct write took.
    fn advance(&mut self, mut n: usize) {
        self.wrote |= n > 0;
        while let Some(pending) = self.queue.front_mut() {
            let left = pending.head.len() + pending.payload.len() - pending.written;
            if n < left {
                pending.written += n;
                #[cfg(test)]
                if n > 0 {
                    self.stats.partial += 1;
                }
                return;
            }
            n -= left;
            self.queue.pop_front();
            #[cfg(test)]
            {
                self.stats.direct += 1;
            }
        }
    }
}

/// The sending end of a link. Dropping it closes the link for writing once
/// everything already sent is written.
pub(crate) struct Outbox {
    shared: Arc<Shared>,
}

/// Sends through an `Outbox` without owning it: fails once it is dropped.
#[derive(Clone)]
pub(crate) struct Sender {
    shared: Arc<Shared>,
}

impl Outbox {
    /// The outbox and its writer task, which the caller spawns on
    /// `runtime()`. The task ends once the outbox is dropped and everything
    /// sent was written, or on a write error; either way it wakes `stop`.
    /// With `heartbeat`, it sends HEARTBEAT on a link quiet that long.
    pub fn new(
        writer: FrameWriter<WriteHalf>,
        stop: Arc<Notify>,
        peer: String,
        heartbeat: Option<Duration>,
    ) -> (Outbox, impl Future<Output = ()> + Send + 'static) {
        let shared = Arc::new(Shared {
            framing: writer.framing(),
            lane: Mutex::new(Lane {
                writer: Some(writer),
                queue: VecDeque::new(),
                closed: false,
                dead: false,
                failure: None,
                batch_bytes: 0,
                wrote: false,
                #[cfg(test)]
                stats: Stats::default(),
            }),
            wake: Notify::new(),
            ended: Condvar::new(),
        });
        let task = write_loop(shared.clone(), stop, peer, heartbeat);
        (Outbox { shared }, task)
    }

    /// Writes the frame now if the link is idle and the socket takes it,
    /// else queues (the rest of) it for the writer task. Never blocks on the
    /// peer. Fails only once the link has ended.
    pub fn send(&self, tag: Tag, id: u64, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.shared.send(tag, id, payload.into())
    }

    /// Queues the frame for the writer task even when the link is idle: for
    /// a peer with work in hand already, so that a burst of frames goes out
    /// in few writes, made by the writer task rather than by the sender.
    pub fn send_later(&self, tag: Tag, id: u64, payload: impl Into<Bytes>) -> Result<(), Error> {
        let shared = &self.shared;
        let mut lane = shared.lock();
        let first = lane.queue.is_empty();
        shared.push(&mut lane, tag, id, payload.into())?;
        drop(lane);
        if first {
            shared.wake.notify_one();
        }
        Ok(())
    }

    /// Queues the frame without writing it or waking the writer task: the
    /// caller must `flush` this outbox soon (the host stages frames under
    /// its lock and writes them once it has let go of the lock). Frames
    /// keep their order among every send, staged or not.
    pub fn stage(&self, tag: Tag, id: u64, payload: impl Into<Bytes>) -> Result<(), Error> {
        let mut lane = self.shared.lock();
        self.shared.push(&mut lane, tag, id, payload.into())
    }

    /// Closes the outbox as dropping it does, then blocks until everything
    /// sent is written and the writer task has ended (true), or a write
    /// failed (true: nothing more can be done), or for at most `CLOSE_WAIT`
    /// plus the time the unwritten bytes take at `SLOWEST_RATE` (false).
    /// For a process about to exit, whose runtime threads end with it. Not
    /// from within `runtime()`.
    pub fn close_and_wait(self) -> bool {
        let shared = self.shared.clone();
        drop(self);
        let lane = shared.lock();
        let limit =
            CLOSE_WAIT + Duration::from_secs_f64(lane.unwritten_bytes() as f64 / SLOWEST_RATE);
        let (lane, _) = shared
            .ended
            .wait_timeout_while(lane, limit, |lane| !lane.dead)
            .unwrap_or_else(PoisonError::into_inner);
        lane.dead
    }

    pub fn sender(&self) -> Sender {
        Sender {
            shared: self.shared.clone(),
        }
    }

    #[cfg(test)]
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats
    }
}

impl Sender {
    pub fn send(&self, tag: Tag, id: u64, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.shared.send(tag, id, payload.into())
    }

    /// Writes what was staged (see `Outbox::stage`), as `send` would.
    pub fn flush(&self) {
        self.shared.write_queued(self.shared.lock());
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    stop: Arc<Notify>,
    peer: String,
    heartbeat: Option<Duration>,
) {
    let ticks = heartbeat.map(|every| {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    let ended = drain(&shared, ticks).await;
    {
        let mut lane = shared.lock();
        lane.dead = true;
        lane.queue.clear();
        lane.batch_bytes = 0;
        lane.writer = None;
        shared.ended.notify_all();
    }
    if let Err(e) = ended {
        if e.kind() != io::ErrorKind::BrokenPipe && e.kind() != io::ErrorKind::ConnectionReset {
            log(format_args!("write to {peer} failed: {e}"));
        }
    }
    stop.notify_one();
}

enum Next {
    Write(FrameWriter<WriteHalf>, VecDeque<Pending>),
    Shutdown(Option<FrameWriter<WriteHalf>>),
    Wait,
    Fail(io::Error),
}

/// Queues a heartbeat if nothing was written since the last tick.
fn tick(shared: &Shared) {
    let mut lane = shared.lock();
    if !mem::take(&mut lane.wrote) && lane.queue.is_empty() {
        let _ = shared.push(&mut lane, Kind::Heartbeat.into(), 0, Bytes::new());
    }
}

async fn drain(shared: &Shared, mut ticks: Option<tokio::time::Interval>) -> io::Result<()> {
    loop {
        let next = {
            let mut lane = shared.lock();
            if let Some(e) = lane.failure.take() {
                Next::Fail(e)
            } else if !lane.queue.is_empty() {
                match lane.writer.take() {
                    Some(writer) => {
                        lane.wrote = true;
                        lane.batch_bytes = lane.unwritten_bytes();
                        Next::Write(writer, mem::take(&mut lane.queue))
                    }
                    // Only this task takes the writer out; not reached.
                    None => Next::Shutdown(None),
                }
            } else if lane.closed {
                Next::Shutdown(lane.writer.take())
            } else {
                Next::Wait
            }
        };
        let (mut writer, mut batch) = match next {
            Next::Write(writer, batch) => (writer, batch),
            Next::Wait => {
                match &mut ticks {
                    Some(ticks) => tokio::select! {
                        _ = shared.wake.notified() => {}
                        _ = ticks.tick() => tick(shared),
                    },
                    None => shared.wake.notified().await,
                }
                continue;
            }
            Next::Shutdown(writer) => {
                if let Some(mut writer) = writer {
                    writer.shutdown().await?;
                }
                return Ok(());
            }
            Next::Fail(e) => return Err(e),
        };
        loop {
            #[cfg(test)]
            let written = batch.len() as u64;
            while let Some(pending) = batch.pop_front() {
                writer
                    .write_rest(&pending.head, &pending.payload, pending.written)
                    .await?;
            }
            writer.flush().await?;
            let mut lane = shared.lock();
            #[cfg(test)]
            {
                lane.stats.queued += written;
            }
            if lane.queue.is_empty() {
                lane.batch_bytes = 0;
                lane.writer = Some(writer);
                break;
            }
            lane.batch_bytes = 0;
            lane.batch_bytes = lane.unwritten_bytes();
            mem::swap(&mut batch, &mut lane.queue);
        }
    }
}

#[cfg(test)]
mod tests;
