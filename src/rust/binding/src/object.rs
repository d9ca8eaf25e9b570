//! R objects the hot paths build or change directly through R's C API, where
//! the equivalent R code costs several times more: the 'mirai' environment
//! itself, the swap of its `data` binding for the value, and the removal of
//! a task's globals on a daemon.
//!
//! Every function here runs on R's thread and takes protected arguments.

use crate::ffi::{
    closure_env, closure_in, R_ClassSymbol, R_MakeActiveBinding, R_NaString, R_NewEnv,
    R_removeVarFromFrame, Rf_defineVar, Rf_install, Rf_installChar, Rf_protect, Rf_setAttrib,
    Rf_unprotect, Rf_xlength, SEXP, STRING_ELT,
};
use std::ffi::CStr;

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
    let env = Rf_protect(R_NewEnv(closure_env(fun), 0, 4));
    Rf_defineVar(symbol(c".handle"), handle, env);
    let binding = Rf_protect(closure_in(fun, env));
    R_MakeActiveBinding(symbol(c"data"), binding, env);
    Rf_setAttrib(env, R_ClassSymbol, class);
    Rf_unprotect(2);
    env
}

/// Replaces the active binding `data` of the mirai `env` by `value`, and
/// drops its handle and the handle's binding (one cell less for the garbage
/// collector to mark in each mirai kept).
///
/// # Safety
/// R's thread; `env` a mirai made by `new_mirai`; `value` protected.
pub(crate) unsafe fn settle(env: SEXP, value: SEXP) {
    let data = symbol(c"data");
    R_removeVarFromFrame(data, env);
    Rf_defineVar(data, value, env);
    R_removeVarFromFrame(symbol(c".handle"), env);
}

/// Removes the variables named `names` from `env` (NA names are skipped).
///
/// # Safety
/// R's thread; `names` a character vector, `env` an environment.
pub(crate) unsafe fn remove_vars(names: SEXP, env: SEXP) {
    for i in 0..Rf_xlength(names) {
        let name = STRING_ELT(names, i);
        if name != R_NaString {
            R_removeVarFromFrame(Rf_installChar(name), env);
        }
    }
}
