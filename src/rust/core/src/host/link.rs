//! A daemon link seen from the host: the accept loop, the greeting (see
//! `greeting`: CHALLENGE, the daemon's HELLO checked, then WELCOME or
//! REFUSE), and the reader, which hands each message to the scheduler.
//! Writing is the link's `Outbox`'s.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::sync::Notify;

use super::scheduler::Outlet;
use super::{Outcome, Shared};
use crate::admission::{accept_failed_line, Throttled, ACCEPT_PAUSE};
use crate::frame::{FrameError, FrameReader};
use crate::greeting::{hear_daemon, welcome, Failure, Heard};
use crate::liveness::{heartbeat_interval, set_liveness};
use crate::message::{flags, Kind, Message, Tag};
use crate::outbox::{Outbox, Sender};
use crate::runtime::log;
use crate::transport::{Connection, Framed, Listener};

/// A link's outbox, and what stops its reader.
pub(super) struct LinkOutlet {
    outbox: Outbox,
    stop: Arc<Notify>,
}

/// A send fails only once the writer has ended; the link is then being
/// dropped, and `Scheduler::drop_link` resolves what it held.
impl Outlet for LinkOutlet {
    type Staged = Sender;

    fn send(&self, kind: impl Into<Tag>, id: u64, payload: Bytes) {
        let _ = self.outbox.send(kind.into(), id, payload);
    }

    fn send_later(&self, kind: impl Into<Tag>, id: u64, payload: Bytes) {
        let _ = self.outbox.send_later(kind.into(), id, payload);
    }

    fn stage(&self, kind: impl Into<Tag>, id: u64, payload: Bytes) -> Option<Sender> {
        self.outbox
            .stage(kind.into(), id, payload)
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
    fn register(&self, outlet: LinkOutlet, heard: Heard) -> Option<u64> {
        let stream = self.next_stream();
        let welcome = welcome(
            &heard,
            &self.version,
            self.token.as_deref(),
            stream,
            self.link_timeout,
        );
        let hello = heard.hello;
        let mut state = self.lock();
        let link_id = state.add_link(outlet, hello.pid, hello.job, Bytes::from(welcome))?;
        state.wake();
        Some(link_id)
    }

    fn on_result(&self, link_id: u64, task_id: u64, outcome: Outcome) {
        let mut state = self.lock();
        if state.on_result(link_id, task_id, outcome) {
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
    let failures = Throttled::new(accept_failed_line);
    loop {
        match listener.accept().await {
            Ok(connection) => {
                tokio::spawn(serve(shared.clone(), connection));
            }
            Err(e) => {
                failures.note(e.to_string());
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

async fn serve(shared: Arc<Shared>, connection: Connection) {
    let Framed {
        mut reader,
        mut writer,
        peer,
        message_limit,
        admitted,
        socket,
    } = connection.framed();
    let heard = tokio::time::timeout(
        shared.greeting_timeout,
        hear_daemon(
            &mut reader,
            &mut writer,
            &shared.version,
            shared.token.as_deref(),
        ),
    )
    .await;
    let heard = match heard {
        Ok(Ok(heard)) => heard,
        Ok(Err(Failure::Refused(reason))) => {
            shared
                .admission
                .closed_in_greeting(format!("refused daemon from {peer}: {reason}"));
            let refuse = Message::new(Kind::Refuse, 0, reason.into_bytes());
            if writer.write_message(&refuse).await.is_ok() && writer.flush().await.is_ok() {
                let _ = writer.shutdown().await;
            }
            return;
        }
        Ok(Err(Failure::Broken(why) | Failure::Closed(why))) => {
            shared
                .admission
                .closed_in_greeting(format!("closed connection from {peer}: {why}"));
            return;
        }
        Err(_) => {
            shared.admission.closed_in_greeting(format!(
                "closed connection from {peer}: no HELLO within {:?}",
                shared.greeting_timeout
            ));
            return;
        }
    };
    let stop = Arc::new(Notify::new());
    let heartbeat = socket.map(|_| heartbeat_interval(shared.link_timeout));
    let (outbox, writing) = Outbox::new(writer, stop.clone(), peer.clone(), heartbeat);
    let outlet = LinkOutlet {
        outbox,
        stop: stop.clone(),
    };
    let Some(link_id) = shared.register(outlet, heard) else {
        return;
    };
    drop(admitted);
    if let Some(socket) = socket {
        set_liveness(socket, shared.link_timeout);
    }
    if let Some(limit) = message_limit {
        limit.set(shared.max_message_bytes);
    }
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
            Kind::Result => {
                let outcome = result_outcome(message.flags, message.payload)?;
                shared.on_result(link_id, message.id, outcome)
            }
            Kind::Leaving => shared.on_leaving(link_id),
            Kind::Heartbeat => {}
            other => return Err(format!("unexpected {} message from a daemon", other.name())),
        }
    }
}

/// A RESULT's outcome, by its flags (see `message::flags`).
fn result_outcome(flags: u8, payload: Vec<u8>) -> Result<Outcome, String> {
    if flags & flags::CODE != 0 {
        let code: [u8; 4] = payload
            .as_slice()
            .try_into()
            .map_err(|_| format!("a RESULT code of {} bytes, not 4", payload.len()))?;
        Ok(Outcome::Error(i32::from_be_bytes(code)))
    } else if flags & flags::FAILURE != 0 {
        Ok(Outcome::Failure(payload))
    } else {
        Ok(Outcome::Value(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_a_value_a_failure_or_a_code_of_four_bytes() {
        assert_eq!(result_outcome(0, vec![1]), Ok(Outcome::Value(vec![1])));
        assert_eq!(
            result_outcome(flags::FAILURE, vec![2]),
            Ok(Outcome::Failure(vec![2]))
        );
        assert_eq!(
            result_outcome(flags::CODE, 19i32.to_be_bytes().to_vec()),
            Ok(Outcome::Error(19))
        );
        assert!(result_outcome(flags::CODE, vec![0; 3])
            .unwrap_err()
            .contains("3 bytes"));
    }
}
