//! R objects the hot paths build or change directly through R's C API, where
//! the equivalent R code costs several times more: the 'mirai' environment
//! itself, the swap of its `data` binding for the value, and a daemon's
//! checks between two tasks.
//!
//! Every function here runs on R's thread and takes protected arguments.

use extendr_ffi::{
    R_BaseEnv, R_ClassSymbol, R_NamesSymbol, R_NewEnv, R_NilValue, Rf_defineVar, Rf_duplicate,
    Rf_getAttrib, Rf_install, Rf_protect, Rf_setAttrib, Rf_unprotect, Rf_xlength, CAR, CDR,
    PRINTNAME, SEXP, STRING_ELT, TAG, VECTOR_ELT,
};
use std::ffi::CStr;

#[allow(improper_ctypes)]
extern "C" {
    fn CLOENV(x: SEXP) -> SEXP;
    fn SET_CLOENV(x: SEXP, env: SEXP);
    fn R_MakeActiveBinding(symbol: SEXP, fun: SEXP, env: SEXP);
    fn R_removeVarFromFrame(symbol: SEXP, env: SEXP);
    fn Rf_findVarInFrame(env: SEXP, symbol: SEXP) -> SEXP;
    fn Rf_installChar(name: SEXP) -> SEXP;
}

unsafe fn symbol(name: &CStr) -> SEXP {
    Rf_install(name.as_ptr())
}

/// A new 'mirai': an environment enclosed by `fun`'s, holding `.handle`,
/// with `data` an active binding to a copy of `fun` whose environment is the
/// mirai itself, and class `class`.
///
/// # Safety
/// R's thread; `fun` a closure; all arguments protected.
pub(crate) unsafe fn new_mirai(handle: SEXP, fun: SEXP, class: SEXP) -> SEXP {
    let env = Rf_protect(R_NewEnv(CLOENV(fun), 0, 4));
    Rf_defineVar(symbol(c".handle"), handle, env);
    // Duplicating a closure copies only its cell: formals and body are shared.
    let binding = Rf_protect(Rf_duplicate(fun));
    SET_CLOENV(binding, env);
    R_MakeActiveBinding(symbol(c"data"), binding, env);
    Rf_setAttrib(env, R_ClassSymbol, class);
    Rf_unprotect(2);
    env
}

/// Replaces the active binding `data` of the mirai `env` by `value`, and
/// drops its handle.
///
/// # Safety
/// R's thread; `env` a mirai made by `new_mirai`; `value` protected.
pub(crate) unsafe fn settle(env: SEXP, value: SEXP) {
    let data = symbol(c"data");
    R_removeVarFromFrame(data, env);
    Rf_defineVar(data, value, env);
    Rf_defineVar(symbol(c".handle"), R_NilValue, env);
}

/// Removes the variables named `names` from `env` (NA names are skipped).
///
/// # Safety
/// R's thread; `names` a character vector, `env` an environment.
pub(crate) unsafe fn remove_vars(names: SEXP, env: SEXP) {
    for i in 0..Rf_xlength(names) {
        let name = STRING_ELT(names, i);
        if name != extendr_ffi::R_NaString {
            R_removeVarFromFrame(Rf_installChar(name), env);
        }
    }
}

/// TRUE when R's options hold the very objects, under the same names and in
/// the same order, as `cells` (`as.list(.Options)` taken earlier).
///
/// # Safety
/// R's thread; `cells` protected.
pub(crate) unsafe fn options_unchanged(cells: SEXP) -> bool {
    let names = Rf_getAttrib(cells, R_NamesSymbol);
    let n = Rf_xlength(cells);
    if Rf_xlength(names) != n {
        return false;
    }
    let mut node = Rf_findVarInFrame(R_BaseEnv, symbol(c".Options"));
    for i in 0..n {
        if node == R_NilValue
            || CAR(node) != VECTOR_ELT(cells, i)
            || PRINTNAME(TAG(node)) != STRING_ELT(names, i)
        {
            return false;
        }
        node = CDR(node);
    }
    node == R_NilValue
}
