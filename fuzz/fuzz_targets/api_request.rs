#![no_main]

//! The service's request decoder: any bytes a local client sends must be
//! answered with a decoded request or an error, never a panic, and what
//! decodes must survive a round trip.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = nimbus_api::decode_request(data) {
        let line = nimbus_api::encode(&frame);
        let again = nimbus_api::decode_request(&line[..line.len() - 1]);
        assert!(again.is_ok(), "a decoded request did not decode again");
    }
});
