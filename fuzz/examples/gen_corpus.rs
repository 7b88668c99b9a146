//! Regenerates the committed seed corpora from real, valid messages.
//!
//! Run from `fuzz/`: `cargo run --example gen_corpus`. Output is
//! deterministic (fixed keys and seeds), so a rerun leaves `git status`
//! clean unless the core's wire behaviour changed. Every seed is also run
//! through its target's body here, so a seed that panics is caught at once.

use std::fs;
use std::path::Path;

use peercollab_core::HashDrbg;
use peercollab_core::noise::{HandshakePattern, HandshakeState, Role};
use peercollab_fuzz::noise_responder::{self as nr, Mode};

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    fs::write(dir.join(name), data).expect("write seed");
    println!("{target}/{name}: {} bytes", data.len());
}

fn noise_responder() {
    const T: &str = "noise_responder";
    let mut msg = [0u8; 1024];
    let mut payload = [0u8; 1024];

    // IK: a valid message 1, with and without a payload.
    let mut ik_msg1 = Vec::new();
    for (name, body) in [("ik_msg1_payload", &b"invite"[..]), ("ik_msg1_empty", &b""[..])] {
        let mut rng = HashDrbg::from_u64(1);
        let mut i = HandshakeState::new(
            HandshakePattern::IK,
            Role::Initiator,
            nr::PROLOGUE,
            Some(nr::initiator_static()),
            Some(*nr::responder_static().public()),
            None,
        )
        .expect("IK initiator");
        let n = i.write_message(body, &mut msg, &mut rng).expect("IK message 1");
        let seed = nr::encode(Mode::Ik, &msg[..n], &[]);
        let mut r = nr::responder(Mode::Ik);
        assert!(r.read_message(&msg[..n], &mut payload).is_ok(), "seed {name} is valid");
        nr::run(&seed);
        write(T, name, &seed);
        ik_msg1 = msg[..n].to_vec();
    }

    // XX: a valid message 1 and a valid message 3 answering the fixed
    // responder's message 2, then the same message 1 with a corrupted message 3.
    let mut rng = HashDrbg::from_u64(2);
    let mut i = HandshakeState::new(
        HandshakePattern::XX,
        Role::Initiator,
        nr::PROLOGUE,
        Some(nr::initiator_static()),
        None,
        None,
    )
    .expect("XX initiator");
    let mut m1 = [0u8; 1024];
    let n1 = i.write_message(b"", &mut m1, &mut rng).expect("XX message 1");
    // Replay the target's responder to get the message 2 it will write.
    let mut r = nr::responder(Mode::Xx);
    let mut r_rng = HashDrbg::from_u64(nr::RESPONDER_RNG_SEED);
    r.read_message(&m1[..n1], &mut payload).expect("XX message 1 reads");
    let n2 = r.write_message(b"", &mut msg, &mut r_rng).expect("XX message 2");
    i.read_message(&msg[..n2], &mut payload).expect("XX message 2 reads");
    let mut m3 = [0u8; 1024];
    let n3 = i.write_message(b"invite", &mut m3, &mut rng).expect("XX message 3");
    r.read_message(&m3[..n3], &mut payload).expect("XX message 3 reads");
    assert!(r.is_finished());

    let seed = nr::encode(Mode::Xx, &m1[..n1], &m3[..n3]);
    nr::run(&seed);
    write(T, "xx_msg1_msg3", &seed);

    let mut bad = m3;
    bad[n3 - 1] ^= 0x01;
    let seed = nr::encode(Mode::Xx, &m1[..n1], &bad[..n3]);
    nr::run(&seed);
    write(T, "xx_msg3_bad_tag", &seed);

    let seed = nr::encode(Mode::Xx, &m1[..n1], &[]);
    nr::run(&seed);
    write(T, "xx_msg1_only", &seed);

    // Low-order (all-zero) ephemeral keys: IK refuses message 1 at its first
    // DH; XX accepts message 1 and refuses to write message 2.
    let zero = [0u8; 32];
    let seed = nr::encode(Mode::Ik, &[&zero[..], &ik_msg1[32..]].concat(), &[]);
    nr::run(&seed);
    write(T, "ik_msg1_zero_ephemeral", &seed);
    let seed = nr::encode(Mode::Xx, &zero, &[]);
    nr::run(&seed);
    write(T, "xx_msg1_zero_ephemeral", &seed);
}

fn main() {
    noise_responder();
}
