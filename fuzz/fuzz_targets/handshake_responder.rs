//! A sequence of operations driving a session responder with arbitrary and
//! mutated datagrams next to a genuine initiator. See
//! `src/handshake_responder.rs` for the framing and the checked properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peercollab_fuzz::handshake_responder::run(data);
});
