//! Regenerates the committed seed corpora from real, valid messages.
//!
//! Run from `fuzz/`: `cargo run --example gen_corpus`. Output is
//! deterministic (fixed keys and seeds), so a rerun leaves `git status`
//! clean unless the core's wire behaviour changed. Every seed is also run
//! through its target's body here, so a seed that panics is caught at once.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use peercollab_core::HashDrbg;
use peercollab_core::card::{CARD_CHECKSUM_LABEL, CARD_PREFIX, ContactCard};
use peercollab_core::identity::{Certificate, EndpointId, LocalIdentity};
use peercollab_core::invite::message::{
    self as im, AppId, Cancel, CancelReason, Final, FinalCode, InviteFragment, InviteId, Message,
};
use peercollab_core::invite::{CancelEffect, InvitationEvent, Outcome};
use peercollab_core::mac::{MacKey, XX_MAC1_KEY_MATERIAL};
use peercollab_core::noise::{HandshakePattern, HandshakeState, Role, hash};
use peercollab_core::session::{Failure, SessionEvent};
use peercollab_core::wire::{self, Frame, FrameType, Initiation, MAC_LEN, tlv};
use peercollab_fuzz::agent_network::{
    self as network, ALICE, BOB0, BOB1, CARD_ALICE, CARD_BOB, CARD_BOB_NEWER, InviteSpec, NOWHERE,
    NameSpec, Relation, away, home,
};
use peercollab_fuzz::handshake_responder::{self as hr, Op, Policy, Source, start};
use peercollab_fuzz::invitation_machine::{self as machine, Body, Expiry, Side, Verdict};
use peercollab_fuzz::noise_responder::{self as nr, Mode};
use peercollab_fuzz::schedule::{AnswerSpec, Mutation, START_MS};
use peercollab_fuzz::{contact_card_parse, frame_decode, invite_message};

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

/// The newest genuine datagram, as sent.
fn newest() -> Source {
    Source::Genuine { back: 0, mutation: Mutation::None }
}

/// The newest genuine datagram, mutated.
fn newest_with(mutation: Mutation) -> Source {
    Source::Genuine { back: 0, mutation }
}

/// Bob reads the newest datagram and accepts it into `slot`.
fn read_newest(slot: u8) -> Op {
    read(slot, newest())
}

/// Bob reads a datagram and accepts it into `slot` if it reads.
fn read(slot: u8, src: Source) -> Op {
    Op::Read { src, policy: Policy::Read, accept: true, slot, index: 0xB0B0_0000 + u32::from(slot) }
}

fn to_bob(slot: u8) -> Op {
    Op::ToBob { slot, src: newest() }
}

fn to_initiator() -> Op {
    Op::ToInitiator { src: newest() }
}

/// An XX initiation whose ephemeral key is all zeros (low order), padded and
/// with a valid mac1: `Incoming::read` takes it, `accept` refuses it.
fn low_order_xx_initiation() -> Vec<u8> {
    let noise = [0u8; wire::MIN_XX_INITIATION_LEN - wire::INITIATION_OVERHEAD];
    let frame = Frame::Initiation(Initiation {
        mode: wire::Mode::Xx,
        sender_index: 0x10_0E,
        noise: &noise,
        mac1: [0; MAC_LEN],
        mac2: [0; MAC_LEN],
    });
    let mut buf = vec![0u8; frame.buffer_len()];
    let n = frame.emit(&mut buf).expect("a padded XX initiation emits");
    let mac1 = MacKey::mac1(&XX_MAC1_KEY_MATERIAL).mac(&buf[..n - 2 * MAC_LEN]);
    buf[n - 2 * MAC_LEN..n - MAC_LEN].copy_from_slice(&mac1);
    buf
}

/// Writes a `handshake_responder` seed after checking that it decodes to
/// `ops` and runs; returns what the run did.
fn hr_seed(name: &str, ops: &[Op]) -> hr::Report {
    let seed = hr::encode(ops);
    assert_eq!(hr::decode(&seed), ops, "seed {name} does not decode to its operations");
    let report = hr::run_report(&seed);
    write("handshake_responder", name, &seed);
    report
}

fn established(r: &hr::Report, who: u8) -> bool {
    r.events.contains(&(who, SessionEvent::Established))
}

/// Seeds for `handshake_responder`; returns every datagram their runs sent.
fn handshake_responder() -> Vec<Vec<u8>> {
    let mut transcripts = Vec::new();
    let mut keep = |r: hr::Report| transcripts.extend(r.transmitted);

    // IK, full certificate statement: both established, payloads both ways,
    // the largest payload, and one too large (refused).
    let r = hr_seed(
        "ik_certificate",
        &[
            Op::Start { flags: 0 },
            read_newest(0),
            to_initiator(),
            Op::Send { who: 0, len: 10 },
            to_bob(0),
            Op::Send { who: 1, len: 12 },
            to_initiator(),
            Op::Send { who: 0, len: u16::try_from(wire::MAX_TRANSPORT_PAYLOAD).unwrap() },
            to_bob(0),
            Op::Send { who: 0, len: u16::try_from(wire::MAX_TRANSPORT_PAYLOAD + 1).unwrap() },
        ],
    );
    assert!(established(&r, 0) && established(&r, 1), "{r:?}");
    assert_eq!(r.delivered, [(1, 10), (0, 12), (1, wire::MAX_TRANSPORT_PAYLOAD)]);
    keep(r);

    // IK, hash statement, confirmed by a keepalive.
    let r = hr_seed(
        "ik_hash",
        &[
            Op::Start { flags: start::HASH },
            read_newest(0),
            to_initiator(),
            Op::Send { who: 0, len: 0 },
            to_bob(0),
        ],
    );
    assert!(established(&r, 0) && established(&r, 1), "{r:?}");
    assert_eq!(r.delivered, [(1, 0)]);
    keep(r);

    // IK to Bob's old certificate: Bob states his current one in full.
    let r = hr_seed(
        "ik_old_pin",
        &[
            Op::Start { flags: start::OLD_PIN },
            read_newest(0),
            to_initiator(),
            Op::Send { who: 0, len: 5 },
            to_bob(0),
        ],
    );
    assert!(established(&r, 0) && established(&r, 1), "{r:?}");
    keep(r);

    // IK from Carol, whom Bob does not know: a certificate statement works,
    // a hash statement is refused.
    let r = hr_seed(
        "ik_unknown_initiator",
        &[
            Op::Start { flags: start::CAROL },
            read_newest(0),
            to_initiator(),
            Op::Send { who: 0, len: 3 },
            to_bob(0),
            Op::Start { flags: start::CAROL | start::HASH },
            read_newest(1),
        ],
    );
    assert!(established(&r, 0) && established(&r, 1), "{r:?}");
    assert_eq!(r.accepted, 1);
    keep(r);

    // XX expecting Bob: final message, a duplicate of it answered by a
    // keepalive that confirms Alice, then a payload.
    let r = hr_seed(
        "xx_expect_bob",
        &[
            Op::Start { flags: start::XX | start::EXPECT_BOB },
            read_newest(0),
            to_initiator(),
            to_bob(0),
            to_bob(0),
            to_initiator(),
            Op::Send { who: 0, len: 20 },
            to_bob(0),
        ],
    );
    assert!(established(&r, 0) && established(&r, 1), "{r:?}");
    assert_eq!(r.delivered, [(0, 0), (1, 20)]);
    keep(r);

    // XX from Carol, accepting anyone; Bob sends first after confirmation.
    let r = hr_seed(
        "xx_unknown_initiator",
        &[
            Op::Start { flags: start::XX | start::CAROL },
            read_newest(1),
            to_initiator(),
            Op::ToBob { slot: 1, src: newest() },
            Op::Send { who: 2, len: 7 },
            to_initiator(),
        ],
    );
    assert!(established(&r, 0) && established(&r, 2), "{r:?}");
    assert_eq!(r.delivered, [(0, 7)]);
    keep(r);

    // Admission policies: Carol, unpinned, is turned away before her
    // certificate is verified, then admitted; Alice's certificate, byte-equal
    // to the pinned one, reads whatever the policy.
    let admitted = |policy, slot: u8| Op::Read {
        src: newest(),
        policy,
        accept: true,
        slot,
        index: 0xB0B0_0000 + u32::from(slot),
    };
    let r = hr_seed(
        "ik_admission",
        &[
            Op::Start { flags: start::CAROL },
            admitted(Policy::AdmitAlice, 0),
            admitted(Policy::AdmitNobody, 0),
            admitted(Policy::AdmitCarol, 0),
            to_initiator(),
            Op::Start { flags: 0 },
            admitted(Policy::AdmitNobody, 1),
        ],
    );
    assert_eq!(r.accepted, 2, "{r:?}");
    assert!(established(&r, 0), "{r:?}");
    keep(r);

    // XX expecting Carol: Bob proves his identity, the initiator fails.
    let r = hr_seed(
        "xx_identity_mismatch",
        &[Op::Start { flags: start::XX | start::EXPECT_CAROL }, read_newest(0), to_initiator()],
    );
    assert!(r.events.contains(&(0, SessionEvent::Failed(Failure::IdentityMismatch))), "{r:?}");
    keep(r);

    // A low-order XX ephemeral: read, then refused by accept.
    let r = hr_seed(
        "xx_low_order_ephemeral",
        &[Op::Read {
            src: Source::Raw(low_order_xx_initiation()),
            policy: Policy::Read,
            accept: true,
            slot: 0,
            index: 1,
        }],
    );
    assert_eq!((r.accepted, r.accept_failed), (0, 1), "{r:?}");
    keep(r);

    // A retransmitted initiation is a duplicate, answered from cache.
    let r = hr_seed(
        "ik_retransmission",
        &[
            Op::Start { flags: 0 },
            read_newest(0),
            Op::Advance { ms: 1_400 },
            to_bob(0),
            to_initiator(),
        ],
    );
    assert!(established(&r, 0), "{r:?}");
    keep(r);

    // A cookie reply: the retransmission carries mac2, and is accepted.
    let r = hr_seed(
        "ik_cookie",
        &[
            Op::Start { flags: 0 },
            Op::Cookie { nonce: 1, cookie: 2 },
            to_initiator(),
            Op::Advance { ms: 1_400 },
            read_newest(0),
            to_initiator(),
        ],
    );
    assert!(established(&r, 0), "{r:?}");
    keep(r);
    let r = hr_seed(
        "xx_cookie",
        &[
            Op::Start { flags: start::XX },
            Op::Cookie { nonce: 3, cookie: 4 },
            to_initiator(),
            Op::Advance { ms: 1_400 },
            read_newest(0),
            to_initiator(),
        ],
    );
    assert!(established(&r, 0), "{r:?}");
    keep(r);

    // Time: backwards, past every deadline, to the end of time.
    let r = hr_seed(
        "timeouts",
        &[
            Op::Start { flags: start::XX },
            read_newest(0),
            Op::Advance { ms: -5_000 },
            Op::Advance { ms: 20_000 },
            Op::Jump { at: START_MS + 40_000 },
            Op::Jump { at: u64::MAX },
            Op::Advance { ms: -1 },
            Op::Start { flags: 0 },
            read_newest(1),
        ],
    );
    assert!(r.events.iter().any(|(w, e)| *w == 1 && matches!(e, SessionEvent::Failed(_))));
    keep(r);

    // Mutated and junk datagrams, a session closed.
    let r = hr_seed(
        "mutations_and_close",
        &[
            Op::Start { flags: 0 },
            read(0, newest_with(Mutation::Flip { at: 100, xor: 1 })),
            read(0, newest_with(Mutation::Truncate { len: 219 })),
            read_newest(0),
            Op::ToInitiator { src: newest_with(Mutation::Set { at: 3, value: 1 }) },
            Op::ToBob { slot: 0, src: Source::Raw(vec![1, 5, 0, 0, 0xB0, 0xB0, 0, 0, 0, 0, 0, 0]) },
            to_initiator(),
            Op::Send { who: 0, len: 1 },
            Op::ToBob { slot: 0, src: newest_with(Mutation::Append(vec![0])) },
            to_bob(0),
            to_bob(0),
            Op::Close { who: 1 },
            to_bob(0),
        ],
    );
    assert!(established(&r, 1), "{r:?}");
    assert_eq!(r.delivered, [(1, 1)]);
    assert!(r.dropped >= 5, "{r:?}");
    keep(r);

    // Both of Bob's slots: an IK and an XX session.
    let r = hr_seed(
        "two_sessions",
        &[
            Op::Start { flags: 0 },
            read_newest(0),
            Op::Start { flags: start::XX },
            read_newest(1),
            to_initiator(),
            Op::ToBob { slot: 1, src: newest() },
            Op::Send { who: 2, len: 9 },
            to_initiator(),
            Op::ToBob { slot: 0, src: Source::Genuine { back: 3, mutation: Mutation::None } },
        ],
    );
    assert!(established(&r, 2), "{r:?}");
    keep(r);

    transcripts
}

/// Seeds for `frame_decode`: one genuine datagram of each type, mode and
/// handshake size that the handshake seeds sent, a TLV payload and two
/// malformed headers.
fn frame_decode(transcripts: &[Vec<u8>]) {
    const T: &str = "frame_decode";
    let mut seen = BTreeMap::new();
    for d in transcripts {
        let f = Frame::parse(d).expect("genuine datagrams parse");
        let name = match f {
            Frame::Initiation(i) => format!("initiation_{:?}_{}", i.mode, d.len()),
            Frame::Response(r) => format!("response_{:?}_{}", r.mode, d.len()),
            Frame::HandshakeFinal(_) => format!("final_{}", d.len()),
            Frame::CookieReply(c) => format!("cookie_reply_{:?}", c.mode),
            Frame::Transport(_) if d.len() == wire::MIN_TRANSPORT_LEN => "keepalive".to_string(),
            Frame::Transport(_) if d.len() == wire::MAX_DATAGRAM => "transport_max".to_string(),
            Frame::Transport(_) => "transport".to_string(),
        };
        seen.entry(name.to_lowercase()).or_insert_with(|| d.clone());
    }
    for ty in [
        FrameType::Initiation,
        FrameType::Response,
        FrameType::HandshakeFinal,
        FrameType::CookieReply,
        FrameType::Transport,
    ] {
        assert!(seen.values().any(|d| wire::peek_type(d) == Ok(ty)), "no genuine {ty:?} datagram");
    }
    for (name, d) in &seen {
        frame_decode::run(d);
        write(T, name, d);
    }

    // A TLV payload as a handshake writes it: statement, pinned hash, padding.
    let mut buf = [0u8; 256];
    let mut w = tlv::Writer::new(&mut buf);
    w.field(tlv::CERTIFICATE, &[0x11; 141]).unwrap();
    w.field(tlv::PEER_CERTIFICATE_HASH, &[0x22; 32]).unwrap();
    w.field(0x40, &[]).unwrap();
    w.pad_to(200).unwrap();
    let n = w.len();
    frame_decode::run(&buf[..n]);
    write(T, "tlv_payload", &buf[..n]);

    // Malformed headers: a version and a reserved byte this side refuses.
    let keepalive = &seen["keepalive"];
    let mut bad = keepalive.clone();
    bad[0] = 2;
    frame_decode::run(&bad);
    write(T, "bad_version", &bad);
    let mut bad = keepalive.clone();
    bad[3] = 0x80;
    frame_decode::run(&bad);
    write(T, "reserved_set", &bad);
}

const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Decodes canonical card base32 (no separators).
fn base32_decode(text: &str) -> Vec<u8> {
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        let v = BASE32.iter().position(|&a| a == c).expect("canonical base32") as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The text of a card with this payload, with a correct checksum.
fn card_text(payload: &[u8]) -> String {
    let sum = hash(&[CARD_CHECKSUM_LABEL, payload]);
    let mut bytes = payload.to_vec();
    bytes.extend_from_slice(&sum[..4]);
    let (mut acc, mut bits, mut out) = (0u32, 0u32, String::from(CARD_PREFIX));
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The payload of a card's canonical text.
fn card_payload(text: &str) -> Vec<u8> {
    let mut bytes = base32_decode(&text[CARD_PREFIX.len()..]);
    bytes.truncate(bytes.len() - 4);
    bytes
}

/// Seeds for `contact_card_parse`: real cards, written the ways people
/// write them, and three that fail late (checksum, signature, certificate).
fn contact_card_parse() {
    const T: &str = "contact_card_parse";
    let seed = |name: &str, text: &str, valid: bool| {
        assert_eq!(ContactCard::parse(text).is_ok(), valid, "seed {name}");
        contact_card_parse::run(text.as_bytes());
        write(T, name, text.as_bytes());
    };
    let ident = |seed: u64| LocalIdentity::generate(&mut HashDrbg::from_u64(seed), EndpointId(1));
    let alice = ident(0xCA4D_0001);
    let bob = ident(0xCA4D_0002);

    let minimal = ContactCard::issue(alice.secret(), "Alice", &[*alice.certificate()], &[])
        .expect("a minimal card")
        .to_string();
    seed("minimal", &minimal, true);

    let other_endpoint = |local: &LocalIdentity, endpoint: u32| {
        let keys = peercollab_core::noise::KeyPair::generate(&mut HashDrbg::from_u64(
            0xCA4D_0100 + u64::from(endpoint),
        ));
        Certificate::issue(local.secret(), keys.public(), EndpointId(endpoint), 1)
    };
    let addresses = [
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 4500)),
        SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 4500)),
    ];
    let two = ContactCard::issue(
        bob.secret(),
        "Bob’s laptop ☕",
        &[*bob.certificate(), other_endpoint(&bob, 2)],
        &addresses,
    )
    .expect("a card with two endpoints")
    .to_string();
    seed("two_endpoints_addresses", &two, true);

    let certs: Vec<_> = (1..=4)
        .map(|e| if e == 1 { *bob.certificate() } else { other_endpoint(&bob, e) })
        .collect();
    let v6: Vec<_> = (1..=4)
        .map(|i| SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, i), 443 + i)))
        .collect();
    let largest = ContactCard::issue(bob.secret(), &"b".repeat(64), &certs, &v6)
        .expect("the largest card")
        .to_string();
    assert_eq!(largest.len(), peercollab_core::card::MAX_CARD_TEXT_LEN);
    seed("largest", &largest, true);

    // Lowercase, grouped by dashes, wrapped, indented.
    let body = minimal[CARD_PREFIX.len()..].to_lowercase();
    let groups: Vec<String> =
        body.as_bytes().chunks(4).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
    let lines: Vec<String> = groups.chunks(8).map(|l| l.join("-")).collect();
    seed("lowercase_grouped", &format!(" \n\tpeercollab1:\r\n{}\n", lines.join("\n")), true);

    // Crockford's aliases: O for 0, I and L for 1.
    let body = &minimal[CARD_PREFIX.len()..];
    let aliased = body.replacen('0', "O", 2).replacen('1', "l", 2).replace('1', "I");
    assert_ne!(aliased, body, "the card has a 0 or a 1 to alias");
    seed("crockford_aliases", &format!("{CARD_PREFIX}{aliased}"), true);

    // The base32 part alone: the target also parses it behind the prefix.
    seed("without_prefix", &two[CARD_PREFIX.len()..], false);

    // A typo: the checksum catches it.
    let mut typo = minimal.clone().into_bytes();
    let i = typo.len() / 2;
    typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
    seed("bad_checksum", std::str::from_utf8(&typo).unwrap(), false);

    // Correct checksums over a damaged signature and a damaged certificate.
    let mut payload = card_payload(&minimal);
    let last = payload.len() - 1;
    payload[last] ^= 1;
    seed("bad_signature", &card_text(&payload), false);
    let mut payload = card_payload(&two);
    payload[1 + 32 + 1 + "Bob’s laptop ☕".len() + 1 + 100] ^= 1;
    seed("bad_certificate", &card_text(&payload), false);
}

/// Seeds for `invite_message`: one valid message of each type, encoded by
/// the codec (two Invite fragments: a small body, and a full chunk of the
/// largest body), one with extensions, and a message text alone.
fn invite_message() {
    const T: &str = "invite_message";
    let id = InviteId(*b"invite-id-seed01");
    let app_id = AppId(*b"app-id-seed-0001");
    let seed = |name: &str, m: Message<'_>, extensions: &[u8]| {
        let mut bytes = vec![0u8; m.buffer_len()];
        let n = m.emit(&mut bytes).expect("a valid message emits");
        bytes.truncate(n);
        bytes.extend_from_slice(extensions);
        assert_eq!(Message::parse(&bytes), Ok(m), "seed {name} parses back");
        invite_message::run(&bytes);
        write(T, name, &bytes);
    };

    let text = "Review the draft with me? ☕";
    let data = [0x5d; 40];
    let body = [text.as_bytes(), &data].concat();
    let fragment = |message_len: usize, data_len: usize, index: usize, chunk| {
        Message::Invite(InviteFragment {
            id,
            app_id,
            remaining_ms: 30_000,
            message_len: u16::try_from(message_len).unwrap(),
            data_len: u16::try_from(data_len).unwrap(),
            index: u8::try_from(index).unwrap(),
            chunk,
        })
    };
    seed("invite", fragment(text.len(), data.len(), 0, &body), &[]);
    let largest: Vec<u8> = (0..im::MAX_BODY).map(|i| (i % 251) as u8).collect();
    let range = im::chunk_range(largest.len(), 1).unwrap();
    let full = fragment(im::MAX_MESSAGE_BYTES, im::MAX_APP_DATA, 1, &largest[range]);
    assert_eq!(full.buffer_len(), im::MAX_FRAGMENT_LEN);
    seed("invite_full_chunk", full, &[]);
    seed("sack", Message::Sack { id, received: 0b1011 }, &[]);
    seed("ringing", Message::Ringing { id }, &[]);
    seed(
        "final_busy",
        Message::Final(Final {
            id,
            code: FinalCode::Busy,
            retry_after_ms: 60_000,
            reason: "in a meeting",
        }),
        &[],
    );
    seed("ack", Message::Ack { id, code: FinalCode::Busy }, &[]);
    seed(
        "cancel",
        Message::Cancel(Cancel { id, reason: CancelReason::ByUser, text: "sorry, wrong person" }),
        &[],
    );

    // An unknown non-critical extension and padding, as a later version
    // might send them.
    let mut ext = [0u8; 16];
    let mut w = tlv::Writer::new(&mut ext);
    w.field(0x40, b"later").unwrap();
    w.pad_to(12).unwrap();
    let n = w.len();
    seed("ringing_with_extension", Message::Ringing { id }, &ext[..n]);

    // The text of an invitation's message alone, for `validate_message`.
    let widest: String = std::iter::repeat_n('😀', im::MAX_MESSAGE_CHARS).collect();
    assert!(im::validate_message(widest.as_bytes()).is_ok());
    invite_message::run(widest.as_bytes());
    write(T, "message_text", widest.as_bytes());
}

/// Writes an `invitation_machine` seed after checking that it decodes to
/// its config and operations; returns what the run did.
fn im_seed(name: &str, config: machine::Config, ops: &[machine::Op]) -> machine::Report {
    let seed = machine::encode(config, ops);
    assert_eq!(machine::decode(&seed), (config, ops.to_vec()), "seed {name} does not decode back");
    let report = machine::run_report(&seed);
    write("invitation_machine", name, &seed);
    report
}

/// One side's `poll_transmit`, all of it delivered in order.
fn im_send(side: Side) -> [machine::Op; 2] {
    [machine::Op::Transmit { side }, machine::Op::Flush]
}

/// Both sides send, inviter first, `rounds` times: a handshake and the
/// Invite, then Ringing (or a Final).
fn im_rounds(rounds: usize) -> Vec<machine::Op> {
    (0..rounds).flat_map(|_| [im_send(Side::Inviter), im_send(Side::Invitee)]).flatten().collect()
}

fn im_respond(answer: AnswerSpec, reason: &str) -> machine::Op {
    machine::Op::Respond { answer, reason: reason.as_bytes().to_vec(), on_inviter: false }
}

fn im_cancel(reason: CancelReason, text: &str) -> machine::Op {
    machine::Op::Cancel { reason, text: text.as_bytes().to_vec(), on_invitee: false }
}

fn im_deliver(pick: u8, keep: bool, reflect: bool, mutation: Mutation) -> machine::Op {
    machine::Op::Deliver { pick, keep, reflect, mutation }
}

/// Seeds for `invitation_machine`: complete invitations ending each way,
/// the users' commands refused, and a hostile network.
fn invitation_machine() {
    use machine::Op as I;
    let config = |xx: bool, hash_or_expect: bool, body: Body, expiry: Expiry| machine::Config {
        xx,
        hash_or_expect,
        body,
        expiry,
        long_max_expiry: false,
        pool_full: false,
    };
    let both = |r: &machine::Report, o: Outcome| {
        assert_eq!(r.before_settle, [Some(o), Some(o)], "{r:?}");
    };
    // Answered: the Final and its Ack, then the linger.
    let answered = |answer, reason: &str| {
        let mut ops = vec![im_respond(answer, reason)];
        ops.extend(im_send(Side::Invitee));
        ops.extend(im_send(Side::Inviter));
        ops.push(I::Advance { ms: 33_000 });
        ops
    };

    // IK, a short message, accepted after one Ringing; both linger, close.
    let mut ops = im_rounds(3);
    ops.extend(answered(AnswerSpec::Accept, "see you there"));
    let r = im_seed("ik_accepted", machine::Config::default(), &ops);
    both(&r, Outcome::Accepted);
    assert!(r.invitee_events.contains(&InvitationEvent::Invited), "{r:?}");
    assert!(r.inviter_events.contains(&InvitationEvent::Ringing), "{r:?}");

    // XX expecting Bob, two fragments, accepted.
    let r = im_seed("xx_accepted", config(true, true, Body::Two, Expiry::Default), &ops);
    both(&r, Outcome::Accepted);

    // XX to anyone, nothing in the body: no buffer on either side.
    let r = im_seed("xx_empty_accepted", config(true, false, Body::Empty, Expiry::Default), &ops);
    both(&r, Outcome::Accepted);

    // IK stating the hash, sixteen fragments of which two are lost: the
    // invitee's Sack brings them again; declined with a reason.
    let mut ops = im_rounds(1);
    ops.extend([
        I::Transmit { side: Side::Inviter },
        I::Drop { pick: 3 },
        I::Drop { pick: 9 },
        I::Flush,
        I::Advance { ms: 30 },
    ]);
    ops.extend(im_rounds(2));
    ops.extend(answered(AnswerSpec::Decline, "not today"));
    let r = im_seed(
        "ik_largest_lossy_declined",
        config(false, true, Body::Largest, Expiry::Default),
        &ops,
    );
    both(&r, Outcome::Declined);

    // Busy, after the users' refused commands: a reason too long, a wait too
    // long, each role's command to the other, GaveUp; the inviter's cancel
    // of an answered invitation has no effect.
    let mut ops = im_rounds(3);
    ops.extend([
        im_respond(AnswerSpec::Accept, &"r".repeat(200)),
        im_respond(AnswerSpec::BusyTooLong, ""),
        I::Respond { answer: AnswerSpec::Accept, reason: Vec::new(), on_inviter: true },
        I::Cancel { reason: CancelReason::ByUser, text: Vec::new(), on_invitee: true },
        im_cancel(CancelReason::GaveUp, "tired"),
        im_cancel(CancelReason::ByUser, &"t".repeat(129)),
    ]);
    ops.extend(answered(AnswerSpec::Busy(60_000), "in a meeting"));
    ops.insert(ops.len() - 1, im_cancel(CancelReason::ByUser, "too late"));
    let r = im_seed("refused_commands_busy", machine::Config::default(), &ops);
    both(&r, Outcome::Busy { retry_after: peercollab_core::Duration::from_secs(60) });
    assert_eq!(r.cancels.last(), Some(&Ok(CancelEffect::NoEffect)), "{r:?}");

    // Cancelled while ringing: Cancel, Final(Cancelled), Ack.
    let mut ops = im_rounds(3);
    ops.push(im_cancel(CancelReason::ByUser, "sorry, wrong person"));
    ops.extend(im_rounds(2));
    let r = im_seed("cancelled_ringing", machine::Config::default(), &ops);
    both(&r, Outcome::Cancelled(CancelReason::ByUser));

    // A Cancel crossing an Accept: Cancelled on both sides.
    let mut ops = im_rounds(3);
    ops.extend([
        im_respond(AnswerSpec::Accept, ""),
        im_cancel(CancelReason::AnsweredElsewhere, ""),
        I::Transmit { side: Side::Invitee },
        I::Transmit { side: Side::Inviter },
        I::Flush,
    ]);
    ops.extend(im_rounds(2));
    let r =
        im_seed("cancel_crosses_accept", config(true, false, Body::Short, Expiry::Default), &ops);
    both(&r, Outcome::Cancelled(CancelReason::AnsweredElsewhere));

    // Cancelled before the handshake completed: abandoned; the invitee,
    // built from the initiation, gives up.
    let ops =
        [im_send(Side::Inviter).to_vec(), vec![im_cancel(CancelReason::ByUser, "")], im_rounds(1)]
            .concat();
    let r = im_seed("abandoned", machine::Config::default(), &ops);
    assert_eq!(r.cancels, [Ok(CancelEffect::Abandoned)]);
    assert!(r.invitee_built);
    assert_eq!(r.outcome(Side::Inviter), Some(Outcome::Cancelled(CancelReason::ByUser)));
    assert_eq!(r.outcome(Side::Invitee), Some(Outcome::Unreachable));

    // Expired: five seconds, the invitee declares it; and an expiry of zero.
    let mut ops = im_rounds(3);
    ops.push(I::Advance { ms: 6_000 });
    ops.extend(im_rounds(2));
    let r = im_seed("expired", config(false, false, Body::Short, Expiry::Short), &ops);
    both(&r, Outcome::Expired);
    let r = im_seed("expired_at_once", config(true, true, Body::Two, Expiry::Zero), &ops);
    both(&r, Outcome::Expired);

    // Screened out, and no free buffer (Busy for 10 s).
    let mut ops = vec![I::Screen { verdict: Verdict::NotRegistered }];
    ops.extend(im_rounds(4));
    let r = im_seed("not_registered", machine::Config::default(), &ops);
    both(&r, Outcome::NotRegistered);
    ops[0] = I::Screen { verdict: Verdict::Busy(5_000) };
    let r = im_seed("screened_busy", config(true, false, Body::Two, Expiry::Default), &ops);
    both(&r, Outcome::Busy { retry_after: peercollab_core::Duration::from_secs(5) });
    let full = machine::Config { pool_full: true, ..machine::Config::default() };
    let r = im_seed("pool_full", full, &im_rounds(4));
    both(&r, Outcome::Busy { retry_after: peercollab_core::invite::POOL_BUSY_RETRY_AFTER });

    // Unreachable: the invitee rings, then nothing arrives; the inviter
    // gives up and withdraws with Cancel(GaveUp). With the longest expiry
    // both ways, the invitee rings on for weeks (the silent settling).
    let mut ops = im_rounds(3);
    ops.extend([I::Advance { ms: 61_000 }, I::Transmit { side: Side::Inviter }, I::Flush]);
    let r = im_seed("inviter_gives_up", machine::Config::default(), &ops);
    assert_eq!(r.before_settle[0], Some(Outcome::Unreachable), "{r:?}");
    assert_eq!(r.before_settle[1], Some(Outcome::Cancelled(CancelReason::GaveUp)), "{r:?}");
    let long = machine::Config {
        long_max_expiry: true,
        ..config(false, false, Body::Short, Expiry::Longest)
    };
    let r = im_seed("longest_expiry_silence", long, &im_rounds(3));
    assert_eq!(r.outcome(Side::Inviter), Some(Outcome::Unreachable), "{r:?}");
    assert_eq!(r.outcome(Side::Invitee), Some(Outcome::Unreachable), "{r:?}");

    // A hostile network: junk, corrupted, truncated, reflected and
    // duplicated datagrams around a genuine exchange; time backwards; the
    // end of time.
    use Mutation as M;
    let tx = |side| I::Transmit { side };
    let hostile = |ops: &mut Vec<machine::Op>| {
        ops.extend([
            im_deliver(0, true, false, M::Flip { at: 40, xor: 0x01 }),
            im_deliver(0, true, false, M::Truncate { len: 30 }),
            im_deliver(0, true, true, M::None),
            I::Inject {
                to: Side::Invitee,
                bytes: vec![4, 0, 0, 0, 0xB0, 0xB0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            },
            I::Inject { to: Side::Inviter, bytes: vec![0x5a; 64] },
        ]);
    };
    let mut ops = vec![tx(Side::Inviter)];
    hostile(&mut ops);
    ops.extend([I::Flush, tx(Side::Invitee)]);
    hostile(&mut ops);
    ops.extend([I::Flush, tx(Side::Inviter)]);
    hostile(&mut ops);
    ops.extend([
        im_deliver(0, true, false, M::None),
        I::Flush,
        I::Advance { ms: -5_000 },
        tx(Side::Invitee),
    ]);
    hostile(&mut ops);
    ops.extend([I::Flush, im_respond(AnswerSpec::Accept, "ok"), tx(Side::Invitee)]);
    hostile(&mut ops);
    ops.extend([I::Flush, tx(Side::Inviter)]);
    hostile(&mut ops);
    ops.extend([I::Flush, I::Hog { take: true }, I::Hog { take: false }, I::Jump { at: u64::MAX }]);
    let r = im_seed("hostile_network", config(true, true, Body::Short, Expiry::Default), &ops);
    both(&r, Outcome::Accepted);
    assert!(r.dropped[0] >= 4 && r.dropped[1] >= 4 && r.unrouted >= 2, "{r:?}");
}

/// Writes an `agent_network` seed after checking that it decodes to its
/// config and operations; returns what the run did.
fn an_seed(name: &str, config: network::Config, ops: &[network::Op]) -> network::Report {
    let seed = network::encode(config, ops);
    assert_eq!(network::decode(&seed), (config, ops.to_vec()), "seed {name} does not decode back");
    let report = network::run_report(&seed);
    write("agent_network", name, &seed);
    report
}

/// Each agent of `agents`, in turn, sends everything it has, all of it
/// delivered in order; `rounds` times.
fn an_rounds(agents: &[u8], rounds: usize) -> Vec<network::Op> {
    use network::Op as N;
    (0..rounds)
        .flat_map(|_| agents.iter().flat_map(|&agent| [N::Transmit { agent }, N::Flush]))
        .collect()
}

fn an_respond(agent: u8, answer: AnswerSpec, reason: &str) -> network::Op {
    network::Op::Respond { agent, incoming: 0, answer, reason: reason.as_bytes().to_vec() }
}

/// Alice invites her contact Bob (her first contact) at the endpoints
/// given as `(endpoint, address index)`.
fn an_invite_bob(targets: &[(u8, u8)], request: u8, options: InviteSpec) -> network::Op {
    network::Op::InviteContact {
        agent: ALICE,
        contact: 0,
        targets: targets.to_vec(),
        request,
        options,
    }
}

/// Seeds for `agent_network`: contact invitations accepted, declined and
/// cancelled, an endpoint invitation, roaming, several endpoints at once,
/// the policy table's silences and refusals, every command refused, and a
/// hostile network.
fn agent_network() {
    use AnswerSpec as A;
    use network::{Op as N, Source};
    use peercollab_core::agent::{AgentError, Event, Policy, Trust};
    use peercollab_core::invite::InviteError;
    let config = network::Config::default();
    let bob0 = [(0, home(BOB0))];
    let bob1 = [(1, home(BOB1))];
    let linger = || [N::Advance { ms: 40_000 }];

    // A contact invitation (IK, Alice to Bob's endpoint 0), accepted; the
    // launch information read and released.
    let mut ops = vec![an_invite_bob(&bob0, 0, InviteSpec::KEEP)];
    ops.extend(an_rounds(&[ALICE, BOB0], 3));
    ops.push(an_respond(BOB0, A::Accept, "see you there"));
    ops.extend(an_rounds(&[BOB0, ALICE], 2));
    ops.extend(linger());
    ops.extend([
        N::LaunchInfo { agent: BOB0, incoming: 0, view: true },
        N::LaunchInfo { agent: BOB0, incoming: 0, view: false },
        N::Response { agent: ALICE, handle: 0 },
        N::Release { agent: BOB0, incoming: 0 },
        N::Close { agent: ALICE, handle: 0 },
    ]);
    let r = an_seed("contact_accepted", config, &ops);
    assert_eq!(r.responded(ALICE), [Outcome::Accepted], "{r:#?}");
    assert_eq!(r.incoming_ended(BOB0), [Outcome::Accepted], "{r:#?}");
    assert_eq!(r.count(ALICE, |e| matches!(e, Event::Ringing(_))), 1, "{r:#?}");
    assert_eq!(r.results(BOB0, "launch_info"), [Ok(())]);
    assert_eq!(r.results(BOB0, "release"), [Ok(())]);
    assert_eq!(r.results(ALICE, "close"), [Ok(())]);

    // Declined with a reason, by a known contact's endpoint; no launch
    // information.
    let mut ops = vec![an_invite_bob(&bob0, 2, InviteSpec::KEEP)];
    ops.extend(an_rounds(&[ALICE, BOB0], 3));
    ops.push(an_respond(BOB0, A::Decline, "not today"));
    ops.extend(an_rounds(&[BOB0, ALICE], 2));
    ops.extend([N::LaunchInfo { agent: BOB0, incoming: 0, view: false }]);
    let known = network::Config {
        relations: [Relation::Known, Relation::Known, Relation::Stranger],
        ..config
    };
    let r = an_seed("contact_declined", known, &ops);
    assert_eq!(r.responded(ALICE), [Outcome::Declined], "{r:#?}");
    assert_eq!(r.incoming_ended(BOB0), [Outcome::Declined], "{r:#?}");
    assert_eq!(r.results(BOB0, "launch_info"), [Err(AgentError::NoLaunchInfo)]);

    // Cancelled while ringing; a second cancel has no effect; closed.
    let mut ops = vec![an_invite_bob(&bob0, 0, InviteSpec::KEEP)];
    ops.extend(an_rounds(&[ALICE, BOB0], 3));
    ops.extend([N::Cancel { agent: ALICE, handle: 0 }, N::Cancel { agent: ALICE, handle: 0 }]);
    ops.extend(an_rounds(&[ALICE, BOB0], 2));
    ops.extend([N::Close { agent: ALICE, handle: 0 }, N::Cancel { agent: ALICE, handle: 0 }]);
    let r = an_seed("contact_cancelled", config, &ops);
    let cancelled = Outcome::Cancelled(CancelReason::ByUser);
    assert_eq!(r.responded(ALICE), [cancelled], "{r:#?}");
    assert_eq!(r.incoming_ended(BOB0), [cancelled], "{r:#?}");
    assert_eq!(
        r.cancels,
        [Ok(CancelEffect::Withdrawing), Ok(CancelEffect::NoEffect), Err(AgentError::UnknownHandle)]
    );

    // An answer given after the expiry, before the timer ran (late timers):
    // refused, the invitation expires at once.
    let mut ops = vec![an_invite_bob(&bob0, 0, InviteSpec::KEEP)];
    ops.extend(an_rounds(&[ALICE, BOB0], 3));
    ops.extend([N::Skew { ms: 300_000 }, an_respond(BOB0, A::Accept, "too late")]);
    ops.extend(an_rounds(&[BOB0, ALICE], 2));
    let r = an_seed("late_answer", config, &ops);
    assert_eq!(
        r.results(BOB0, "respond"),
        [Err(AgentError::Invitation(InviteError::Ended))],
        "{r:#?}"
    );
    assert_eq!(r.late_answers, 1, "{r:#?}");
    assert_eq!(r.responded(ALICE), [Outcome::Expired], "{r:#?}");
    assert_eq!(r.incoming_ended(BOB0), [Outcome::Expired], "{r:#?}");

    // An endpoint invitation (XX) to Bob's endpoint 1 expecting Bob's
    // identity, two fragments, accepted; Alice, who pinned serial 1 of that
    // endpoint, learns serial 2.
    let expect_bob = InviteSpec { expect: 2, ..InviteSpec::KEEP };
    let mut ops =
        vec![N::InviteEndpoint { agent: ALICE, to: home(BOB1), request: 2, options: expect_bob }];
    ops.extend(an_rounds(&[ALICE, BOB1], 4));
    ops.push(an_respond(BOB1, A::Accept, ""));
    ops.extend(an_rounds(&[BOB1, ALICE], 2));
    let r = an_seed("endpoint_accepted", config, &ops);
    assert_eq!(r.responded(ALICE), [Outcome::Accepted], "{r:#?}");
    assert_eq!(r.incoming_ended(BOB1), [Outcome::Accepted], "{r:#?}");
    assert_eq!(r.count(ALICE, |e| matches!(e, Event::ContactUpdated { .. })), 1, "{r:#?}");

    // An endpoint invitation without a handle, from a stranger to a
    // stranger: busy.
    let discard = InviteSpec { discard: true, ..InviteSpec::KEEP };
    let mut ops =
        vec![N::InviteEndpoint { agent: BOB0, to: home(ALICE), request: 1, options: discard }];
    ops.extend(an_rounds(&[BOB0, ALICE], 3));
    ops.push(an_respond(ALICE, A::Busy(60_000), "in a meeting"));
    ops.extend(an_rounds(&[ALICE, BOB0], 2));
    let strangers = network::Config { relations: [Relation::Stranger; 3], ..config };
    let r = an_seed("endpoint_discarded_busy", strangers, &ops);
    assert!(r.events.iter().all(|(a, _)| *a == ALICE), "no event for a discarded handle: {r:#?}");
    assert_eq!(
        r.incoming_ended(ALICE),
        [Outcome::Busy { retry_after: peercollab_core::Duration::from_secs(60) }],
        "{r:#?}"
    );

    // Roaming: Bob's endpoint 0 answers from its other address; Alice
    // follows it there.
    let roam = |pick| N::Deliver {
        pick,
        keep: false,
        reflect: false,
        source: Source::Away,
        mutation: Mutation::None,
    };
    let mut ops = vec![an_invite_bob(&bob0, 0, InviteSpec::KEEP)];
    ops.extend(an_rounds(&[ALICE], 1));
    ops.extend([N::Transmit { agent: BOB0 }, roam(0)]);
    ops.extend(an_rounds(&[ALICE], 1));
    ops.extend([N::Transmit { agent: BOB0 }, roam(0), N::Flush]);
    ops.extend(an_rounds(&[ALICE, BOB0], 2));
    ops.push(an_respond(BOB0, A::Accept, "moving"));
    ops.extend([N::Transmit { agent: BOB0 }, roam(0), N::Flush]);
    ops.extend(an_rounds(&[ALICE, BOB0], 2));
    let r = an_seed("roaming", config, &ops);
    assert_eq!(r.responded(ALICE), [Outcome::Accepted], "{r:#?}");
    assert!(r.stats[usize::from(ALICE)].roamed >= 1, "{r:#?}");

    // Several endpoints at once: Bob's endpoint 1 accepts, endpoint 0 is
    // told "answered elsewhere", endpoint 2 (nobody) never answers.
    let all_bobs = [(0, home(BOB0)), (1, home(BOB1)), (2, NOWHERE)];
    let mut ops = vec![an_invite_bob(&all_bobs, 1, InviteSpec::KEEP)];
    ops.extend(an_rounds(&[ALICE, BOB0, BOB1], 3));
    ops.push(an_respond(BOB1, A::Accept, "on my phone"));
    ops.extend(an_rounds(&[BOB1, ALICE, BOB0], 3));
    let r = an_seed("several_endpoints", config, &ops);
    assert_eq!(r.responded(ALICE), [Outcome::Accepted], "{r:#?}");
    assert_eq!(r.incoming_ended(BOB1), [Outcome::Accepted], "{r:#?}");
    assert_eq!(
        r.incoming_ended(BOB0),
        [Outcome::Cancelled(CancelReason::AnsweredElsewhere)],
        "{r:#?}"
    );
    assert_eq!(r.count(ALICE, |e| matches!(e, Event::ContactUpdated { .. })), 1, "{r:#?}");

    // The policy table: trusted only, Alice a stranger: an IK invitation
    // is met with silence; Alice known: NotAccepted (XX); the application
    // unregistered (and the policy Anyone): NotRegistered; registered with
    // its own policy Anyone, the global one Nobody: accepted.
    let policy = network::Config {
        relations: [Relation::Trusted, Relation::Stranger, Relation::Known],
        registered: true,
        trusted_only: true,
    };
    let mut ops = vec![an_invite_bob(&bob0, 0, InviteSpec::KEEP)];
    ops.extend(an_rounds(&[ALICE, BOB0], 3));
    ops.extend([
        N::Advance { ms: 70_000 },
        N::InviteEndpoint { agent: ALICE, to: home(BOB1), request: 0, options: InviteSpec::KEEP },
    ]);
    ops.extend(an_rounds(&[ALICE, BOB1], 4));
    ops.extend([
        N::Unregister { agent: BOB1, app: 0 },
        N::SetPolicy { agent: BOB1, policy: Policy::Anyone },
        an_invite_bob(&bob1, 0, InviteSpec::KEEP),
    ]);
    ops.extend(an_rounds(&[ALICE, BOB1], 4));
    ops.extend([
        N::Register { agent: BOB1, app: 0, name: NameSpec::Good, policy: Some(Policy::Anyone) },
        N::SetPolicy { agent: BOB1, policy: Policy::Nobody },
        an_invite_bob(&bob1, 0, InviteSpec::KEEP),
    ]);
    ops.extend(an_rounds(&[ALICE, BOB1], 3));
    ops.push(an_respond(BOB1, A::Accept, ""));
    ops.extend(an_rounds(&[BOB1, ALICE], 2));
    let r = an_seed("policy", policy, &ops);
    assert_eq!(
        r.responded(ALICE),
        [Outcome::Unreachable, Outcome::NotAccepted, Outcome::NotRegistered, Outcome::Accepted],
        "{r:#?}"
    );

    // Every command refused: bad targets, requests and expiries, stale
    // handles, full tables, own and duplicate cards, bad names, too many
    // addresses, unknown endpoints and applications.
    let t = an_invite_bob;
    let too_long = InviteSpec { expiry: 4, ..InviteSpec::KEEP };
    let ops = vec![
        t(&[], 0, InviteSpec::KEEP),
        t(&[(0, home(BOB0)), (0, home(BOB1))], 0, InviteSpec::KEEP),
        t(&[(3, home(BOB0))], 0, InviteSpec::KEEP),
        t(&[(0, 1), (1, 2), (2, 6), (3, 0), (0, 3)], 0, InviteSpec::KEEP),
        t(&[(0, home(BOB0))], 4, InviteSpec::KEEP),
        t(&[(0, home(BOB0))], 5, InviteSpec::KEEP),
        t(&[(0, home(BOB0))], 0, too_long),
        N::AddContact { agent: ALICE, card: CARD_ALICE, trusted: true },
        N::AddContact { agent: ALICE, card: CARD_BOB, trusted: true },
        N::AddContact { agent: BOB0, card: CARD_BOB, trusted: true },
        N::AddContact { agent: ALICE, card: 4, trusted: false },
        N::AddContact { agent: ALICE, card: 5, trusted: false },
        N::AddContact { agent: ALICE, card: 2, trusted: false },
        N::UpdateContact {
            agent: ALICE,
            contact: 0,
            name: Some(NameSpec::Empty),
            trust: Some(Trust::Known),
            addresses: None,
        },
        N::UpdateContact {
            agent: ALICE,
            contact: 0,
            name: Some(NameSpec::TooLong),
            trust: None,
            addresses: None,
        },
        N::UpdateContact {
            agent: ALICE,
            contact: 0,
            name: None,
            trust: Some(Trust::Known),
            addresses: Some(5),
        },
        N::UpdateContact {
            agent: ALICE,
            contact: 0,
            name: Some(NameSpec::Good),
            trust: Some(Trust::Known),
            addresses: Some(2),
        },
        N::RevokeEndpoint { agent: ALICE, contact: 0, endpoint: 3 },
        N::RefreshContact { agent: ALICE, contact: 0, card: 2 },
        N::RefreshContact { agent: ALICE, contact: 0, card: CARD_BOB_NEWER },
        N::Unregister { agent: ALICE, app: 1 },
        N::Register { agent: ALICE, app: 1, name: NameSpec::Empty, policy: None },
        N::Register { agent: ALICE, app: 1, name: NameSpec::TooLong, policy: None },
        N::Register { agent: ALICE, app: 1, name: NameSpec::Good, policy: Some(Policy::Nobody) },
        N::Register { agent: ALICE, app: 2, name: NameSpec::Good, policy: None },
        N::Register { agent: ALICE, app: 3, name: NameSpec::Good, policy: None },
        N::Register { agent: ALICE, app: 4, name: NameSpec::Good, policy: None },
        N::SetPolicy { agent: ALICE, policy: Policy::Nobody },
        // Two buffers: the third invitation with a body is refused; four
        // slots: the fifth endpoint is.
        t(&[(0, home(BOB0)), (1, home(BOB1))], 0, InviteSpec::KEEP),
        t(&[(0, home(BOB0))], 0, InviteSpec::KEEP),
        t(&[(0, home(BOB0)), (1, home(BOB1))], 1, InviteSpec::KEEP),
        t(&[(2, NOWHERE)], 1, InviteSpec::KEEP),
        N::Close { agent: ALICE, handle: 0 },
        N::Close { agent: ALICE, handle: 0 },
        N::Cancel { agent: ALICE, handle: 0 },
        N::Response { agent: ALICE, handle: 0 },
        N::Respond { agent: BOB0, incoming: 0, answer: A::Accept, reason: Vec::new() },
        N::Release { agent: BOB0, incoming: 0 },
        N::RemoveContact { agent: ALICE, contact: 0 },
        N::RemoveContact { agent: ALICE, contact: 0 },
        N::RevokeEndpoint { agent: ALICE, contact: 0, endpoint: 0 },
    ];
    let crowded = network::Config { relations: [Relation::Crowded; 3], ..config };
    let r = an_seed("refused_commands", crowded, &ops);
    assert_eq!(
        r.results(ALICE, "refresh_contact"),
        [Err(AgentError::WrongIdentity), Ok(())],
        "{r:#?}"
    );
    let mut invites = r.results(ALICE, "invite_contact");
    assert!(
        matches!(invites.remove(4), Err(AgentError::Invitation(InviteError::BadMessage(_)))),
        "{r:#?}"
    );
    assert_eq!(
        invites,
        [
            Err(AgentError::NoTargets),
            Err(AgentError::DuplicateEndpoint),
            Err(AgentError::UnknownEndpoint),
            Err(AgentError::TooManyTargets),
            Err(AgentError::Invitation(InviteError::DataTooLarge)),
            Err(AgentError::Invitation(InviteError::DurationTooLong)),
            Ok(()),
            Err(AgentError::Invitation(InviteError::PoolFull)),
            Ok(()),
            Err(AgentError::InvitationsFull),
        ],
        "{r:#?}"
    );
    let added = r.results(ALICE, "add_contact");
    assert!(
        matches!(
            added[..],
            [
                Err(AgentError::OwnIdentity),
                Err(AgentError::AlreadyExists(_)),
                Ok(()),
                Err(AgentError::ContactsFull),
                Err(AgentError::AlreadyExists(_)),
            ]
        ),
        "{added:?}"
    );

    // A hostile network around an accepted invitation: corrupted,
    // truncated, reflected, spoofed and invented datagrams, time backwards,
    // then the end of time.
    use Mutation as M;
    let hostile = |ops: &mut Vec<N>| {
        ops.extend([
            N::Deliver {
                pick: 0,
                keep: true,
                reflect: false,
                source: Source::Sender,
                mutation: M::Flip { at: 40, xor: 1 },
            },
            N::Deliver {
                pick: 0,
                keep: true,
                reflect: false,
                source: Source::Sender,
                mutation: M::Truncate { len: 30 },
            },
            N::Deliver {
                pick: 0,
                keep: true,
                reflect: true,
                source: Source::Sender,
                mutation: M::None,
            },
            N::Deliver {
                pick: 0,
                keep: true,
                reflect: false,
                source: Source::Nowhere,
                mutation: M::Flip { at: 3, xor: 0x80 },
            },
            N::Inject {
                to: BOB0,
                from: away(ALICE),
                bytes: vec![4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            },
            N::Inject { to: ALICE, from: NOWHERE, bytes: vec![0x5a; 64] },
        ]);
    };
    let mut ops = vec![an_invite_bob(&bob0, 0, InviteSpec::KEEP), N::Transmit { agent: ALICE }];
    for agent in [BOB0, ALICE, BOB0, ALICE] {
        hostile(&mut ops);
        ops.extend([N::Flush, N::Transmit { agent }]);
    }
    ops.push(N::Advance { ms: -5_000 });
    hostile(&mut ops);
    ops.extend([N::Flush, an_respond(BOB0, A::Accept, "ok"), N::Transmit { agent: BOB0 }]);
    hostile(&mut ops);
    ops.extend([N::Flush, N::Transmit { agent: ALICE }]);
    hostile(&mut ops);
    ops.extend([N::Flush, N::Jump { at: u64::MAX }, N::Transmit { agent: BOB0 }, N::Flush]);
    let r = an_seed("hostile_network", config, &ops);
    assert_eq!(r.responded(ALICE), [Outcome::Accepted], "{r:#?}");
    assert!(r.dropped[0] >= 4 && r.dropped[1] >= 4, "{r:#?}");
}

fn main() {
    noise_responder();
    let transcripts = handshake_responder();
    frame_decode(&transcripts);
    contact_card_parse();
    invite_message();
    invitation_machine();
    agent_network();
    agent_ops();
    sim();
}

/// The simulator: a clean run, a lossy one, one with every fault, one with
/// an outage over the handshake budget.
fn sim() {
    use peercollab_fuzz::sim::{Input, encode, run};
    use peercollab_tests::sim::FaultMix;
    let seeds = [
        ("clean", Input { seed: 1, peers: 3, invitations: 4, faults: FaultMix::clean(20) }, None),
        (
            "loss",
            Input {
                seed: 2,
                peers: 4,
                invitations: 5,
                faults: FaultMix { loss_ppm: 200_000, jitter_ms: 40, ..FaultMix::clean(30) },
            },
            None,
        ),
        (
            "everything",
            Input {
                seed: 3,
                peers: 5,
                invitations: 6,
                faults: FaultMix { outages: Vec::new(), ..FaultMix::everything(100_000) },
            },
            None,
        ),
        (
            "outage",
            Input { seed: 4, peers: 2, invitations: 2, faults: FaultMix::clean(10) },
            Some((0, 40)),
        ),
    ];
    for (name, input, outage) in seeds {
        let bytes = encode(&input, outage);
        run(&bytes);
        write("sim", name, &bytes);
    }
}

/// `agent_ops`: its seeds come from the target's module, each run and
/// checked to reach what it is for there.
fn agent_ops() {
    for (name, bytes) in peercollab_fuzz::agent_ops::seeds() {
        write("agent_ops", name, &bytes);
    }
}
