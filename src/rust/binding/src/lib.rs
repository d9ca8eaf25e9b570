//! The thin binding between R and `mirai_core`: converts values, holds core
//! handles in external pointers, delegates everything else. Every function
//! here runs on R's main thread; nothing is handed to the runtime's threads
//! but plain bytes.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::{
    interface_addresses, pool, zero_config, DaemonLink, DaemonOptions, Healing, Host, HostOptions,
    Outcome, Process, Received, TlsClientConfig, TlsServerConfig,
};
use std::rc::Rc;
use std::time::Duration;

mod later;
mod object;
mod plain;
mod serial;
mod task;

use task::{task_mut, TaskHandle};

/// R closures for custom serialization (see `serial`): `out` when
/// serializing, `inp` when unserializing. NULL where unused.
pub(crate) struct Hooks {
    out: Robj,
    inp: Robj,
}

fn hooks_from(out: Robj, inp: Robj) -> Option<Rc<Hooks>> {
    if out.is_null() && inp.is_null() {
        None
    } else {
        Some(Rc::new(Hooks { out, inp }))
    }
}

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

struct DaemonHandle {
    link: DaemonLink,
    hooks: Option<Rc<Hooks>>,
}

impl Drop for DaemonHandle {
    fn drop(&mut self) {
        self.link.close();
    }
}

struct ProcessHandle {
    process: Process,
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn host_of(h: &Robj) -> Result<&ExternalPtr<HostHandle>> {
    h.try_into()
}

fn optional_ms(ms: &Robj) -> Result<Option<u64>> {
    if ms.is_null() {
        Ok(None)
    } else {
        let ms: f64 = ms.try_into()?;
        Ok(Some(ms.max(0.0) as u64))
    }
}

fn optional_string(x: &Robj) -> Result<Option<String>> {
    if x.is_null() {
        Ok(None)
    } else {
        let s: &str = x.try_into()?;
        Ok(Some(s.to_string()))
    }
}

fn bytes_limit(max_bytes: f64) -> u64 {
    if max_bytes.is_finite() && max_bytes >= 1.0 {
        max_bytes as u64
    } else {
        u64::MAX
    }
}

fn error_value(code: i32) -> Robj {
    let mut value = Robj::from(code);
    // Setting a class on a fresh integer cannot fail.
    let _ = value.set_class(["errorValue"]);
    value
}

/// `what` failed just now with an R error: `what`, then R's message.
fn with_r_reason(what: String) -> String {
    let reason = call!("geterrmessage")
        .ok()
        .and_then(|m| m.as_str().map(error_message))
        .unwrap_or_default();
    if reason.is_empty() {
        what
    } else {
        format!("{what}: {reason}")
    }
}

/// A 'miraiError' for a value that cannot be unserialized here (a package
/// or a serialization hook missing, or failing), with R's reason: what
/// `mk_mirai_error(simpleError(...))` (R/mirai.R) makes, which cannot be
/// called from here (test-compute.R checks that the two agree).
fn unreadable_value(what: String) -> Robj {
    let mut value = Robj::from(format!("Error: {}", with_r_reason(what)));
    // Attributes on a fresh string cannot fail to be set.
    let _ = value.set_attrib("condition.class", ["simpleError", "error", "condition"]);
    let _ = value.set_attrib("stack.trace", List::new(0));
    let _ = value.set_class(["miraiError", "errorValue", "try-error"]);
    value
}

/// The message of R's printed error `text` ("Error in CALL : MESSAGE" or
/// "Error: MESSAGE", maybe followed by a line of "Calls:"), on one line.
fn error_message(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Calls:"))
        .collect();
    let text = lines.join(" ");
    let message = if text.starts_with("Error in ") {
        text.split_once(" : ").map_or(text.as_str(), |(_, m)| m)
    } else {
        text.strip_prefix("Error: ").unwrap_or(&text)
    };
    message.trim().to_string()
}

fn core_error(e: mirai_core::Error) -> Error {
    Error::Other(e.to_string())
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
) -> Result<Robj> {
    let (tls, tls_ca) = server_tls(&tls)?;
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

/// @noRd
#[extendr]
fn host_everywhere(h: Robj, task: Robj) -> Result<()> {
    let handle = host_of(&h)?;
    let hook = handle.hooks.as_ref().map(|k| &k.out);
    let payload = serial::serialize(&task, hook).map_err(Error::Other)?;
    handle.host.everywhere(pool::into_bytes(payload));
    Ok(())
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
/// waiting for room, which `task_wait_room` then queues.
/// @noRd
#[extendr]
fn host_submit(h: Robj, task: Robj, timeout_ms: Robj, wait_for_room: bool) -> Result<Robj> {
    let handle = host_of(&h)?;
    let timeout = optional_ms(&timeout_ms)?;
    let hooks = handle.hooks.clone();
    let payload = serial::serialize(&task, hooks.as_ref().map(|k| &k.out)).map_err(Error::Other)?;
    let (id, waiting) =
        match handle
            .host
            .try_submit(pool::into_bytes(payload), timeout, Duration::ZERO)
        {
            Ok(id) => (id, None),
            Err(_) if !wait_for_room => return Ok(Robj::from(())),
            Err(payload) => (0, Some(Box::new((payload, timeout)))),
        };
    Ok(task::into_robj(TaskHandle {
        host: handle.host.clone(),
        id,
        taken: false,
        waiting,
        hooks,
    }))
}

/// TRUE once the task is queued; waits at most `ms` for room.
/// @noRd
#[extendr]
fn task_wait_room(mut t: Robj, ms: i32) -> Result<bool> {
    let task = task_mut(&mut t)?;
    let Some(waiting) = task.waiting.take() else {
        return Ok(true);
    };
    let (payload, timeout) = *waiting;
    match task.host.try_submit(payload, timeout, millis(ms)) {
        Ok(id) => {
            task.id = id;
            Ok(true)
        }
        Err(payload) => {
            task.waiting = Some(Box::new((payload, timeout)));
            Ok(false)
        }
    }
}

/// @noRd
#[extendr]
fn task_wait(mut t: Robj, ms: i32) -> Result<bool> {
    let task = task_mut(&mut t)?;
    Ok(task.taken || (task.waiting.is_none() && task.host.wait(task.id, millis(ms))))
}

/// @noRd
#[extendr]
fn task_ready(mut t: Robj) -> Result<bool> {
    let task = task_mut(&mut t)?;
    Ok(task.taken || (task.waiting.is_none() && task.host.is_resolved(task.id)))
}

/// TRUE if the task was pending and is now cancelled (errorValue 20).
/// @noRd
#[extendr]
fn task_cancel(mut t: Robj) -> Result<bool> {
    let task = task_mut(&mut t)?;
    Ok(!task.taken && task.waiting.is_none() && task.host.cancel(task.id))
}

/// The 1-based index of a resolved task of the list, else 0 after waiting
/// at most `ms` for one.
/// @noRd
#[extendr]
fn tasks_wait_any(tasks: List, ms: i32) -> Result<i32> {
    let mut handles = Vec::with_capacity(tasks.len());
    for (i, mut t) in tasks.values().enumerate() {
        let task = task_mut(&mut t)?;
        if task.taken {
            return Ok(i as i32 + 1);
        }
        handles.push((task.host.clone(), task.id, task.waiting.is_none()));
    }
    let waitable: Vec<(&Host, u64)> = handles
        .iter()
        .filter(|(_, _, queued)| *queued)
        .map(|(host, id, _)| (host, *id))
        .collect();
    let index: Vec<usize> = (0..handles.len()).filter(|&i| handles[i].2).collect();
    Ok(match Host::wait_any(&waitable, millis(ms)) {
        Some(j) => index[j] as i32 + 1,
        None => 0,
    })
}

/// Runs the R function `callback()` through later's event loop (on R's main
/// thread) once the task resolves.
/// @noRd
#[extendr]
fn task_on_resolve(mut t: Robj, callback: Robj) -> Result<()> {
    let task = task_mut(&mut t)?;
    if !callback.is_function() {
        return Err(Error::Other("'callback' must be a function".into()));
    }
    let schedule = later::register(callback)?;
    if task.taken || task.waiting.is_some() {
        schedule();
    } else {
        task.host.on_resolve(task.id, schedule);
    }
    Ok(())
}

/// @noRd
#[extendr]
fn task_value(mut t: Robj) -> Result<Robj> {
    let task = task_mut(&mut t)?;
    take_value(task)
}

/// The task's value, which replaces the `data` binding of the mirai `m`.
/// @noRd
#[extendr]
fn task_settle(mut t: Robj, m: Robj) -> Result<Robj> {
    if !m.is_environment() {
        return Err(Error::Other("not a mirai".into()));
    }
    let task = task_mut(&mut t)?;
    let value = take_value(task)?;
    // SAFETY: R's thread; `m` is a mirai and `value` is held by its Robj.
    unsafe { object::settle(m.get(), value.get()) };
    Ok(value)
}

fn take_value(task: &mut TaskHandle) -> Result<Robj> {
    if task.taken {
        return Err(Error::Other(
            "the value of this task was already taken".into(),
        ));
    }
    if task.waiting.is_some() {
        return Err(Error::Other("the task is not resolved".into()));
    }
    let outcome = task
        .host
        .take(task.id)
        .ok_or_else(|| Error::Other("the task is not resolved".into()))?;
    task.taken = true;
    match outcome {
        Outcome::Value(bytes) => {
            let value = serial::unserialize(&bytes, task.hooks.as_ref().map(|k| &k.inp));
            pool::give(bytes);
            // Taken either way: the value is this error from now on.
            Ok(value.unwrap_or_else(unreadable_value))
        }
        Outcome::Error(code) => Ok(error_value(code)),
    }
}

/// A new 'mirai' for the task handle `t` (see `object::new_mirai`).
/// @noRd
#[extendr]
fn mirai_object(t: Robj, fun: Robj, class: Robj) -> Result<Robj> {
    if !t.is_external_pointer() || !fun.is_function() || !class.is_string() {
        return Err(Error::Other("mirai_object: bad arguments".into()));
    }
    // SAFETY: R's thread; the arguments are held by their Robjs.
    Ok(unsafe { Robj::from_sexp(object::new_mirai(t.get(), fun.get(), class.get())) })
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
        online = online,
        assigned = assigned,
        complete = complete,
        pid = pid,
        deaths = status.deaths as f64,
        healing = healing
    )
    .into())
}

/// Replaces the launched daemons of `processes` (a list of process
/// handles) when they die, giving each replacement `stdin` (NULL or text).
/// @noRd
#[extendr]
fn host_heal(h: Robj, processes: List, stdin: Robj) -> Result<()> {
    let handle = host_of(&h)?;
    let mut launched = Vec::with_capacity(processes.len());
    for p in processes.values() {
        launched.push(process_of(&p)?.process.clone());
    }
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

/// @noRd
#[extendr]
fn daemon_connect(
    url: &str,
    asyncdial: bool,
    token: Robj,
    max_bytes: f64,
    version: &str,
    tls_ca: Robj,
) -> Result<Robj> {
    let tls = match optional_string(&tls_ca)? {
        None => None,
        Some(pem) => Some(TlsClientConfig::from_pem(&pem).map_err(core_error)?),
    };
    let options = DaemonOptions {
        url: url.to_string(),
        asyncdial,
        token: optional_string(&token)?,
        max_message_bytes: bytes_limit(max_bytes),
        version: version.to_string(),
        tls,
    };
    let link = DaemonLink::connect(options).map_err(|e| Error::Other(e.to_string()))?;
    // R's SIGINT handler turns the signal into R's pending interrupt.
    link.interrupt_on_cancel(true);
    Ok(ExternalPtr::new(DaemonHandle { link, hooks: None }).into())
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
        .map_err(|e| Error::Other(e.to_string()))
}

/// @noRd
#[extendr]
fn daemon_recv(d: Robj, ms: i32) -> Result<Robj> {
    let handle = daemon_of(&d)?;
    let received = handle.link.recv(millis(ms));
    Ok(match received {
        Received::Timeout => Robj::from(()),
        Received::Task { id, payload } => {
            let hook = handle.hooks.as_ref().map(|k| &k.inp);
            let data = serial::unserialize(&payload, hook);
            pool::give(payload);
            match data {
                Ok(data) => list!(id = id as f64, data = data).into(),
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

/// Sends a task's value. FALSE when the value cannot be serialized; a link
/// that has gone away is reported by the next `daemon_recv` instead.
/// @noRd
#[extendr]
fn daemon_send(d: Robj, id: f64, value: Robj) -> Result<bool> {
    let handle = daemon_of(&d)?;
    let hook = handle.hooks.as_ref().map(|k| &k.out);
    let Ok(payload) = serial::serialize(&value, hook) else {
        return Ok(false);
    };
    let _ = handle.link.send_result(id as u64, payload);
    Ok(true)
}

/// @noRd
#[extendr]
fn daemon_close(d: Robj) -> Result<()> {
    daemon_of(&d)?.link.close();
    Ok(())
}

/// @noRd
#[extendr]
fn process_spawn(
    program: &str,
    args: Strings,
    env_names: Strings,
    env_values: Strings,
    unset: Strings,
    forward: bool,
    stdin: Robj,
) -> Result<Robj> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env_names
        .iter()
        .zip(env_values.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let unset: Vec<String> = unset.iter().map(|u| u.to_string()).collect();
    let stdin = optional_string(&stdin)?;
    let process = Process::spawn(
        program,
        &args,
        env,
        unset,
        forward,
        stdin.as_deref().map(str::as_bytes),
    )
    .map_err(|e| Error::Other(e.to_string()))?;
    Ok(ExternalPtr::new(ProcessHandle { process }).into())
}

fn process_of(p: &Robj) -> Result<&ExternalPtr<ProcessHandle>> {
    p.try_into()
}

/// @noRd
#[extendr]
fn process_exit_status(p: Robj) -> Result<Robj> {
    Ok(match process_of(&p)?.process.exit_status() {
        None => Robj::from(()),
        Some((status, stderr)) => list!(status = status, stderr = stderr).into(),
    })
}

/// @noRd
#[extendr]
fn process_kill(p: Robj) -> Result<()> {
    process_of(&p)?.process.kill();
    Ok(())
}

/// @noRd
#[extendr]
fn process_pid(p: Robj) -> Result<i32> {
    Ok(process_of(&p)?.process.pid() as i32)
}

/// Writes `line` to the process's standard error as a log line, past any
/// `sink()` of R's (a daemon without `output` sinks its messages).
/// @noRd
#[extendr]
fn log_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "mirai: {line}");
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

/// @noRd
#[extendr]
fn random_hex(nbytes: i32) -> Result<String> {
    use std::io::Read;
    let n = usize::try_from(nbytes).unwrap_or(0);
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Other(format!("cannot read system randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// TRUE when R's options hold the very objects, under the same names and in
/// the same order, as `cells` (`as.list(.Options)` taken earlier): the cheap
/// test a daemon makes between tasks before restoring options.
/// @noRd
#[extendr]
fn options_unchanged(cells: Robj) -> bool {
    // SAFETY: R's thread; `cells` is held by its Robj.
    cells.is_list() && unsafe { object::options_unchanged(cells.get()) }
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
    // SAFETY: R's thread; `names` is held by its Robj.
    unsafe { object::remove_vars(names.get(), extendr_ffi::R_GlobalEnv) };
    Ok(())
}

/// The bytes a task or a value is sent as, for tests: whatever wrote them
/// (the plain-data writer or R's serializer), R's `unserialize()` reads them.
/// @noRd
#[extendr]
fn serial_bytes(x: Robj) -> Result<Raw> {
    let bytes = serial::serialize(&x, None).map_err(Error::Other)?;
    Ok(Raw::from_bytes(&bytes))
}

extendr_module! {
    mod mirai;
    fn host_listen;
    fn host_urls;
    fn host_tls_ca;
    fn host_submit;
    fn host_serial;
    fn host_everywhere;
    fn task_wait_room;
    fn task_wait;
    fn task_ready;
    fn task_cancel;
    fn tasks_wait_any;
    fn task_on_resolve;
    fn task_value;
    fn task_settle;
    fn mirai_object;
    fn host_connections;
    fn host_wait_connections;
    fn host_status;
    fn host_close;
    fn host_heal;
    fn daemon_connect;
    fn daemon_wait_connected;
    fn daemon_serial;
    fn daemon_recv;
    fn daemon_send;
    fn daemon_take_cancel_signal;
    fn daemon_leave;
    fn daemon_close;
    fn process_spawn;
    fn process_exit_status;
    fn process_kill;
    fn process_pid;
    fn random_hex;
    fn net_interfaces;
    fn log_line;
    fn options_unchanged;
    fn remove_globals;
    fn serial_bytes;
}

/// Called once when R loads the package. extendr turns every `Err` returned
/// to R into a panic on R's main thread, which it then catches and raises as
/// an R error; the default hook would print each of those as a crash report.
/// Panics on the runtime's threads (named by Rust) are still reported.
#[no_mangle]
pub extern "C" fn mirai_install_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_r_thread = std::thread::current().name().is_none();
        if !on_r_thread || std::env::var_os("MIRAI_RUST_BACKTRACE").is_some() {
            default_hook(info);
        }
    }));
}
