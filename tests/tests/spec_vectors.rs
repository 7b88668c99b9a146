//! peercollab's own handshake test vectors
//! (spec/vectors/peercollab-handshake-v1.json) and the frame sizes stated in
//! spec/wire.md.
//!
//! The vectors are regenerated from the inputs recorded in the file through
//! the public API (`Session`, `Incoming`, `LocalIdentity`, `HashDrbg`) and
//! compared byte for byte with the datagrams the file records. Every
//! handshake message is also replayed through a bare Noise `HandshakeState`
//! with the recorded ephemeral keys, so the file shows that each datagram is
//! the documented frame around a standard Noise message.
//!
//! If the file is absent, or `PEERCOLLAB_REGENERATE_VECTORS=1` is set, the
//! file is (re)written from the inputs below first; the check then runs as
//! usual.

use peercollab_tests::vectors::{
    assert_no_differences, json_diff, mode_from_json, mode_name, read_or_regenerate,
    statement_from_json, statement_name,
};
use peercollab_tests::{hex, unhex};
use std::path::Path;

use peercollab_core::identity::{EndpointId, IdentitySecret, LocalIdentity};
use peercollab_core::noise::{DH_LEN, HandshakePattern, HandshakeState, KeyPair, Role, hash};
use peercollab_core::session::{
    Incoming, PinnedPeer, Received, Session, SessionEvent, StatementForm, prologue,
};
use peercollab_core::wire::{
    self, COOKIE_REPLY_LEN, CookieReply, Frame, MAX_DATAGRAM, MIN_IK_INITIATION_LEN,
    MIN_XX_INITIATION_LEN, Mode,
};
use peercollab_core::{Entropy, HashDrbg, Instant};
use serde_json::{Value, json};

const VECTORS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/peercollab-handshake-v1.json");

// ---------------------------------------------------------------- hex

fn unhex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap_or_else(|v: Vec<u8>| panic!("{s:?}: {} bytes, not 32", v.len()))
}

// ---------------------------------------------------------------- inputs

/// Everything one side needs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Side {
    identity_secret: [u8; 32],
    static_secret: [u8; 32],
    endpoint_id: u32,
    serial: u64,
    drbg_seed: [u8; 32],
    index: u32,
    payload: Vec<u8>,
}

/// One vector's inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Inputs {
    name: String,
    mode: Mode,
    /// IK only: how the initiator states its identity.
    statement: StatementForm,
    time_ms: u64,
    initiator: Side,
    responder: Side,
}

fn label_key(label: &str) -> [u8; 32] {
    hash(&[b"peercollab test vector v1\0", label.as_bytes()])
}

/// The inputs the file is generated from.
fn default_inputs() -> Vec<Inputs> {
    let side = |who: &str, endpoint_id, serial, index, payload: &[u8]| Side {
        identity_secret: label_key(&format!("{who} identity")),
        static_secret: label_key(&format!("{who} static")),
        endpoint_id,
        serial,
        drbg_seed: label_key(&format!("{who} drbg")),
        index,
        payload: payload.to_vec(),
    };
    vec![
        Inputs {
            name: "ik-contact".into(),
            mode: Mode::Ik,
            statement: StatementForm::Certificate,
            time_ms: 1_000,
            initiator: side("alice", 1, 1, 0x1a2b_3c4d, b"invite: chess, from alice"),
            responder: side("bob", 2, 3, 0x5e6f_7a8b, b"ringing"),
        },
        Inputs {
            name: "xx-endpoint".into(),
            mode: Mode::Xx,
            statement: StatementForm::Certificate,
            time_ms: 2_000,
            initiator: side("carol", 7, 1, 0x0102_0304, b"invite: whiteboard, from carol"),
            responder: side("dave", 1, 2, 0xa0b0_c0d0, b"ringing"),
        },
    ]
}

fn side_json(s: &Side) -> Value {
    json!({
        "identity_secret": hex(&s.identity_secret),
        "static_secret": hex(&s.static_secret),
        "endpoint_id": s.endpoint_id,
        "serial": s.serial,
        "drbg_seed": hex(&s.drbg_seed),
        "index": s.index,
        "transport_payload": hex(&s.payload),
    })
}

fn side_from_json(v: &Value) -> Side {
    let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("input {k} missing"));
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("input {k} missing"));
    Side {
        identity_secret: unhex32(s("identity_secret")),
        static_secret: unhex32(s("static_secret")),
        endpoint_id: u32::try_from(n("endpoint_id")).expect("endpoint_id is a u32"),
        serial: n("serial"),
        drbg_seed: unhex32(s("drbg_seed")),
        index: u32::try_from(n("index")).expect("index is a u32"),
        payload: unhex(s("transport_payload")),
    }
}

fn protocol_name(m: Mode) -> &'static str {
    match m {
        Mode::Ik => "Noise_IK_25519_ChaChaPoly_SHA256",
        Mode::Xx => "Noise_XX_25519_ChaChaPoly_SHA256",
    }
}

fn inputs_json(i: &Inputs) -> Value {
    let mut v = json!({
        "mode": mode_name(i.mode),
        "time_ms": i.time_ms,
        "initiator": side_json(&i.initiator),
        "responder": side_json(&i.responder),
    });
    if i.mode == Mode::Ik {
        v["initiator_statement"] = json!(statement_name(i.statement));
    }
    v
}

fn inputs_from_json(name: &str, v: &Value) -> Inputs {
    let mode = mode_from_json(name, &v["mode"]);
    let statement = statement_from_json(name, v.get("initiator_statement"));
    Inputs {
        name: name.into(),
        mode,
        statement,
        time_ms: v["time_ms"].as_u64().expect("time_ms"),
        initiator: side_from_json(&v["initiator"]),
        responder: side_from_json(&v["responder"]),
    }
}

// ---------------------------------------------------------------- running

fn local(s: &Side) -> LocalIdentity {
    let secret = IdentitySecret::from_bytes(&s.identity_secret).expect("identity secret is weak");
    LocalIdentity::new(
        secret,
        KeyPair::from_secret_bytes(s.static_secret),
        EndpointId(s.endpoint_id),
        s.serial,
    )
}

/// The first 32 bytes of a side's DRBG stream: its ephemeral secret, since
/// nothing draws from the generator before the first Noise `e` token.
fn first_ephemeral(seed: [u8; 32]) -> [u8; 32] {
    let mut e = [0u8; 32];
    HashDrbg::new(seed).fill_bytes(&mut e);
    e
}

fn derived_json(l: &LocalIdentity, s: &Side, has_ephemeral: bool) -> Value {
    let mut v = json!({
        "identity_key": hex(l.identity().as_bytes()),
        "fingerprint": l.identity().fingerprint().to_string(),
        "static_key": hex(l.static_keys().public()),
        "certificate": hex(l.certificate_bytes()),
        "certificate_hash": hex(&l.certificate_hash().0),
    });
    if has_ephemeral {
        let e = first_ephemeral(s.drbg_seed);
        v["ephemeral_secret"] = json!(hex(&e));
        v["ephemeral_key"] = json!(hex(KeyPair::from_secret_bytes(e).public()));
    }
    v
}

/// One datagram of a run.
struct Datagram {
    from: Role,
    bytes: Vec<u8>,
    /// Transport datagrams: the plaintext.
    payload: Option<Vec<u8>>,
}

fn kind(bytes: &[u8]) -> &'static str {
    match Frame::parse(bytes).expect("emitted datagram parses") {
        Frame::Initiation(_) => "initiation",
        Frame::Response(_) => "response",
        Frame::HandshakeFinal(_) => "handshake_final",
        Frame::CookieReply(_) => "cookie_reply",
        Frame::Transport(_) => "transport",
    }
}

/// Runs the handshake and one transport message each way; returns the
/// datagrams and the handshake hash both sides agree on.
fn run(i: &Inputs) -> (Vec<Datagram>, [u8; 32]) {
    let now = Instant::from_millis(i.time_ms);
    let a = local(&i.initiator);
    let b = local(&i.responder);
    let mut ra = HashDrbg::new(i.initiator.drbg_seed);
    let mut rb = HashDrbg::new(i.responder.drbg_seed);
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut plain = [0u8; MAX_DATAGRAM];
    let mut out = Vec::new();

    let (mut sa, directory) = match i.mode {
        Mode::Ik => {
            let pinned_b = PinnedPeer::new(&a, *b.certificate()).expect("pin responder");
            let s = Session::initiate_contact(
                &a,
                &pinned_b,
                i.initiator.index,
                i.statement,
                now,
                &mut ra,
            )
            .expect("initiate_contact");
            (s, vec![PinnedPeer::new(&b, *a.certificate()).expect("pin initiator")])
        }
        Mode::Xx => {
            let s = Session::initiate_endpoint(&a, None, i.initiator.index, now, &mut ra)
                .expect("initiate_endpoint");
            (s, Vec::new())
        }
    };
    let n = sa.poll_transmit(now, &mut buf).expect("initiation");
    let d1 = buf[..n].to_vec();
    assert_eq!(sa.poll_transmit(now, &mut buf), None);
    out.push(Datagram { from: Role::Initiator, bytes: d1.clone(), payload: None });

    let incoming = Incoming::read(&b, directory.as_slice(), &d1).expect("responder reads msg 1");
    let mut sb = incoming.accept(&b, i.responder.index, now, &mut rb).expect("accept");
    let n = sb.poll_transmit(now, &mut buf).expect("response");
    let d2 = buf[..n].to_vec();
    assert_eq!(sb.poll_transmit(now, &mut buf), None);
    out.push(Datagram { from: Role::Responder, bytes: d2.clone(), payload: None });

    assert_eq!(sa.handle_datagram(now, &d2, &mut plain, &mut ra), Ok(Received::Handshake));
    assert_eq!(sa.poll_event(), Some(SessionEvent::Established));
    if i.mode == Mode::Xx {
        let n = sa.poll_transmit(now, &mut buf).expect("handshake final");
        let d3 = buf[..n].to_vec();
        out.push(Datagram { from: Role::Initiator, bytes: d3.clone(), payload: None });
        assert_eq!(sb.handle_datagram(now, &d3, &mut plain, &mut rb), Ok(Received::Handshake));
        assert_eq!(sb.poll_event(), Some(SessionEvent::Established));
    }
    assert_eq!(sa.poll_transmit(now, &mut buf), None);

    let n = sa.send(now, &i.initiator.payload, &mut buf).expect("initiator sends");
    let d = buf[..n].to_vec();
    let r = sb.handle_datagram(now, &d, &mut plain, &mut rb);
    assert_eq!(r, Ok(Received::Payload(i.initiator.payload.len())));
    assert_eq!(&plain[..i.initiator.payload.len()], i.initiator.payload.as_slice());
    out.push(Datagram {
        from: Role::Initiator,
        bytes: d,
        payload: Some(i.initiator.payload.clone()),
    });
    if i.mode == Mode::Ik {
        // The IK responder is confirmed by the first transport datagram.
        assert_eq!(sb.poll_event(), Some(SessionEvent::Established));
    }

    let n = sb.send(now, &i.responder.payload, &mut buf).expect("responder sends");
    let d = buf[..n].to_vec();
    let r = sa.handle_datagram(now, &d, &mut plain, &mut ra);
    assert_eq!(r, Ok(Received::Payload(i.responder.payload.len())));
    assert_eq!(&plain[..i.responder.payload.len()], i.responder.payload.as_slice());
    out.push(Datagram {
        from: Role::Responder,
        bytes: d,
        payload: Some(i.responder.payload.clone()),
    });

    assert!(sa.is_established() && sb.is_established());
    assert_eq!(sa.peer().map(|c| *c.identity()), Some(b.identity()));
    assert_eq!(sb.peer().map(|c| *c.identity()), Some(a.identity()));
    let h = *sa.handshake_hash().expect("handshake hash");
    assert_eq!(sb.handshake_hash(), Some(&h));
    (out, h)
}

/// The Noise message inside a handshake datagram.
fn noise_of(bytes: &[u8]) -> &[u8] {
    match Frame::parse(bytes).expect("parses") {
        Frame::Initiation(f) => f.noise,
        Frame::Response(f) => f.noise,
        Frame::HandshakeFinal(f) => f.noise,
        _ => panic!("not a handshake datagram"),
    }
}

/// Hands out one fixed ephemeral secret, and nothing else.
struct FixedEphemeral(Option<[u8; DH_LEN]>);

impl Entropy for FixedEphemeral {
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        assert_eq!(dst.len(), DH_LEN, "Noise asked for {} bytes, not a key", dst.len());
        dst.copy_from_slice(&self.0.take().expect("Noise asked for a second ephemeral"));
    }
}

/// Replays the handshake through bare Noise `HandshakeState`s with the
/// recorded ephemerals: each side reads the other's message and must write
/// the very same bytes from the payload it read. Returns the handshake
/// payloads (plaintext) and the handshake hash.
fn replay_noise(i: &Inputs, datagrams: &[Datagram]) -> (Vec<Vec<u8>>, [u8; 32]) {
    let pattern = match i.mode {
        Mode::Ik => HandshakePattern::IK,
        Mode::Xx => HandshakePattern::XX,
    };
    let p = prologue(i.mode);
    let ki = KeyPair::from_secret_bytes(i.initiator.static_secret);
    let kr = KeyPair::from_secret_bytes(i.responder.static_secret);
    let rs = (i.mode == Mode::Ik).then(|| *kr.public());
    let mut hi =
        HandshakeState::new(pattern, Role::Initiator, &p, Some(ki), rs, None).expect("initiator");
    let mut hr =
        HandshakeState::new(pattern, Role::Responder, &p, Some(kr), None, None).expect("responder");
    let mut ei = Some(first_ephemeral(i.initiator.drbg_seed));
    let mut er = Some(first_ephemeral(i.responder.drbg_seed));
    let mut payloads = Vec::new();
    for d in datagrams.iter().filter(|d| d.payload.is_none()) {
        let noise = noise_of(&d.bytes);
        let (reader, writer, e) = match d.from {
            Role::Initiator => (&mut hr, &mut hi, &mut ei),
            Role::Responder => (&mut hi, &mut hr, &mut er),
        };
        let mut plain = [0u8; MAX_DATAGRAM];
        let n = reader.read_message(noise, &mut plain).expect("bare Noise reads the message");
        let mut again = [0u8; MAX_DATAGRAM];
        let mut rng =
            FixedEphemeral(if writer.local_ephemeral().is_none() { e.take() } else { None });
        let m = writer.write_message(&plain[..n], &mut again, &mut rng).expect("bare Noise writes");
        assert_eq!(hex(&again[..m]), hex(noise), "bare Noise wrote other bytes");
        payloads.push(plain[..n].to_vec());
    }
    assert_eq!(hi.handshake_hash(), hr.handshake_hash());
    let h = *hi.handshake_hash();
    // Transport: the responder's receive key opens the initiator's datagram
    // with the counter as nonce and the 16-byte header as associated data.
    let ti = hi.into_transport().expect("initiator finished");
    let tr = hr.into_transport().expect("responder finished");
    for d in datagrams.iter().filter(|d| d.payload.is_some()) {
        let Ok(Frame::Transport(f)) = Frame::parse(&d.bytes) else { panic!("not transport") };
        let recv = match d.from {
            Role::Initiator => &tr.recv,
            Role::Responder => &ti.recv,
        };
        let mut plain = [0u8; MAX_DATAGRAM];
        let n = recv
            .decrypt_with_nonce(
                f.counter,
                &d.bytes[..wire::TRANSPORT_HEADER_LEN],
                f.ciphertext,
                &mut plain,
            )
            .expect("bare Noise opens the transport datagram");
        assert_eq!(Some(&plain[..n]), d.payload.as_deref());
    }
    (payloads, h)
}

fn vector_json(i: &Inputs) -> Value {
    let (datagrams, h) = run(i);
    let (noise_payloads, noise_h) = replay_noise(i, &datagrams);
    assert_eq!(hex(&h), hex(&noise_h), "session and bare Noise disagree on the handshake hash");
    let a = local(&i.initiator);
    let b = local(&i.responder);
    let mut noise_payloads = noise_payloads.into_iter();
    let list: Vec<Value> = datagrams
        .iter()
        .map(|d| {
            let mut v = json!({
                "from": match d.from { Role::Initiator => "initiator", Role::Responder => "responder" },
                "type": kind(&d.bytes),
                "len": d.bytes.len(),
                "hex": hex(&d.bytes),
            });
            match &d.payload {
                Some(p) => v["transport_payload"] = json!(hex(p)),
                None => {
                    v["noise_payload"] = json!(hex(&noise_payloads.next().expect("one per message")))
                }
            }
            v
        })
        .collect();
    json!({
        "name": i.name,
        "protocol_name": protocol_name(i.mode),
        "prologue": hex(&prologue(i.mode)),
        "inputs": inputs_json(i),
        "derived": {
            "initiator": derived_json(&a, &i.initiator, true),
            "responder": derived_json(&b, &i.responder, true),
        },
        "datagrams": list,
        "handshake_hash": hex(&h),
    })
}

fn document(inputs: &[Inputs]) -> Value {
    json!({
        "description": "peercollab handshake test vectors, protocol version 1: fixed inputs in, exact datagrams out. See spec/vectors/README.md.",
        "protocol_version": wire::VERSION,
        "drbg": "HashDrbg(seed): output = B(0) || B(1) || ..., B(i) = SHA-256(\"peercollab hash-drbg v1\\0\" || seed || u64_le(i)); each side's ephemeral secret is the first 32 bytes of its stream",
        "vectors": inputs.iter().map(vector_json).collect::<Vec<_>>(),
    })
}

#[test]
fn handshake_vectors_regenerate_byte_for_byte() {
    let path = Path::new(VECTORS);
    let file = read_or_regenerate(path, || document(&default_inputs()));
    let vectors = file["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 2, "one IK and one XX vector");
    let inputs: Vec<Inputs> = vectors
        .iter()
        .map(|v| inputs_from_json(v["name"].as_str().expect("name"), &v["inputs"]))
        .collect();
    let regenerated = document(&inputs);
    let mut differences = Vec::new();
    json_diff("$", &file, &regenerated, &mut differences);
    assert_no_differences(path, &differences);
}

#[test]
fn vector_file_inputs_are_the_generators() {
    // The file was generated from `default_inputs`; a change to either must
    // be deliberate.
    let text = std::fs::read_to_string(VECTORS).unwrap_or_default();
    if text.is_empty() {
        return; // the other test writes it
    }
    let file: Value = serde_json::from_str(&text).expect("the vector file is JSON");
    let from_file: Vec<Inputs> = file["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| inputs_from_json(v["name"].as_str().expect("name"), &v["inputs"]))
        .collect();
    assert_eq!(from_file, default_inputs());
}

// ---------------------------------------------------------------- sizes

/// Sizes of every frame as this implementation emits them: the table in
/// spec/wire.md §Sizes. A change here must change the spec.
#[test]
fn frame_sizes_match_the_spec() {
    let inputs = default_inputs();
    let now = Instant::ZERO;
    let a = local(&inputs[0].initiator);
    let b = local(&inputs[0].responder);
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut plain = [0u8; MAX_DATAGRAM];
    let dir = vec![PinnedPeer::new(&b, *a.certificate()).unwrap()];
    let pinned_b = PinnedPeer::new(&a, *b.certificate()).unwrap();

    let mut ik_sizes = Vec::new();
    for form in [StatementForm::Certificate, StatementForm::Hash] {
        let mut ra = HashDrbg::from_u64(1);
        let mut rb = HashDrbg::from_u64(2);
        let mut sa = Session::initiate_contact(&a, &pinned_b, 1, form, now, &mut ra).unwrap();
        let init = sa.poll_transmit(now, &mut buf).unwrap();
        let mut sb = Incoming::read(&b, dir.as_slice(), &buf[..init])
            .unwrap()
            .accept(&b, 2, now, &mut rb)
            .unwrap();
        let resp = sb.poll_transmit(now, &mut buf).unwrap();
        assert_eq!(
            sa.handle_datagram(now, &buf[..resp], &mut plain, &mut ra),
            Ok(Received::Handshake)
        );
        let keepalive = sa.send(now, &[], &mut buf).unwrap();
        let one = sa.send(now, &[0x55], &mut buf).unwrap();
        let max = sa.send(now, &[0x55; wire::MAX_TRANSPORT_PAYLOAD], &mut buf).unwrap();
        ik_sizes.push((init, resp, keepalive, one, max));
    }
    let [(ik_init_cert, ik_resp, keepalive, one, max), (ik_init_hash, ik_resp_h, ..)] =
        ik_sizes[..]
    else {
        unreachable!()
    };
    assert_eq!(ik_init_cert, 315, "IK initiation stating the full certificate");
    assert_eq!(ik_init_hash, 220, "IK initiation stating the certificate hash (padded)");
    assert_eq!(ik_init_hash, MIN_IK_INITIATION_LEN);
    assert_eq!(ik_resp, 111, "IK response");
    assert_eq!(ik_resp_h, 111, "IK response does not depend on the initiator's statement");
    assert_eq!(keepalive, 32, "keepalive (empty transport)");
    assert_eq!(one - 1, 32, "transport overhead");
    assert_eq!(max, MAX_DATAGRAM, "largest transport payload fills a datagram");

    let mut ra = HashDrbg::from_u64(3);
    let mut rb = HashDrbg::from_u64(4);
    let mut sa = Session::initiate_endpoint(&a, None, 1, now, &mut ra).unwrap();
    let xx_init = sa.poll_transmit(now, &mut buf).unwrap();
    let mut sb =
        Incoming::read(&b, &(), &buf[..xx_init]).unwrap().accept(&b, 2, now, &mut rb).unwrap();
    let xx_resp = sb.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(
        sa.handle_datagram(now, &buf[..xx_resp], &mut plain, &mut ra),
        Ok(Received::Handshake)
    );
    let xx_final = sa.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(xx_init, 300, "XX initiation (padded)");
    assert_eq!(xx_init, MIN_XX_INITIATION_LEN);
    assert_eq!(xx_resp, 268, "XX response");
    assert_eq!(xx_final, 216, "XX handshake final");

    let cookie = Frame::CookieReply(CookieReply {
        mode: Mode::Ik,
        receiver_index: 1,
        nonce: [0; 24],
        sealed_cookie: [0; 32],
    })
    .emit(&mut buf)
    .unwrap();
    assert_eq!(cookie, 64, "cookie reply");
    assert_eq!(cookie, COOKIE_REPLY_LEN);

    // Anti-amplification: no answer before authentication exceeds its trigger.
    assert!(ik_resp <= ik_init_hash && xx_resp <= xx_init && cookie <= ik_init_hash);
    // The handshake cache holds the largest handshake datagram.
    let largest = [ik_init_cert, ik_init_hash, ik_resp, xx_init, xx_resp, xx_final];
    assert!(largest.iter().all(|&n| n <= peercollab_core::session::MAX_HANDSHAKE_FRAME));
}

/// The smallest datagram of each type that parses, per spec/wire.md.
#[test]
fn minimum_lengths_match_the_spec() {
    let shortest = |header: [u8; 4]| {
        (4..=MAX_DATAGRAM)
            .find(|&n| {
                let mut d = vec![0u8; n];
                d[..4].copy_from_slice(&header);
                Frame::parse(&d).is_ok()
            })
            .expect("some length parses")
    };
    assert_eq!(shortest([1, 1, 1, 0]), 220, "IK initiation");
    assert_eq!(shortest([1, 1, 2, 0]), 300, "XX initiation");
    assert_eq!(shortest([1, 2, 1, 0]), 76, "IK response");
    assert_eq!(shortest([1, 2, 2, 0]), 124, "XX response");
    assert_eq!(shortest([1, 3, 2, 0]), 72, "XX handshake final");
    assert_eq!(shortest([1, 4, 1, 0]), 64, "cookie reply");
    assert_eq!(shortest([1, 5, 0, 0]), 32, "transport");
}
