//! What a peer sends in the greeting: to a host (its HELLO, with and
//! without a secret required) and to a daemon (CHALLENGE, then WELCOME or
//! REFUSE). Must never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mirai_core::wire::greet(data);
});
