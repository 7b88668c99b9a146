//! Arbitrary bytes as an invitation message and as an invitation's message
//! text. See `src/invite_message.rs` for the checked properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peercollab_fuzz::invite_message::run(data);
});
