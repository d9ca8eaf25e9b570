//! A daemon's link to its host, held by R as an external pointer: tasks in,
//! results out, and the daemon's cleanup between two tasks.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::{pool, DaemonLink, DaemonOptions, Received, TlsClientConfig};
use std::rc::Rc;

use crate::convert::{bytes_limit, core_error, millis, optional_string, with_r_reason};
use crate::serial::{self, hooks_from, Hooks};
use crate::{ffi, object, relay};

struct DaemonHandle {
    link: DaemonLink,
    hooks: Option<Rc<Hooks>>,
}

impl Drop for DaemonHandle {
    fn drop(&mut self) {
        self.link.close();
    }
}

/// A daemon's link to the host at `url`; with a host handle `relay_to`
/// instead, a relay to that host's daemons (see `relay`).
/// @noRd
#[extendr]
fn daemon_connect(
    url: &str,
    asyncdial: bool,
    token: Robj,
    max_bytes: f64,
    version: &str,
    tls_ca: Robj,
    relay_to: Robj,
) -> Result<Robj> {
    let options = daemon_options(url, asyncdial, &token, max_bytes, version, &tls_ca)?;
    if !relay_to.is_null() {
        return relay::start(options, &relay_to);
    }
    let link = DaemonLink::connect(options).map_err(core_error)?;
    // R's SIGINT handler turns the signal into R's pending interrupt.
    sigint_reaches_r();
    link.interrupt_on_cancel(true);
    Ok(ExternalPtr::new(DaemonHandle { link, hooks: None }).into())
}

/// The options of a link to the host at `url`, from the arguments of
/// `daemon_connect`.
fn daemon_options(
    url: &str,
    asyncdial: bool,
    token: &Robj,
    max_bytes: f64,
    version: &str,
    tls_ca: &Robj,
) -> Result<DaemonOptions> {
    let tls = match optional_string(tls_ca)? {
        None => None,
        Some(pem) => Some(TlsClientConfig::from_pem(&pem).map_err(core_error)?),
    };
    Ok(DaemonOptions {
        url: url.to_string(),
        asyncdial,
        token: optional_string(token)?,
        max_message_bytes: bytes_limit(max_bytes),
        version: version.to_string(),
        tls,
    })
}

/// A process started with SIGINT ignored (as a background job of a
/// non-interactive shell is) keeps it ignored under R 4.5, which then
/// installs no handler of its own: a CANCEL's SIGINT would not stop the
/// task. There, SIGINT gets a handler that does what R's does.
fn sigint_reaches_r() {
    // SAFETY: sigaction with a zeroed struct read back, then a handler that
    // only stores to R's interrupt flag (async-signal safe).
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGINT, std::ptr::null(), &mut current) != 0
            || current.sa_sigaction != libc::SIG_IGN
        {
            return;
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ffi::mark_interrupt_pending as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

/// With a signal number (NA for none), losing the connection during a task
/// raises it (see `DaemonLink::signal_when_lost`).
/// @noRd
#[extendr]
fn daemon_signal_when_lost(d: Robj, signal: Robj) -> Result<()> {
    let signal = signal.as_integer().filter(|s| *s > 0);
    daemon_of(&d)?.link.signal_when_lost(signal);
    Ok(())
}

/// Sets the closures of custom serialization for this daemon's tasks and
/// results (NULL, NULL for none).
/// @noRd
#[extendr]
fn daemon_serial(mut d: Robj, out_hook: Robj, in_hook: Robj) -> Result<()> {
    let handle: &mut ExternalPtr<DaemonHandle> = (&mut d).try_into()?;
    handle.hooks = hooks_from(out_hook, in_hook);
    Ok(())
}

fn daemon_of(d: &Robj) -> Result<&ExternalPtr<DaemonHandle>> {
    d.try_into()
}

/// @noRd
#[extendr]
fn daemon_wait_connected(d: Robj, ms: i32) -> Result<bool> {
    daemon_of(&d)?
        .link
        .wait_connected(millis(ms))
        .map_err(core_error)
}

/// @noRd
#[extendr]
fn daemon_recv(d: Robj, ms: i32) -> Result<Robj> {
    let handle = daemon_of(&d)?;
    let received = handle.link.recv(millis(ms));
    Ok(match received {
        // Cancels are not queued on a daemon's link (only on a relay's).
        Received::Timeout | Received::Cancel { .. } => Robj::from(()),
        Received::Task { id, payload, .. } => {
            let hook = handle.hooks.as_ref().map(|k| &k.inp);
            let data = serial::unserialize(&payload, hook);
            let bytes = payload.len() as f64;
            pool::give(payload);
            match data {
                Ok(data) => list!(id = id as f64, data = data, bytes = bytes).into(),
                // Answered with this error by the caller: the daemon goes on.
                Err(why) => list!(id = id as f64, unreadable = with_r_reason(why)).into(),
            }
        }
        Received::Exit => Robj::from("exit"),
        Received::Closed => Robj::from("closed"),
    })
}

/// Tells the host that this daemon takes no more tasks; FALSE once the link
/// has ended.
/// @noRd
#[extendr]
fn daemon_leave(d: Robj) -> Result<bool> {
    Ok(daemon_of(&d)?.link.leave().is_ok())
}

/// Whether the interrupt just taken outside a task came from a CANCEL
/// (see `DaemonLink::take_cancel_signal`).
/// @noRd
#[extendr]
fn daemon_take_cancel_signal(d: Robj) -> Result<bool> {
    Ok(daemon_of(&d)?.link.take_cancel_signal())
}

/// The RNG stream (a `.Random.seed`) the host gave this daemon when it
/// welcomed it, or NULL.
/// @noRd
#[extendr]
fn daemon_rng_stream(d: Robj) -> Result<Robj> {
    Ok(match daemon_of(&d)?.link.rng_stream() {
        Some(stream) => Robj::from(&stream[..]),
        None => Robj::from(()),
    })
}

/// Sends a task's value, as a failure when it is an 'errorValue' (a
/// 'miraiError' or 'miraiInterrupt' too): the size of its serialization in
/// bytes, or NA when the value cannot be serialized; a link that has gone
/// away is reported by the next `daemon_recv` instead.
/// @noRd
#[extendr]
fn daemon_send(d: Robj, id: f64, value: Robj) -> Result<Rfloat> {
    let handle = daemon_of(&d)?;
    let hook = handle.hooks.as_ref().map(|k| &k.out);
    let Ok(payload) = serial::serialize(&value, hook) else {
        return Ok(Rfloat::na());
    };
    let bytes = payload.len() as f64;
    let _ = if value.inherits("errorValue") {
        handle.link.send_failure(id as u64, payload)
    } else {
        handle.link.send_result(id as u64, payload)
    };
    Ok(Rfloat::from(bytes))
}

/// @noRd
#[extendr]
fn daemon_close(d: Robj) -> Result<()> {
    daemon_of(&d)?.link.close();
    Ok(())
}

/// Writes `line` to the process's standard error as a log line, past any
/// `sink()` of R's (a daemon without `output` sinks its messages).
/// @noRd
#[extendr]
fn log_line(line: &str) {
    mirai_core::log(format_args!("{line}"));
}

/// Removes the variables `names` from the global environment: `rm()` without
/// its argument matching, which costs more than the rest of a daemon's
/// cleanup between two tasks.
/// @noRd
#[extendr]
fn remove_globals(names: Robj) -> Result<()> {
    if !names.is_string() {
        return Err(Error::Other(
            "remove_globals: names must be a character vector".into(),
        ));
    }
    // SAFETY: R's thread; `names` is a character vector held by its Robj,
    // and R_GlobalEnv is an environment.
    unsafe { object::remove_vars(names.get(), ffi::R_GlobalEnv) };
    Ok(())
}

extendr_module! {
    mod daemon;
    fn daemon_connect;
    fn daemon_wait_connected;
    fn daemon_serial;
    fn daemon_signal_when_lost;
    fn daemon_recv;
    fn daemon_send;
    fn daemon_take_cancel_signal;
    fn daemon_rng_stream;
    fn daemon_leave;
    fn daemon_close;
    fn log_line;
    fn remove_globals;
}
