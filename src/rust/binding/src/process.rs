//! A process the package launched (a local daemon), held by R as an external
//! pointer: its exit status and standard error, and stopping it.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::Process;

use crate::convert::core_error;

struct ProcessHandle {
    process: Process,
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
    let process = Process::spawn(program, &args, env, unset, forward).map_err(core_error)?;
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

extendr_module! {
    mod process;
    fn process_spawn;
    fn process_exit_status;
    fn process_kill;
    fn process_pid;
}
