//! A daemon's link to its host, held by R as an external pointer: tasks in,
//! results out, and the daemon's cleanup between two tasks.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::{pool, DaemonLink, DaemonOptions, Received, TlsClientConfig};
use std::cell::Cell;
use std::os::raw::c_int;
use std::rc::Rc;

use crate::convert::{bytes_limit, core_error, millis, optional_string, with_r_reason};
use crate::ffi::{R_NilValue, Rf_ScalarLogical, Rf_asInteger, Rf_inherits, SEXP};
use crate::serial::{self, hooks_from, Hooks};
use crate::{direct, ffi, object, relay};

/// R's logical NA.
const NA_LOGICAL: c_int = c_int::MIN;

struct DaemonHandle {
    link: DaemonLink,
    hooks: Option<Rc<Hooks>>,
    /// The id and size in bytes of the task received last, which the
    /// results sent next answer.
    current: Cell<(u64, usize)>,
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
    Ok(ExternalPtr::new(DaemonHandle {
        link,
        hooks: None,
        current: Cell::new((0, 0)),
    })
    .into())
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

/// The next task, within `ms`: its value, NULL if none came, "exit" or
/// "closed" when the link ends, or `c("unreadable", why)` when it cannot be
/// read here. A direct routine: see `direct`.
pub(crate) extern "C" fn direct_daemon_recv(d: SEXP, ms: SEXP) -> SEXP {
    direct::call(|| {
        let handle = daemon_of(direct::borrow(&d))?;
        // SAFETY: R's thread; a value held by `.Call`.
        let ms = unsafe { Rf_asInteger(ms) };
        Ok(match handle.link.recv(millis(ms)) {
            // Cancels are not queued on a daemon's link (only on a relay's).
            // SAFETY: R's constant.
            Received::Timeout | Received::Cancel { .. } => unsafe { R_NilValue },
            Received::Task { id, payload, .. } => {
                handle.current.set((id, payload.len()));
                let hook = handle.hooks.as_ref().map(|k| &k.inp);
                let data = serial::unserialize(&payload, hook);
                pool::give(payload);
                let data = match data {
                    Ok(data) => data,
                    // Answered with this error by the caller: the daemon goes on.
                    Err(why) => Robj::from(["unreadable".to_string(), with_r_reason(why)]),
                };
                direct::returned(data)
            }
            Received::Exit => direct::returned(Robj::from("exit")),
            Received::Closed => direct::returned(Robj::from("closed")),
        })
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

/// Sends `value` as the result of the task `id` (NULL: the task received
/// last), as a failure when it is an 'errorValue' (a 'miraiError' or
/// 'miraiInterrupt' too); a link that has gone away is reported by the next
/// receive instead. Returns NA when `value` cannot be serialized (nothing is sent),
/// else whether that task or its value was large: at least `LARGE_BYTES`,
/// after which the daemon collects garbage at once. A direct routine: see
/// `direct`.
pub(crate) extern "C" fn direct_daemon_send(d: SEXP, value: SEXP, id: SEXP) -> SEXP {
    direct::call(|| {
        let handle = daemon_of(direct::borrow(&d))?;
        let (current, received) = handle.current.get();
        let id = match direct::borrow(&id) {
            id if id.is_null() => current,
            id => id
                .as_real()
                .or_else(|| id.as_integer().map(f64::from))
                .ok_or_else(|| Error::Other("id must be a number".into()))?
                as u64,
        };
        let hook = handle.hooks.as_ref().map(|k| &k.out);
        let Ok(payload) = serial::serialize(direct::borrow(&value), hook) else {
            // SAFETY: R's thread; returned at once.
            return Ok(unsafe { Rf_ScalarLogical(NA_LOGICAL) });
        };
        let large = payload.len().max(received) >= LARGE_BYTES;
        // SAFETY: R's thread; a value held by `.Call`.
        let _ = if unsafe { Rf_inherits(value, c"errorValue".as_ptr()) } != 0 {
            handle.link.send_failure(id, payload)
        } else {
            handle.link.send_result(id, payload)
        };
        // SAFETY: R's thread; returned at once.
        Ok(unsafe { Rf_ScalarLogical(c_int::from(large)) })
    })
}

/// A task or a value of at least this many bytes makes the daemon collect
/// garbage at once, while it has nothing to do, rather than when the next
/// large task arrives, so that its memory returns to what it was.
const LARGE_BYTES: usize = 1 << 28;

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
    fn daemon_take_cancel_signal;
    fn daemon_rng_stream;
    fn daemon_leave;
    fn daemon_close;
    fn log_line;
    fn remove_globals;
}
