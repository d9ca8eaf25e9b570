//! Conversions between R values and the core's types, and the errors the
//! binding raises in R.

use extendr_api::prelude::*;
use extendr_api::Result;
use std::time::Duration;

/// The R error for a failure of the core: its message is the Rust cause,
/// followed by each of that cause's sources. The R code that called wraps
/// it in its own message, which names the argument or the URL.
pub(crate) fn core_error(e: mirai_core::Error) -> Error {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::Other(message)
}

/// A wait of `ms` milliseconds (none if negative).
pub(crate) fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// NULL, or a number of milliseconds (negative counts as 0).
pub(crate) fn optional_ms(ms: &Robj) -> Result<Option<u64>> {
    if ms.is_null() {
        Ok(None)
    } else {
        let ms: f64 = ms.try_into()?;
        Ok(Some(ms.max(0.0) as u64))
    }
}

/// NULL, or a string.
pub(crate) fn optional_string(x: &Robj) -> Result<Option<String>> {
    if x.is_null() {
        Ok(None)
    } else {
        let s: &str = x.try_into()?;
        Ok(Some(s.to_string()))
    }
}

/// A size limit in bytes from R: anything below 1 (or not finite) is none,
/// `u64::MAX`.
pub(crate) fn bytes_limit(max_bytes: f64) -> u64 {
    if max_bytes.is_finite() && max_bytes >= 1.0 {
        max_bytes as u64
    } else {
        u64::MAX
    }
}

/// An 'errorValue': the integer `code` with that class.
pub(crate) fn error_value(code: i32) -> Robj {
    let mut value = Robj::from(code);
    // Setting a class on a fresh integer cannot fail.
    let _ = value.set_class(["errorValue"]);
    value
}

/// `what` failed just now with an R error: `what`, then R's message.
pub(crate) fn with_r_reason(what: String) -> String {
    let reason = call!("geterrmessage")
        .ok()
        .and_then(|m| m.as_str().map(error_message))
        .unwrap_or_default();
    if reason.is_empty() {
        what
    } else {
        format!("{what}: {reason}")
    }
}

/// A 'miraiError' for a value that cannot be unserialized here (a package
/// or a serialization hook missing, or failing), with R's reason: what
/// `mk_mirai_error(simpleError(...))` (R/mirai.R) makes, which cannot be
/// called from here (test-compute.R checks that the two agree).
pub(crate) fn unreadable_value(what: String) -> Robj {
    let mut value = Robj::from(format!("Error: {}", with_r_reason(what)));
    // Attributes on a fresh string cannot fail to be set.
    let _ = value.set_attrib("condition.class", ["simpleError", "error", "condition"]);
    let _ = value.set_attrib("stack.trace", List::new(0));
    let _ = value.set_class(["miraiError", "errorValue", "try-error"]);
    value
}

/// The message of R's printed error `text` ("Error in CALL : MESSAGE" or
/// "Error: MESSAGE", maybe followed by a line of "Calls:"), on one line.
fn error_message(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Calls:"))
        .collect();
    let text = lines.join(" ");
    let message = if text.starts_with("Error in ") {
        text.split_once(" : ").map_or(text.as_str(), |(_, m)| m)
    } else {
        text.strip_prefix("Error: ").unwrap_or(&text)
    };
    message.trim().to_string()
}
