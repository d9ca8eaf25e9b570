//! Child processes (daemons launched by the host). The child is reaped by a
//! thread of its own; its stderr is drained by another, which keeps the
//! last `KEPT_STDERR_BYTES` for error reports.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
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

/// A spawned child process.
pub struct Process {
    pid: u32,
    shared: Arc<ProcessShared>,
}

impl Process {
    /// Starts `program` with `args`, adding `env` to and removing `unset`
    /// from the inherited environment. Without `forward_output` stdout is
    /// discarded and stderr only kept; with it both also reach our own.
    pub fn spawn(
        program: &str,
        args: &[String],
        env: Vec<(String, String)>,
        unset: Vec<String>,
        forward_output: bool,
    ) -> Result<Process, Error> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(if forward_output {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        for name in &unset {
            command.env_remove(name);
        }
        command.envs(env);
        let mut child = command
            .spawn()
            .map_err(|e| Error::Io(format!("cannot start {program}: {e}")))?;
        let pid = child.id();
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
                    drain_stderr(&drain, stderr, forward_output)
                })?;
            }
            None => relock(&shared.tracked).stderr_done = true,
        }
        let reap = shared.clone();
        spawn_thread("mirai-reaper", move || reap_child(&reap))?;
        Ok(Process { pid, shared })
    }

    pub fn pid(&self) -> u32 {
        self.pid
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

fn spawn_thread(name: &str, body: impl FnOnce() + Send + 'static) -> Result<(), Error> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map(|_| ())
        .map_err(|e| Error::Io(format!("cannot start a thread: {e}")))
}

fn drain_stderr(shared: &ProcessShared, mut stderr: impl Read, forward: bool) {
    let mut buffer = [0u8; 4096];
    loop {
        let n = match stderr.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if forward {
            let _ = std::io::stderr().write_all(&buffer[..n]);
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
        )
        .unwrap();
        assert!(p.pid() > 0);
        assert_eq!(wait_exit(&p), (3, "hi-gone\n".to_string()));
    }

    #[test]
    fn keeps_the_last_8_kib_of_stderr() {
        let p = Process::spawn(
            "sh",
            &sh("yes x | head -c 20000 >&2; printf END >&2"),
            vec![],
            vec![],
            false,
        )
        .unwrap();
        let (code, stderr) = wait_exit(&p);
        assert_eq!(code, 0);
        assert_eq!(stderr.len(), KEPT_STDERR_BYTES);
        assert!(stderr.ends_with("END"));
    }

    #[test]
    fn kill_reports_the_signal() {
        let p = Process::spawn("sleep", &["30".to_string()], vec![], vec![], false).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(p.exit_status().is_none());
        p.kill();
        assert_eq!(wait_exit(&p).0, -9);
    }

    #[test]
    fn missing_program_is_an_error() {
        let err = Process::spawn("/nonexistent/mirai-x", &[], vec![], vec![], false)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("cannot start /nonexistent/mirai-x"),
            "{err}"
        );
    }
}
