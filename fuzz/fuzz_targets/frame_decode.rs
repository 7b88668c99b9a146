//! Arbitrary bytes as a datagram and as a TLV payload. See
//! `src/frame_decode.rs` for the checked properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peercollab_fuzz::frame_decode::run(data);
});
