//! A byte stream from a peer: the SP handshake, then length-prefixed frames
//! (with a 1 MiB receive limit), in both framings, greeting payloads decoded
//! too. Must never panic, hang or allocate beyond the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mirai_core::wire::decode_stream(data, 1 << 20);
});
