//! The handle of one submitted task, held by its 'mirai' as an R external
//! pointer made directly through R's C API: extendr's `ExternalPtr` would add
//! a type-name string vector and a second box to each, and a queue of a
//! million pending mirai holds a million handles. The pointer's tag, a
//! symbol, marks it as a task handle.

use std::os::raw::c_void;
use std::rc::Rc;

use crate::ffi::{
    sexptype::EXTPTRSXP, R_ClearExternalPtr, R_ExternalPtrAddr, R_ExternalPtrTag,
    R_MakeExternalPtr, R_NilValue, R_RegisterCFinalizerEx, Rboolean, Rf_install, Rf_protect,
    Rf_unprotect, SEXP, TYPEOF,
};
use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::Host;

use crate::Hooks;

/// One submitted task. Dropping it (R's garbage collector) tells the host the
/// result is no longer wanted. While `waiting` holds the task (serialized
/// once) and its timeout, it waits for room in a bounded queue and has no
/// id yet (see `task_wait_room`).
pub(crate) struct TaskHandle {
    pub host: Host,
    pub id: u64,
    pub taken: bool,
    /// Boxed: rare, and a queue holds many handles.
    pub waiting: Option<Box<(bytes::Bytes, Option<u64>)>>,
    pub hooks: Option<Rc<Hooks>>,
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        if !self.taken && self.waiting.is_none() {
            self.host.forget(self.id);
        }
    }
}

fn tag() -> SEXP {
    // SAFETY: R's thread; an installed symbol lives as long as R.
    unsafe { Rf_install(c"mirai_task".as_ptr()) }
}

/// `task` as a new external pointer that drops it when R collects it.
pub(crate) fn into_robj(task: TaskHandle) -> Robj {
    let raw = Box::into_raw(Box::new(task));
    // SAFETY: R's thread; the pointer is protected until returned.
    unsafe {
        let ptr = Rf_protect(R_MakeExternalPtr(raw.cast::<c_void>(), tag(), R_NilValue));
        R_RegisterCFinalizerEx(ptr, Some(finalize), Rboolean::FALSE);
        Rf_unprotect(1);
        Robj::from_sexp(ptr)
    }
}

extern "C" fn finalize(ptr: SEXP) {
    // SAFETY: called by R's garbage collector on a pointer made by
    // `into_robj`; cleared first, so the box is dropped once.
    unsafe {
        let raw = R_ExternalPtrAddr(ptr).cast::<TaskHandle>();
        R_ClearExternalPtr(ptr);
        if !raw.is_null() {
            drop(Box::from_raw(raw));
        }
    }
}

/// The task behind `t`, a pointer made by `into_robj`.
pub(crate) fn task_mut(t: &mut Robj) -> Result<&mut TaskHandle> {
    // SAFETY: R's thread; `t` is held by the caller, and only pointers
    // tagged by `into_robj` are read as tasks. R calls into the package one
    // call at a time, so no other reference to the task is live.
    unsafe {
        let sexp = t.get();
        if TYPEOF(sexp) != EXTPTRSXP || R_ExternalPtrTag(sexp) != tag() {
            return Err(Error::Other("not a mirai task handle".into()));
        }
        R_ExternalPtrAddr(sexp)
            .cast::<TaskHandle>()
            .as_mut()
            .ok_or_else(|| Error::Other("the task handle was released".into()))
    }
}
