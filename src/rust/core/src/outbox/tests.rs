//! Outboxes over real socket pairs and in-memory pipes, written to from
//! several threads at once.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UnixStream;

use super::*;
use crate::frame::{FrameReader, Framing};
use crate::message::Message;

static PIPE_WATCHED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static PIPE_ON_WATCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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

fn outbox_over(
    rt: &tokio::runtime::Runtime,
    write: WriteHalf,
    framing: Framing,
) -> (Outbox, Arc<Notify>) {
    let stop = Arc::new(Notify::new());
    let (outbox, writing) = Outbox::new(
        FrameWriter::new(write, framing),
        stop.clone(),
        "test".into(),
        None,
    );
    rt.spawn(writing);
    (outbox, stop)
}

/// An outbox writing to one end of a Unix socket pair (framed as ipc links
/// are), with the other end (and the read half of its own end, kept open)
/// for the test.
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
    let (outbox, stop) = outbox_over(rt, Box::new(write), Framing::Ipc);
    (outbox, stop, theirs, read)
}

/// Reads frames until EOF, checking that each thread's messages arrive
/// complete and in the order it sent them; returns how many arrived.
async fn check_stream<R: tokio::io::AsyncRead + Unpin>(read: R, arrived: Arc<AtomicU64>) -> u64 {
    check_stream_as(read, Framing::Ipc, arrived).await
}

async fn check_stream_as<R: tokio::io::AsyncRead + Unpin>(
    read: R,
    framing: Framing,
    arrived: Arc<AtomicU64>,
) -> u64 {
    let mut reader = FrameReader::new(read, framing);
    let mut next = [0u64; THREADS as usize];
    let mut count = 0;
    while let Some(Message {
        kind, id, payload, ..
    }) = reader.read_message(0).await.unwrap()
    {
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
                    sender.send(Kind::Task.into(), id, payload(id)).unwrap();
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
    outbox.send(Kind::Task.into(), 0, payload(0)).unwrap();
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
    let (outbox, stop) = outbox_over(&rt, Box::new(ours), Framing::Stream);
    let reading = rt.spawn(check_stream_as(theirs, Framing::Stream, Arc::default()));
    outbox.send(Kind::Task.into(), 0, payload(0)).unwrap();
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
        .send(Kind::Task.into(), id_of(0, 0), payload(id_of(0, 0)))
        .unwrap();
    for seq in 1..200 {
        let id = id_of(0, seq);
        outbox
            .send_later(Kind::Task.into(), id, payload(id))
            .unwrap();
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
            "stage" => outbox.stage(Kind::Task.into(), id, payload),
            "later" => outbox.send_later(Kind::Task.into(), id, payload),
            _ => sender.send(Kind::Task.into(), id, payload),
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
        outbox.send(Kind::Task.into(), id, payload(id)).unwrap();
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
    outbox.send(Kind::Task.into(), 1, vec![1; 10]).unwrap();
    assert_eq!(outbox.stats().direct, 1);
    drop(theirs);
    // The first write to the closed peer fails (a direct write, from
    // this thread: without SIGPIPE, which in R's process would raise an
    // R error); the link then ends and later sends fail.
    outbox.send(Kind::Task.into(), 2, vec![1; 10]).unwrap();
    assert!(!PIPE_ON_WATCHED.load(Ordering::SeqCst));
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), stop.notified())
            .await
            .unwrap()
    });
    assert!(matches!(
        outbox.sender().send(Kind::Task.into(), 3, Vec::new()),
        Err(Error::Closed)
    ));
}

#[test]
fn a_quiet_link_carries_heartbeats_and_frames_sent_go_out_among_them() {
    let rt = runtime();
    let (ours, theirs) = tokio::io::duplex(4096);
    let stop = Arc::new(Notify::new());
    let (outbox, writing) = Outbox::new(
        FrameWriter::new(Box::new(ours), Framing::Stream),
        stop,
        "test".into(),
        Some(Duration::from_millis(20)),
    );
    rt.spawn(writing);
    let mut reader = FrameReader::new(theirs, Framing::Stream);
    rt.block_on(async {
        for _ in 0..3 {
            let message = tokio::time::timeout(Duration::from_secs(60), reader.read_message(0))
                .await
                .expect("a heartbeat")
                .unwrap()
                .unwrap();
            assert_eq!(message.kind, Kind::Heartbeat);
        }
    });
    // What is sent goes out as it is, heartbeats or not around it.
    outbox.send(Kind::Task.into(), 7, payload(7)).unwrap();
    rt.block_on(async {
        loop {
            let message = reader.read_message(0).await.unwrap().unwrap();
            if message.kind == Kind::Task {
                assert_eq!((message.id, message.payload), (7, payload(7)));
                break;
            }
            assert_eq!(message.kind, Kind::Heartbeat);
        }
    });
}
