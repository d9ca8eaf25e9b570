//! Writes R's serialization format (version 3, native binary) directly for
//! plain data: NULL, symbols, pairlists and calls, and atomic and generic
//! vectors with their attributes. Tasks and results are nearly always such
//! data, and this skips what `R_Serialize` does before writing a single byte:
//! an 8.8 KB R vector for its reference table, allocated on the R heap for
//! every call (on a host with many pending mirai, the garbage collections
//! that this churn triggers cost more than the serialization itself).
//!
//! Only R's API is used. R 4.5 has no call that lists an object's
//! attributes, so an object that has any (`ANY_ATTRIB`) has them read by
//! evaluating `attributes(x)`, and compact row names (`c(NA, -n)`, which
//! `attributes()` expands) by `.row_names_info(x, 0L)`, each under
//! `R_tryEvalSilent` (no R error jumps through Rust frames). That costs an R
//! call per attributed object: past `MAX_ATTRIBUTED` of them in one object,
//! `R_Serialize`, whose cost per object is lower, writes it instead.
//!
//! Anything else (environments, closures, external pointers, S4 objects,
//! byte code, ALTREP vectors other than `external`'s, very deep nesting)
//! makes `write` return `None`, and the caller uses `R_Serialize`. The output is what
//! `R_Serialize` writes, except that a symbol seen twice is written out in
//! full the second time rather than as a back reference, which
//! `R_Unserialize` reads the same way, and that the header's `LEVELS` of
//! objects other than strings are written as 0: R keeps there only the S4
//! bit (S4 objects are left to R) and whether a vector may grow in place,
//! which the reader has no use for.

use crate::external;
use crate::ffi::{
    any_attrib, cetype, sexptype::*, R_BaseEnv, R_EmptyEnv, R_GlobalEnv, R_MissingArg, R_NaString,
    R_NamesSymbol, R_NilValue, R_PreserveObject, R_RowNamesSymbol, R_tryEvalSilent,
    Rf_ScalarInteger, Rf_getAttrib, Rf_getCharCE, Rf_install, Rf_isObject, Rf_isS4, Rf_lang2,
    Rf_lang3, Rf_protect, Rf_unprotect, ALTREP, CAR, CDR, DATAPTR_RO, LENGTH, PRINTNAME, R_CHAR,
    SETCAR, SEXP, STRING_ELT, TAG, TYPEOF, VECTOR_ELT, XLENGTH,
};
use std::cell::Cell;
use std::os::raw::c_int;

/// The item code R writes for an object it never writes out (serialize.c's
/// `SaveSpecialHook`).
unsafe fn special_code(s: SEXP) -> Option<i32> {
    let code = if s == R_NilValue {
        254
    } else if s == R_GlobalEnv {
        253
    } else if s == R_MissingArg {
        251
    } else if s == R_EmptyEnv {
        242
    } else if s == R_BaseEnv {
        241
    } else {
        return None;
    };
    Some(code)
}

pub(crate) const IS_OBJECT: i32 = 1 << 8;
pub(crate) const HAS_ATTR: i32 = 1 << 9;
pub(crate) const HAS_TAG: i32 = 1 << 10;
/// A string's `LEVELS` as R writes them: its encoding, and whether it is
/// all ASCII (R's Defn.h). R sets no encoding on an ASCII string.
pub(crate) const BYTES_MASK: i32 = 1 << 1;
pub(crate) const LATIN1_MASK: i32 = 1 << 2;
pub(crate) const UTF8_MASK: i32 = 1 << 3;
const ASCII_MASK: i32 = 1 << 6;
pub(crate) const NIL_ITEM: i32 = 254;
pub(crate) const MAX_DEPTH: usize = 512;
const LONG_LENGTH: i64 = i32::MAX as i64;
/// Attributed objects one write reads the attributes of, at most: about
/// where `R_Serialize`'s lower cost per object has made up for its higher
/// fixed cost (`bench/serial.R`: lists of 16 and of 32 small named lists).
const MAX_ATTRIBUTED: usize = 24;

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
    let mut writer = Writer { out, attributed: 0 };
    match writer.item(object, 0) {
        Ok(()) => Some(()),
        Err(Unsupported) => {
            out.truncate(start);
            None
        }
    }
}

/// The R calls that read an object's attributes, made once and kept from
/// the garbage collector for the life of the process. Each has one argument
/// slot (a pairlist cell), set to the object only while the call runs.
#[derive(Clone, Copy)]
struct Calls {
    /// `attributes(x)`
    attributes: SEXP,
    attributes_arg: SEXP,
    /// `.row_names_info(x, 0L)`: the row names as stored.
    row_names: SEXP,
    row_names_arg: SEXP,
    /// `quote(x)`, for a call `x` (which would be evaluated as an argument).
    quoted: SEXP,
    quoted_arg: SEXP,
}

thread_local! {
    static CALLS: Cell<Option<Calls>> = const { Cell::new(None) };
}

impl Calls {
    /// The calls, made on first use; `None` if R could not find the
    /// functions in its base environment.
    ///
    /// # Safety
    /// R's thread.
    unsafe fn get() -> Option<Calls> {
        if let Some(calls) = CALLS.with(Cell::get) {
            return Some(calls);
        }
        let base = |name: &std::ffi::CStr| try_eval(Rf_install(name.as_ptr()));
        let kept = |call: SEXP| {
            R_PreserveObject(call);
            call
        };
        let (attributes, row_names_info, quote) = (
            base(c"attributes")?,
            base(c".row_names_info")?,
            base(c"quote")?,
        );
        let attributes = kept(Rf_lang2(attributes, R_NilValue));
        let zero = Rf_protect(Rf_ScalarInteger(0));
        let row_names = kept(Rf_lang3(row_names_info, R_NilValue, zero));
        Rf_unprotect(1);
        let quoted = kept(Rf_lang2(quote, R_NilValue));
        let calls = Calls {
            attributes,
            attributes_arg: CDR(attributes),
            row_names,
            row_names_arg: CDR(row_names),
            quoted,
            quoted_arg: CDR(quoted),
        };
        CALLS.with(|c| c.set(Some(calls)));
        Some(calls)
    }

    /// `call` with `x` (of type `kind`) as its argument, evaluated; the
    /// result unprotected.
    unsafe fn eval_on(&self, call: SEXP, slot: SEXP, x: SEXP, kind: c_int) -> Option<SEXP> {
        if kind == LANGSXP {
            SETCAR(self.quoted_arg, x);
            SETCAR(slot, self.quoted);
        } else {
            SETCAR(slot, x);
        }
        let value = try_eval(call);
        SETCAR(slot, R_NilValue);
        SETCAR(self.quoted_arg, R_NilValue);
        value
    }
}

/// `expr` evaluated in R's base environment; `None` after an R error or
/// interrupt, which stops there rather than jumping through Rust frames.
unsafe fn try_eval(expr: SEXP) -> Option<SEXP> {
    let mut error: c_int = 0;
    let value = R_tryEvalSilent(expr, R_BaseEnv, &mut error);
    (error == 0).then_some(value)
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    attributed: usize,
}

impl Writer<'_> {
    fn int(&mut self, value: i32) {
        self.out.extend_from_slice(&value.to_ne_bytes());
    }

    fn length(&mut self, len: i64) {
        if len > LONG_LENGTH {
            self.int(-1);
            self.int((len / 4_294_967_296) as i32);
            self.int((len % 4_294_967_296) as i32);
        } else {
            self.int(len as i32);
        }
    }

    /// The `len` elements of `s`, `width` bytes each, as they lie in memory;
    /// `Unsupported` when memory for them cannot be had (R's serializer then
    /// fails with an R error, rather than this process aborting).
    unsafe fn raw_elements(&mut self, s: SEXP, len: i64, width: usize) -> Written {
        let bytes = len as usize * width;
        if bytes > 0 {
            self.out.try_reserve(bytes).map_err(|_| Unsupported)?;
            self.out
                .extend_from_slice(std::slice::from_raw_parts(DATAPTR_RO(s).cast(), bytes));
        }
        Ok(())
    }

    unsafe fn charsxp(&mut self, s: SEXP) {
        if s == R_NaString {
            self.int(CHARSXP);
            self.int(-1);
            return;
        }
        let len = usize::try_from(LENGTH(s)).unwrap_or(0);
        let bytes = std::slice::from_raw_parts(R_CHAR(s).cast::<u8>(), len);
        let mut levels = match Rf_getCharCE(s) {
            cetype::UTF8 => UTF8_MASK,
            cetype::LATIN1 => LATIN1_MASK,
            cetype::BYTES => BYTES_MASK,
            _ => 0,
        };
        if bytes.is_ascii() {
            levels |= ASCII_MASK;
        }
        self.int(CHARSXP | (levels << 12));
        self.int(len as i32);
        self.out.extend_from_slice(bytes);
    }

    unsafe fn symbol(&mut self, s: SEXP) -> Written {
        let name = PRINTNAME(s);
        // R's unbound-value marker is a symbol without a name.
        if TYPEOF(name) != CHARSXP {
            return Err(Unsupported);
        }
        self.int(SYMSXP);
        self.charsxp(name);
        Ok(())
    }

    unsafe fn item(&mut self, mut s: SEXP, depth: usize) -> Written {
        if depth > MAX_DEPTH {
            return Err(Unsupported);
        }
        loop {
            if let Some(code) = special_code(s) {
                self.int(code);
                return Ok(());
            }
            let kind = TYPEOF(s);
            if kind == SYMSXP {
                return self.symbol(s);
            }
            if ALTREP(s) != 0 && !external::is_ours(s) {
                return Err(Unsupported);
            }
            let has_attr = any_attrib(s);
            let mut flags = kind;
            if has_attr {
                if Rf_isS4(s) != 0 {
                    return Err(Unsupported);
                }
                flags |= HAS_ATTR;
                if Rf_isObject(s) != 0 {
                    flags |= IS_OBJECT;
                }
            }
            match kind {
                LISTSXP | LANGSXP => {
                    let tag = TAG(s);
                    self.int(if tag == R_NilValue {
                        flags
                    } else {
                        flags | HAS_TAG
                    });
                    if has_attr {
                        self.attributes(s, kind, depth + 1)?;
                    }
                    if tag != R_NilValue {
                        self.item(tag, depth + 1)?;
                    }
                    self.item(CAR(s), depth + 1)?;
                    // The rest of the pairlist follows as its own item, in a
                    // loop rather than by recursion, as R does.
                    s = CDR(s);
                    continue;
                }
                CHARSXP => {
                    self.charsxp(s);
                    return Ok(());
                }
                LGLSXP | INTSXP | REALSXP | CPLXSXP | RAWSXP => {
                    let width = match kind {
                        REALSXP => 8,
                        CPLXSXP => 16,
                        RAWSXP => 1,
                        _ => 4,
                    };
                    self.int(flags);
                    let len = XLENGTH(s) as i64;
                    self.length(len);
                    self.raw_elements(s, len, width)?;
                }
                STRSXP => {
                    self.int(flags);
                    let len = XLENGTH(s) as i64;
                    self.length(len);
                    for i in 0..len {
                        self.charsxp(STRING_ELT(s, i as _));
                    }
                }
                VECSXP | EXPRSXP => {
                    self.int(flags);
                    let len = XLENGTH(s) as i64;
                    self.length(len);
                    for i in 0..len {
                        self.item(VECTOR_ELT(s, i as _), depth + 1)?;
                    }
                }
                _ => return Err(Unsupported),
            }
            if has_attr {
                self.attributes(s, kind, depth + 1)?;
            }
            return Ok(());
        }
    }

    /// The attributes of `s` (of type `kind`), as the tagged pairlist R
    /// keeps them in.
    unsafe fn attributes(&mut self, s: SEXP, kind: c_int, depth: usize) -> Written {
        if self.attributed == MAX_ATTRIBUTED {
            return Err(Unsupported);
        }
        self.attributed += 1;
        let calls = Calls::get().ok_or(Unsupported)?;
        let list = calls
            .eval_on(calls.attributes, calls.attributes_arg, s, kind)
            .ok_or(Unsupported)?;
        let list = Rf_protect(list);
        let written = self.attribute_list(s, kind, list, calls, depth);
        Rf_unprotect(1);
        written
    }

    unsafe fn attribute_list(
        &mut self,
        s: SEXP,
        kind: c_int,
        list: SEXP,
        calls: Calls,
        depth: usize,
    ) -> Written {
        if TYPEOF(list) != VECSXP {
            return Err(Unsupported);
        }
        let names = Rf_getAttrib(list, R_NamesSymbol);
        let names_name = PRINTNAME(R_NamesSymbol);
        let row_names_name = PRINTNAME(R_RowNamesSymbol);
        for i in 0..XLENGTH(list) {
            let name = STRING_ELT(names, i);
            // A pairlist's names are its tags, which `attributes()` lists
            // first: they are not among its attributes.
            if kind == LISTSXP && name == names_name {
                continue;
            }
            self.int(LISTSXP | HAS_TAG);
            self.int(SYMSXP);
            self.charsxp(name);
            if name == row_names_name {
                let stored = calls
                    .eval_on(calls.row_names, calls.row_names_arg, s, kind)
                    .ok_or(Unsupported)?;
                let stored = Rf_protect(stored);
                let written = self.item(stored, depth + 1);
                Rf_unprotect(1);
                written?;
            } else {
                self.item(VECTOR_ELT(list, i), depth + 1)?;
            }
        }
        self.int(NIL_ITEM);
        Ok(())
    }
}
