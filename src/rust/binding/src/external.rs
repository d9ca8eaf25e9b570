//! Large atomic vectors read from a message, held in buffers of the
//! binding's rather than in R's heap: an ALTREP class for each atomic type
//! whose data pointer is a buffer from the pool (`mirai_core::pool`).
//!
//! A fresh R vector of tens of megabytes costs its first touch of every page,
//! and it counts towards R's heap limit, so receiving one on every call sets
//! off one of R's garbage collections on most calls (bench/PROFILE.md). A
//! buffer that held an earlier such vector is already mapped, and R's heap
//! limit does not see it.
//!
//! Bound: the bytes of these vectors not yet freed are counted (`HELD`).
//! Before one more would take them past `LIMIT`, a full collection runs,
//! which frees those no longer referenced (the finalizer of each hands its
//! buffer back to the pool), and the limit becomes what is then held plus a
//! headroom: half as much again, and at least `HEADROOM_MESSAGES` vectors
//! of the size just asked for, and `MIN_HEADROOM`. So unreferenced vectors
//! of this kind never hold more than that headroom, a bounded multiple of
//! the largest recent one (or of what is in use), and a session receiving
//! one large vector per call pays one collection every few calls rather
//! than on most of them.
//!
//! Every function here runs on R's thread: the classes are made once, when
//! R loads the package; R calls the methods and the finalizer.

use std::cell::Cell;
use std::ffi::CStr;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use mirai_core::pool;

use crate::ffi::{
    sexptype::*, AltrepClass, DllInfo, R_ClearExternalPtr, R_ExternalPtrAddr, R_MakeExternalPtr,
    R_NilValue, R_RegisterCFinalizerEx, R_altrep_data1, R_altrep_inherits, R_gc,
    R_make_altcomplex_class, R_make_altinteger_class, R_make_altlogical_class, R_make_altraw_class,
    R_make_altreal_class, R_new_altrep, R_set_altrep_Length_method, R_set_altvec_Dataptr_method,
    R_set_altvec_Dataptr_or_null_method, R_xlen_t, Rboolean, Rf_protect, Rf_unprotect, SEXP,
};

/// Atomic vectors of at least this many bytes are read into a pooled buffer
/// (the pool keeps nothing smaller).
pub(crate) const MIN_BYTES: usize = pool::MIN_POOLED;

/// The least room left for such vectors before a collection runs.
const MIN_HEADROOM: usize = 256 << 20;

/// The room left, in vectors of the size that set off a collection.
const HEADROOM_MESSAGES: usize = 4;

static HELD: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(MIN_HEADROOM);

/// The memory of one vector: `len` elements at the start of `buffer`.
struct Block {
    buffer: Vec<u8>,
    len: R_xlen_t,
}

impl Drop for Block {
    fn drop(&mut self) {
        HELD.fetch_sub(self.buffer.capacity(), Ordering::Relaxed);
        pool::give(std::mem::take(&mut self.buffer));
    }
}

/// The classes, by `sexptype` (logical, integer, double, complex, raw).
#[derive(Clone, Copy)]
struct Classes {
    logical: AltrepClass,
    integer: AltrepClass,
    real: AltrepClass,
    complex: AltrepClass,
    raw: AltrepClass,
}

thread_local! {
    static CLASSES: Cell<Option<Classes>> = const { Cell::new(None) };
}

impl Classes {
    fn of(&self, kind: c_int) -> Option<AltrepClass> {
        match kind {
            LGLSXP => Some(self.logical),
            INTSXP => Some(self.integer),
            REALSXP => Some(self.real),
            CPLXSXP => Some(self.complex),
            RAWSXP => Some(self.raw),
            _ => None,
        }
    }

    fn all(&self) -> [AltrepClass; 5] {
        [
            self.logical,
            self.integer,
            self.real,
            self.complex,
            self.raw,
        ]
    }
}

/// Makes the classes (when R loads the package).
///
/// # Safety
/// R's thread; `info` the package's.
pub(crate) unsafe fn register(info: *mut DllInfo) {
    let package = c"mirai".as_ptr();
    let make = |class: AltrepClass| {
        R_set_altrep_Length_method(class, length);
        R_set_altvec_Dataptr_method(class, dataptr);
        R_set_altvec_Dataptr_or_null_method(class, dataptr_or_null);
        class
    };
    let name = |n: &CStr| n.as_ptr();
    let classes = Classes {
        logical: make(R_make_altlogical_class(
            name(c"mirai_logical"),
            package,
            info,
        )),
        integer: make(R_make_altinteger_class(
            name(c"mirai_integer"),
            package,
            info,
        )),
        real: make(R_make_altreal_class(name(c"mirai_real"), package, info)),
        complex: make(R_make_altcomplex_class(
            name(c"mirai_complex"),
            package,
            info,
        )),
        raw: make(R_make_altraw_class(name(c"mirai_raw"), package, info)),
    };
    CLASSES.with(|c| c.set(Some(classes)));
}

/// A new vector of type `kind` (an atomic type) of `len` elements, `bytes`
/// in all, its memory a pooled buffer, not filled; unprotected. `None` when
/// there is no such class or no aligned buffer: the caller allocates as R
/// does.
///
/// # Safety
/// R's thread, where an R error may jump (as under `R_ToplevelExec`).
pub(crate) unsafe fn alloc(kind: c_int, len: usize, bytes: usize) -> Option<SEXP> {
    let class = CLASSES.with(Cell::get)?.of(kind)?;
    if HELD.load(Ordering::Relaxed).saturating_add(bytes) > LIMIT.load(Ordering::Relaxed) {
        R_gc();
        let held = HELD.load(Ordering::Relaxed).saturating_add(bytes);
        let headroom = (held / 2)
            .max(bytes.saturating_mul(HEADROOM_MESSAGES))
            .max(MIN_HEADROOM);
        LIMIT.store(held.saturating_add(headroom), Ordering::Relaxed);
    }
    let buffer = pool::take(bytes).ok()?;
    // Any element type's alignment (a complex is two doubles).
    if buffer.as_ptr().align_offset(16) != 0 {
        pool::give(buffer);
        return None;
    }
    HELD.fetch_add(buffer.capacity(), Ordering::Relaxed);
    let block = Box::into_raw(Box::new(Block {
        buffer,
        len: len as R_xlen_t,
    }));
    let owner = Rf_protect(R_MakeExternalPtr(block.cast(), R_NilValue, R_NilValue));
    R_RegisterCFinalizerEx(owner, Some(finalize), Rboolean::FALSE);
    let vector = R_new_altrep(class, owner, R_NilValue);
    Rf_unprotect(1);
    Some(vector)
}

/// Whether `x` is one of these vectors.
///
/// # Safety
/// R's thread; `x` an ALTREP object.
pub(crate) unsafe fn is_ours(x: SEXP) -> bool {
    CLASSES.with(Cell::get).is_some_and(|c| {
        c.all()
            .iter()
            .any(|class| R_altrep_inherits(x, *class) != Rboolean::FALSE)
    })
}

unsafe fn block(x: SEXP) -> *mut Block {
    R_ExternalPtrAddr(R_altrep_data1(x)).cast::<Block>()
}

unsafe extern "C" fn length(x: SEXP) -> R_xlen_t {
    block(x).as_ref().map_or(0, |b| b.len)
}

unsafe extern "C" fn dataptr(x: SEXP, _writeable: Rboolean) -> *mut c_void {
    block(x)
        .as_mut()
        .map_or(std::ptr::null_mut(), |b| b.buffer.as_mut_ptr().cast())
}

unsafe extern "C" fn dataptr_or_null(x: SEXP) -> *const c_void {
    dataptr(x, Rboolean::FALSE)
}

extern "C" fn finalize(owner: SEXP) {
    // SAFETY: called once by R's collector, on the pointer made in `alloc`,
    // when nothing can reach the vector any more.
    unsafe {
        let block = R_ExternalPtrAddr(owner).cast::<Block>();
        R_ClearExternalPtr(owner);
        if !block.is_null() {
            drop(Box::from_raw(block));
        }
    }
}
