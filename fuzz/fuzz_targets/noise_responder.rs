//! Arbitrary bytes as IK message 1, or XX messages 1 and 3, into a Noise
//! responder with fixed keys. See `src/noise_responder.rs` for the framing
//! and the checked properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peercollab_fuzz::noise_responder::run(data);
});
