//! A submitted task: waiting for it, its value, cancelling it, and the
//! 'mirai' that holds it.
//!
//! The handle of one task is held by its 'mirai' as an R external pointer
//! made directly through R's C API: extendr's `ExternalPtr` would add a
//! type-name string vector and a second box to each, and a queue of a
//! million pending mirai holds a million handles. The pointer's tag, a
//! symbol, marks it as a task handle.

use extendr_api::prelude::*;
use extendr_api::Result;
use mirai_core::{pool, Host, Outcome};
use std::os::raw::{c_int, c_void};
use std::rc::Rc;

use crate::convert::{error_value, millis, unreadable_value};
use crate::ffi::{
    sexptype::EXTPTRSXP, R_ClearExternalPtr, R_ExternalPtrAddr, R_ExternalPtrTag,
    R_MakeExternalPtr, R_NilValue, R_RegisterCFinalizerEx, Rboolean, Rf_ScalarLogical, Rf_install,
    Rf_protect, Rf_unprotect, SEXP, TYPEOF,
};
use crate::serial::{self, Hooks};
use crate::{direct, later, object};

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
    // SAFETY: R's thread; held by the Robj from here.
    unsafe { Robj::from_sexp(into_sexp(task)) }
}

/// `task` as a new external pointer (unprotected) that drops it when R
/// collects it.
pub(crate) fn into_sexp(task: TaskHandle) -> SEXP {
    let raw = Box::into_raw(Box::new(task));
    // SAFETY: R's thread; the pointer is protected until returned.
    unsafe {
        let ptr = Rf_protect(R_MakeExternalPtr(raw.cast::<c_void>(), tag(), R_NilValue));
        R_RegisterCFinalizerEx(ptr, Some(finalize), Rboolean::FALSE);
        Rf_unprotect(1);
        ptr
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

/// TRUE once the task is queued; waits at most `ms` for room.
/// @noRd
#[extendr]
fn task_wait_room(mut t: Robj, ms: i32) -> Result<bool> {
    let task = task_mut(&mut t)?;
    let Some(waiting) = task.waiting.take() else {
        return Ok(true);
    };
    let (payload, timeout) = *waiting;
    match task.host.try_submit(payload, timeout, millis(ms)) {
        Ok(id) => {
            task.id = id;
            Ok(true)
        }
        Err(payload) => {
            task.waiting = Some(Box::new((payload, timeout)));
            Ok(false)
        }
    }
}

/// @noRd
#[extendr]
fn task_wait(mut t: Robj, ms: i32) -> Result<bool> {
    let task = task_mut(&mut t)?;
    Ok(task.taken || (task.waiting.is_none() && task.host.wait(task.id, millis(ms))))
}

/// Whether the task is resolved (a direct routine: see `direct`).
pub(crate) extern "C" fn direct_task_ready(mut t: SEXP) -> SEXP {
    direct::call(|| {
        let task = task_mut(direct::borrow_mut(&mut t))?;
        let ready = task.taken || (task.waiting.is_none() && task.host.is_resolved(task.id));
        // SAFETY: R's thread; returned at once.
        Ok(unsafe { Rf_ScalarLogical(c_int::from(ready)) })
    })
}

/// TRUE if the task was pending and is now cancelled (errorValue 20).
/// @noRd
#[extendr]
fn task_cancel(mut t: Robj) -> Result<bool> {
    let task = task_mut(&mut t)?;
    Ok(!task.taken && task.waiting.is_none() && task.host.cancel(task.id))
}

/// The 1-based index of a resolved task of the list, else 0 after waiting
/// at most `ms` for one.
/// @noRd
#[extendr]
fn tasks_wait_any(tasks: List, ms: i32) -> Result<i32> {
    let mut handles = Vec::with_capacity(tasks.len());
    for (i, mut t) in tasks.values().enumerate() {
        let task = task_mut(&mut t)?;
        if task.taken {
            return Ok(i as i32 + 1);
        }
        handles.push((task.host.clone(), task.id, task.waiting.is_none()));
    }
    let waitable: Vec<(&Host, u64)> = handles
        .iter()
        .filter(|(_, _, queued)| *queued)
        .map(|(host, id, _)| (host, *id))
        .collect();
    let index: Vec<usize> = (0..handles.len()).filter(|&i| handles[i].2).collect();
    Ok(match Host::wait_any(&waitable, millis(ms)) {
        Some(j) => index[j] as i32 + 1,
        None => 0,
    })
}

/// Runs the R function `callback()` through later's event loop (on R's main
/// thread) once the task resolves.
/// @noRd
#[extendr]
fn task_on_resolve(mut t: Robj, callback: Robj) -> Result<()> {
    let task = task_mut(&mut t)?;
    if !callback.is_function() {
        return Err(Error::Other("'callback' must be a function".into()));
    }
    let schedule = later::register(callback)?;
    if task.taken || task.waiting.is_some() {
        schedule();
    } else {
        task.host.on_resolve(task.id, schedule);
    }
    Ok(())
}

/// @noRd
#[extendr]
fn task_value(mut t: Robj) -> Result<Robj> {
    let task = task_mut(&mut t)?;
    take_value(task)
}

/// The task's value, which replaces the `data` binding of the mirai `m` (a
/// direct routine: see `direct`).
pub(crate) extern "C" fn direct_task_settle(mut t: SEXP, m: SEXP) -> SEXP {
    direct::call(|| {
        if !direct::borrow(&m).is_environment() {
            return Err(Error::Other("not a mirai".into()));
        }
        let task = task_mut(direct::borrow_mut(&mut t))?;
        let value = take_value(task)?;
        // SAFETY: R's thread; `m` is a mirai and `value` is held by its Robj.
        unsafe { object::settle(m, value.get()) };
        Ok(direct::returned(value))
    })
}

fn take_value(task: &mut TaskHandle) -> Result<Robj> {
    if task.taken {
        return Err(Error::Other(
            "the value of this task was already taken".into(),
        ));
    }
    if task.waiting.is_some() {
        return Err(Error::Other("the task is not resolved".into()));
    }
    let outcome = task
        .host
        .take(task.id)
        .ok_or_else(|| Error::Other("the task is not resolved".into()))?;
    task.taken = true;
    match outcome {
        Outcome::Value(bytes) | Outcome::Failure(bytes) => {
            let value = serial::unserialize(&bytes, task.hooks.as_ref().map(|k| &k.inp));
            pool::give(bytes);
            // Taken either way: the value is this error from now on.
            Ok(value.unwrap_or_else(unreadable_value))
        }
        Outcome::Error(code) => Ok(error_value(code)),
    }
}

/// A new 'mirai' for the task handle `t` (see `object::new_mirai`; a direct
/// routine: see `direct`).
pub(crate) extern "C" fn direct_mirai_object(t: SEXP, fun: SEXP, class: SEXP) -> SEXP {
    direct::call(|| {
        let (t_r, fun_r, class_r) = (
            direct::borrow(&t),
            direct::borrow(&fun),
            direct::borrow(&class),
        );
        if !t_r.is_external_pointer() || fun_r.rtype() != Rtype::Function || !class_r.is_string() {
            return Err(Error::Other("mirai_object: bad arguments".into()));
        }
        // SAFETY: R's thread; the arguments are held by `.Call`, and `fun`
        // is a closure.
        Ok(unsafe { object::new_mirai(t, fun, class) })
    })
}

extendr_module! {
    mod task;
    fn task_wait_room;
    fn task_wait;
    fn task_cancel;
    fn tasks_wait_any;
    fn task_on_resolve;
    fn task_value;
}
