//! Load generator for the dispatcher alone (no R): a `Host` with the
//! dispatcher on listens at `tcp://127.0.0.1:0`; a child process (this binary
//! again, run with `--simulate-daemons URL N`) connects N simulated daemons
//! over loopback TCP, each answering every task at once with its payload.
//! The daemons live in their own process so that each process needs one
//! descriptor per daemon, not two, and the parent's memory is the host's.
//!
//!     cargo bench -p mirai-core --bench loadgen -- [--daemons N] [--tasks N]
//!         [--window N] [--window-tasks N] [--floor] [--ipc] [--out FILE]
//!
//! Phase "burst": all tasks are submitted at once from one thread, then every
//! result is collected (`wait` + `take`) and checked. Phase "window" (skipped
//! with `--window 0` or `--window-tasks 0`): `--window-tasks` more tasks, with at most `--window`
//! submitted but not yet collected at any time. Phase "floor"
//! (only with `--floor`): the same tasks through a fresh set of simulated
//! daemons driven by a bare relay instead of the dispatcher (each connection
//! sends its next task as soon as the last result came back): what the
//! transport and the simulated daemons allow on this machine, with no
//! dispatcher. With `--ipc`, every phase uses abstract Unix sockets.
//!
//! With `--out FILE`, a TSV file with the header `metric\tvalue\tunit` and
//! these rows; names are stable (other tools read them), values are numbers
//! (`s` and `us` with three decimals, the others whole):
//!
//! | metric                  | unit    | meaning                                      |
//! |-------------------------|---------|----------------------------------------------|
//! | daemons                 | count   | simulated daemons connected at once          |
//! | tasks                   | count   | tasks of the burst and floor phases          |
//! | payload_bytes           | bytes   | payload of every task (and of its result)    |
//! | ipc                     | flag    | 1: abstract Unix sockets, 0: loopback TCP    |
//! | connect_seconds         | s       | from starting the daemons to all connected   |
//! | rss_idle                | bytes   | host process VmRSS, listening, no daemon     |
//! | rss_connected           | bytes   | VmRSS once every daemon is connected         |
//! | bytes_per_daemon        | bytes   | (rss_connected - rss_idle) / daemons         |
//! | rss_peak                | bytes   | VmHWM after the burst phase                  |
//! | bytes_per_task          | bytes   | (rss_peak - rss_connected) / tasks: once all |
//! |                         |         | are submitted, every task is held (queued,   |
//! |                         |         | sent, or as a result); includes the 8-byte   |
//! |                         |         | id the caller keeps                          |
//! | rss_after_burst         | bytes   | VmRSS once every result of the burst is      |
//! |                         |         | taken (what the host keeps after a burst)    |
//! | seconds                 | s       | burst: first submit to last result taken     |
//! | throughput              | tasks/s | burst: tasks / seconds                       |
//! | cpu_us_per_task         | us      | burst: CPU time (user + system) of the host  |
//! |                         |         | process per task; unlike throughput, little  |
//! |                         |         | affected by other load on the machine        |
//! | caller_cpu_us_per_task  | us      | the part of it spent by the thread that      |
//! |                         |         | submits and collects; the rest is the host's |
//! |                         |         | I/O threads                                  |
//! | window                  | count   | window: most tasks submitted, not collected  |
//! | window_tasks            | count   | tasks of the window phase                    |
//! | window_seconds          | s       | window phase duration                        |
//! | window_throughput       | tasks/s | window: window_tasks / window_seconds        |
//! | floor_seconds           | s       | floor phase duration                         |
//! | floor_throughput        | tasks/s | floor: tasks / floor_seconds                 |
//! | floor_cpu_us_per_task   | us      | floor: CPU time of the relay per task        |
//! | daemons_rss_peak        | bytes   | VmHWM of the simulated daemons' process      |
//! | daemons_cpu_us_per_task | us      | its CPU time (connecting included) per task  |
//! |                         |         | it answered                                  |
//!
//! The window rows are absent when that phase is skipped, the floor rows without
//! `--floor`.

use std::collections::VecDeque;
use std::fmt::Display;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirai_core::{Host, HostOptions, Outcome};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;

const DEFAULT_DAEMONS: usize = 10_000;
const DEFAULT_TASKS: usize = 1_000_000;
const VERSION: &str = "loadgen";
const PAYLOAD_BYTES: usize = 16;
/// Mixed into the second half of every payload, so that a payload cannot be
/// mistaken for a bare index.
const CHECK_WORD: u64 = 0x6d69_7261_695f_6c67;
/// Descriptors beyond one per daemon: runtime, pipes, listener, std streams.
const SPARE_DESCRIPTORS: u64 = 64;
const CONNECT_PATIENCE: Duration = Duration::from_secs(120);
const RESULT_PATIENCE: Duration = Duration::from_secs(60);
/// Daemons connecting at once in the child: keeps the listener's accept
/// backlog (4096) from overflowing, which would cost SYN retries of 1 s.
/// The host admits as many to their greeting at once.
const CONNECTING_AT_ONCE: usize = 512;
const DAEMON_BUFFER_BYTES: usize = 4096;

const SP_HEADER: [u8; 8] = [0x00, b'S', b'P', 0x00, 0x00, 0x10, 0x00, 0x00];
const HEADER_LEN: usize = 16;
const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const REFUSE: u8 = 3;
const TASK: u8 = 4;
const RESULT: u8 = 5;
const CANCEL: u8 = 6;
const EXIT: u8 = 7;
const CHALLENGE: u8 = 10;
/// NNG's IPC message type byte, before each length on abstract sockets.
const IPC_MESSAGE: u8 = 1;

/// Set once at start-up: every link of this process is an abstract socket,
/// framed as NNG's IPC transport (a type byte before each length).
static IPC_FRAMING: AtomicBool = AtomicBool::new(false);

const USAGE: &str = "usage: loadgen [--daemons N] [--tasks N] [--window N] [--window-tasks N]
               [--floor] [--ipc] [--out FILE]
  --daemons N       simulated daemons connected at once (default 10000)
  --tasks N         tasks submitted at once (default 1000000)
  --window N        window phase: most tasks in flight (default 2 x daemons; 0 skips it)
  --window-tasks N  tasks of the window phase (default tasks / 4)
  --floor           also relay the tasks without the dispatcher, for comparison
  --ipc             abstract Unix sockets instead of loopback TCP, for comparison
  --out FILE        also write the figures as TSV (metric, value, unit)";

struct Config {
    daemons: usize,
    tasks: usize,
    window: usize,
    window_tasks: usize,
    floor: bool,
    ipc: bool,
    out: Option<String>,
}

enum Mode {
    Measure(Config),
    SimulateDaemons { url: String, count: usize },
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok(Mode::Measure(config)) => measure(&config),
        Ok(Mode::SimulateDaemons { url, count }) => simulate_daemons(&url, count),
        Err(message) => fail(format_args!("{message}\n{USAGE}")),
    }
}

fn fail(message: impl Display) -> ! {
    eprintln!("loadgen: {message}");
    std::process::exit(2);
}

fn parse_count(flag: &str, value: Option<&String>) -> Result<usize, String> {
    value
        .and_then(|v| v.replace('_', "").parse().ok())
        .ok_or_else(|| format!("{flag} needs a whole number"))
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    let mut config = Config {
        daemons: DEFAULT_DAEMONS,
        tasks: DEFAULT_TASKS,
        window: usize::MAX,
        window_tasks: usize::MAX,
        floor: false,
        ipc: false,
        out: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // Appended by `cargo bench`.
            "--bench" => {}
            "--daemons" => config.daemons = parse_count(arg, args.next())?,
            "--tasks" => config.tasks = parse_count(arg, args.next())?,
            "--window" => config.window = parse_count(arg, args.next())?,
            "--window-tasks" => config.window_tasks = parse_count(arg, args.next())?,
            "--floor" => config.floor = true,
            "--ipc" => {
                config.ipc = true;
                IPC_FRAMING.store(true, Ordering::Relaxed);
            }
            "--out" => config.out = Some(args.next().ok_or("--out needs a file")?.clone()),
            "--simulate-daemons" => {
                let url = args.next().ok_or("--simulate-daemons needs a URL")?.clone();
                let count = parse_count(arg, args.next())?;
                IPC_FRAMING.store(url.starts_with("abstract://"), Ordering::Relaxed);
                return Ok(Mode::SimulateDaemons { url, count });
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if config.daemons == 0 || config.tasks == 0 {
        return Err("--daemons and --tasks must be positive".to_string());
    }
    if config.window == usize::MAX {
        config.window = 2 * config.daemons;
    }
    if config.window_tasks == usize::MAX {
        config.window_tasks = (config.tasks / 4).max(1);
    }
    if config.window_tasks == 0 {
        config.window = 0;
    }
    Ok(Mode::Measure(config))
}

// ---- process resources ------------------------------------------------

/// Raises the soft limit on open files to the hard limit; exits when that
/// still leaves fewer than `needed`.
fn raise_open_file_limit(needed: u64, who: &str) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            fail("cannot read RLIMIT_NOFILE");
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        limit.rlim_cur
    };
    if soft < needed {
        fail(format_args!(
            "{who} needs {needed} open files (RLIMIT_NOFILE, `ulimit -n`), but the hard \
             limit (`ulimit -Hn`) allows only {soft}: raise it or pass fewer --daemons"
        ));
    }
}

/// This process's resident memory, from /proc/self/status.
#[derive(Clone, Copy)]
struct Memory {
    /// VmRSS: resident now.
    rss: u64,
    /// VmHWM: the most ever resident.
    hwm: u64,
}

fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| fail(format_args!("no {key} in /proc/self/status")))
    };
    Memory {
        rss: kib("VmRSS:") * 1024,
        hwm: kib("VmHWM:") * 1024,
    }
}

/// CPU time (user + system) used so far by this process (`RUSAGE_SELF`) or
/// by the calling thread (`RUSAGE_THREAD`).
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct passed; all-zero is a valid
    // `rusage`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut usage) != 0 {
            fail("getrusage failed");
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Wall and CPU time of one phase.
struct Timing {
    seconds: f64,
    /// The whole process.
    cpu_seconds: f64,
    /// The thread that ran the phase.
    caller_cpu_seconds: f64,
}

fn timed(run: impl FnOnce()) -> Timing {
    let cpu = cpu_seconds(libc::RUSAGE_SELF);
    let caller_cpu = cpu_seconds(libc::RUSAGE_THREAD);
    let started = Instant::now();
    run();
    Timing {
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds(libc::RUSAGE_SELF) - cpu,
        caller_cpu_seconds: cpu_seconds(libc::RUSAGE_THREAD) - caller_cpu,
    }
}

// ---- the simulated daemons' process, seen from the parent --------------

/// The child process running the simulated daemons; killed if dropped
/// before `finish`.
struct DaemonProcess {
    child: Child,
    stdout: io::BufReader<ChildStdout>,
}

/// What the child reports when its daemons have all ended.
struct DaemonReport {
    answered: u64,
    rss_peak: u64,
    /// All of the child's CPU time, connecting included.
    cpu_us: u64,
}

impl DaemonProcess {
    fn start(url: &str, count: usize) -> DaemonProcess {
        let exe = std::env::current_exe().expect("path of this executable");
        let mut child = Command::new(exe)
            .args(["--simulate-daemons", url, &count.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the simulated daemons' process");
        let stdout = child.stdout.take().expect("piped stdout of the child");
        DaemonProcess {
            child,
            stdout: io::BufReader::new(stdout),
        }
    }

    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the child to end (once every link to it was closed) and
    /// checks that its daemons answered `expected` tasks in all.
    fn finish(mut self, expected: u64) -> DaemonReport {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read the simulated daemons' report");
        let status = self.child.wait().expect("wait for the simulated daemons");
        if !status.success() {
            fail(format_args!(
                "the simulated daemons' process failed: {status}"
            ));
        }
        let field = |key: &str| -> u64 {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| fail(format_args!("no {key} in the daemons' report {line:?}")))
        };
        let report = DaemonReport {
            answered: field("answered"),
            rss_peak: field("rss_peak"),
            cpu_us: field("cpu_us"),
        };
        if report.answered != expected {
            fail(format_args!(
                "the daemons answered {} tasks, not {expected}: some task was sent twice or never",
                report.answered
            ));
        }
        report
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if !self.has_exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- the dispatcher ---------------------------------------------------

fn payload(index: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PAYLOAD_BYTES);
    bytes.extend_from_slice(&index.to_le_bytes());
    bytes.extend_from_slice(&(index ^ CHECK_WORD).to_le_bytes());
    bytes
}

/// Waits for the task submitted as number `index`, takes its result and
/// checks that it is that task's payload.
fn collect(host: &Host, index: u64, id: u64) {
    if !host.wait(id, RESULT_PATIENCE) {
        fail(format_args!(
            "task {index} (id {id}) not resolved within {RESULT_PATIENCE:?}"
        ));
    }
    match host.take(id) {
        Some(Outcome::Value(value)) if value == payload(index) => {}
        other => fail(format_args!(
            "task {index} (id {id}) came back as {other:?}"
        )),
    }
}

/// Submits every task, then collects every result, in submission order.
fn run_burst(host: &Host, tasks: usize) {
    let mut ids = Vec::with_capacity(tasks);
    for index in 0..tasks as u64 {
        ids.push(host.submit(payload(index), None));
    }
    for (index, &id) in ids.iter().enumerate() {
        collect(host, index as u64, id);
    }
}

/// Keeps `window` tasks submitted but not collected, collecting the oldest
/// before submitting the next.
fn run_window(host: &Host, tasks: usize, window: usize) {
    let mut in_flight = VecDeque::with_capacity(window);
    let mut next = 0u64;
    while (next as usize) < tasks || !in_flight.is_empty() {
        while (next as usize) < tasks && in_flight.len() < window {
            in_flight.push_back((next, host.submit(payload(next), None)));
            next += 1;
        }
        if let Some((index, id)) = in_flight.pop_front() {
            collect(host, index, id);
        }
    }
}

/// Waits until `count` daemons are connected; exits if the child dies or
/// they take too long.
fn wait_for_daemons(host: &Host, daemons: &mut DaemonProcess, count: usize) {
    let deadline = Instant::now() + CONNECT_PATIENCE;
    while host.wait_connections(count, Duration::from_millis(200)) < count {
        if daemons.has_exited() {
            fail("the simulated daemons' process ended before all daemons connected");
        }
        if Instant::now() > deadline {
            fail(format_args!(
                "only {} of {count} daemons connected within {CONNECT_PATIENCE:?}",
                host.connections()
            ));
        }
    }
}

/// Figures of the dispatcher's phases.
struct DispatcherRun {
    connect_seconds: f64,
    idle: Memory,
    connected: Memory,
    /// Every result of the burst taken.
    after_burst: Memory,
    burst: Timing,
    window: Option<Timing>,
    daemons: DaemonReport,
}

fn run_dispatcher(config: &Config) -> DispatcherRun {
    let host = Host::listen(HostOptions {
        urls: vec![listen_url(config.ipc, "dispatcher")],
        dispatcher: true,
        version: VERSION.to_string(),
        max_greeting: Some(CONNECTING_AT_ONCE),
        ..HostOptions::default()
    })
    .expect("listen for the simulated daemons");
    let url = host.urls().pop().expect("the host's listening URL");
    let idle = memory();

    let connecting = Instant::now();
    let mut daemons = DaemonProcess::start(&url, config.daemons);
    wait_for_daemons(&host, &mut daemons, config.daemons);
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let connected = memory();
    eprintln!(
        "{} daemons connected to {url} in {connect_seconds:.2} s",
        config.daemons
    );

    let burst = timed(|| run_burst(&host, config.tasks));
    let after_burst = memory();
    eprintln!("burst phase done in {:.2} s", burst.seconds);
    let window = (config.window > 0)
        .then(|| timed(|| run_window(&host, config.window_tasks, config.window)));
    if let Some(window) = &window {
        eprintln!("window phase done in {:.2} s", window.seconds);
    }
    host.close(true);
    let window_tasks = if window.is_some() {
        config.window_tasks
    } else {
        0
    };
    let daemons = daemons.finish((config.tasks + window_tasks) as u64);
    DispatcherRun {
        connect_seconds,
        idle,
        connected,
        after_burst,
        burst,
        window,
        daemons,
    }
}

// ---- the floor: the same traffic without the dispatcher ----------------

/// Relays `tasks` tasks through `daemons` fresh simulated daemons on a
/// runtime like the host's (two worker threads), one task in flight per
/// connection.
fn run_floor(daemons: usize, tasks: usize, ipc: bool) -> Timing {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the relay's runtime");
    let (listener, url) = {
        let _context = runtime.enter();
        RelayListener::bind(&listen_url(ipc, "floor")).expect("listen for the floor's daemons")
    };
    let process = DaemonProcess::start(&url, daemons);
    let links = runtime.block_on(async {
        tokio::time::timeout(CONNECT_PATIENCE, accept_links(listener, daemons))
            .await
            .unwrap_or_else(|_| fail("the floor's daemons did not all connect in time"))
    });
    let next_task = Arc::new(AtomicU64::new(0));
    let timing = timed(|| {
        runtime.block_on(async {
            let relays: Vec<_> = links
                .into_iter()
                .map(|link| tokio::spawn(relay(link, next_task.clone(), tasks as u64)))
                .collect();
            for relay in relays {
                relay.await.expect("a relay task panicked");
            }
        })
    });
    process.finish(tasks as u64);
    timing
}

type Link = (BufReader<ReadHalf>, BufWriter<WriteHalf>);

/// Accepts `count` connections and greets each as the host would.
async fn accept_links(listener: RelayListener, count: usize) -> Vec<Link> {
    let mut greetings = Vec::with_capacity(count);
    for _ in 0..count {
        let (read, write) = listener.accept().await.expect("accept a daemon");
        greetings.push(tokio::spawn(welcome(read, write)));
    }
    let mut links = Vec::with_capacity(count);
    for greeting in greetings {
        links.push(greeting.await.expect("a greeting task panicked"));
    }
    links
}

async fn welcome(read: ReadHalf, write: WriteHalf) -> Link {
    let mut reader = BufReader::with_capacity(DAEMON_BUFFER_BYTES, read);
    let mut writer = BufWriter::with_capacity(DAEMON_BUFFER_BYTES, write);
    let greeted: io::Result<()> = async {
        writer.write_all(&SP_HEADER).await?;
        write_frame(
            &mut writer,
            CHALLENGE,
            0,
            format!("nonce={}\n", "00".repeat(16)).as_bytes(),
        )
        .await?;
        writer.flush().await?;
        read_handshake(&mut reader).await?;
        let mut hello = Vec::new();
        match read_frame(&mut reader, &mut hello).await? {
            Some((HELLO, _)) => {}
            other => return Err(invalid(format!("expected HELLO, got {other:?}"))),
        }
        write_frame(&mut writer, WELCOME, 0, VERSION.as_bytes()).await?;
        writer.flush().await
    }
    .await;
    greeted.unwrap_or_else(|e| fail(format_args!("greeting a floor daemon failed: {e}")));
    (reader, writer)
}

/// Sends tasks numbered from the shared `next_task` until `tasks` were
/// taken, each once its previous one came back, then EXIT.
async fn relay((mut reader, mut writer): Link, next_task: Arc<AtomicU64>, tasks: u64) {
    let mut result = Vec::with_capacity(PAYLOAD_BYTES);
    let relayed: io::Result<()> = async {
        loop {
            let index = next_task.fetch_add(1, Ordering::Relaxed);
            if index >= tasks {
                break;
            }
            write_frame(&mut writer, TASK, index + 1, &payload(index)).await?;
            writer.flush().await?;
            match read_frame(&mut reader, &mut result).await? {
                Some((RESULT, id)) if id == index + 1 && result == payload(index) => {}
                other => return Err(invalid(format!("bad answer to task {index}: {other:?}"))),
            }
        }
        write_frame(&mut writer, EXIT, 0, &[]).await?;
        writer.flush().await
    }
    .await;
    relayed.unwrap_or_else(|e| fail(format_args!("floor relay failed: {e}")));
}

// ---- transports ---------------------------------------------------------

type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// A URL to listen at: loopback TCP on a free port, or an abstract Unix
/// socket named after this process and `role`.
fn listen_url(ipc: bool, role: &str) -> String {
    if ipc {
        format!("abstract://mirai-loadgen-{}-{role}", std::process::id())
    } else {
        "tcp://127.0.0.1:0".to_string()
    }
}

fn tcp_halves(stream: TcpStream) -> io::Result<(ReadHalf, WriteHalf)> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    Ok((Box::new(read), Box::new(write)))
}

fn unix_halves(stream: UnixStream) -> (ReadHalf, WriteHalf) {
    let (read, write) = stream.into_split();
    (Box::new(read), Box::new(write))
}

/// Where the simulated daemons connect.
#[derive(Clone, Debug)]
enum Address {
    Tcp(SocketAddr),
    Abstract(String),
}

impl Address {
    fn parse(url: &str) -> Option<Address> {
        if let Some(addr) = url.strip_prefix("tcp://") {
            return addr.parse().ok().map(Address::Tcp);
        }
        let name = url.strip_prefix("abstract://")?;
        Some(Address::Abstract(name.to_string()))
    }

    async fn connect(&self) -> io::Result<(ReadHalf, WriteHalf)> {
        match self {
            Address::Tcp(addr) => tcp_halves(TcpStream::connect(addr).await?),
            Address::Abstract(name) => {
                Ok(unix_halves(UnixStream::connect(format!("\0{name}")).await?))
            }
        }
    }
}

/// The floor relay's listener.
enum RelayListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl RelayListener {
    /// Binds `url` (from `listen_url`); returns the listener and the URL
    /// that reaches it. Must run inside a runtime context.
    fn bind(url: &str) -> io::Result<(RelayListener, String)> {
        if let Some(name) = url.strip_prefix("abstract://") {
            let listener = UnixListener::bind(format!("\0{name}"))?;
            return Ok((RelayListener::Unix(listener), url.to_string()));
        }
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let url = format!("tcp://{}", std_listener.local_addr()?);
        Ok((
            RelayListener::Tcp(TcpListener::from_std(std_listener)?),
            url,
        ))
    }

    async fn accept(&self) -> io::Result<(ReadHalf, WriteHalf)> {
        match self {
            RelayListener::Tcp(listener) => tcp_halves(listener.accept().await?.0),
            RelayListener::Unix(listener) => Ok(unix_halves(listener.accept().await?.0)),
        }
    }
}

// ---- report -------------------------------------------------------------

struct Metric {
    name: &'static str,
    value: f64,
    unit: &'static str,
}

fn metric(name: &'static str, value: impl Into<f64>, unit: &'static str) -> Metric {
    Metric {
        name,
        value: value.into(),
        unit,
    }
}

fn measure(config: &Config) {
    raise_open_file_limit(config.daemons as u64 + SPARE_DESCRIPTORS, "the dispatcher");
    let run = run_dispatcher(config);
    let floor = config.floor.then(|| {
        let floor = run_floor(config.daemons, config.tasks, config.ipc);
        eprintln!("floor phase done in {:.2} s", floor.seconds);
        floor
    });

    let daemons = config.daemons as f64;
    let tasks = config.tasks as f64;
    let mut metrics = vec![
        metric("daemons", daemons, "count"),
        metric("tasks", tasks, "count"),
        metric("payload_bytes", PAYLOAD_BYTES as f64, "bytes"),
        metric("ipc", u8::from(config.ipc), "flag"),
        metric("connect_seconds", run.connect_seconds, "s"),
        metric("rss_idle", run.idle.rss as f64, "bytes"),
        metric("rss_connected", run.connected.rss as f64, "bytes"),
        metric(
            "bytes_per_daemon",
            run.connected.rss.saturating_sub(run.idle.rss) as f64 / daemons,
            "bytes",
        ),
        metric("rss_peak", run.after_burst.hwm as f64, "bytes"),
        metric(
            "bytes_per_task",
            run.after_burst.hwm.saturating_sub(run.connected.rss) as f64 / tasks,
            "bytes",
        ),
        metric("rss_after_burst", run.after_burst.rss as f64, "bytes"),
        metric("seconds", run.burst.seconds, "s"),
        metric("throughput", tasks / run.burst.seconds, "tasks/s"),
        metric("cpu_us_per_task", run.burst.cpu_seconds * 1e6 / tasks, "us"),
        metric(
            "caller_cpu_us_per_task",
            run.burst.caller_cpu_seconds * 1e6 / tasks,
            "us",
        ),
    ];
    if let Some(window) = &run.window {
        let window_tasks = config.window_tasks as f64;
        metrics.push(metric("window", config.window as f64, "count"));
        metrics.push(metric("window_tasks", window_tasks, "count"));
        metrics.push(metric("window_seconds", window.seconds, "s"));
        metrics.push(metric(
            "window_throughput",
            window_tasks / window.seconds,
            "tasks/s",
        ));
    }
    if let Some(floor) = &floor {
        metrics.push(metric("floor_seconds", floor.seconds, "s"));
        metrics.push(metric("floor_throughput", tasks / floor.seconds, "tasks/s"));
        metrics.push(metric(
            "floor_cpu_us_per_task",
            floor.cpu_seconds * 1e6 / tasks,
            "us",
        ));
    }
    metrics.push(metric(
        "daemons_rss_peak",
        run.daemons.rss_peak as f64,
        "bytes",
    ));
    metrics.push(metric(
        "daemons_cpu_us_per_task",
        run.daemons.cpu_us as f64 / run.daemons.answered as f64,
        "us",
    ));

    print_report(config, &metrics);
    if let Some(path) = &config.out {
        write_tsv(path, &metrics)
            .unwrap_or_else(|e| fail(format_args!("cannot write {path}: {e}")));
    }
}

/// Seconds and microseconds with three decimals, the rest as whole numbers.
fn format_value(metric: &Metric) -> String {
    if matches!(metric.unit, "s" | "us") {
        format!("{:.3}", metric.value)
    } else {
        format!("{:.0}", metric.value)
    }
}

fn print_report(config: &Config, metrics: &[Metric]) {
    println!(
        "loadgen: dispatcher with {} daemons over {}, {} tasks of {PAYLOAD_BYTES} bytes",
        config.daemons,
        if config.ipc {
            "abstract Unix sockets"
        } else {
            "loopback TCP"
        },
        config.tasks
    );
    for metric in metrics {
        let mib = match metric.unit {
            "bytes" if metric.value >= 1048576.0 => {
                format!("  ({:.1} MiB)", metric.value / 1048576.0)
            }
            _ => String::new(),
        };
        println!(
            "  {:<22} {:>14} {}{mib}",
            metric.name,
            format_value(metric),
            metric.unit
        );
    }
}

fn write_tsv(path: &str, metrics: &[Metric]) -> io::Result<()> {
    let mut file = io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(file, "metric\tvalue\tunit")?;
    for metric in metrics {
        writeln!(
            file,
            "{}\t{}\t{}",
            metric.name,
            format_value(metric),
            metric.unit
        )?;
    }
    file.flush()
}

// ---- the simulated daemons (child process) ----------------------------

/// Runs `count` daemons against the host at `url` on one thread until the
/// host closes their links, then prints
/// "answered=<tasks> rss_peak=<bytes> cpu_us=<microseconds>".
fn simulate_daemons(url: &str, count: usize) {
    raise_open_file_limit(count as u64 + SPARE_DESCRIPTORS, "the simulated daemons");
    let address = Address::parse(url).unwrap_or_else(|| {
        fail(format_args!(
            "not a tcp://IP:PORT or abstract://NAME URL: {url}"
        ))
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the daemons' runtime");
    let answered = runtime.block_on(run_daemons(address, count));
    println!(
        "answered={answered} rss_peak={} cpu_us={:.0}",
        memory().hwm,
        cpu_seconds(libc::RUSAGE_SELF) * 1e6
    );
}

async fn run_daemons(address: Address, count: usize) -> u64 {
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let daemons: Vec<_> = (0..count)
        .map(|_| tokio::spawn(simulated_daemon(address.clone(), connecting.clone())))
        .collect();
    let mut answered = 0;
    for daemon in daemons {
        answered += daemon.await.expect("a simulated daemon panicked");
    }
    answered
}

/// Connects, greets, then answers tasks until EXIT or end of stream;
/// returns how many tasks it answered.
async fn simulated_daemon(address: Address, connecting: Arc<Semaphore>) -> u64 {
    let permit = connecting
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");
    let (read, write) = address
        .connect()
        .await
        .unwrap_or_else(|e| fail(format_args!("cannot connect to {address:?}: {e}")));
    let mut reader = BufReader::with_capacity(DAEMON_BUFFER_BYTES, read);
    let mut writer = BufWriter::with_capacity(DAEMON_BUFFER_BYTES, write);
    greet(&mut reader, &mut writer)
        .await
        .unwrap_or_else(|e| fail(format_args!("greeting failed: {e}")));
    drop(permit);
    answer_tasks(&mut reader, &mut writer).await
}

async fn greet<R, W>(reader: &mut BufReader<R>, writer: &mut BufWriter<W>) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    writer.write_all(&SP_HEADER).await?;
    let hello = format!("version={VERSION}\npid={}\n", std::process::id());
    write_frame(writer, HELLO, 0, hello.as_bytes()).await?;
    writer.flush().await?;
    read_handshake(reader).await?;
    let mut body = Vec::new();
    match read_frame(reader, &mut body).await? {
        Some((CHALLENGE, _)) => {}
        other => return Err(invalid(format!("expected CHALLENGE, got {other:?}"))),
    }
    match read_frame(reader, &mut body).await? {
        Some((WELCOME, _)) => Ok(()),
        Some((REFUSE, _)) => Err(invalid(format!(
            "refused: {}",
            String::from_utf8_lossy(&body)
        ))),
        other => Err(invalid(format!("expected WELCOME, got {other:?}"))),
    }
}

/// Flushes only when no further frame is already buffered, so that a burst
/// of tasks is answered with one write.
async fn answer_tasks<R, W>(reader: &mut BufReader<R>, writer: &mut BufWriter<W>) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut answered = 0;
    let mut payload = Vec::with_capacity(PAYLOAD_BYTES);
    loop {
        match read_frame(reader, &mut payload).await {
            Ok(Some((TASK, id))) => {
                if write_frame(writer, RESULT, id, &payload).await.is_err() {
                    break;
                }
                answered += 1;
            }
            Ok(Some((CANCEL, _))) => {}
            Ok(Some((EXIT, _))) | Ok(None) | Err(_) => break,
            Ok(Some((kind, _))) => fail(format_args!("unexpected message kind {kind}")),
        }
        if reader.buffer().is_empty() && writer.flush().await.is_err() {
            break;
        }
    }
    let _ = writer.flush().await;
    answered
}

async fn read_handshake<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> io::Result<()> {
    let mut handshake = [0u8; 8];
    reader.read_exact(&mut handshake).await?;
    if handshake == SP_HEADER {
        Ok(())
    } else {
        Err(invalid(format!("bad SP handshake {handshake:02x?}")))
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut BufWriter<W>,
    kind: u8,
    id: u64,
    payload: &[u8],
) -> io::Result<()> {
    if IPC_FRAMING.load(Ordering::Relaxed) {
        writer.write_all(&[IPC_MESSAGE]).await?;
    }
    let mut head = [0u8; 8 + HEADER_LEN];
    head[..8].copy_from_slice(&((HEADER_LEN + payload.len()) as u64).to_be_bytes());
    head[8] = kind;
    head[16..].copy_from_slice(&id.to_be_bytes());
    writer.write_all(&head).await?;
    writer.write_all(payload).await
}

/// The next frame's kind and id, its payload left in `payload`; `None` when
/// the host closed the stream between frames.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    payload: &mut Vec<u8>,
) -> io::Result<Option<(u8, u64)>> {
    if reader.fill_buf().await?.is_empty() {
        return Ok(None);
    }
    if IPC_FRAMING.load(Ordering::Relaxed) {
        let kind = reader.read_u8().await?;
        if kind != IPC_MESSAGE {
            return Err(invalid(format!("IPC message type {kind}")));
        }
    }
    let len = reader.read_u64().await?;
    let payload_len = len
        .checked_sub(HEADER_LEN as u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(format!("bad frame length {len}")))?;
    let mut header = [0u8; HEADER_LEN];
    reader.read_exact(&mut header).await?;
    payload.resize(payload_len, 0);
    reader.read_exact(payload).await?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[8..]);
    Ok(Some((header[0], u64::from_be_bytes(id))))
}
