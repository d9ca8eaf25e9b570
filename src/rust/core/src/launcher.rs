//! Child processes (daemons launched by the host). The child is reaped by a
//! thread of its own; its stderr is drained by another, which keeps the
//! last `KEPT_STDERR_BYTES` for error reports and, when the rest is not
//! forwarded, still passes on the child's own log lines (see `LogRelay`).
//! What the child must not show on its command line or keep in its
//! environment (a secret) is written to its standard input, which is then
//! closed. A process can be started again as it was (`respawn`).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::Error;

const KEPT_STDERR_BYTES: usize = 8 * 1024;
const REAP_POLL: Duration = Duration::from_millis(20);
const STDERR_GRACE: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Tracked {
    /// Exit code, or minus the signal that ended the child.
    code: Option<i32>,
    stderr: VecDeque<u8>,
    stderr_done: bool,
}

struct ProcessShared {
    child: Mutex<Option<Child>>,
    tracked: Mutex<Tracked>,
    changed: Condvar,
}

fn relock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a process was started, to start it again.
struct Recipe {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    unset: Vec<String>,
    forward_output: bool,
}

/// A spawned child process. Clones refer to the same process.
#[derive(Clone)]
pub struct Process {
    pid: u32,
    shared: Arc<ProcessShared>,
    recipe: Arc<Recipe>,
}

impl Process {
    /// Starts `program` with `args`, adding `env` to and removing `unset`
    /// from the inherited environment. Without `forward_output` stdout is
    /// discarded and stderr only kept; with it both also reach our own.
    /// `stdin` (at most a pipe's buffer, 64 KiB) is written to the child's
    /// standard input, which is then closed; without it, the child reads
    /// nothing. The child leads a process group of its own, so that a
    /// Ctrl-C at the host's terminal (SIGINT to the terminal's foreground
    /// group) reaches the host only.
    pub fn spawn(
        program: &str,
        args: &[String],
        env: Vec<(String, String)>,
        unset: Vec<String>,
        forward_output: bool,
        stdin: Option<&[u8]>,
    ) -> Result<Process, Error> {
        Process::start(
            Arc::new(Recipe {
                program: program.to_string(),
                args: args.to_vec(),
                env,
                unset,
                forward_output,
            }),
            stdin,
        )
    }

    /// Starts the same program again, the same way, with `stdin` written to
    /// it (see `spawn`).
    pub fn respawn(&self, stdin: Option<&[u8]>) -> Result<Process, Error> {
        Process::start(self.recipe.clone(), stdin)
    }

    fn start(recipe: Arc<Recipe>, stdin: Option<&[u8]>) -> Result<Process, Error> {
        let program = &recipe.program;
        let forward_output = recipe.forward_output;
        let mut command = Command::new(program);
        command
            .args(&recipe.args)
            .process_group(0)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if forward_output {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        for name in &recipe.unset {
            command.env_remove(name);
        }
        command.envs(recipe.env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .spawn()
            .map_err(|e| Error::Io(format!("cannot start {program}: {e}")))?;
        let pid = child.id();
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // On a thread of its own, which blocks SIGPIPE (see
            // `spawn_thread`): a child that exits before reading makes the
            // write fail, which its exit status then explains.
            let bytes = bytes.to_vec();
            spawn_thread("mirai-stdin", move || {
                let _ = pipe.write_all(&bytes);
            })?;
        }
        let stderr = child.stderr.take();
        let shared = Arc::new(ProcessShared {
            child: Mutex::new(Some(child)),
            tracked: Mutex::new(Tracked::default()),
            changed: Condvar::new(),
        });
        match stderr {
            Some(stderr) => {
                let drain = shared.clone();
                spawn_thread("mirai-stderr", move || {
                    drain_stderr(&drain, stderr, forward_output, pid)
                })?;
            }
            None => relock(&shared.tracked).stderr_done = true,
        }
        let reap = shared.clone();
        spawn_thread("mirai-reaper", move || reap_child(&reap))?;
        Ok(Process {
            pid,
            shared,
            recipe,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `None` while running; then the exit code, or minus the signal number.
    pub fn exit_code(&self) -> Option<i32> {
        relock(&self.shared.tracked).code
    }

    /// `None` while running; then the exit code (or minus the signal number)
    /// and the last 8 KiB of stderr.
    pub fn exit_status(&self) -> Option<(i32, String)> {
        let mut tracked = relock(&self.shared.tracked);
        tracked.code?;
        if !tracked.stderr_done {
            tracked = self
                .shared
                .changed
                .wait_timeout_while(tracked, STDERR_GRACE, |t| !t.stderr_done)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let bytes: Vec<u8> = tracked.stderr.iter().copied().collect();
        Some((tracked.code?, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Sends SIGKILL unless the child has already been reaped.
    pub fn kill(&self) {
        if let Some(child) = relock(&self.shared.child).as_mut() {
            let _ = child.kill();
        }
    }
}

/// Starts a thread of this crate's own (outside `runtime()`), with SIGPIPE
/// blocked on it.
pub(crate) fn spawn_thread(name: &str, body: impl FnOnce() + Send + 'static) -> Result<(), Error> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            // (the stderr thread writes to our own stderr)
            crate::runtime::block_sigpipe();
            body()
        })
        .map(|_| ())
        .map_err(|e| Error::Io(format!("cannot start a thread: {e}")))
}

/// Picks the lines starting with `LOG_PREFIX` out of a stream read in
/// chunks, and writes each, naming the child, to `out`.
struct LogRelay {
    pid: u32,
    /// The current line so far, while it may still be a log line.
    line: Vec<u8>,
    /// The current line is not a log line: skip to its end.
    skipping: bool,
}

const LOG_PREFIX: &[u8] = b"mirai: ";
/// A longer log line is cut there.
const LOG_LINE_BYTES: usize = 4096;

impl LogRelay {
    fn new(pid: u32) -> LogRelay {
        LogRelay {
            pid,
            line: Vec::new(),
            skipping: false,
        }
    }

    fn feed(&mut self, chunk: &[u8], out: &mut impl Write) {
        for &byte in chunk {
            if byte == b'\n' {
                if !self.skipping && self.line.starts_with(LOG_PREFIX) {
                    let text = String::from_utf8_lossy(&self.line[LOG_PREFIX.len()..]);
                    let _ = writeln!(out, "mirai: pid {}: {text}", self.pid);
                }
                self.line.clear();
                self.skipping = false;
            } else if !self.skipping {
                self.line.push(byte);
                let n = self.line.len();
                if n <= LOG_PREFIX.len() && self.line[..] != LOG_PREFIX[..n] {
                    self.skipping = true;
                    self.line.clear();
                } else if n >= LOG_LINE_BYTES {
                    self.skipping = true;
                }
            }
        }
    }
}

fn drain_stderr(shared: &ProcessShared, mut stderr: impl Read, forward: bool, pid: u32) {
    let mut buffer = [0u8; 4096];
    let mut relay = LogRelay::new(pid);
    loop {
        let n = match stderr.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if forward {
            let _ = std::io::stderr().write_all(&buffer[..n]);
        } else {
            relay.feed(&buffer[..n], &mut std::io::stderr());
        }
        let mut tracked = relock(&shared.tracked);
        tracked.stderr.extend(&buffer[..n]);
        let excess = tracked.stderr.len().saturating_sub(KEPT_STDERR_BYTES);
        tracked.stderr.drain(..excess);
    }
    relock(&shared.tracked).stderr_done = true;
    shared.changed.notify_all();
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| -s))
        .unwrap_or(-1)
}

fn reap_child(shared: &ProcessShared) {
    loop {
        let code = {
            let mut child = relock(&shared.child);
            let code = match child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(exit_code(status)),
                Some(Ok(None)) => None,
                Some(Err(_)) | None => Some(-1),
            };
            if code.is_some() {
                *child = None;
            }
            code
        };
        if let Some(code) = code {
            relock(&shared.tracked).code = Some(code);
            shared.changed.notify_all();
            return;
        }
        std::thread::sleep(REAP_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_exit(p: &Process) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = p.exit_status() {
                return status;
            }
            assert!(Instant::now() < deadline, "child did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".to_string(), script.to_string()]
    }

    #[test]
    fn reports_exit_code_stderr_and_env() {
        let p = Process::spawn(
            "sh",
            &sh("echo \"$MIRAI_X-${HOME:-gone}\" >&2; exit 3"),
            vec![("MIRAI_X".into(), "hi".into())],
            vec!["HOME".into()],
            false,
            None,
        )
        .unwrap();
        assert!(p.pid() > 0);
        assert_eq!(wait_exit(&p), (3, "hi-gone\n".to_string()));
    }

    #[test]
    fn stdin_is_written_then_closed_and_a_respawn_gets_its_own() {
        let p = Process::spawn(
            "sh",
            &sh("read a; read b; printf '%s-%s-%s' \"$a\" \"$b\" \"$(cat)\" >&2"),
            vec![("MIRAI_X".into(), "kept".into())],
            vec![],
            false,
            Some(b"one\ntwo\nrest"),
        )
        .unwrap();
        assert_eq!(wait_exit(&p), (0, "one-two-rest".to_string()));
        let again = p.respawn(Some(b"three\n")).unwrap();
        assert_ne!(again.pid(), p.pid());
        assert_eq!(wait_exit(&again), (0, "three--".to_string()));
        assert_eq!(again.exit_code(), Some(0));
        // without stdin the child reads end of file at once
        let closed = p.respawn(None).unwrap();
        assert_eq!(wait_exit(&closed), (0, "--".to_string()));
    }

    #[test]
    fn keeps_the_last_8_kib_of_stderr() {
        let p = Process::spawn(
            "sh",
            &sh("yes x | head -c 20000 >&2; printf END >&2"),
            vec![],
            vec![],
            false,
            None,
        )
        .unwrap();
        let (code, stderr) = wait_exit(&p);
        assert_eq!(code, 0);
        assert_eq!(stderr.len(), KEPT_STDERR_BYTES);
        assert!(stderr.ends_with("END"));
    }

    #[test]
    fn log_lines_are_passed_on_whole_and_the_rest_is_not() {
        let mut relay = LogRelay::new(42);
        let mut out = Vec::new();
        let stream = b"Error in f(): not ours\nmirai: stopped\nmirai\nmirai: cut\npartial mirai: no\nmirai: last";
        // every split of the stream into two chunks gives the same lines
        for at in 0..=stream.len() {
            relay = LogRelay::new(42);
            out.clear();
            relay.feed(&stream[..at], &mut out);
            relay.feed(&stream[at..], &mut out);
            assert_eq!(
                String::from_utf8_lossy(&out),
                "mirai: pid 42: stopped\nmirai: pid 42: cut\n",
                "split at {at}"
            );
        }
        // an unfinished line is not passed on; a long one is dropped
        relay.feed(b"\n", &mut out);
        assert!(String::from_utf8_lossy(&out).ends_with("pid 42: last\n"));
        let mut long = b"mirai: ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 2 * LOG_LINE_BYTES));
        long.extend(b"\nmirai: after\n");
        out.clear();
        relay.feed(&long, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "mirai: pid 42: after\n");
    }

    #[test]
    fn the_child_leads_a_process_group_of_its_own() {
        let p = Process::spawn("sleep", &["30".to_string()], vec![], vec![], false, None).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.pid())).unwrap();
        // pid (comm) state ppid pgrp ...
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let pgrp: u32 = after_comm.split(' ').nth(2).unwrap().parse().unwrap();
        assert_eq!(pgrp, p.pid());
        p.kill();
        assert_eq!(wait_exit(&p).0, -9);
    }

    #[test]
    fn kill_reports_the_signal() {
        let p = Process::spawn("sleep", &["30".to_string()], vec![], vec![], false, None).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(p.exit_status().is_none());
        p.kill();
        assert_eq!(wait_exit(&p).0, -9);
    }

    #[test]
    fn missing_program_is_an_error() {
        let err = Process::spawn("/nonexistent/mirai-x", &[], vec![], vec![], false, None)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("cannot start /nonexistent/mirai-x"),
            "{err}"
        );
    }
}
