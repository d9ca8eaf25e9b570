//! Networking core of the mirai R package: URLs, transports, the wire
//! protocol, the host's dispatcher and the daemon's side of the link.
//! Nothing in this crate touches R.

mod daemon;
mod error;
mod frame;
mod host;
mod launcher;
mod message;
mod transport;
pub mod url;

use std::sync::OnceLock;

pub use daemon::{DaemonLink, DaemonOptions, Received};
pub use error::Error;
pub use host::{DaemonRow, Host, HostOptions, Outcome, Status};
pub use launcher::Process;

/// The process-wide I/O runtime: built on first use, two worker threads
/// named `mirai-io`. Every background task of this crate runs on it.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mirai-io")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("mirai: cannot start the I/O runtime: {e}"))
    })
}

pub(crate) fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("mirai: {line}");
}
