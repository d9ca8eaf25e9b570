//! A process the package launched (a local daemon), held by R as an external
//! pointer: its exit status and standard error, and stopping it.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::Process;

use crate::convert::{core_error, optional_string};

struct ProcessHandle {
    process: Process,
}

/// Starts `program`; `stdin` (NULL or text) is written to its standard
/// input, which is then closed.
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
    .map_err(core_error)?;
    Ok(ExternalPtr::new(ProcessHandle { process }).into())
}

fn process_of(p: &Robj) -> Result<&ExternalPtr<ProcessHandle>> {
    p.try_into()
}

/// The process of the handle `p`.
pub(crate) fn process_in(p: &Robj) -> Result<Process> {
    Ok(process_of(p)?.process.clone())
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

extendr_module! {
    mod process;
    fn process_spawn;
    fn process_exit_status;
    fn process_kill;
    fn process_pid;
}
