//! What a client sends a WebSocket listener before any greeting: the HTTP
//! upgrade, then frames, read within the greeting's limit; and the same
//! bytes as frames from a server. Must never panic, hang or allocate beyond
//! the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mirai_core::wire::accept_websocket(data);
});
