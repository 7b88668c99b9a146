//! One agent under an arbitrary sequence of commands, fuzzer-crafted
//! datagrams (transparent cryptography: forged frames reach every state
//! behind the handshake) and time steps, asserting its invariants. See
//! `src/agent_ops.rs` for the framing and the checked properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peercollab_fuzz::agent_ops::run(data);
});
