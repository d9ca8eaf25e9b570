//! The thin binding between R and `mirai_core`: converts values, holds core
//! handles in external pointers, delegates everything else. Every function
//! R calls runs on R's main thread; nothing is handed to the runtime's
//! threads but plain bytes.
//!
//! - `host`, `task`, `daemon`, `relay`, `process`: the functions R calls,
//!   by the handle they work on;
//! - `direct`: the routines on every task's path, called without extendr's
//!   wrappers, and the registration of every routine with R;
//! - `convert`: R values to and from the core's types, and errors;
//! - `serial`, `plain` and `plain_read`: tasks and values to and from bytes;
//! - `object`: the 'mirai' environment, built through R's C API;
//! - `later`: R callbacks run through the event loop of the later package;
//! - `ffi`: every raw R entry point used, and its API status.

#![deny(clippy::undocumented_unsafe_blocks)]

mod convert;
mod daemon;
mod direct;
mod external;
mod ffi;
mod host;
mod later;
mod object;
mod plain;
mod plain_read;
mod plain_scan;
mod process;
mod relay;
mod serial;
mod task;

use extendr_api::prelude::*;

extendr_module! {
    mod mirai;
    use host;
    use task;
    use daemon;
    use process;
    use relay;
    use serial;
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
