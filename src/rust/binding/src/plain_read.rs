//! Reads plain data (what `plain` writes: NULL, symbols, pairlists and calls,
//! atomic and generic vectors with their attributes) from R's serialization
//! format straight into new R objects, with R's API only. The elements of an
//! atomic vector are copied from the received bytes into the vector's memory
//! in one go, and a large vector's memory is first asked to be backed by huge
//! pages: filling freshly mapped memory 4 KiB page by page costs more in page
//! faults than the copy itself.
//!
//! Attributes are set with `Rf_setAttrib`, in the order they were written
//! (`attributes()`'s: names first, then as stored, so `dim` before
//! `dimnames`). Anything else (a reference, an environment, a header other
//! than this R's own, attributes on a pairlist cell) makes `read` return
//! `None` and the caller uses `R_Unserialize`, as it does when R raises an
//! error here (out of memory, an attribute R refuses). `plain_scan` finds
//! the first kind of case before anything is allocated.
//!
//! Runs under `R_ToplevelExec` (see `serial::run_toplevel`): every frame
//! below `run_read` holds only raw pointers and integers, nothing with a
//! destructor.

use crate::external;
use crate::ffi::{
    cetype, sexptype::*, R_BaseEnv, R_EmptyEnv, R_GlobalEnv, R_MissingArg, R_NaString, R_NilValue,
    R_xlen_t, Rf_allocVector, Rf_cons, Rf_installChar, Rf_lcons, Rf_mkCharLenCE, Rf_protect,
    Rf_setAttrib, Rf_unprotect, COMPLEX, INTEGER, LOGICAL, RAW, REAL, SETCAR, SETCDR,
    SET_STRING_ELT, SET_TAG, SET_VECTOR_ELT, SEXP,
};
use crate::plain::{
    BYTES_MASK, HAS_ATTR, HAS_TAG, IS_OBJECT, LATIN1_MASK, MAX_DEPTH, NIL_ITEM, UTF8_MASK,
};
use crate::plain_scan::is_plain;
use crate::serial::run_toplevel;
use std::os::raw::{c_int, c_void};

/// Vectors of at least this many bytes are asked for huge pages.
const HUGE_PAGE_BYTES: usize = 2 << 20;

struct Unsupported;

type Read<T> = Result<T, Unsupported>;

struct Reader {
    next: *const u8,
    end: *const u8,
    /// Objects protected by this reader and not yet stored in another: the
    /// ones left when it stops early are unprotected by `run_read`.
    protected: c_int,
    result: SEXP,
    done: bool,
}

/// The object serialized in `bytes` after `header` (the bytes R writes
/// before the first item), or `None` when `bytes` starts otherwise or holds
/// more than plain data. The result is unprotected.
///
/// # Safety
/// R's main thread.
pub(crate) unsafe fn read(bytes: &[u8], header: &[u8]) -> Option<SEXP> {
    let body = bytes.strip_prefix(header)?;
    // Also makes every attribute's name a symbol: symbols are never
    // collected, so a name needs no protection while its value is read.
    if !is_plain(body) {
        return None;
    }
    let mut reader = Reader {
        next: body.as_ptr(),
        end: body.as_ptr().add(body.len()),
        protected: 0,
        result: R_NilValue,
        done: false,
    };
    let finished = run_toplevel(run_read, &mut reader);
    (finished && reader.done).then_some(reader.result)
}

unsafe extern "C" fn run_read(data: *mut c_void) {
    let reader = &mut *(data as *mut Reader);
    let item = reader.item(0);
    if let Ok(s) = item {
        reader.done = reader.next == reader.end;
        reader.result = s;
    }
    Rf_unprotect(reader.protected);
}

impl Reader {
    unsafe fn take(&mut self, n: usize) -> Read<*const u8> {
        if (self.end as usize) - (self.next as usize) < n {
            return Err(Unsupported);
        }
        let at = self.next;
        self.next = self.next.add(n);
        Ok(at)
    }

    unsafe fn int(&mut self) -> Read<i32> {
        let at = self.take(4)?;
        Ok(i32::from_ne_bytes(std::ptr::read_unaligned(at.cast())))
    }

    unsafe fn length(&mut self) -> Read<usize> {
        let len = self.int()?;
        if len >= 0 {
            return Ok(len as usize);
        }
        if len != -1 {
            return Err(Unsupported);
        }
        let upper = self.int()? as u32 as u64;
        let lower = self.int()? as u32 as u64;
        usize::try_from((upper << 32) | lower).map_err(|_| Unsupported)
    }

    unsafe fn protect(&mut self, s: SEXP) -> SEXP {
        self.protected += 1;
        Rf_protect(s)
    }

    /// `s`, the object last protected, unprotected: the caller stores it
    /// before allocating anything.
    unsafe fn unprotect(&mut self, s: SEXP) -> SEXP {
        self.protected -= 1;
        Rf_unprotect(1);
        s
    }

    unsafe fn item(&mut self, depth: usize) -> Read<SEXP> {
        if depth > MAX_DEPTH {
            return Err(Unsupported);
        }
        let flags = self.int()?;
        self.item_of(flags, depth)
    }

    unsafe fn item_of(&mut self, flags: i32, depth: usize) -> Read<SEXP> {
        let kind = flags & 0xff;
        let has_attr = flags & HAS_ATTR != 0;
        // `LEVELS` other than a string's: the writer here writes none; R's
        // serializer writes, among others, the S4 bit, which only R's reader
        // restores.
        if kind != CHARSXP && flags >> 12 != 0 {
            return Err(Unsupported);
        }
        match kind {
            254 => Ok(R_NilValue),
            253 => Ok(R_GlobalEnv),
            251 => Ok(R_MissingArg),
            242 => Ok(R_EmptyEnv),
            241 => Ok(R_BaseEnv),
            SYMSXP => {
                let flags = self.int()?;
                let name = self.string(flags)?;
                if name == R_NaString {
                    return Err(Unsupported);
                }
                let name = self.protect(name);
                let symbol = Rf_installChar(name);
                self.unprotect(name);
                Ok(symbol)
            }
            LISTSXP | LANGSXP => self.pairlist(flags, depth),
            LGLSXP | INTSXP | REALSXP | CPLXSXP | RAWSXP | STRSXP | VECSXP | EXPRSXP => {
                let len = self.length()?;
                // Every element takes at least 4 bytes of the input (8 for a
                // double, a string's length): a length the input cannot hold
                // allocates nothing.
                let least = match kind {
                    RAWSXP => 1,
                    REALSXP => 8,
                    CPLXSXP => 16,
                    _ => 4,
                };
                if len.saturating_mul(least) > self.end as usize - self.next as usize {
                    return Err(Unsupported);
                }
                let s = self.protect(new_vector(kind, len));
                match kind {
                    STRSXP => {
                        for i in 0..len {
                            let flags = self.int()?;
                            SET_STRING_ELT(s, i as R_xlen_t, self.string(flags)?);
                        }
                    }
                    VECSXP | EXPRSXP => {
                        for i in 0..len {
                            let element = self.item(depth + 1)?;
                            SET_VECTOR_ELT(s, i as R_xlen_t, element);
                        }
                    }
                    _ => self.elements(s, kind, len)?,
                }
                if has_attr {
                    self.attributes(s, depth + 1)?;
                } else if flags & IS_OBJECT != 0 {
                    return Err(Unsupported);
                }
                Ok(self.unprotect(s))
            }
            _ => Err(Unsupported),
        }
    }

    /// A pairlist or call, its cells read in a loop (a long argument list
    /// must not recurse once per cell).
    unsafe fn pairlist(&mut self, mut flags: i32, depth: usize) -> Read<SEXP> {
        let mut head = R_NilValue;
        let mut tail = R_NilValue;
        loop {
            let kind = flags & 0xff;
            if flags & HAS_ATTR != 0 {
                return Err(Unsupported);
            }
            let cell = if kind == LANGSXP {
                Rf_lcons(R_NilValue, R_NilValue)
            } else {
                Rf_cons(R_NilValue, R_NilValue)
            };
            if head == R_NilValue {
                head = self.protect(cell);
            } else {
                SETCDR(tail, cell);
            }
            tail = cell;
            if flags & HAS_TAG != 0 {
                let tag = self.item(depth + 1)?;
                SET_TAG(cell, tag);
            }
            let car = self.item(depth + 1)?;
            SETCAR(cell, car);
            flags = self.int()?;
            let next = flags & 0xff;
            if next != LISTSXP && next != LANGSXP {
                let rest = self.item_of(flags, depth + 1)?;
                SETCDR(tail, rest);
                return Ok(self.unprotect(head));
            }
        }
    }

    /// A string (a CHARSXP item whose flags were read): R's NA, or a new
    /// one in the encoding it was written with.
    unsafe fn string(&mut self, flags: i32) -> Read<SEXP> {
        if flags & 0xff != CHARSXP {
            return Err(Unsupported);
        }
        let len = self.int()?;
        if len == -1 {
            return Ok(R_NaString);
        }
        let len = usize::try_from(len).map_err(|_| Unsupported)?;
        let at = self.take(len)?;
        let levels = flags >> 12;
        let encoding = if levels & UTF8_MASK != 0 {
            cetype::UTF8
        } else if levels & LATIN1_MASK != 0 {
            cetype::LATIN1
        } else if levels & BYTES_MASK != 0 {
            cetype::BYTES
        } else {
            cetype::NATIVE
        };
        Ok(Rf_mkCharLenCE(at.cast(), len as c_int, encoding))
    }

    /// The `len` elements of the atomic vector `s`, as they lie in memory.
    unsafe fn elements(&mut self, s: SEXP, kind: c_int, len: usize) -> Read<()> {
        let (width, memory): (usize, *mut u8) = match kind {
            LGLSXP => (4, LOGICAL(s).cast()),
            INTSXP => (4, INTEGER(s).cast()),
            REALSXP => (8, REAL(s).cast()),
            CPLXSXP => (16, COMPLEX(s).cast()),
            _ => (1, RAW(s).cast()),
        };
        let bytes = len.checked_mul(width).ok_or(Unsupported)?;
        let from = self.take(bytes)?;
        if bytes >= HUGE_PAGE_BYTES {
            ask_huge_pages(memory, bytes);
        }
        std::ptr::copy_nonoverlapping(from, memory, bytes);
        Ok(())
    }

    /// The attribute pairlist of `s`, set one by one.
    unsafe fn attributes(&mut self, s: SEXP, depth: usize) -> Read<()> {
        loop {
            let flags = self.int()?;
            if flags == NIL_ITEM {
                return Ok(());
            }
            if flags != LISTSXP | HAS_TAG {
                return Err(Unsupported);
            }
            let name = self.item(depth)?;
            if name == R_NilValue {
                return Err(Unsupported);
            }
            let value = self.item(depth)?;
            Rf_setAttrib(s, name, value);
        }
    }
}

/// A new vector of type `kind` and length `len`, unprotected: a large
/// atomic one in a pooled buffer (see `external`), else as R allocates.
///
/// # Safety
/// R's thread, under `R_ToplevelExec`.
unsafe fn new_vector(kind: c_int, len: usize) -> SEXP {
    let width = match kind {
        RAWSXP => 1,
        LGLSXP | INTSXP => 4,
        REALSXP => 8,
        CPLXSXP => 16,
        _ => 0,
    };
    let bytes = len.saturating_mul(width);
    if bytes >= external::MIN_BYTES {
        if let Some(s) = external::alloc(kind, len, bytes) {
            return s;
        }
    }
    Rf_allocVector(kind as _, len as R_xlen_t)
}

/// Asks the kernel to back the whole pages of `[memory, memory + bytes)`,
/// not yet written, with huge pages (a hint: no effect where it cannot).
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn ask_huge_pages(memory: *mut u8, bytes: usize) {
    let page = 4096usize;
    let start = (memory as usize).div_ceil(page) * page;
    let end = (memory as usize + bytes) / page * page;
    if end > start {
        libc::madvise(start as *mut c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
unsafe fn ask_huge_pages(_memory: *mut u8, _bytes: usize) {}
