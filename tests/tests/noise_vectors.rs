//! Runs every cacophony vector for `25519_ChaChaPoly_SHA256`
//! (spec/vectors/noise-cacophony-25519-chachapoly-sha256.json) byte for byte
//! through `peercollab_core::noise`: handshake messages, payloads, the
//! handshake hash and the transport messages that follow.

use peercollab_tests::{hex, unhex};
use std::collections::{BTreeMap, VecDeque};

use peercollab_core::Entropy;
use peercollab_core::noise::{
    DH_LEN, HandshakePattern, HandshakeState, KeyPair, MAX_MESSAGE_LEN, Role, Token, TransportState,
};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../spec/vectors/noise-cacophony-25519-chachapoly-sha256.json"
);
const SUITE_SUFFIX: &str = "_25519_ChaChaPoly_SHA256";

/// Hands out the vector's ephemeral private keys, one 32-byte key per call,
/// and panics on any other request, so an engine drawing more (or other)
/// randomness than one ephemeral per `e` token is caught.
struct FixedEphemerals(VecDeque<[u8; DH_LEN]>);

impl Entropy for FixedEphemerals {
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        assert_eq!(dst.len(), DH_LEN, "engine asked for {} random bytes, not a key", dst.len());
        let key = self.0.pop_front().expect("engine asked for more ephemerals than the vector has");
        dst.copy_from_slice(&key);
    }
}

fn field_bytes(v: &Value, key: &str) -> Option<Vec<u8>> {
    v.get(key).map(|x| unhex(x.as_str().unwrap_or_else(|| panic!("{key} is not a string"))))
}

fn field_key(v: &Value, key: &str) -> Result<Option<[u8; 32]>, String> {
    field_bytes(v, key)
        .map(|b| b.try_into().map_err(|b: Vec<u8>| format!("{key} has {} bytes", b.len())))
        .transpose()
}

/// The single psk of one side; the engine takes one psk per handshake, so a
/// vector with several (different) psks is reported as a failure.
fn field_psk(v: &Value, key: &str) -> Result<Option<[u8; 32]>, String> {
    let Some(list) = v.get(key) else { return Ok(None) };
    let list = list.as_array().ok_or(format!("{key} is not an array"))?;
    let psks: Vec<Vec<u8>> = list.iter().map(|p| unhex(p.as_str().unwrap_or(""))).collect();
    match psks.as_slice() {
        [] => Ok(None),
        [one] => one.clone().try_into().map(Some).map_err(|_| format!("{key}[0] is not 32 bytes")),
        _ => Err(format!("{key} has {} psks; the engine supports one per handshake", psks.len())),
    }
}

fn pattern_of(protocol_name: &str) -> Result<(String, HandshakePattern), String> {
    let name = protocol_name
        .strip_prefix("Noise_")
        .and_then(|n| n.strip_suffix(SUITE_SUFFIX))
        .ok_or(format!("not a Noise_*{SUITE_SUFFIX} name: {protocol_name}"))?;
    let pattern = HandshakePattern::from_name(name)
        .ok_or(format!("pattern {name} is not supported by the engine"))?;
    Ok((name.to_owned(), pattern))
}

/// Whether the initiator (or responder) has a static key in `pattern`.
fn uses_static(pattern: HandshakePattern, role: Role) -> bool {
    let base = pattern.base();
    let (pre, parity) = match role {
        Role::Initiator => (base.pre_initiator, 0),
        Role::Responder => (base.pre_responder, 1),
    };
    pre.contains(&Token::S)
        || base.messages.iter().skip(parity).step_by(2).any(|m| m.contains(&Token::S))
}

fn check_remote_static(
    name: &str,
    t: &TransportState,
    peer_static: Option<&KeyPair>,
    expected: bool,
) -> Result<(), String> {
    match (t.remote_static(), peer_static) {
        (Some(rs), Some(peer)) if expected && rs == peer.public() => Ok(()),
        (None, _) if !expected => Ok(()),
        (got, _) => Err(format!(
            "{name}: remote static {:?}, expected {}",
            got.map(|k| hex(k)),
            if expected { "the peer's static key" } else { "none" }
        )),
    }
}

/// Runs one vector; `Err` says which check failed and where.
fn run_vector(v: &Value) -> Result<(), String> {
    let protocol_name = v["protocol_name"].as_str().ok_or("protocol_name missing")?;
    let (_, pattern) = pattern_of(protocol_name)?;
    let init_prologue = field_bytes(v, "init_prologue").unwrap_or_default();
    let resp_prologue = field_bytes(v, "resp_prologue").unwrap_or_default();
    let init_static = field_key(v, "init_static")?.map(KeyPair::from_secret_bytes);
    let resp_static = field_key(v, "resp_static")?.map(KeyPair::from_secret_bytes);
    let mut init_rng = FixedEphemerals(field_key(v, "init_ephemeral")?.into_iter().collect());
    let mut resp_rng = FixedEphemerals(field_key(v, "resp_ephemeral")?.into_iter().collect());
    let init_remote_static = field_key(v, "init_remote_static")?;
    let resp_remote_static = field_key(v, "resp_remote_static")?;
    let init_psk = field_psk(v, "init_psks")?;
    let resp_psk = field_psk(v, "resp_psks")?;
    let expected_hash = field_bytes(v, "handshake_hash").ok_or("handshake_hash missing")?;
    let messages = v["messages"].as_array().ok_or("messages missing")?;

    let mut init = HandshakeState::new(
        pattern,
        Role::Initiator,
        &init_prologue,
        init_static.clone(),
        init_remote_static,
        init_psk,
    )
    .map_err(|e| format!("initiator: new: {e:?}"))?;
    let mut resp = HandshakeState::new(
        pattern,
        Role::Responder,
        &resp_prologue,
        resp_static.clone(),
        resp_remote_static,
        resp_psk,
    )
    .map_err(|e| format!("responder: new: {e:?}"))?;

    let mut out = vec![0u8; MAX_MESSAGE_LEN];
    let mut plain = vec![0u8; MAX_MESSAGE_LEN];
    let mut messages = messages.iter().enumerate();
    let mut transport_from = 0;
    for (i, m) in messages.by_ref().take(pattern.message_count()) {
        let payload = field_bytes(m, "payload").ok_or(format!("message {i}: no payload"))?;
        let expected = field_bytes(m, "ciphertext").ok_or(format!("message {i}: no ciphertext"))?;
        let (sender, receiver, rng) = if i.is_multiple_of(2) {
            (&mut init, &mut resp, &mut init_rng)
        } else {
            (&mut resp, &mut init, &mut resp_rng)
        };
        let predicted = sender.next_message_len(payload.len());
        let n = sender
            .write_message(&payload, &mut out, rng)
            .map_err(|e| format!("message {i}: write: {e:?}"))?;
        if out[..n] != expected[..] {
            return Err(format!(
                "message {i}: ciphertext\n  expected {}\n  actual   {}",
                hex(&expected),
                hex(&out[..n])
            ));
        }
        if predicted != n {
            return Err(format!("message {i}: next_message_len said {predicted}, wrote {n}"));
        }
        let k = receiver
            .read_message(&expected, &mut plain)
            .map_err(|e| format!("message {i}: read: {e:?}"))?;
        if plain[..k] != payload[..] {
            return Err(format!("message {i}: decrypted payload differs"));
        }
        transport_from = i + 1;
    }
    if transport_from != pattern.message_count() {
        return Err(format!(
            "only {transport_from} messages for a {}-message handshake",
            pattern.message_count()
        ));
    }
    if !init_rng.0.is_empty() || !resp_rng.0.is_empty() {
        return Err("an ephemeral key of the vector was never used".into());
    }
    for (side, hs) in [("initiator", &init), ("responder", &resp)] {
        if !hs.is_finished() {
            return Err(format!("{side}: handshake not finished"));
        }
        if hs.handshake_hash()[..] != expected_hash[..] {
            return Err(format!(
                "{side}: handshake hash\n  expected {}\n  actual   {}",
                hex(&expected_hash),
                hex(hs.handshake_hash())
            ));
        }
    }

    let mut init =
        init.into_transport().map_err(|e| format!("initiator: into_transport: {e:?}"))?;
    let mut resp =
        resp.into_transport().map_err(|e| format!("responder: into_transport: {e:?}"))?;
    check_remote_static(
        "initiator",
        &init,
        resp_static.as_ref(),
        uses_static(pattern, Role::Responder),
    )?;
    check_remote_static(
        "responder",
        &resp,
        init_static.as_ref(),
        uses_static(pattern, Role::Initiator),
    )?;
    if init.handshake_hash()[..] != expected_hash[..]
        || resp.handshake_hash()[..] != expected_hash[..]
    {
        return Err("transport state lost the handshake hash".into());
    }

    // One-way patterns have a single handshake message, and then only the
    // initiator sends; otherwise the turns keep alternating.
    let one_way = pattern.message_count() == 1;
    let mut transport_count = 0;
    for (i, m) in messages {
        let payload = field_bytes(m, "payload").ok_or(format!("message {i}: no payload"))?;
        let expected = field_bytes(m, "ciphertext").ok_or(format!("message {i}: no ciphertext"))?;
        let (sender, receiver) = if one_way || i.is_multiple_of(2) {
            (&mut init, &mut resp)
        } else {
            (&mut resp, &mut init)
        };
        let n = sender
            .write_message(&payload, &mut out)
            .map_err(|e| format!("message {i}: write: {e:?}"))?;
        if out[..n] != expected[..] {
            return Err(format!(
                "transport message {i}: ciphertext\n  expected {}\n  actual   {}",
                hex(&expected),
                hex(&out[..n])
            ));
        }
        let k = receiver
            .read_message(&expected, &mut plain)
            .map_err(|e| format!("message {i}: read: {e:?}"))?;
        if plain[..k] != payload[..] {
            return Err(format!("transport message {i}: decrypted payload differs"));
        }
        transport_count += 1;
    }
    if transport_count == 0 {
        return Err("no transport messages checked".into());
    }
    Ok(())
}

#[test]
fn every_cacophony_vector_matches_byte_for_byte() {
    let text = std::fs::read_to_string(VECTORS).expect("read the cacophony vectors");
    let json: Value = serde_json::from_str(&text).expect("parse the cacophony vectors");
    assert!(
        json["source"].as_str().is_some_and(|s| s.contains("cacophony")),
        "source attribution missing"
    );
    let vectors = json["vectors"].as_array().expect("vectors array");
    assert_eq!(vectors.len(), 59, "the file should hold the 59 25519_ChaChaPoly_SHA256 vectors");

    // Base pattern -> (names of the vectors that passed, of all vectors).
    let mut by_base: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut passed = Vec::new();
    for (index, v) in vectors.iter().enumerate() {
        let protocol_name = v["protocol_name"].as_str().unwrap_or("?").to_owned();
        let name = protocol_name
            .strip_prefix("Noise_")
            .and_then(|n| n.strip_suffix(SUITE_SUFFIX))
            .unwrap_or(&protocol_name)
            .to_owned();
        let base = name.split("psk").next().unwrap_or(&name).to_owned();
        let entry = by_base.entry(base).or_default();
        entry.1.push(name.clone());
        match run_vector(v) {
            Ok(()) => {
                entry.0.push(name.clone());
                passed.push(name);
            }
            Err(e) => failures.push(format!("vector {index} ({protocol_name}): {e}")),
        }
    }

    for (base, (ok, all)) in &by_base {
        println!("noise vectors {base:>5}: {}/{} passed ({})", ok.len(), all.len(), all.join(", "));
    }
    println!(
        "noise vectors: {}/{} passed across {} base patterns",
        passed.len(),
        vectors.len(),
        by_base.len()
    );
    assert!(failures.is_empty(), "{} vector(s) failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(passed.len(), 59);
    for needed in ["IK", "XX"] {
        assert!(passed.iter().any(|n| n == needed), "{needed} vector missing or failed");
    }
}
