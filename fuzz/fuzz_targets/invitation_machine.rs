//! An inviter and an invitee invitation driven by an arbitrary schedule of
//! deliveries, losses, corruptions, time steps and user commands. See
//! `src/invitation_machine.rs` for the framing and the checked properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peercollab_fuzz::invitation_machine::run(data);
});
