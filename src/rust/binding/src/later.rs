//! R callbacks run on R's main thread through the event loop of the `later`
//! package, scheduled from the runtime's threads when a task resolves.
//!
//! The R function stays in `CALLBACKS` (main thread only, which keeps it
//! from the garbage collector); the thread that resolves the task passes
//! only its id to later's thread-safe `execLaterNative2`, whose loop calls
//! `run_callback` on the main thread.

use crate::ffi::{R_GetCCallable, R_GlobalEnv, R_tryEval, Rf_lang1, Rf_protect, Rf_unprotect};
use extendr_api::prelude::*;
use extendr_api::Result;
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

type LaterFn = unsafe extern "C" fn(*mut c_void);
/// `void execLaterNative2(void (*func)(void*), void* data, double secs, int loop_id)`
type ExecLater = unsafe extern "C" fn(Option<LaterFn>, *mut c_void, f64, c_int);

/// later's global event loop.
const GLOBAL_LOOP: c_int = 0;

thread_local! {
    static CALLBACKS: RefCell<HashMap<u64, Robj>> = RefCell::new(HashMap::new());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static EXEC_LATER: OnceLock<ExecLater> = OnceLock::new();

unsafe extern "C" fn look_up(data: *mut c_void) {
    let found = data as *mut Option<ExecLater>;
    let entry = R_GetCCallable(c"later".as_ptr(), c"execLaterNative2".as_ptr());
    // SAFETY: later registers execLaterNative2 with the signature of
    // `ExecLater`; R hands it over as a generic function pointer.
    *found = entry.map(|f| std::mem::transmute::<crate::ffi::DlFunc, ExecLater>(f));
}

/// later's entry point, looked up on the main thread (R_GetCCallable must
/// not run elsewhere); an R error if the later package is not loaded.
fn exec_later() -> Result<ExecLater> {
    if let Some(exec) = EXEC_LATER.get() {
        return Ok(*exec);
    }
    let mut found: Option<ExecLater> = None;
    // SAFETY: R's thread (see `register`'s callers); `look_up` reads `found`
    // as the Option<ExecLater> it is and owns nothing with a destructor.
    let completed = unsafe { crate::serial::run_toplevel(look_up, &mut found) };
    match found {
        Some(exec) if completed => Ok(*EXEC_LATER.get_or_init(|| exec)),
        _ => Err(Error::Other(
            "the 'later' package must be loaded to run callbacks".into(),
        )),
    }
}

/// Keeps `callback` (an R function) and returns what schedules its call on
/// later's global loop: to be run once, on any thread.
pub fn register(callback: Robj) -> Result<mirai_core::Callback> {
    let exec = exec_later()?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    CALLBACKS.with(|c| c.borrow_mut().insert(id, callback));
    Ok(Box::new(move || {
        // SAFETY: later documents execLaterNative2 as safe to call from any
        // thread; `run_callback` only reads the id from `data`.
        unsafe {
            exec(
                Some(run_callback),
                id as usize as *mut c_void,
                0.0,
                GLOBAL_LOOP,
            )
        }
    }))
}

/// Run by later on R's main thread. An R error in the callback is reported
/// by R_tryEval and stops there.
unsafe extern "C" fn run_callback(data: *mut c_void) {
    let id = data as usize as u64;
    let Some(callback) = CALLBACKS.with(|c| c.borrow_mut().remove(&id)) else {
        return;
    };
    let call = Rf_protect(Rf_lang1(callback.get()));
    let mut error: c_int = 0;
    R_tryEval(call, R_GlobalEnv, &mut error);
    Rf_unprotect(1);
}
