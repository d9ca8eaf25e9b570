//! A compute profile's host, held by R as an external pointer: listening,
//! submitting tasks (whose handles live in `task`), the daemons' status.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::{
    interface_addresses, pool, zero_config, Healing, Host, HostOptions, TlsServerConfig,
};
use rand::RngCore;
use std::rc::Rc;
use std::time::Duration;

use crate::convert::{bytes_limit, core_error, millis, optional_ms, optional_string};
use crate::direct;
use crate::ffi::{R_NilValue, Rf_asLogical, SEXP};
use crate::process::process_in;
use crate::serial::{self, hooks_from, Hooks};
use crate::task::{self, TaskHandle};

/// A compute profile's host: its listeners, dispatcher and results, the
/// PEM of its zero-config CA (to hand to the daemons it launches) and its
/// custom serialization.
struct HostHandle {
    host: Host,
    tls_ca: Option<String>,
    hooks: Option<Rc<Hooks>>,
}

impl Drop for HostHandle {
    fn drop(&mut self) {
        self.host.close(false);
    }
}

fn host_of(h: &Robj) -> Result<&ExternalPtr<HostHandle>> {
    h.try_into()
}

/// The core host of the host handle `h`, shared.
pub(crate) fn core_host(h: &Robj) -> Result<Host> {
    Ok(host_of(h)?.host.clone())
}

/// The host's TLS from R: NULL, `list(zero = host)` for a zero-config CA and
/// certificate, or `list(cert = pem, key = pem, pass = chr|NULL)`. Returns
/// the configuration and, for zero-config, the CA's PEM.
fn server_tls(tls: &Robj) -> Result<(Option<TlsServerConfig>, Option<String>)> {
    if tls.is_null() {
        return Ok((None, None));
    }
    let list: List = tls
        .try_into()
        .map_err(|_| Error::Other("'tls' must be NULL or a list".into()))?;
    let text = |name: &str| -> Result<Option<String>> {
        match list.iter().find(|(n, _)| *n == name) {
            None => Ok(None),
            Some((_, x)) => optional_string(&x),
        }
    };
    if let Some(host) = text("zero")? {
        let zero = zero_config(&host).map_err(core_error)?;
        return Ok((Some(zero.server), Some(zero.ca_pem)));
    }
    let (Some(cert), Some(key)) = (text("cert")?, text("key")?) else {
        return Err(Error::Other(
            "'tls' must hold either 'zero' or both 'cert' and 'key'".into(),
        ));
    };
    let pass = text("pass")?;
    let config = TlsServerConfig::from_pem(&cert, &key, pass.as_deref()).map_err(core_error)?;
    Ok((Some(config), None))
}

/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn host_listen(
    urls: Strings,
    dispatcher: bool,
    token: Robj,
    max_bytes: f64,
    version: &str,
    tls: Robj,
    retries: i32,
    max_queue_bytes: f64,
    stream: Robj,
    max_greeting: f64,
    link_timeout: f64,
) -> Result<Robj> {
    let (tls, tls_ca) = server_tls(&tls)?;
    let rng_stream = if stream.is_null() {
        None
    } else {
        let words: Vec<i32> = stream
            .as_integer_vector()
            .ok_or_else(|| Error::Other("'stream' must be an integer vector".into()))?;
        Some(
            <[i32; 7]>::try_from(words)
                .map_err(|_| Error::Other("'stream' must have 7 integers".into()))?,
        )
    };
    let options = HostOptions {
        urls: urls.iter().map(|u| u.to_string()).collect(),
        dispatcher,
        token: optional_string(&token)?,
        max_message_bytes: bytes_limit(max_bytes),
        version: version.to_string(),
        tls,
        handshake_timeout: None,
        max_queue_bytes: if max_queue_bytes.is_finite() && max_queue_bytes >= 1.0 {
            max_queue_bytes as u64
        } else {
            0
        },
        retries: u32::try_from(retries).unwrap_or(0),
        rng_stream,
        max_greeting: (max_greeting.is_finite() && max_greeting >= 1.0)
            .then_some(max_greeting as usize),
        link_timeout: (link_timeout.is_finite() && link_timeout >= 1.0)
            .then(|| Duration::from_millis(link_timeout as u64)),
    };
    let host = Host::listen(options).map_err(core_error)?;
    Ok(ExternalPtr::new(HostHandle {
        host,
        tls_ca,
        hooks: None,
    })
    .into())
}

/// Sets the closures of custom serialization used for this host's tasks
/// and results (NULL, NULL for none).
/// @noRd
#[extendr]
fn host_serial(mut h: Robj, out_hook: Robj, in_hook: Robj) -> Result<()> {
    let handle: &mut ExternalPtr<HostHandle> = (&mut h).try_into()?;
    handle.hooks = hooks_from(out_hook, in_hook);
    Ok(())
}

/// Sends the task to every daemon, now and later; its results are dropped.
/// @noRd
#[extendr]
fn host_broadcast(h: Robj, task: Robj) -> Result<()> {
    let handle = host_of(&h)?;
    let hook = handle.hooks.as_ref().map(|k| &k.out);
    let payload = serial::serialize(&task, hook).map_err(Error::Other)?;
    handle.host.broadcast(pool::into_bytes(payload));
    Ok(())
}

/// Sends the task to every daemon, now and later: a list of the handles of
/// the tasks of the daemons connected now (and of the next to connect, for
/// at least `min`).
/// @noRd
#[extendr]
fn host_everywhere(h: Robj, task: Robj, min: i32) -> Result<List> {
    let handle = host_of(&h)?;
    let hooks = handle.hooks.clone();
    let payload = serial::serialize(&task, hooks.as_ref().map(|k| &k.out)).map_err(Error::Other)?;
    let ids = handle
        .host
        .everywhere(pool::into_bytes(payload), usize::try_from(min).unwrap_or(0));
    Ok(ids
        .into_iter()
        .map(|id| {
            task::into_robj(TaskHandle {
                host: handle.host.clone(),
                id,
                taken: false,
                waiting: None,
                hooks: hooks.clone(),
            })
        })
        .collect())
}

/// @noRd
#[extendr]
fn host_tls_ca(h: Robj) -> Result<Option<String>> {
    Ok(host_of(&h)?.tls_ca.clone())
}

/// @noRd
#[extendr]
fn host_urls(h: Robj) -> Result<Strings> {
    let handle = host_of(&h)?;
    Ok(handle.host.urls().iter().map(|u| u.as_str()).collect())
}

/// Serializes the task once and queues it. When a bound on the queue's
/// bytes leaves no room: NULL if not `wait_for_room`, else a handle still
/// waiting for room, which `task_wait_room` then queues. A direct routine:
/// see `direct`.
pub(crate) extern "C" fn direct_host_submit(
    h: SEXP,
    task: SEXP,
    timeout_ms: SEXP,
    wait_for_room: SEXP,
) -> SEXP {
    direct::call(|| {
        let handle = host_of(direct::borrow(&h))?;
        let timeout = optional_ms(direct::borrow(&timeout_ms))?;
        // SAFETY: R's thread; a value held by `.Call`.
        let wait_for_room = match unsafe { Rf_asLogical(wait_for_room) } {
            0 => false,
            1 => true,
            _ => return Err(Error::Other("wait_for_room must be TRUE or FALSE".into())),
        };
        let hooks = handle.hooks.clone();
        let payload = serial::serialize(direct::borrow(&task), hooks.as_ref().map(|k| &k.out))
            .map_err(Error::Other)?;
        let (id, waiting) =
            match handle
                .host
                .try_submit(pool::into_bytes(payload), timeout, Duration::ZERO)
            {
                Ok(id) => (id, None),
                // SAFETY: R's constant.
                Err(_) if !wait_for_room => return Ok(unsafe { R_NilValue }),
                Err(payload) => (0, Some(Box::new((payload, timeout)))),
            };
        Ok(task::into_sexp(TaskHandle {
            host: handle.host.clone(),
            id,
            taken: false,
            waiting,
            hooks,
        }))
    })
}

/// @noRd
#[extendr]
fn host_connections(h: Robj) -> Result<i32> {
    Ok(host_of(&h)?.host.connections() as i32)
}

/// @noRd
#[extendr]
fn host_wait_connections(h: Robj, n: i32, ms: i32) -> Result<i32> {
    let n = usize::try_from(n).unwrap_or(0);
    Ok(host_of(&h)?.host.wait_connections(n, millis(ms)) as i32)
}

/// @noRd
#[extendr]
fn host_status(h: Robj) -> Result<Robj> {
    let status = host_of(&h)?.host.status();
    let urls: Strings = status.urls.iter().map(|u| u.as_str()).collect();
    let online: Vec<bool> = status.daemons.iter().map(|d| d.online).collect();
    let assigned: Vec<f64> = status.daemons.iter().map(|d| d.assigned as f64).collect();
    let complete: Vec<f64> = status.daemons.iter().map(|d| d.complete as f64).collect();
    let pid: Vec<f64> = status.daemons.iter().map(|d| d.pid as f64).collect();
    let job: Strings = status
        .daemons
        .iter()
        .map(|d| d.job.as_deref().map_or_else(Rstr::na, Rstr::from))
        .collect();
    let healing = match &status.healing {
        Healing::Off => Robj::from(()),
        Healing::On => Robj::from("replacing"),
        Healing::Stopped(reason) => Robj::from(format!("stopped: {reason}")),
    };
    Ok(list!(
        connections = status.connections as i32,
        urls = urls,
        awaiting = status.awaiting as f64,
        executing = status.executing as f64,
        completed = status.completed as f64,
        queued_bytes = status.queued_bytes as f64,
        peak_bytes = status.peak_queued_bytes as f64,
        online = online,
        assigned = assigned,
        complete = complete,
        pid = pid,
        job = job,
        deaths = status.deaths as f64,
        healing = healing,
        oldest_wait = status.oldest_wait.as_secs_f64() * 1000.0
    )
    .into())
}

/// Replaces the launched daemons of `processes` (a list of process
/// handles) when they die, giving each replacement `stdin` (NULL or text).
/// @noRd
#[extendr]
fn host_heal(h: Robj, processes: List, stdin: Robj) -> Result<()> {
    let handle = host_of(&h)?;
    let launched = processes
        .values()
        .map(|p| process_in(&p))
        .collect::<Result<Vec<_>>>()?;
    let stdin = optional_string(&stdin)?.map(String::into_bytes);
    handle.host.heal(launched, stdin);
    Ok(())
}

/// @noRd
#[extendr]
fn host_close(h: Robj, exit: bool) -> Result<()> {
    host_of(&h)?.host.close(exit);
    Ok(())
}

/// `nbytes` random bytes in hex, for tokens, local URLs and the ids of
/// profiles: from a generator seeded by the operating system.
/// @noRd
#[extendr]
fn random_hex(nbytes: i32) -> String {
    let mut bytes = vec![0u8; usize::try_from(nbytes).unwrap_or(0)];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// This machine's interface addresses that other machines may dial, best
/// first: `list(name = <interfaces>, address = <addresses>)`.
/// @noRd
#[extendr]
fn net_interfaces() -> Robj {
    let found = interface_addresses();
    let names: Strings = found.iter().map(|i| i.name.as_str()).collect();
    let addresses: Vec<String> = found.iter().map(|i| i.address.to_string()).collect();
    let addresses: Strings = addresses.iter().map(String::as_str).collect();
    list!(name = names, address = addresses).into()
}

extendr_module! {
    mod host;
    fn host_listen;
    fn host_urls;
    fn host_tls_ca;
    fn host_serial;
    fn host_everywhere;
    fn host_broadcast;
    fn host_connections;
    fn host_wait_connections;
    fn host_status;
    fn host_close;
    fn host_heal;
    fn random_hex;
    fn net_interfaces;
}
