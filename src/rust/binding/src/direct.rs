//! The routines on every task's path, which R calls directly rather than
//! through extendr's wrappers, and the registration of all of the binding's
//! routines with R.
//!
//! extendr's wrapper of a routine takes hold of each argument and of the
//! result in a hash map of protected objects, about 600 instructions each:
//! an eighth of what a small task cost the host (bench/HOTPATH.md). The
//! routines here are plain `extern "C"` functions: they borrow their
//! arguments, which `.Call` keeps alive for the call, and raise an error as
//! extendr's wrappers do, with the message of the `Err` they return. Each
//! lives in the module of the handle it works on, as `direct_NAME`, and R
//! knows it as `direct__NAME`.

use extendr_api::metadata::{Arg, Func};
use extendr_api::prelude::*;
use extendr_api::Result;
use std::cell::RefCell;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::daemon::{direct_daemon_recv, direct_daemon_send};
use crate::ffi::{Rf_error, SEXP};
use crate::host::direct_host_submit;
use crate::task::{direct_mirai_object, direct_task_ready, direct_task_settle};

/// `.Call`'s argument `x` as an `Robj` that is never dropped, so never
/// released: `x` is held by the caller for the whole call.
pub(crate) fn borrow(x: &SEXP) -> &Robj {
    // SAFETY: `Robj` is `#[repr(transparent)]` over `SEXP`, and a shared
    // reference to it is never dropped, so nothing is unprotected.
    unsafe { &*(x as *const SEXP).cast::<Robj>() }
}

/// `.Call`'s argument `x` as a mutable `Robj`, borrowed as in `borrow`.
pub(crate) fn borrow_mut(x: &mut SEXP) -> &mut Robj {
    // SAFETY: as in `borrow`; the reference is exclusive because `x` is.
    unsafe { &mut *(x as *mut SEXP).cast::<Robj>() }
}

/// `value` as a routine's result, let go by its `Robj`: only for a value
/// returned at once, with nothing allocated in R before.
pub(crate) fn returned(value: Robj) -> SEXP {
    // SAFETY: the object stays valid until R's next allocation, and the
    // caller returns it to R first.
    unsafe { value.get() }
}

/// A routine's result from `body`: its value, or an R error with the
/// message of its `Err` (or of a panic). Nothing of the routine's is left
/// to drop when R's error unwinds past it.
pub(crate) fn call(body: impl FnOnce() -> Result<SEXP>) -> SEXP {
    let message = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => return value,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "internal error in the mirai binding".to_string(),
    };
    raise(message)
}

thread_local! {
    /// The message of the error being raised: R formats it after the jump
    /// has begun, so it must outlive `raise`.
    static MESSAGE: RefCell<CString> = RefCell::new(CString::default());
}

fn raise(message: String) -> ! {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    let ptr = MESSAGE.with(|m| {
        *m.borrow_mut() = text;
        m.borrow().as_ptr()
    });
    // SAFETY: R's thread, in a routine R called; the message lives in
    // `MESSAGE` until the next error, and no value of ours is pending drop.
    unsafe { Rf_error(c"%s".as_ptr(), ptr) }
}

/// The direct routines, as extendr's metadata describes a routine: R's
/// name, the function, and its number of arguments.
fn routines() -> Vec<Func> {
    let table: [(&'static str, *const u8, usize); 6] = [
        ("direct__host_submit", direct_host_submit as _, 4),
        ("direct__mirai_object", direct_mirai_object as _, 3),
        ("direct__task_ready", direct_task_ready as _, 1),
        ("direct__task_settle", direct_task_settle as _, 2),
        ("direct__daemon_recv", direct_daemon_recv as _, 2),
        ("direct__daemon_send", direct_daemon_send as _, 3),
    ];
    table
        .into_iter()
        .map(|(name, func_ptr, n)| Func {
            doc: "",
            rust_name: name,
            mod_name: name,
            r_name: name,
            c_name: name,
            args: (0..n)
                .map(|_| Arg {
                    name: "x",
                    arg_type: "Robj",
                    default: None,
                })
                .collect(),
            return_type: "Robj",
            func_ptr,
            hidden: true,
            invisible: None,
        })
        .collect()
}

/// Registers every routine of the binding with R, extendr's and the direct
/// ones, once, when R loads the package (`R_init_mirai`).
#[no_mangle]
pub extern "C" fn mirai_register_routines(info: *mut extendr_api::DllInfo) {
    let mut metadata = crate::get_mirai_metadata();
    metadata.functions.extend(routines());
    // SAFETY: R's thread, with the package's DllInfo, as extendr's own
    // R_init function does.
    unsafe {
        extendr_api::register_call_methods(info, metadata);
        crate::external::register(info);
    }
}
