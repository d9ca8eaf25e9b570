//! R's own serializer, writing straight into and reading straight out of
//! Rust-owned buffers, so a payload is never held in an R raw vector; plain
//! data is written by `plain` instead.
//!
//! R may `longjmp` out of `R_Serialize`/`R_Unserialize` (malformed input, or
//! out of memory). Both run under `R_ToplevelExec`, which stops that jump;
//! every frame it can cross (`run_*`, the stream callbacks, `call_hook`) is
//! an `extern "C"` function holding nothing with a destructor.
//!
//! Custom serialization: an optional R closure is R's persistent-name hook
//! (called for reference objects such as external pointers and
//! environments): when serializing it returns NULL (serialize as usual) or a
//! character vector, which the closure given when unserializing turns back
//! into the object. An R error in it fails the whole (un)serialization.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::pool;
use std::rc::Rc;

use crate::ffi::{
    R_GlobalEnv, R_NilValue, R_Serialize, R_ToplevelExec, R_Unserialize, R_inpstream_st,
    R_inpstream_t, R_outpstream_st, R_outpstream_t, R_pstream_format_t, Rf_error, Rf_eval,
    Rf_lang2, Rf_protect, Rf_unprotect, SEXP,
};
use crate::{plain, plain_read};
use std::os::raw::{c_char, c_int, c_void};

/// R closures for custom serialization: `out` when serializing, `inp` when
/// unserializing. NULL where unused.
pub(crate) struct Hooks {
    pub out: Robj,
    pub inp: Robj,
}

/// The hooks of a host or daemon, from R: none when both are NULL.
pub(crate) fn hooks_from(out: Robj, inp: Robj) -> Option<Rc<Hooks>> {
    if out.is_null() && inp.is_null() {
        None
    } else {
        Some(Rc::new(Hooks { out, inp }))
    }
}

/// Runs `body(job)` under `R_ToplevelExec`, which stops any R error or
/// interrupt (a `longjmp`) there; false when one happened.
///
/// # Safety
/// R's main thread. `body` reads its argument only as the `*mut T` it is
/// (`job`). The jump skips, without running anything of theirs, every frame
/// between `R_ToplevelExec` and the R call it leaves: `body` and everything
/// it calls that can reach R must own nothing with a destructor (no
/// `Vec`, `Rc`, lock guard or `RefCell` borrow held across an R call), and
/// must not panic (`body` is `extern "C"`: a panic there aborts). What `job`
/// points to may be left half-written when this returns false.
pub(crate) unsafe fn run_toplevel<T>(body: unsafe extern "C" fn(*mut c_void), job: &mut T) -> bool {
    R_ToplevelExec(Some(body), (job as *mut T).cast()) != 0
}

type Hook = Option<unsafe extern "C" fn(SEXP, SEXP) -> SEXP>;

/// `fun(x)`, for R's persistent-name hooks (`fun` is the hook's data). Runs
/// under `R_ToplevelExec` (see the module's notes).
unsafe extern "C" fn call_hook(x: SEXP, fun: SEXP) -> SEXP {
    let call = Rf_protect(Rf_lang2(fun, x));
    let value = Rf_eval(call, R_GlobalEnv);
    Rf_unprotect(1);
    value
}

/// The hook function and its data for R's streams: `call_hook` with the R
/// closure `hook`, or none.
fn hook_parts(hook: Option<&Robj>) -> (Hook, SEXP) {
    match hook {
        // SAFETY: the closure is held by the caller's Robj for as long as
        // the stream that uses it.
        Some(fun) if !fun.is_null() => (Some(call_hook), unsafe { fun.get() }),
        // SAFETY: R_NilValue is a constant of R's, read on R's thread.
        _ => (None, unsafe { R_NilValue }),
    }
}

const SERIALIZATION_VERSION: c_int = 3;

struct SerializeJob {
    object: SEXP,
    out: *mut Vec<u8>,
    hook: Hook,
    hook_data: SEXP,
}

static OUT_OF_MEMORY: &[u8] = b"not enough memory for the serialized data\0";

/// Room for `n` more bytes in `out`, or an R error (under `R_ToplevelExec`:
/// the serialization fails) rather than the abort of a failed allocation.
unsafe fn make_room(out: *mut Vec<u8>, n: usize) {
    if (*out).try_reserve(n).is_err() {
        Rf_error(c"%s".as_ptr(), OUT_OF_MEMORY.as_ptr() as *const c_char);
    }
}

unsafe extern "C" fn out_char(stream: R_outpstream_t, c: c_int) {
    let out = (*stream).data as *mut Vec<u8>;
    make_room(out, 1);
    (*out).push(c as u8);
}

unsafe extern "C" fn out_bytes(stream: R_outpstream_t, bytes: *mut c_void, n: c_int) {
    let out = (*stream).data as *mut Vec<u8>;
    let n = usize::try_from(n).unwrap_or(0);
    make_room(out, n);
    (*out).extend_from_slice(std::slice::from_raw_parts(bytes as *const u8, n));
}

unsafe extern "C" fn run_serialize(data: *mut c_void) {
    let job = data as *mut SerializeJob;
    let mut stream = R_outpstream_st {
        data: (*job).out as *mut c_void,
        type_: R_pstream_format_t::R_pstream_binary_format,
        version: SERIALIZATION_VERSION,
        OutChar: Some(out_char),
        OutBytes: Some(out_bytes),
        OutPersistHookFunc: (*job).hook,
        OutPersistHookData: (*job).hook_data,
    };
    R_Serialize((*job).object, &mut stream);
}

/// Serializes `object` (R serialization version 3, native binary format),
/// with `hook` (an R function) as the persistent-name hook if given.
pub fn serialize(object: &Robj, hook: Option<&Robj>) -> std::result::Result<Vec<u8>, String> {
    let kept = pool::take_largest();
    let mut out: Vec<u8> = kept.unwrap_or_else(|| Vec::with_capacity(512));
    if hook.is_none() {
        if let Some(header) = plain_header() {
            // SAFETY: R's thread (every caller is an R entry point);
            // `object` is protected by its Robj.
            if unsafe { plain::write(object.get(), header, &mut out) }.is_some() {
                return Ok(fit_to_output(out));
            }
        }
    }
    r_serialize(object, hook, out)
}

/// Serializes `object` with `R_Serialize` into `out` (empty).
pub fn r_serialize(
    object: &Robj,
    hook: Option<&Robj>,
    mut out: Vec<u8>,
) -> std::result::Result<Vec<u8>, String> {
    let (hook, hook_data) = hook_parts(hook);
    let mut job = SerializeJob {
        // SAFETY: `object` is held by its Robj.
        object: unsafe { object.get() },
        out: &mut out,
        hook,
        hook_data,
    };
    // SAFETY: R's thread; `run_serialize` reads `job` as a SerializeJob,
    // and it and the stream callbacks own nothing with a destructor.
    let serialized = unsafe { run_toplevel(run_serialize, &mut job) };
    let out = fit_to_output(out);
    if !serialized {
        return Err("the object could not be serialized".to_string());
    }
    Ok(out)
}

/// What `R_Serialize` writes before the first item (format, versions and
/// native encoding), taken once from its serialization of NULL.
pub(crate) fn plain_header() -> Option<&'static [u8]> {
    static HEADER: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    let header = HEADER.get_or_init(|| {
        let nil_item = 254i32.to_ne_bytes();
        let out = r_serialize(&Robj::from(()), None, Vec::new()).ok()?;
        out.strip_suffix(&nil_item).map(<[u8]>::to_vec)
    });
    header.as_deref()
}

/// The output in a buffer of about its own size: a large kept buffer that
/// received a small output goes back to the pool.
fn fit_to_output(mut out: Vec<u8>) -> Vec<u8> {
    if out.len() >= out.capacity() / 2 {
        return out;
    }
    if out.capacity() < pool::MIN_POOLED {
        // A small task may wait in a long queue: hold only its bytes.
        out.shrink_to_fit();
        return out;
    }
    let exact = out.clone();
    pool::give(out);
    exact
}

struct UnserializeJob {
    next: *const u8,
    remaining: usize,
    result: SEXP,
    hook: Hook,
    hook_data: SEXP,
}

static TRUNCATED: &[u8] = b"serialized data ended early\0";

unsafe extern "C" fn in_char(stream: R_inpstream_t) -> c_int {
    let job = (*stream).data as *mut UnserializeJob;
    if (*job).remaining == 0 {
        Rf_error(c"%s".as_ptr(), TRUNCATED.as_ptr() as *const c_char);
    }
    let c = *(*job).next;
    (*job).next = (*job).next.add(1);
    (*job).remaining -= 1;
    c as c_int
}

unsafe extern "C" fn in_bytes(stream: R_inpstream_t, bytes: *mut c_void, n: c_int) {
    let job = (*stream).data as *mut UnserializeJob;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > (*job).remaining {
        Rf_error(c"%s".as_ptr(), TRUNCATED.as_ptr() as *const c_char);
    }
    std::ptr::copy_nonoverlapping((*job).next, bytes as *mut u8, n);
    (*job).next = (*job).next.add(n);
    (*job).remaining -= n;
}

unsafe extern "C" fn run_unserialize(data: *mut c_void) {
    let job = data as *mut UnserializeJob;
    let mut stream = R_inpstream_st {
        data: job as *mut c_void,
        type_: R_pstream_format_t::R_pstream_any_format,
        InChar: Some(in_char),
        InBytes: Some(in_bytes),
        InPersistHookFunc: (*job).hook,
        InPersistHookData: (*job).hook_data,
        native_encoding: [0; 64],
        nat2nat_obj: std::ptr::null_mut(),
        nat2utf8_obj: std::ptr::null_mut(),
    };
    (*job).result = R_Unserialize(&mut stream);
}

/// Unserializes an R object from `bytes`, with `hook` (an R function) as
/// the persistent-name hook if given.
pub fn unserialize(bytes: &[u8], hook: Option<&Robj>) -> std::result::Result<Robj, String> {
    if let Some(header) = plain_header() {
        // SAFETY: R's thread (every caller is an R entry point).
        if let Some(object) = unsafe { plain_read::read(bytes, header) } {
            // SAFETY: a new object, kept from the collector while extendr
            // takes hold of it.
            unsafe {
                Rf_protect(object);
                let object = Robj::from_sexp(object);
                Rf_unprotect(1);
                return Ok(object);
            }
        }
    }
    let (hook, hook_data) = hook_parts(hook);
    let mut job = UnserializeJob {
        next: bytes.as_ptr(),
        remaining: bytes.len(),
        // SAFETY: R_NilValue is a constant of R's, read on R's thread.
        result: unsafe { R_NilValue },
        hook,
        hook_data,
    };
    // SAFETY: R's thread; `run_unserialize` reads `job` as an
    // UnserializeJob, and it and the stream callbacks own nothing with a
    // destructor; `bytes` outlives the call.
    if !unsafe { run_toplevel(run_unserialize, &mut job) } {
        return Err("received data could not be unserialized".to_string());
    }
    // SAFETY: R_Unserialize returned a valid object, not yet collected:
    // nothing has allocated on R's heap since.
    Ok(unsafe { Robj::from_sexp(job.result) })
}

/// The bytes a task or a value is sent as, for tests: whatever wrote them
/// (the plain-data writer or R's serializer), R's `unserialize()` reads them.
/// @noRd
#[extendr]
fn serial_bytes(x: Robj) -> Result<Raw> {
    let bytes = serialize(&x, None).map_err(Error::Other)?;
    Ok(Raw::from_bytes(&bytes))
}

/// The bytes R's own serializer writes for `x` through the same buffers,
/// for tests and `bench/serial.R` to compare with `serial_bytes`.
/// @noRd
#[extendr]
fn serial_bytes_r(x: Robj) -> Result<Raw> {
    let bytes = r_serialize(&x, None, Vec::new()).map_err(Error::Other)?;
    Ok(Raw::from_bytes(&bytes))
}

/// `list(x)` for `x` read from `bytes` by the plain-data reader, or NULL
/// when that reader leaves `bytes` to R's unserializer; for tests.
/// @noRd
#[extendr]
fn serial_read_plain(bytes: Raw) -> Robj {
    let Some(header) = plain_header() else {
        return Robj::from(());
    };
    // SAFETY: R's thread; the result is stored in a list before anything
    // else allocates.
    unsafe {
        match plain_read::read(bytes.as_slice(), header) {
            Some(object) => {
                Rf_protect(object);
                let object = Robj::from_sexp(object);
                Rf_unprotect(1);
                List::from_values([object]).into()
            }
            None => Robj::from(()),
        }
    }
}

extendr_module! {
    mod serial;
    fn serial_bytes;
    fn serial_bytes_r;
    fn serial_read_plain;
}
