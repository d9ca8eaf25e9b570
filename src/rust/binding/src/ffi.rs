//! Every raw R entry point the binding uses, declared here and nowhere else.
//!
//! Each is marked with its status in "Writing R Extensions" for R 4.5, as
//! `tools:::funAPI()` of R 4.5.0 reports it: `api` (the stable API) or
//! `eapi` (the experimental API). The variables are the API's constants,
//! which `funAPI()` does not list (it lists functions) and `R CMD check`
//! does not flag. Each is in R 4.2's libR too (the oldest R the package
//! builds on), unless marked "new in R 4.5". Where one is new, the
//! crate's build script sets `cfg(r_4_5)` when building against R 4.5 or
//! later, and the functions below choose: the R 4.5 API there, the accessor
//! that R 4.5 replaced (and R 4.2's check accepts) before.
//!
//! Types (`SEXP` and the serialization streams) come from `extendr_ffi`, so
//! that they are the ones extendr's own objects use.

use std::os::raw::{c_char, c_int, c_void};

pub(crate) use extendr_ffi::{
    DllInfo, R_inpstream_st, R_inpstream_t, R_outpstream_st, R_outpstream_t, R_pstream_format_t,
    R_xlen_t, Rboolean, SEXP,
};

/// R's `SEXPTYPE` codes (Rinternals.h), as `TYPEOF` returns them.
pub(crate) mod sexptype {
    use std::os::raw::c_int;
    pub(crate) const SYMSXP: c_int = 1;
    pub(crate) const LISTSXP: c_int = 2;
    pub(crate) const LANGSXP: c_int = 6;
    pub(crate) const CHARSXP: c_int = 9;
    pub(crate) const LGLSXP: c_int = 10;
    pub(crate) const INTSXP: c_int = 13;
    pub(crate) const REALSXP: c_int = 14;
    pub(crate) const CPLXSXP: c_int = 15;
    pub(crate) const STRSXP: c_int = 16;
    pub(crate) const VECSXP: c_int = 19;
    pub(crate) const EXPRSXP: c_int = 20;
    pub(crate) const EXTPTRSXP: c_int = 22;
    pub(crate) const RAWSXP: c_int = 24;
}

/// R's `cetype_t` codes, as `Rf_getCharCE` returns them.
pub(crate) mod cetype {
    use std::os::raw::c_int;
    pub(crate) const NATIVE: c_int = 0;
    pub(crate) const UTF8: c_int = 1;
    pub(crate) const LATIN1: c_int = 2;
    pub(crate) const BYTES: c_int = 3;
}

/// `void (*)(void *)`, as `R_ToplevelExec` runs it.
pub(crate) type ToplevelFn = unsafe extern "C" fn(*mut c_void);
/// `R_altrep_class_t` (R_ext/Altrep.h): an ALTREP class, passed by value.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct AltrepClass {
    pub(crate) ptr: SEXP,
}
/// An ALTREP class's `Length` method.
pub(crate) type AltrepLength = unsafe extern "C" fn(SEXP) -> R_xlen_t;
/// An ALTREP vector class's `Dataptr` method (`x`, writeable).
pub(crate) type AltvecDataptr = unsafe extern "C" fn(SEXP, Rboolean) -> *mut c_void;
/// An ALTREP vector class's `Dataptr_or_null` method.
pub(crate) type AltvecDataptrOrNull = unsafe extern "C" fn(SEXP) -> *const c_void;
/// `DL_FUNC`, as `R_GetCCallable` returns it.
pub(crate) type DlFunc = unsafe extern "C" fn() -> *mut c_void;

// `SEXP` points to an opaque R object, as in extendr_ffi's own declarations.
#[allow(improper_ctypes)]
extern "C" {
    // Constants of the API (variables).
    pub(crate) static R_NilValue: SEXP;
    pub(crate) static R_GlobalEnv: SEXP;
    pub(crate) static R_BaseEnv: SEXP;
    pub(crate) static R_EmptyEnv: SEXP;
    pub(crate) static R_MissingArg: SEXP;
    pub(crate) static R_NaString: SEXP;
    pub(crate) static R_NamesSymbol: SEXP;
    pub(crate) static R_ClassSymbol: SEXP;
    pub(crate) static R_RowNamesSymbol: SEXP;
    /// R_ext/GraphicsDevice.h: set by R's own SIGINT handler, and raised as
    /// an interrupt at R's next check (the API's BEGIN/END_SUSPEND_INTERRUPTS
    /// macros read it).
    static mut R_interrupts_pending: c_int;

    // Memory and evaluation.
    /// api
    pub(crate) fn Rf_protect(x: SEXP) -> SEXP;
    /// api
    pub(crate) fn Rf_unprotect(n: c_int);
    /// api
    pub(crate) fn R_PreserveObject(x: SEXP);
    /// api
    pub(crate) fn Rf_eval(expr: SEXP, env: SEXP) -> SEXP;
    /// api
    pub(crate) fn R_tryEval(expr: SEXP, env: SEXP, error: *mut c_int) -> SEXP;
    /// api
    pub(crate) fn R_tryEvalSilent(expr: SEXP, env: SEXP, error: *mut c_int) -> SEXP;
    /// api: 0 when the body was left by an R error or interrupt.
    pub(crate) fn R_ToplevelExec(fun: Option<ToplevelFn>, data: *mut c_void) -> c_int;
    /// api
    pub(crate) fn Rf_error(format: *const c_char, ...) -> !;
    /// api
    pub(crate) fn Rf_lang1(fun: SEXP) -> SEXP;
    /// api
    pub(crate) fn Rf_lang2(fun: SEXP, x: SEXP) -> SEXP;
    /// api
    pub(crate) fn Rf_lang3(fun: SEXP, x: SEXP, y: SEXP) -> SEXP;
    /// api
    pub(crate) fn Rf_ScalarInteger(x: c_int) -> SEXP;
    /// api
    pub(crate) fn Rf_ScalarLogical(x: c_int) -> SEXP;
    /// api: NA_INTEGER unless `x` is a number (or a string of one).
    pub(crate) fn Rf_asInteger(x: SEXP) -> c_int;
    /// api: NA_LOGICAL unless `x` is a logical (or coercible) value.
    pub(crate) fn Rf_asLogical(x: SEXP) -> c_int;
    /// api
    pub(crate) fn Rf_inherits(x: SEXP, class: *const c_char) -> c_int;
    /// api
    pub(crate) fn R_GetCCallable(package: *const c_char, name: *const c_char) -> Option<DlFunc>;

    // Objects.
    /// api
    pub(crate) fn TYPEOF(x: SEXP) -> c_int;
    /// eapi
    pub(crate) fn ALTREP(x: SEXP) -> c_int;
    /// api
    pub(crate) fn Rf_isObject(x: SEXP) -> c_int;
    /// api (returns a bit of the object's header: test for non-zero)
    pub(crate) fn Rf_isS4(x: SEXP) -> c_int;
    /// api
    pub(crate) fn LENGTH(x: SEXP) -> c_int;
    /// api
    pub(crate) fn XLENGTH(x: SEXP) -> R_xlen_t;
    /// api
    pub(crate) fn Rf_xlength(x: SEXP) -> R_xlen_t;
    /// api
    pub(crate) fn DATAPTR_RO(x: SEXP) -> *const c_void;
    /// api
    pub(crate) fn STRING_ELT(x: SEXP, i: R_xlen_t) -> SEXP;
    /// api
    pub(crate) fn VECTOR_ELT(x: SEXP, i: R_xlen_t) -> SEXP;
    /// api
    pub(crate) fn R_CHAR(x: SEXP) -> *const c_char;
    /// api
    pub(crate) fn Rf_getCharCE(x: SEXP) -> c_int;
    /// api
    pub(crate) fn CAR(x: SEXP) -> SEXP;
    /// api
    pub(crate) fn CDR(x: SEXP) -> SEXP;
    /// api
    pub(crate) fn TAG(x: SEXP) -> SEXP;
    /// api
    pub(crate) fn SETCAR(x: SEXP, value: SEXP) -> SEXP;
    /// api
    pub(crate) fn PRINTNAME(x: SEXP) -> SEXP;
    /// api
    pub(crate) fn Rf_install(name: *const c_char) -> SEXP;
    /// api
    pub(crate) fn Rf_installChar(name: SEXP) -> SEXP;
    /// api
    pub(crate) fn Rf_getAttrib(x: SEXP, name: SEXP) -> SEXP;
    /// api
    pub(crate) fn Rf_allocVector(kind: c_int, length: R_xlen_t) -> SEXP;
    /// api
    pub(crate) fn Rf_cons(car: SEXP, cdr: SEXP) -> SEXP;
    /// api
    pub(crate) fn Rf_lcons(car: SEXP, cdr: SEXP) -> SEXP;
    /// api
    pub(crate) fn SETCDR(x: SEXP, value: SEXP) -> SEXP;
    /// api
    pub(crate) fn SET_TAG(x: SEXP, tag: SEXP);
    /// api
    pub(crate) fn SET_STRING_ELT(x: SEXP, i: R_xlen_t, value: SEXP);
    /// api
    pub(crate) fn SET_VECTOR_ELT(x: SEXP, i: R_xlen_t, value: SEXP) -> SEXP;
    /// api
    pub(crate) fn Rf_mkCharLenCE(bytes: *const c_char, len: c_int, encoding: c_int) -> SEXP;
    /// api
    pub(crate) fn LOGICAL(x: SEXP) -> *mut c_int;
    /// api
    pub(crate) fn INTEGER(x: SEXP) -> *mut c_int;
    /// api
    pub(crate) fn REAL(x: SEXP) -> *mut f64;
    /// api (R's `Rcomplex`, two doubles)
    pub(crate) fn COMPLEX(x: SEXP) -> *mut [f64; 2];
    /// api
    pub(crate) fn RAW(x: SEXP) -> *mut u8;
    /// api
    pub(crate) fn Rf_setAttrib(x: SEXP, name: SEXP, value: SEXP) -> SEXP;

    // Environments.
    /// api
    pub(crate) fn R_NewEnv(enclos: SEXP, hash: c_int, size: c_int) -> SEXP;
    /// api
    pub(crate) fn Rf_defineVar(symbol: SEXP, value: SEXP, env: SEXP);
    /// eapi
    pub(crate) fn R_removeVarFromFrame(symbol: SEXP, env: SEXP);
    /// eapi
    pub(crate) fn R_MakeActiveBinding(symbol: SEXP, fun: SEXP, env: SEXP);

    // External pointers.
    /// api
    pub(crate) fn R_MakeExternalPtr(p: *mut c_void, tag: SEXP, prot: SEXP) -> SEXP;
    /// api
    pub(crate) fn R_ExternalPtrAddr(s: SEXP) -> *mut c_void;
    /// api
    pub(crate) fn R_ExternalPtrTag(s: SEXP) -> SEXP;
    /// api
    pub(crate) fn R_ClearExternalPtr(s: SEXP);
    /// api
    pub(crate) fn R_RegisterCFinalizerEx(
        s: SEXP,
        fun: Option<unsafe extern "C" fn(SEXP)>,
        onexit: Rboolean,
    );

    /// api: a full collection, finalizers included.
    pub(crate) fn R_gc();

    // ALTREP (R_ext/Altrep.h), all eapi.
    /// eapi
    pub(crate) fn R_make_altreal_class(
        class: *const c_char,
        package: *const c_char,
        info: *mut DllInfo,
    ) -> AltrepClass;
    /// eapi
    pub(crate) fn R_make_altinteger_class(
        class: *const c_char,
        package: *const c_char,
        info: *mut DllInfo,
    ) -> AltrepClass;
    /// eapi
    pub(crate) fn R_make_altlogical_class(
        class: *const c_char,
        package: *const c_char,
        info: *mut DllInfo,
    ) -> AltrepClass;
    /// eapi
    pub(crate) fn R_make_altcomplex_class(
        class: *const c_char,
        package: *const c_char,
        info: *mut DllInfo,
    ) -> AltrepClass;
    /// eapi
    pub(crate) fn R_make_altraw_class(
        class: *const c_char,
        package: *const c_char,
        info: *mut DllInfo,
    ) -> AltrepClass;
    /// eapi
    pub(crate) fn R_set_altrep_Length_method(class: AltrepClass, method: AltrepLength);
    /// eapi
    pub(crate) fn R_set_altvec_Dataptr_method(class: AltrepClass, method: AltvecDataptr);
    /// eapi
    pub(crate) fn R_set_altvec_Dataptr_or_null_method(
        class: AltrepClass,
        method: AltvecDataptrOrNull,
    );
    /// eapi
    pub(crate) fn R_new_altrep(class: AltrepClass, data1: SEXP, data2: SEXP) -> SEXP;
    /// eapi
    pub(crate) fn R_altrep_data1(x: SEXP) -> SEXP;
    /// eapi
    pub(crate) fn R_altrep_inherits(x: SEXP, class: AltrepClass) -> Rboolean;

    // Serialization.
    /// eapi
    pub(crate) fn R_Serialize(x: SEXP, stream: R_outpstream_t);
    /// eapi
    pub(crate) fn R_Unserialize(stream: R_inpstream_t) -> SEXP;
}

#[cfg(r_4_5)]
#[allow(improper_ctypes)]
extern "C" {
    /// api, new in R 4.5
    fn ANY_ATTRIB(x: SEXP) -> c_int;
    /// api, new in R 4.5
    fn R_ClosureEnv(x: SEXP) -> SEXP;
    /// api, new in R 4.5
    fn R_ClosureFormals(x: SEXP) -> SEXP;
    /// api, new in R 4.5
    fn R_ClosureBody(x: SEXP) -> SEXP;
    /// api, new in R 4.5
    fn R_mkClosure(formals: SEXP, body: SEXP, env: SEXP) -> SEXP;
}

#[cfg(not(r_4_5))]
#[allow(improper_ctypes)]
extern "C" {
    /// R < 4.5 only, where it is what ANY_ATTRIB replaces.
    fn ATTRIB(x: SEXP) -> SEXP;
    /// R < 4.5 only, where it is what R_ClosureEnv replaces.
    fn CLOENV(x: SEXP) -> SEXP;
    /// R < 4.5 only, where it is what R_mkClosure replaces.
    fn SET_CLOENV(x: SEXP, env: SEXP);
    /// api
    fn Rf_duplicate(x: SEXP) -> SEXP;
}

/// Whether `x` has attributes.
///
/// # Safety
/// R's thread; `x` a valid object.
pub(crate) unsafe fn any_attrib(x: SEXP) -> bool {
    #[cfg(r_4_5)]
    {
        ANY_ATTRIB(x) != 0
    }
    #[cfg(not(r_4_5))]
    {
        ATTRIB(x) != R_NilValue
    }
}

/// The environment of the closure `f`.
///
/// # Safety
/// R's thread; `f` a closure.
pub(crate) unsafe fn closure_env(f: SEXP) -> SEXP {
    #[cfg(r_4_5)]
    {
        R_ClosureEnv(f)
    }
    #[cfg(not(r_4_5))]
    {
        CLOENV(f)
    }
}

/// A new closure with the formals and body of `f` and environment `env`
/// (unprotected).
///
/// # Safety
/// R's thread; `f` a closure, `env` an environment, both protected.
pub(crate) unsafe fn closure_in(f: SEXP, env: SEXP) -> SEXP {
    #[cfg(r_4_5)]
    {
        R_mkClosure(R_ClosureFormals(f), R_ClosureBody(f), env)
    }
    #[cfg(not(r_4_5))]
    {
        // Duplicating a closure copies only its cell: formals and body are
        // shared.
        let copy = Rf_duplicate(f);
        SET_CLOENV(copy, env);
        copy
    }
}

/// Marks an interrupt pending, as R's own SIGINT handler does. Async-signal
/// safe: one store to an `int`.
pub(crate) extern "C" fn mark_interrupt_pending(_signal: c_int) {
    // SAFETY: a single aligned store to R's flag, which R only reads; this
    // is all R's own handler does.
    unsafe { std::ptr::write_volatile(&raw mut R_interrupts_pending, 1) }
}
