//! One message body: the 16-byte header, then a payload decoded as HELLO,
//! CHALLENGE and WELCOME.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mirai_core::wire::decode_message(data);
});
