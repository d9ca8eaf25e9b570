//! Networking core of the mirai R package: URLs, transports, the wire
//! protocol, the host's dispatcher and the daemon's side of the link.
//! Nothing in this crate touches R.

mod admission;
mod daemon;
mod error;
mod frame;
mod greeting;
mod host;
mod interfaces;
mod launcher;
mod liveness;
mod message;
mod outbox;
pub mod pool;
mod relay;
mod rng;
mod router;
mod runtime;
mod socket;
mod sync;
mod tls;
mod transport;
pub mod url;
#[doc(hidden)]
pub mod wire;
mod ws;

pub use daemon::{DaemonLink, DaemonOptions, Received};
pub use error::Error;
pub use host::{Callback, DaemonRow, Healing, Host, HostOptions, Outcome, Status};
pub use interfaces::{interface_addresses, Interface};
pub use launcher::Process;
pub use relay::Relay;
pub use rng::next_stream;
pub use runtime::{log, runtime};
pub use tls::{zero_config, TlsClientConfig, TlsServerConfig, ZeroConfig};
