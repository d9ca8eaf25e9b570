//! The thin binding between R and `mirai_core`: converts values, holds core
//! handles in external pointers, delegates everything else. Every function
//! here runs on R's main thread; nothing is handed to the runtime's threads
//! but plain bytes.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::{DaemonLink, DaemonOptions, Host, HostOptions, Outcome, Process, Received};
use std::time::Duration;

mod serial;

/// A compute profile's host: its listeners, dispatcher and results.
struct HostHandle {
    host: Host,
}

impl Drop for HostHandle {
    fn drop(&mut self) {
        self.host.close(false);
    }
}

/// One submitted task. Dropping it (R's garbage collector) tells the host the
/// result is no longer wanted.
struct TaskHandle {
    host: Host,
    id: u64,
    taken: bool,
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        if !self.taken {
            self.host.forget(self.id);
        }
    }
}

struct DaemonHandle {
    link: DaemonLink,
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

/// @noRd
#[extendr]
fn host_listen(
    urls: Strings,
    dispatcher: bool,
    token: Robj,
    max_bytes: f64,
    version: &str,
) -> Result<Robj> {
    let options = HostOptions {
        urls: urls.iter().map(|u| u.to_string()).collect(),
        dispatcher,
        token: optional_string(&token)?,
        max_message_bytes: bytes_limit(max_bytes),
        version: version.to_string(),
    };
    let host = Host::listen(options).map_err(|e| Error::Other(e.to_string()))?;
    Ok(ExternalPtr::new(HostHandle { host }).into())
}

/// @noRd
#[extendr]
fn host_urls(h: Robj) -> Result<Strings> {
    let handle = host_of(&h)?;
    Ok(handle.host.urls().iter().map(|u| u.as_str()).collect())
}

/// @noRd
#[extendr]
fn host_submit(h: Robj, task: Robj, timeout_ms: Robj) -> Result<Robj> {
    let handle = host_of(&h)?;
    let timeout = if timeout_ms.is_null() {
        None
    } else {
        let ms: f64 = timeout_ms.try_into()?;
        Some(ms.max(0.0) as u64)
    };
    let payload = serial::serialize(&task).map_err(Error::Other)?;
    let id = handle.host.submit(payload, timeout);
    Ok(ExternalPtr::new(TaskHandle {
        host: handle.host.clone(),
        id,
        taken: false,
    })
    .into())
}

/// @noRd
#[extendr]
fn task_wait(t: Robj, ms: i32) -> Result<bool> {
    let task: &ExternalPtr<TaskHandle> = (&t).try_into()?;
    Ok(task.taken || task.host.wait(task.id, millis(ms)))
}

/// @noRd
#[extendr]
fn task_ready(t: Robj) -> Result<bool> {
    let task: &ExternalPtr<TaskHandle> = (&t).try_into()?;
    Ok(task.taken || task.host.is_resolved(task.id))
}

/// @noRd
#[extendr]
fn task_value(mut t: Robj) -> Result<Robj> {
    let task: &mut ExternalPtr<TaskHandle> = (&mut t).try_into()?;
    if task.taken {
        return Err(Error::Other(
            "the value of this task was already taken".into(),
        ));
    }
    let outcome = task
        .host
        .take(task.id)
        .ok_or_else(|| Error::Other("the task is not resolved".into()))?;
    task.taken = true;
    match outcome {
        Outcome::Value(bytes) => serial::unserialize(&bytes).map_err(Error::Other),
        Outcome::Error(code) => Ok(error_value(code)),
    }
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
    Ok(list!(
        connections = status.connections as i32,
        urls = urls,
        awaiting = status.awaiting as f64,
        executing = status.executing as f64,
        completed = status.completed as f64,
        online = online,
        assigned = assigned,
        complete = complete,
        pid = pid
    )
    .into())
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
) -> Result<Robj> {
    let options = DaemonOptions {
        url: url.to_string(),
        asyncdial,
        token: optional_string(&token)?,
        max_message_bytes: bytes_limit(max_bytes),
        version: version.to_string(),
    };
    let link = DaemonLink::connect(options).map_err(|e| Error::Other(e.to_string()))?;
    Ok(ExternalPtr::new(DaemonHandle { link }).into())
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
    let received = daemon_of(&d)?.link.recv(millis(ms));
    Ok(match received {
        Received::Timeout => Robj::from(()),
        Received::Task { id, payload } => {
            let data = serial::unserialize(&payload).map_err(Error::Other)?;
            list!(id = id as f64, data = data).into()
        }
        Received::Cancel(id) => list!(cancel = id as f64).into(),
        Received::Exit => Robj::from("exit"),
        Received::Closed => Robj::from("closed"),
    })
}

/// Sends a task's value. FALSE when the value cannot be serialized; a link
/// that has gone away is reported by the next `daemon_recv` instead.
/// @noRd
#[extendr]
fn daemon_send(d: Robj, id: f64, value: Robj) -> Result<bool> {
    let link = &daemon_of(&d)?.link;
    let Ok(payload) = serial::serialize(&value) else {
        return Ok(false);
    };
    let _ = link.send_result(id as u64, payload);
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
) -> Result<Robj> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env_names
        .iter()
        .zip(env_values.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let unset: Vec<String> = unset.iter().map(|u| u.to_string()).collect();
    let process = Process::spawn(program, &args, env, unset, forward)
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

extendr_module! {
    mod mirai;
    fn host_listen;
    fn host_urls;
    fn host_submit;
    fn task_wait;
    fn task_ready;
    fn task_value;
    fn host_connections;
    fn host_wait_connections;
    fn host_status;
    fn host_close;
    fn daemon_connect;
    fn daemon_wait_connected;
    fn daemon_recv;
    fn daemon_send;
    fn daemon_close;
    fn process_spawn;
    fn process_exit_status;
    fn process_kill;
    fn process_pid;
    fn random_hex;
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
