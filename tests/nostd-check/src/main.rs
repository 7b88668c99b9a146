//! A bare-metal binary for `thumbv7em-none-eabihf` that links
//! `peercollab-core` with **no global allocator**: if anything in the core
//! (or its dependencies) used `alloc`, this binary would fail to link.
//!
//! It runs a complete exchange through the core so the linker keeps the code
//! paths: today a Noise IK handshake plus one transport message
//! ([`exercise`]). `core::hint::black_box` keeps the optimiser from folding
//! the work away.
//!
//! Build: `cargo build --release` in this directory (the target is set in
//! `.cargo/config.toml`).
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use peercollab_core::HashDrbg;
use peercollab_core::noise::{HandshakePattern, HandshakeState, KeyPair, Role};

/// Everything the binary exercises in the core, in one function so it is easy
/// to replace (later: the full secure-session handshake).
///
/// Returns `true` when both sides agree on the handshake hash and the
/// transport message arrives intact.
fn exercise(seed: u64) -> bool {
    let mut rng = HashDrbg::from_u64(seed);
    let initiator_static = KeyPair::generate(&mut rng);
    let responder_static = KeyPair::generate(&mut rng);
    let responder_public = *responder_static.public();
    let prologue = b"peercollab nostd-check";

    let Ok(mut initiator) = HandshakeState::new(
        HandshakePattern::IK,
        Role::Initiator,
        prologue,
        Some(initiator_static),
        Some(responder_public),
        None,
    ) else {
        return false;
    };
    let Ok(mut responder) = HandshakeState::new(
        HandshakePattern::IK,
        Role::Responder,
        prologue,
        Some(responder_static),
        None,
        None,
    ) else {
        return false;
    };

    let mut msg = [0u8; 256];
    let mut payload = [0u8; 256];

    // IK message 1: -> e, es, s, ss
    let Ok(n) = initiator.write_message(black_box(b"invite"), &mut msg, &mut rng) else {
        return false;
    };
    let Ok(p) = responder.read_message(black_box(&msg[..n]), &mut payload) else {
        return false;
    };
    if &payload[..p] != b"invite" {
        return false;
    }

    // IK message 2: <- e, ee, se
    let Ok(n) = responder.write_message(b"", &mut msg, &mut rng) else {
        return false;
    };
    if initiator.read_message(black_box(&msg[..n]), &mut payload).is_err() {
        return false;
    }
    if initiator.handshake_hash() != responder.handshake_hash() {
        return false;
    }

    // One transport message, initiator to responder.
    let (Ok(mut ti), Ok(mut tr)) = (initiator.into_transport(), responder.into_transport()) else {
        return false;
    };
    let Ok(n) = ti.write_message(black_box(b"hello from the initiator"), &mut msg) else {
        return false;
    };
    let Ok(p) = tr.read_message(black_box(&msg[..n]), &mut payload) else {
        return false;
    };
    black_box(&payload[..p]) == b"hello from the initiator"
}

#[entry]
fn main() -> ! {
    let ok = exercise(black_box(0x5eed));
    black_box(ok);
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
