//! Writes R's serialization format (version 3, native binary) directly for
//! plain data: NULL, symbols, pairlists and calls, and atomic and generic
//! vectors with their attributes. Tasks and results are nearly always such
//! data, and this skips what `R_Serialize` does before writing a single byte:
//! an 8.8 KB R vector for its reference table, allocated on the R heap for
//! every call (on a host with many pending mirai, the garbage collections
//! that this churn triggers cost more than the serialization itself).
//!
//! Anything else (environments, closures, external pointers, S4 objects,
//! byte code, ALTREP vectors, very deep nesting) makes `write` return
//! `None`, and the caller uses `R_Serialize`. The output is what
//! `R_Serialize` writes, except that a symbol seen twice is written out in
//! full the second time rather than as a back reference, which
//! `R_Unserialize` reads the same way.

use extendr_ffi::{
    R_BaseEnv, R_BaseNamespace, R_EmptyEnv, R_GlobalEnv, R_MissingArg, R_NaString, R_NilValue,
    R_UnboundValue, ALTREP, CAR, CDR, DATAPTR, PRINTNAME, R_CHAR, SEXP, SEXPTYPE, STRING_ELT, TAG,
    TYPEOF, VECTOR_ELT, XLENGTH,
};
use std::os::raw::c_int;

#[allow(improper_ctypes)]
extern "C" {
    fn LEVELS(x: SEXP) -> c_int;
    fn OBJECT(x: SEXP) -> c_int;
    fn ATTRIB(x: SEXP) -> SEXP;
}

/// The item code R writes for an object it never writes out (serialize.c's
/// `SaveSpecialHook`).
unsafe fn special_code(s: SEXP) -> Option<i32> {
    let code = if s == R_NilValue {
        254
    } else if s == R_GlobalEnv {
        253
    } else if s == R_UnboundValue {
        252
    } else if s == R_MissingArg {
        251
    } else if s == R_BaseNamespace {
        247
    } else if s == R_EmptyEnv {
        242
    } else if s == R_BaseEnv {
        241
    } else {
        return None;
    };
    Some(code)
}

const IS_OBJECT: i32 = 1 << 8;
const HAS_ATTR: i32 = 1 << 9;
const HAS_TAG: i32 = 1 << 10;
/// CHARSXP levels that describe R's cache, not the string.
const CHARSXP_CACHE_BITS: i32 = (1 << 5) | 1;
const MAX_DEPTH: usize = 512;
const LONG_LENGTH: i64 = i32::MAX as i64;

struct Unsupported;

type Written = Result<(), Unsupported>;

/// Appends the serialization of `object` to `out` (after `header`, the
/// bytes R writes before the first item), or returns `None`, leaving `out`
/// as it was, when `object` holds anything but plain data.
///
/// # Safety
/// R's thread, `object` protected.
pub(crate) unsafe fn write(object: SEXP, header: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    out.extend_from_slice(header);
    match item(object, out, 0) {
        Ok(()) => Some(()),
        Err(Unsupported) => {
            out.truncate(start);
            None
        }
    }
}

fn int(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_ne_bytes());
}

fn flags(s: SEXP, kind: SEXPTYPE, has_attr: bool, has_tag: bool) -> i32 {
    let mut levels = unsafe { LEVELS(s) };
    if kind == SEXPTYPE::CHARSXP {
        levels &= !CHARSXP_CACHE_BITS;
    }
    let mut flags = kind as i32 | (levels << 12);
    if unsafe { OBJECT(s) } != 0 {
        flags |= IS_OBJECT;
    }
    if has_attr {
        flags |= HAS_ATTR;
    }
    if has_tag {
        flags |= HAS_TAG;
    }
    flags
}

fn length(out: &mut Vec<u8>, len: i64) {
    if len > LONG_LENGTH {
        int(out, -1);
        int(out, (len / 4_294_967_296) as i32);
        int(out, (len % 4_294_967_296) as i32);
    } else {
        int(out, len as i32);
    }
}

/// The `len` elements of `s`, `width` bytes each, as they lie in memory;
/// `Unsupported` when memory for them cannot be had (R's serializer then
/// fails with an R error, rather than this process aborting).
unsafe fn raw_elements(s: SEXP, len: i64, width: usize, out: &mut Vec<u8>) -> Written {
    let bytes = len as usize * width;
    if bytes > 0 {
        out.try_reserve(bytes).map_err(|_| Unsupported)?;
        out.extend_from_slice(std::slice::from_raw_parts(DATAPTR(s) as *const u8, bytes));
    }
    Ok(())
}

unsafe fn charsxp(s: SEXP, out: &mut Vec<u8>) {
    int(out, flags(s, SEXPTYPE::CHARSXP, false, false));
    if s == R_NaString {
        int(out, -1);
    } else {
        let bytes = std::ffi::CStr::from_ptr(R_CHAR(s)).to_bytes();
        int(out, bytes.len() as i32);
        out.extend_from_slice(bytes);
    }
}

unsafe fn item(mut s: SEXP, out: &mut Vec<u8>, depth: usize) -> Written {
    if depth > MAX_DEPTH {
        return Err(Unsupported);
    }
    loop {
        if let Some(code) = special_code(s) {
            int(out, code);
            return Ok(());
        }
        let kind = TYPEOF(s);
        if ALTREP(s) != 0 {
            return Err(Unsupported);
        }
        if kind == SEXPTYPE::SYMSXP {
            int(out, SEXPTYPE::SYMSXP as i32);
            charsxp(PRINTNAME(s), out);
            return Ok(());
        }
        let attrib = ATTRIB(s);
        let has_attr = kind != SEXPTYPE::CHARSXP && attrib != R_NilValue;
        match kind {
            SEXPTYPE::LISTSXP | SEXPTYPE::LANGSXP => {
                let tag = TAG(s);
                int(out, flags(s, kind, has_attr, tag != R_NilValue));
                if has_attr {
                    item(attrib, out, depth + 1)?;
                }
                if tag != R_NilValue {
                    item(tag, out, depth + 1)?;
                }
                item(CAR(s), out, depth + 1)?;
                // The rest of the pairlist follows as its own item, in a
                // loop rather than by recursion, as R does.
                s = CDR(s);
                continue;
            }
            SEXPTYPE::CHARSXP => charsxp(s, out),
            SEXPTYPE::LGLSXP
            | SEXPTYPE::INTSXP
            | SEXPTYPE::REALSXP
            | SEXPTYPE::CPLXSXP
            | SEXPTYPE::RAWSXP => {
                let width = match kind {
                    SEXPTYPE::REALSXP => 8,
                    SEXPTYPE::CPLXSXP => 16,
                    SEXPTYPE::RAWSXP => 1,
                    _ => 4,
                };
                int(out, flags(s, kind, has_attr, false));
                let len = XLENGTH(s) as i64;
                length(out, len);
                raw_elements(s, len, width, out)?;
            }
            SEXPTYPE::STRSXP => {
                int(out, flags(s, kind, has_attr, false));
                let len = XLENGTH(s) as i64;
                length(out, len);
                for i in 0..len {
                    charsxp(STRING_ELT(s, i as _), out);
                }
            }
            SEXPTYPE::VECSXP | SEXPTYPE::EXPRSXP => {
                int(out, flags(s, kind, has_attr, false));
                let len = XLENGTH(s) as i64;
                length(out, len);
                for i in 0..len {
                    item(VECTOR_ELT(s, i as _), out, depth + 1)?;
                }
            }
            _ => return Err(Unsupported),
        }
        if has_attr {
            item(attrib, out, depth + 1)?;
        }
        return Ok(());
    }
}
