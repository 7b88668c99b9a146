//! Interoperability with snow 0.10: IK and XX between peercollab-core and
//! snow in both roles, a differential property test (same keys, ephemerals,
//! prologue and payloads give the same bytes as snow, message for message),
//! and tampered handshake messages that must be rejected without changing
//! our state.

use peercollab_core::noise::{
    DH_LEN, HandshakePattern, HandshakeState, KeyPair, MAX_MESSAGE_LEN, Role, TransportState,
};
use peercollab_core::{Entropy, HashDrbg};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    Ik,
    Xx,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Ik => "IK",
            Pattern::Xx => "XX",
        }
    }

    fn ours(self) -> HandshakePattern {
        match self {
            Pattern::Ik => HandshakePattern::IK,
            Pattern::Xx => HandshakePattern::XX,
        }
    }

    fn message_count(self) -> usize {
        self.ours().message_count()
    }

    /// Whether handshake message `index` is authenticated (so a flipped bit
    /// must be detected when it is read). XX's first message is a bare `e`.
    fn authenticated(self, index: usize) -> bool {
        !(self == Pattern::Xx && index == 0)
    }
}

/// Everything both implementations are given for one handshake.
#[derive(Clone, Debug)]
struct Setup {
    pattern: Pattern,
    prologue: Vec<u8>,
    init_static: [u8; DH_LEN],
    resp_static: [u8; DH_LEN],
    /// Fixed ephemeral private keys; `None` draws them at random.
    init_ephemeral: Option<[u8; DH_LEN]>,
    resp_ephemeral: Option<[u8; DH_LEN]>,
}

impl Setup {
    fn random(pattern: Pattern, seed: u64) -> Self {
        let mut rng = HashDrbg::from_u64(seed);
        let mut key = || {
            let mut k = [0u8; DH_LEN];
            rng.fill_bytes(&mut k);
            k
        };
        Setup {
            pattern,
            prologue: b"peercollab snow interop".to_vec(),
            init_static: key(),
            resp_static: key(),
            init_ephemeral: None,
            resp_ephemeral: None,
        }
    }

    fn public(secret: &[u8; DH_LEN]) -> [u8; DH_LEN] {
        *KeyPair::from_secret_bytes(*secret).public()
    }

    fn statics(&self, role: Role) -> ([u8; DH_LEN], [u8; DH_LEN]) {
        match role {
            Role::Initiator => (self.init_static, Self::public(&self.resp_static)),
            Role::Responder => (self.resp_static, Self::public(&self.init_static)),
        }
    }

    fn ephemeral(&self, role: Role) -> Option<[u8; DH_LEN]> {
        match role {
            Role::Initiator => self.init_ephemeral,
            Role::Responder => self.resp_ephemeral,
        }
    }

    /// The peer's static key is known beforehand only by an IK initiator.
    fn knows_remote_static(&self, role: Role) -> bool {
        self.pattern == Pattern::Ik && role == Role::Initiator
    }
}

/// Our entropy: a seeded generator, or exactly one fixed ephemeral key.
enum Rng {
    Drbg(HashDrbg),
    Fixed(Option<[u8; DH_LEN]>),
}

impl Entropy for Rng {
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        match self {
            Rng::Drbg(d) => d.fill_bytes(dst),
            Rng::Fixed(key) => {
                assert_eq!(dst.len(), DH_LEN, "only an ephemeral key is expected");
                dst.copy_from_slice(&key.take().expect("a second ephemeral was drawn"));
            }
        }
    }
}

/// One side of a handshake: ours or snow's.
enum Hs {
    Ours(Box<HandshakeState>, Rng),
    Snow(Box<snow::HandshakeState>),
}

enum Tr {
    Ours(Box<TransportState>),
    Snow(Box<snow::TransportState>),
}

fn snow_params(pattern: Pattern) -> snow::params::NoiseParams {
    format!("Noise_{}_25519_ChaChaPoly_SHA256", pattern.name()).parse().expect("snow params")
}

impl Hs {
    fn ours(setup: &Setup, role: Role) -> Hs {
        let (s, rs) = setup.statics(role);
        let rs = setup.knows_remote_static(role).then_some(rs);
        let hs = HandshakeState::new(
            setup.pattern.ours(),
            role,
            &setup.prologue,
            Some(KeyPair::from_secret_bytes(s)),
            rs,
            None,
        )
        .expect("our handshake state");
        let rng = match setup.ephemeral(role) {
            Some(e) => Rng::Fixed(Some(e)),
            None => Rng::Drbg(HashDrbg::from_u64(u64::from_le_bytes(s[..8].try_into().unwrap()))),
        };
        Hs::Ours(Box::new(hs), rng)
    }

    fn snow(setup: &Setup, role: Role) -> Hs {
        let (s, rs) = setup.statics(role);
        let e = setup.ephemeral(role);
        let mut b = snow::Builder::new(snow_params(setup.pattern))
            .local_private_key(&s)
            .unwrap()
            .prologue(&setup.prologue)
            .unwrap();
        if setup.knows_remote_static(role) {
            b = b.remote_public_key(&rs).unwrap();
        }
        if let Some(e) = e.as_ref() {
            b = b.fixed_ephemeral_key_for_testing_only(e);
        }
        let hs = match role {
            Role::Initiator => b.build_initiator(),
            Role::Responder => b.build_responder(),
        };
        Hs::Snow(Box::new(hs.expect("snow handshake state")))
    }

    fn write(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let n = match self {
            Hs::Ours(hs, rng) => hs.write_message(payload, &mut out, rng).expect("our write"),
            Hs::Snow(hs) => hs.write_message(payload, &mut out).expect("snow write"),
        };
        out.truncate(n);
        out
    }

    fn read(&mut self, message: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let n = match self {
            Hs::Ours(hs, _) => hs.read_message(message, &mut out).expect("our read"),
            Hs::Snow(hs) => hs.read_message(message, &mut out).expect("snow read"),
        };
        out.truncate(n);
        out
    }

    fn handshake_hash(&self) -> Vec<u8> {
        match self {
            Hs::Ours(hs, _) => hs.handshake_hash().to_vec(),
            Hs::Snow(hs) => hs.get_handshake_hash().to_vec(),
        }
    }

    fn is_finished(&self) -> bool {
        match self {
            Hs::Ours(hs, _) => hs.is_finished(),
            Hs::Snow(hs) => hs.is_handshake_finished(),
        }
    }

    fn into_transport(self) -> Tr {
        match self {
            Hs::Ours(hs, _) => Tr::Ours(Box::new(hs.into_transport().expect("our split"))),
            Hs::Snow(hs) => Tr::Snow(Box::new(hs.into_transport_mode().expect("snow split"))),
        }
    }

    /// For our side: every single-byte corruption, truncation and extension of
    /// `message` is rejected and leaves the observable state exactly as it was.
    fn assert_tampering_rejected(&mut self, message: &[u8]) {
        let Hs::Ours(hs, _) = self else { return };
        let snapshot = |hs: &HandshakeState| {
            (
                *hs.handshake_hash(),
                hs.message_index(),
                hs.is_my_turn(),
                hs.remote_static().copied(),
                hs.remote_ephemeral().copied(),
                hs.next_message_len(0),
            )
        };
        let before = snapshot(hs);
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let mut reject = |bad: &[u8], what: &str| {
            assert!(hs.read_message(bad, &mut out).is_err(), "{what} was accepted");
            assert_eq!(snapshot(hs), before, "{what} changed the state");
        };
        for pos in 0..message.len() {
            let mut bad = message.to_vec();
            // Rotate through the bit positions, so the top bit of the last byte
            // of a public key (which X25519 ignores) is flipped too.
            bad[pos] ^= 1 << (pos % 8);
            reject(&bad, &format!("byte {pos} of {} flipped", message.len()));
        }
        for len in 0..message.len() {
            reject(&message[..len], &format!("truncation to {len} bytes"));
        }
        let mut longer = message.to_vec();
        longer.push(0);
        reject(&longer, "one extra byte");
    }
}

impl Tr {
    fn write(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let n = match self {
            Tr::Ours(t) => t.write_message(payload, &mut out).expect("our transport write"),
            Tr::Snow(t) => t.write_message(payload, &mut out).expect("snow transport write"),
        };
        out.truncate(n);
        out
    }

    fn read(&mut self, message: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let n = match self {
            Tr::Ours(t) => t.read_message(message, &mut out).expect("our transport read"),
            Tr::Snow(t) => t.read_message(message, &mut out).expect("snow transport read"),
        };
        out.truncate(n);
        out
    }

    fn remote_static(&self) -> Option<Vec<u8>> {
        match self {
            Tr::Ours(t) => t.remote_static().map(|k| k.to_vec()),
            Tr::Snow(t) => t.get_remote_static().map(<[u8]>::to_vec),
        }
    }
}

/// Every byte that crossed the wire, and the final handshake hash.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    handshake: Vec<Vec<u8>>,
    transport: Vec<Vec<u8>>,
    handshake_hash: Vec<u8>,
}

/// Runs a whole handshake and then `transport` (each entry: sent by the
/// initiator?, payload), checking every payload arrives intact, both hashes
/// agree and each side learned the other's static key. With `tamper`, each
/// authenticated handshake message our side reads is first tried corrupted.
fn run(
    setup: &Setup,
    mut init: Hs,
    mut resp: Hs,
    payloads: &[Vec<u8>],
    transport: &[(bool, Vec<u8>)],
    tamper: bool,
) -> Transcript {
    let mut handshake = Vec::new();
    for i in 0..setup.pattern.message_count() {
        let payload = payloads.get(i).map(Vec::as_slice).unwrap_or_default();
        let (sender, receiver) =
            if i.is_multiple_of(2) { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
        let message = sender.write(payload);
        if tamper && setup.pattern.authenticated(i) {
            receiver.assert_tampering_rejected(&message);
        }
        assert_eq!(receiver.read(&message), payload, "handshake payload {i}");
        handshake.push(message);
    }
    assert!(init.is_finished() && resp.is_finished());
    let handshake_hash = init.handshake_hash();
    assert_eq!(handshake_hash, resp.handshake_hash(), "handshake hashes differ");

    let (mut init, mut resp) = (init.into_transport(), resp.into_transport());
    let (init_pub, resp_pub) =
        (Setup::public(&setup.init_static), Setup::public(&setup.resp_static));
    assert_eq!(init.remote_static().as_deref(), Some(&resp_pub[..]), "initiator learned rs");
    assert_eq!(resp.remote_static().as_deref(), Some(&init_pub[..]), "responder learned rs");

    let mut sent = Vec::new();
    for (k, (from_initiator, payload)) in transport.iter().enumerate() {
        let (sender, receiver) =
            if *from_initiator { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
        let message = sender.write(payload);
        assert_eq!(&receiver.read(&message), payload, "transport payload {k}");
        sent.push(message);
    }
    Transcript { handshake, transport: sent, handshake_hash }
}

fn payloads(pattern: Pattern) -> Vec<Vec<u8>> {
    (0..pattern.message_count())
        .map(|i| format!("{} handshake payload {i}", pattern.name()).into_bytes())
        .collect()
}

/// Several transport messages both ways, including bursts from one side.
fn transport_script() -> Vec<(bool, Vec<u8>)> {
    [true, false, true, true, true, false, false, true, false]
        .iter()
        .enumerate()
        .map(|(k, &from_initiator)| {
            (from_initiator, format!("transport {k} {}", "x".repeat(k * 7)).into_bytes())
        })
        .chain([(true, Vec::new()), (false, Vec::new())])
        .collect()
}

fn interop(pattern: Pattern, ours: Role, seed: u64) {
    let setup = Setup::random(pattern, seed);
    let (init, resp) = match ours {
        Role::Initiator => (Hs::ours(&setup, Role::Initiator), Hs::snow(&setup, Role::Responder)),
        Role::Responder => (Hs::snow(&setup, Role::Initiator), Hs::ours(&setup, Role::Responder)),
    };
    let t = run(&setup, init, resp, &payloads(pattern), &transport_script(), false);
    assert_eq!(t.handshake.len(), pattern.message_count());
    assert_eq!(t.transport.len(), transport_script().len());
}

#[test]
fn ik_ours_initiator_snow_responder_completes_and_exchanges_transport() {
    interop(Pattern::Ik, Role::Initiator, 1);
}

#[test]
fn ik_snow_initiator_ours_responder_completes_and_exchanges_transport() {
    interop(Pattern::Ik, Role::Responder, 2);
}

#[test]
fn xx_ours_initiator_snow_responder_completes_and_exchanges_transport() {
    interop(Pattern::Xx, Role::Initiator, 3);
}

#[test]
fn xx_snow_initiator_ours_responder_completes_and_exchanges_transport() {
    interop(Pattern::Xx, Role::Responder, 4);
}

#[test]
fn tampered_handshake_messages_are_rejected_and_the_genuine_ones_still_complete() {
    for (k, pattern) in [Pattern::Ik, Pattern::Xx].into_iter().enumerate() {
        for ours in [Role::Initiator, Role::Responder] {
            let setup = Setup::random(pattern, 10 + k as u64);
            let (init, resp) = match ours {
                Role::Initiator => {
                    (Hs::ours(&setup, Role::Initiator), Hs::snow(&setup, Role::Responder))
                }
                Role::Responder => {
                    (Hs::snow(&setup, Role::Initiator), Hs::ours(&setup, Role::Responder))
                }
            };
            // Short messages: two-byte handshake payloads.
            let short = vec![b"hi".to_vec(); pattern.message_count()];
            let transport = [(true, b"after".to_vec()), (false, b"tampering".to_vec())];
            let t = run(&setup, init, resp, &short, &transport, true);
            assert_eq!(t.transport.len(), 2);
        }
    }
}

fn key() -> impl Strategy<Value = [u8; DH_LEN]> {
    any::<[u8; DH_LEN]>()
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Same inputs, same bytes: snow against snow is the reference, and ours
    /// in either role (against snow, and against ourselves) must reproduce
    /// every handshake and transport message and the handshake hash.
    #[test]
    fn ours_produces_snows_bytes_for_every_message_in_both_roles(
        keys in (key(), key(), key(), key()),
        prologue in bytes(64),
        payloads in prop::collection::vec(bytes(200), 3),
        transport in prop::collection::vec((any::<bool>(), bytes(200)), 0..8),
    ) {
        for pattern in [Pattern::Ik, Pattern::Xx] {
            let setup = Setup {
                pattern,
                prologue: prologue.clone(),
                init_static: keys.0,
                resp_static: keys.1,
                init_ephemeral: Some(keys.2),
                resp_ephemeral: Some(keys.3),
            };
            let reference = run(
                &setup,
                Hs::snow(&setup, Role::Initiator),
                Hs::snow(&setup, Role::Responder),
                &payloads,
                &transport,
                false,
            );
            let ours_initiator = run(
                &setup,
                Hs::ours(&setup, Role::Initiator),
                Hs::snow(&setup, Role::Responder),
                &payloads,
                &transport,
                false,
            );
            prop_assert_eq!(&ours_initiator, &reference, "{:?}: ours as initiator", pattern);
            let ours_responder = run(
                &setup,
                Hs::snow(&setup, Role::Initiator),
                Hs::ours(&setup, Role::Responder),
                &payloads,
                &transport,
                false,
            );
            prop_assert_eq!(&ours_responder, &reference, "{:?}: ours as responder", pattern);
            let ours_both = run(
                &setup,
                Hs::ours(&setup, Role::Initiator),
                Hs::ours(&setup, Role::Responder),
                &payloads,
                &transport,
                false,
            );
            prop_assert_eq!(&ours_both, &reference, "{:?}: ours on both sides", pattern);
        }
    }
}
