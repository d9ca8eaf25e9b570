//! A daemon link seen from the host: the accept loop, the greeting (the
//! daemon's HELLO, checked, then WELCOME or REFUSE), and the reader, which
//! hands each message to the scheduler. Writing is the link's `Outbox`'s.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

use super::scheduler::Outlet;
use super::Shared;
use crate::frame::{FrameError, FrameReader, FrameWriter};
use crate::message::{same_secret, Hello, Kind, Message};
use crate::outbox::{Outbox, Sender};
use crate::runtime::log;
use crate::transport::{Connection, Listener};

const HELLO_MAX_BYTES: u64 = 64 * 1024;

/// A link's outbox, and what stops its reader.
pub(super) struct LinkOutlet {
    outbox: Outbox,
    stop: Arc<Notify>,
}

/// A send fails only once the writer has ended; the link is then being
/// dropped, and `Scheduler::drop_link` resolves what it held.
impl Outlet for LinkOutlet {
    type Staged = Sender;

    fn send(&self, kind: Kind, id: u64, payload: Bytes) {
        let _ = self.outbox.send(kind, id, payload);
    }

    fn send_later(&self, kind: Kind, id: u64, payload: Bytes) {
        let _ = self.outbox.send_later(kind, id, payload);
    }

    fn stage(&self, kind: Kind, id: u64, payload: Bytes) -> Option<Sender> {
        self.outbox
            .stage(kind, id, payload)
            .ok()
            .map(|()| self.outbox.sender())
    }

    fn close(&self) {
        self.stop.notify_one();
    }
}

impl Shared {
    /// Welcomes the daemon and adds its link (see `Scheduler::add_link`);
    /// `None` once the host is closed.
    fn register(&self, outlet: LinkOutlet, hello: Hello) -> Option<u64> {
        let welcome = Bytes::from(format!("version={}", self.version));
        let mut state = self.lock();
        let link_id = state.add_link(outlet, hello.pid, hello.job, welcome)?;
        state.wake();
        Some(link_id)
    }

    fn on_result(&self, link_id: u64, task_id: u64, payload: Vec<u8>) {
        let mut state = self.lock();
        if state.on_result(link_id, task_id, payload) {
            state.unlock_and_wake();
        }
    }

    fn on_leaving(&self, link_id: u64) {
        self.lock().on_leaving(link_id);
    }

    fn on_oversized(&self, link_id: u64, id: u64) {
        let mut state = self.lock();
        state.on_oversized(link_id, id);
        state.wake();
    }

    fn drop_link(&self, link_id: u64) {
        let mut state = self.lock();
        state.drop_link(link_id);
        state.wake();
    }
}

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    loop {
        match listener.accept().await {
            Ok(connection) => {
                tokio::spawn(serve(shared.clone(), connection));
            }
            Err(e) => {
                log(format_args!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

enum Greeting {
    Broken(String),
    Refused(String),
}

async fn greet<R, W>(
    shared: &Shared,
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
) -> Result<Hello, Greeting>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let broken = |e: &dyn std::fmt::Display| Greeting::Broken(e.to_string());
    writer.write_handshake().await.map_err(|e| broken(&e))?;
    writer.flush().await.map_err(|e| broken(&e))?;
    reader.read_handshake().await.map_err(|e| broken(&e))?;
    let limit = match shared.max_message_bytes {
        0 => HELLO_MAX_BYTES,
        max => max.min(HELLO_MAX_BYTES),
    };
    let message = reader
        .read_message(limit)
        .await
        .map_err(|e| broken(&e))?
        .ok_or_else(|| Greeting::Broken("closed before HELLO".to_string()))?;
    if message.kind != Kind::Hello {
        return Err(Greeting::Broken(format!(
            "expected HELLO, got {}",
            message.kind.name()
        )));
    }
    let hello = Hello::decode(&message.payload).map_err(Greeting::Broken)?;
    if hello.version != shared.version {
        return Err(Greeting::Refused(format!(
            "version mismatch: host has {}, daemon has {}",
            shared.version, hello.version
        )));
    }
    if let Some(token) = &shared.token {
        if !hello
            .token
            .as_deref()
            .is_some_and(|t| same_secret(t, token))
        {
            return Err(Greeting::Refused("daemon not invited".to_string()));
        }
    }
    Ok(hello)
}

async fn serve(shared: Arc<Shared>, connection: Connection) {
    let Connection { read, write, peer } = connection;
    let mut reader = FrameReader::new(read);
    let mut writer = FrameWriter::new(write);
    let hello = match tokio::time::timeout(
        shared.greeting_timeout,
        greet(&shared, &mut reader, &mut writer),
    )
    .await
    {
        Ok(Ok(hello)) => hello,
        Ok(Err(Greeting::Refused(reason))) => {
            log(format_args!("refused daemon from {peer}: {reason}"));
            let refuse = Message::new(Kind::Refuse, 0, reason.into_bytes());
            if writer.write_message(&refuse).await.is_ok() && writer.flush().await.is_ok() {
                let _ = writer.shutdown().await;
            }
            return;
        }
        Ok(Err(Greeting::Broken(why))) => {
            log(format_args!("closed connection from {peer}: {why}"));
            return;
        }
        Err(_) => {
            log(format_args!(
                "closed connection from {peer}: no HELLO within {:?}",
                shared.greeting_timeout
            ));
            return;
        }
    };
    let stop = Arc::new(Notify::new());
    let (outbox, writing) = Outbox::new(writer, stop.clone(), peer.clone());
    let outlet = LinkOutlet {
        outbox,
        stop: stop.clone(),
    };
    let Some(link_id) = shared.register(outlet, hello) else {
        return;
    };
    tokio::spawn(writing);
    let ended = tokio::select! {
        ended = read_loop(&shared, link_id, &mut reader) => Some(ended),
        _ = stop.notified() => None,
    };
    if let Some(Err(why)) = ended {
        log(format_args!("closed connection from {peer}: {why}"));
    }
    shared.drop_link(link_id);
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Shared,
    link_id: u64,
    reader: &mut FrameReader<R>,
) -> Result<(), String> {
    loop {
        let message = match reader.read_message(shared.max_message_bytes).await {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(e) => {
                if let FrameError::TooLarge { id: Some(id), .. } = e {
                    shared.on_oversized(link_id, id);
                }
                return Err(e.to_string());
            }
        };
        match message.kind {
            Kind::Result => shared.on_result(link_id, message.id, message.payload),
            Kind::Leaving => shared.on_leaving(link_id),
            Kind::Heartbeat => {}
            other => return Err(format!("unexpected {} message from a daemon", other.name())),
        }
    }
}
