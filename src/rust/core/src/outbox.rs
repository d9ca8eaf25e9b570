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

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::frame::{frame_head, FrameWriter, FRAME_HEAD_LEN};
use crate::message::Kind;
use crate::runtime::log;
use crate::transport::WriteHalf;
use crate::Error;

/// A queued frame.
struct Pending {
    head: [u8; FRAME_HEAD_LEN],
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

    fn send(&self, kind: Kind, id: u64, payload: Bytes) -> Result<(), Error> {
        let mut lane = self.lock();
        self.push(&mut lane, kind, id, payload)?;
        self.write_queued(lane);
        Ok(())
    }

    /// Appends a frame to the queue; fails once the link has ended.
    fn push(&self, lane: &mut Lane, kind: Kind, id: u64, payload: Bytes) -> Result<(), Error> {
        if lane.closed || lane.dead {
            return Err(Error::Closed);
        }
        lane.queue.push_back(Pending {
            head: frame_head(kind, id, payload.len()),
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
                    let head = pending.head.get(pending.written..).unwrap_or(&[]);
                    let skip = pending.written.saturating_sub(FRAME_HEAD_LEN);
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
            .map(|p| FRAME_HEAD_LEN + p.payload.len() - p.written)
            .sum();
        queued + self.batch_bytes
    }

    /// Drops from the queue the `n` bytes a direct write took.
    fn advance(&mut self, mut n: usize) {
        while let Some(pending) = self.queue.front_mut() {
            let left = FRAME_HEAD_LEN + pending.payload.len() - pending.written;
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
    pub fn new(
        writer: FrameWriter<WriteHalf>,
        stop: Arc<Notify>,
        peer: String,
    ) -> (Outbox, impl Future<Output = ()> + Send + 'static) {
        let shared = Arc::new(Shared {
            lane: Mutex::new(Lane {
                writer: Some(writer),
                queue: VecDeque::new(),
                closed: false,
                dead: false,
                failure: None,
                batch_bytes: 0,
                #[cfg(test)]
                stats: Stats::default(),
            }),
            wake: Notify::new(),
            ended: Condvar::new(),
        });
        let task = write_loop(shared.clone(), stop, peer);
        (Outbox { shared }, task)
    }

    /// Writes the frame now if the link is idle and the socket takes it,
    /// else queues (the rest of) it for the writer task. Never blocks on the
    /// peer. Fails only once the link has ended.
    pub fn send(&self, kind: Kind, id: u64, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.shared.send(kind, id, payload.into())
    }

    /// Queues the frame for the writer task even when the link is idle: for
    /// a peer with work in hand already, so that a burst of frames goes out
    /// in few writes, made by the writer task rather than by the sender.
    pub fn send_later(&self, kind: Kind, id: u64, payload: impl Into<Bytes>) -> Result<(), Error> {
        let shared = &self.shared;
        let mut lane = shared.lock();
        let first = lane.queue.is_empty();
        shared.push(&mut lane, kind, id, payload.into())?;
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
    pub fn stage(&self, kind: Kind, id: u64, payload: impl Into<Bytes>) -> Result<(), Error> {
        let mut lane = self.shared.lock();
        self.shared.push(&mut lane, kind, id, payload.into())
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
    pub fn send(&self, kind: Kind, id: u64, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.shared.send(kind, id, payload.into())
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

async fn write_loop(shared: Arc<Shared>, stop: Arc<Notify>, peer: String) {
    let ended = drain(&shared).await;
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

async fn drain(shared: &Shared) -> io::Result<()> {
    loop {
        let next = {
            let mut lane = shared.lock();
            if let Some(e) = lane.failure.take() {
                Next::Fail(e)
            } else if !lane.queue.is_empty() {
                match lane.writer.take() {
                    Some(writer) => {
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
                shared.wake.notified().await;
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
mod tests {
    use std::ops::Range;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use tokio::net::UnixStream;

    use super::*;
    use crate::frame::FrameReader;
    use crate::message::Message;

    static PIPE_WATCHED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
    static PIPE_ON_WATCHED: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    extern "C" fn note_sigpipe(_: libc::c_int) {
        // SAFETY: gettid has no preconditions.
        if unsafe { libc::gettid() } == PIPE_WATCHED.load(Ordering::SeqCst) {
            PIPE_ON_WATCHED.store(true, Ordering::SeqCst);
        }
    }

    const THREADS: u64 = 4;
    const BIG: usize = 8 << 20;

    impl Outbox {
        /// Writer parked and nothing queued: the next send may go direct.
        fn is_idle(&self) -> bool {
            let lane = self.shared.lock();
            lane.writer.is_some() && lane.queue.is_empty()
        }
    }

    fn wait_idle(outbox: &Outbox) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !outbox.is_idle() {
            assert!(Instant::now() < deadline, "writer stuck");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn id_of(thread: u64, seq: u64) -> u64 {
        (thread << 32) | seq
    }

    /// Message 0 of thread 0 and every 25th of each thread are 8 MB, far
    /// more than a socket buffer holds; the others up to 200 bytes, some
    /// empty.
    fn payload(id: u64) -> Vec<u8> {
        let seq = id & 0xffff_ffff;
        let len = if id == 0 || seq % 25 == 13 {
            BIG
        } else {
            (id % 200) as usize
        };
        let block: Vec<u8> = (0..251u64).map(|i| (i ^ id ^ (id >> 32)) as u8).collect();
        let mut payload = Vec::with_capacity(len);
        while payload.len() < len {
            let more = (len - payload.len()).min(block.len());
            payload.extend_from_slice(&block[..more]);
        }
        payload
    }

    fn outbox_over(rt: &tokio::runtime::Runtime, write: WriteHalf) -> (Outbox, Arc<Notify>) {
        let stop = Arc::new(Notify::new());
        let (outbox, writing) = Outbox::new(FrameWriter::new(write), stop.clone(), "test".into());
        rt.spawn(writing);
        (outbox, stop)
    }

    /// An outbox writing to one end of a Unix socket pair, with the other
    /// end (and the read half of its own end, kept open) for the test.
    fn unix_outbox(
        rt: &tokio::runtime::Runtime,
    ) -> (
        Outbox,
        Arc<Notify>,
        UnixStream,
        tokio::net::unix::OwnedReadHalf,
    ) {
        let (ours, theirs) = {
            let _context = rt.enter();
            UnixStream::pair().unwrap()
        };
        let (read, write) = ours.into_split();
        // Until the I/O driver has seen the socket writable, a direct write
        // finds it not ready (on a link, the greeting has seen to that).
        rt.block_on(write.writable()).unwrap();
        let (outbox, stop) = outbox_over(rt, Box::new(write));
        (outbox, stop, theirs, read)
    }

    /// Reads frames until EOF, checking that each thread's messages arrive
    /// complete and in the order it sent them; returns how many arrived.
    async fn check_stream<R: tokio::io::AsyncRead + Unpin>(
        read: R,
        arrived: Arc<AtomicU64>,
    ) -> u64 {
        let mut reader = FrameReader::new(read);
        let mut next = [0u64; THREADS as usize];
        let mut count = 0;
        while let Some(Message { kind, id, payload }) = reader.read_message(0).await.unwrap() {
            assert_eq!(kind, Kind::Task);
            let (thread, seq) = ((id >> 32) as usize, id & 0xffff_ffff);
            assert_eq!(seq, next[thread], "thread {thread} out of order");
            next[thread] += 1;
            assert!(payload == self::payload(id), "message {id:#x} corrupted");
            count += 1;
            arrived.store(count, Ordering::Relaxed);
        }
        count
    }

    /// Each of `THREADS` threads sends its messages `seqs` (thread 0 skips
    /// its message 0), all at once.
    fn send_from_threads(outbox: &Outbox, seqs: Range<u64>) {
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let sender = outbox.sender();
                let seqs = seqs.clone();
                scope.spawn(move || {
                    for seq in seqs.filter(|&seq| thread > 0 || seq > 0) {
                        let id = id_of(thread, seq);
                        sender.send(Kind::Task, id, payload(id)).unwrap();
                    }
                });
            }
        });
    }

    fn finish(
        rt: &tokio::runtime::Runtime,
        reading: tokio::task::JoinHandle<u64>,
        stop: &Notify,
    ) -> u64 {
        rt.block_on(async {
            let count = tokio::time::timeout(Duration::from_secs(120), reading)
                .await
                .unwrap()
                .unwrap();
            tokio::time::timeout(Duration::from_secs(10), stop.notified())
                .await
                .unwrap();
            count
        })
    }

    #[test]
    fn concurrent_direct_and_partial_writes_arrive_intact_and_in_order() {
        let rt = runtime();
        let (outbox, stop, theirs, _read) = unix_outbox(&rt);
        // Nobody reads yet: the socket takes only part of this frame, and the
        // writer task gets the rest.
        outbox.send(Kind::Task, 0, payload(0)).unwrap();
        assert_eq!(outbox.stats().partial, 1, "{:?}", outbox.stats());
        let arrived = Arc::new(AtomicU64::new(0));
        let reading = rt.spawn(check_stream(theirs, arrived.clone()));
        // Direct writes, partial ones and queued frames, from four threads.
        send_from_threads(&outbox, 0..100);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !outbox.is_idle() || arrived.load(Ordering::Relaxed) < THREADS * 100 {
            assert!(Instant::now() < deadline, "writer or reader stuck");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Small frames into an empty socket: the first at least go direct.
        send_from_threads(&outbox, 100..400);
        wait_idle(&outbox);
        let stats = outbox.stats();
        let sent = THREADS * 400;
        assert_eq!(stats.direct + stats.queued, sent);
        assert!(stats.direct > 0 && stats.partial > 1, "{stats:?}");
        drop(outbox);
        // Everything sent is written before the stream is shut down.
        assert_eq!(finish(&rt, reading, &stop), sent);
    }

    #[test]
    fn a_stream_without_the_direct_path_goes_through_the_writer_task() {
        let rt = runtime();
        let (ours, theirs) = tokio::io::duplex(4096);
        let (outbox, stop) = outbox_over(&rt, Box::new(ours));
        let reading = rt.spawn(check_stream(theirs, Arc::default()));
        outbox.send(Kind::Task, 0, payload(0)).unwrap();
        send_from_threads(&outbox, 0..60);
        wait_idle(&outbox);
        let stats = outbox.stats();
        let sent = THREADS * 60;
        assert_eq!((stats.direct, stats.partial, stats.queued), (0, 0, sent));
        drop(outbox);
        assert_eq!(finish(&rt, reading, &stop), sent);
    }

    #[test]
    fn frames_sent_later_go_through_the_writer_task_even_on_an_idle_link() {
        let rt = runtime();
        let (outbox, stop, theirs, _read) = unix_outbox(&rt);
        let reading = rt.spawn(check_stream(theirs, Arc::default()));
        // The first frame is written at once (in part, if the socket is
        // full); every frame sent later is queued, even once the link idles.
        outbox
            .send(Kind::Task, id_of(0, 0), payload(id_of(0, 0)))
            .unwrap();
        for seq in 1..200 {
            let id = id_of(0, seq);
            outbox.send_later(Kind::Task, id, payload(id)).unwrap();
            if seq == 100 {
                while !outbox.is_idle() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        wait_idle(&outbox);
        let stats = outbox.stats();
        assert_eq!(stats.direct + stats.queued, 200);
        assert!(stats.queued >= 199, "{stats:?}");
        drop(outbox);
        assert_eq!(finish(&rt, reading, &stop), 200);
    }

    #[test]
    fn staged_frames_wait_for_a_flush_or_the_next_send_and_keep_their_order() {
        let rt = runtime();
        let (outbox, stop, theirs, _read) = unix_outbox(&rt);
        let reading = rt.spawn(check_stream(theirs, Arc::default()));
        let sender = outbox.sender();
        let send = |seq: u64, how: &str| {
            let id = id_of(1, seq);
            let payload = payload(id);
            match how {
                "stage" => outbox.stage(Kind::Task, id, payload),
                "later" => outbox.send_later(Kind::Task, id, payload),
                _ => sender.send(Kind::Task, id, payload),
            }
            .unwrap()
        };
        // The writer task writes one frame, then parks the writer.
        send(0, "later");
        wait_idle(&outbox);
        std::thread::sleep(Duration::from_millis(20));
        send(1, "stage");
        send(2, "stage");
        // Nothing more is written, and the writer task was not woken.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!outbox.is_idle());
        assert_eq!((outbox.stats().direct, outbox.stats().queued), (0, 1));
        sender.flush();
        assert!(outbox.is_idle());
        assert_eq!(outbox.stats().direct, 2);
        // A send writes what was staged before it, in the same write.
        send(3, "stage");
        send(4, "send");
        assert!(outbox.is_idle());
        assert_eq!(outbox.stats().direct, 4);
        drop(outbox);
        assert_eq!(finish(&rt, reading, &stop), 5);
    }

    #[test]
    fn close_and_wait_returns_once_everything_sent_is_written() {
        let rt = runtime();
        let (outbox, _stop, theirs, _read) = unix_outbox(&rt);
        // Nobody reads yet: most of these frames are still unwritten.
        for seq in 0..3 {
            let id = id_of(0, seq);
            outbox.send(Kind::Task, id, payload(id)).unwrap();
        }
        assert!(!outbox.is_idle());
        let arrived = Arc::new(AtomicU64::new(0));
        let seen = arrived.clone();
        let reading = rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            check_stream(theirs, seen).await
        });
        // Returns only once all three frames are written out (the reader
        // has them, or they sit in the socket's buffer), and the stream
        // was shut down after them.
        assert!(outbox.close_and_wait());
        let count = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), reading)
                .await
                .unwrap()
                .unwrap()
        });
        assert_eq!(count, 3);
        assert_eq!(arrived.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn sends_fail_once_the_peer_is_gone() {
        // SAFETY: the handler only compares and stores atomics (gettid is
        // async-signal-safe).
        unsafe {
            PIPE_WATCHED.store(libc::gettid(), Ordering::SeqCst);
            libc::signal(
                libc::SIGPIPE,
                note_sigpipe as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
        let rt = runtime();
        let (outbox, stop, theirs, _read) = unix_outbox(&rt);
        outbox.send(Kind::Task, 1, vec![1; 10]).unwrap();
        assert_eq!(outbox.stats().direct, 1);
        drop(theirs);
        // The first write to the closed peer fails (a direct write, from
        // this thread: without SIGPIPE, which in R's process would raise an
        // R error); the link then ends and later sends fail.
        outbox.send(Kind::Task, 2, vec![1; 10]).unwrap();
        assert!(!PIPE_ON_WATCHED.load(Ordering::SeqCst));
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), stop.notified())
                .await
                .unwrap()
        });
        assert!(matches!(
            outbox.sender().send(Kind::Task, 3, Vec::new()),
            Err(Error::Closed)
        ));
    }
}
