//! The deterministic simulator with a seed and fault parameters the fuzzer
//! chooses. See `src/sim.rs` for the framing; the simulator's checker
//! (`tests/SIMULATION.md`) is the oracle.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peercollab_fuzz::sim::run(data);
});
