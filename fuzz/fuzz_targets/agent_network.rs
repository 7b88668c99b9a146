//! Three agents on one network driven by an arbitrary schedule of
//! deliveries, losses, corruptions, roaming, time steps and every user
//! command. See `src/agent_network.rs` for the framing and the checked
//! properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peercollab_fuzz::agent_network::run(data);
});
