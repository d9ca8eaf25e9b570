//! A standalone dispatcher's relay, held by R as an external pointer: made
//! by `daemon_connect` with a host to relay to, it dials into a host and
//! relays the host's tasks, as bytes, to that local host (see
//! `mirai_core::Relay`). R only waits for it to end.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::{DaemonOptions, Relay};

use crate::convert::{core_error, millis};
use crate::host::core_host;

/// The relay handle that `daemon_connect` returns when given a host handle
/// `local` to relay to.
pub(crate) fn start(options: DaemonOptions, local: &Robj) -> Result<Robj> {
    let relay = Relay::start(options, core_host(local)?).map_err(core_error)?;
    Ok(ExternalPtr::new(relay).into())
}

fn relay_of(r: &Robj) -> Result<&ExternalPtr<Relay>> {
    r.try_into()
}

/// Waits at most `ms`: TRUE once the host has gone away, FALSE meanwhile;
/// an error when the relay could not reach the host.
/// @noRd
#[extendr]
fn relay_wait(r: Robj, ms: i32) -> Result<bool> {
    relay_of(&r)?.wait(millis(ms)).map_err(core_error)
}

/// Closes the relay's link to its host; idempotent.
/// @noRd
#[extendr]
fn relay_close(r: Robj) -> Result<()> {
    relay_of(&r)?.close();
    Ok(())
}

extendr_module! {
    mod relay;
    fn relay_wait;
    fn relay_close;
}
