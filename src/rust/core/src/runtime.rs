//! What every thread of this crate runs on: the process-wide I/O runtime,
//! with SIGPIPE blocked on its threads, and the log on standard error.

use std::sync::OnceLock;

/// The process-wide I/O runtime: built on first use, two worker threads
/// named `mirai-io`. Every background task of this crate runs on it.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mirai-io")
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("mirai: cannot start the I/O runtime: {e}"))
    })
}

/// Blocks SIGPIPE on the calling thread: a write to a peer that has gone
/// then fails with `EPIPE`. In R's process, SIGPIPE runs R's handler, which
/// raises an R error: on a thread of ours that would be fatal.
pub(crate) fn block_sigpipe() {
    // SAFETY: plain libc calls on a signal set owned here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// A log line on standard error; one that cannot be written (stderr closed)
/// is dropped, where `eprintln!` would panic.
pub fn log(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "mirai: {line}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_threads_block_sigpipe() {
        let blocked = super::runtime()
            .block_on(super::runtime().spawn(async {
                let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
                let mask = status
                    .lines()
                    .find_map(|line| line.strip_prefix("SigBlk:"))
                    .unwrap()
                    .trim()
                    .to_string();
                u64::from_str_radix(&mask, 16).unwrap()
            }))
            .unwrap();
        assert_ne!(
            blocked & (1 << (libc::SIGPIPE - 1)),
            0,
            "SigBlk {blocked:x}"
        );
    }
}
