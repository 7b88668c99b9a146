//! peercollab's own invitation test vectors
//! (spec/vectors/peercollab-invitation-v1.json).
//!
//! Two parts:
//! - `messages`: one invitation message of every type (and the interesting
//!   variants), its fields and its exact encoding: `Message::emit(fields)`
//!   must give the recorded bytes and `Message::parse(bytes)` the recorded
//!   fields;
//! - `invitations`: complete exchanges between two `Invitation`s driven
//!   directly (no virtual network): every datagram handed across in order
//!   after a fixed one-way latency, timers fired at their deadlines, the
//!   invitee's user answering at a fixed time, until both sides have
//!   lingered and closed. Every transport datagram's plaintext (its
//!   invitation message) is recorded too; the `Invitation` API does not
//!   expose plaintexts, so "shadow" bare `Session`s built from the same
//!   inputs and seeds (the core is deterministic, so they hold the same
//!   keys) are fed the same datagrams and return them.
//!
//! The whole document is regenerated from the inputs recorded in the file
//! through the public API and compared field by field, with a per-byte hex
//! diff on mismatch. If the file is absent, or
//! `PEERCOLLAB_REGENERATE_VECTORS=1` is set, it is (re)written from the
//! inputs below first; the check then runs as usual.

use std::collections::BTreeMap;
use std::path::Path;

use peercollab_core::identity::{Certificate, EndpointId, IdentitySecret, LocalIdentity};
use peercollab_core::invite::message::{Cancel, Final, InviteFragment, chunk_range};
use peercollab_core::invite::{
    Admission, Answer, AppId, BufferPool, CancelReason, DataPool, FinalCode, Invitation,
    InvitationEvent, InviteId, InviteeConfig, Message, Offer, Outcome,
};
use peercollab_core::noise::{KeyPair, hash};
use peercollab_core::session::{Incoming, PinnedPeer, Received, Session, StatementForm};
use peercollab_core::wire::{self, Frame, MAX_DATAGRAM, Mode};
use peercollab_core::{Duration, Entropy, HashDrbg, Instant};
use peercollab_tests::vectors::{
    assert_no_differences, json_diff, mode_from_json, mode_name, read_or_regenerate,
    statement_from_json, statement_name,
};
use peercollab_tests::{hex, unhex};
use serde_json::{Value, json};

const VECTORS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/peercollab-invitation-v1.json");

// ---------------------------------------------------------------- helpers

fn unhex_n<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().unwrap_or_else(|v: Vec<u8>| panic!("{s:?}: {} bytes, not {N}", v.len()))
}

fn label_key(label: &str) -> [u8; 32] {
    hash(&[b"peercollab test vector v1\0", label.as_bytes()])
}

/// A 16-byte id derived from a label.
fn label_id(label: &str) -> [u8; 16] {
    let k = label_key(label);
    k[..16].try_into().expect("16 of 32 bytes")
}

/// `len` bytes derived from a label.
fn label_bytes(label: &str, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    HashDrbg::new(label_key(label)).fill_bytes(&mut v);
    v
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} missing or not a string in {v}"))
}

fn u64_of(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing or not a number in {v}"))
}

fn final_code_name(c: FinalCode) -> String {
    format!("{c:?}")
}

fn final_code_named(s: &str) -> FinalCode {
    (1..=8)
        .filter_map(FinalCode::from_byte)
        .find(|&c| final_code_name(c) == s)
        .unwrap_or_else(|| panic!("unknown final code {s:?}"))
}

fn cancel_reason_name(r: CancelReason) -> String {
    format!("{r:?}")
}

fn cancel_reason_named(s: &str) -> CancelReason {
    (1..=3)
        .filter_map(CancelReason::from_byte)
        .find(|&r| cancel_reason_name(r) == s)
        .unwrap_or_else(|| panic!("unknown cancel reason {s:?}"))
}

// ---------------------------------------------------------------- messages

/// An invitation message that owns its bytes: the fields of a vector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fields {
    Invite {
        id: [u8; 16],
        app_id: [u8; 16],
        remaining_ms: u32,
        message_len: u16,
        data_len: u16,
        index: u8,
        chunk: Vec<u8>,
    },
    Sack {
        id: [u8; 16],
        received: u16,
    },
    Ringing {
        id: [u8; 16],
    },
    Final {
        id: [u8; 16],
        code: FinalCode,
        retry_after_ms: u32,
        reason: String,
    },
    Ack {
        id: [u8; 16],
        code: FinalCode,
    },
    Cancel {
        id: [u8; 16],
        reason: CancelReason,
        text: String,
    },
}

impl Fields {
    fn of(m: &Message<'_>) -> Self {
        match *m {
            Message::Invite(f) => Fields::Invite {
                id: f.id.0,
                app_id: f.app_id.0,
                remaining_ms: f.remaining_ms,
                message_len: f.message_len,
                data_len: f.data_len,
                index: f.index,
                chunk: f.chunk.to_vec(),
            },
            Message::Sack { id, received } => Fields::Sack { id: id.0, received },
            Message::Ringing { id } => Fields::Ringing { id: id.0 },
            Message::Final(f) => Fields::Final {
                id: f.id.0,
                code: f.code,
                retry_after_ms: f.retry_after_ms,
                reason: f.reason.to_owned(),
            },
            Message::Ack { id, code } => Fields::Ack { id: id.0, code },
            Message::Cancel(c) => {
                Fields::Cancel { id: c.id.0, reason: c.reason, text: c.text.to_owned() }
            }
        }
    }

    fn view(&self) -> Message<'_> {
        match self {
            Fields::Invite { id, app_id, remaining_ms, message_len, data_len, index, chunk } => {
                Message::Invite(InviteFragment {
                    id: InviteId(*id),
                    app_id: AppId(*app_id),
                    remaining_ms: *remaining_ms,
                    message_len: *message_len,
                    data_len: *data_len,
                    index: *index,
                    chunk,
                })
            }
            Fields::Sack { id, received } => {
                Message::Sack { id: InviteId(*id), received: *received }
            }
            Fields::Ringing { id } => Message::Ringing { id: InviteId(*id) },
            Fields::Final { id, code, retry_after_ms, reason } => Message::Final(Final {
                id: InviteId(*id),
                code: *code,
                retry_after_ms: *retry_after_ms,
                reason,
            }),
            Fields::Ack { id, code } => Message::Ack { id: InviteId(*id), code: *code },
            Fields::Cancel { id, reason, text } => {
                Message::Cancel(Cancel { id: InviteId(*id), reason: *reason, text })
            }
        }
    }

    fn type_name(&self) -> String {
        format!("{:?}", self.view().message_type())
    }

    fn emit(&self) -> Vec<u8> {
        let m = self.view();
        let mut buf = vec![0u8; m.buffer_len()];
        let n = m.emit(&mut buf).unwrap_or_else(|e| panic!("emit {self:?}: {e}"));
        assert_eq!(n, buf.len(), "emit writes buffer_len bytes");
        buf
    }

    fn to_json(&self) -> Value {
        let mut v = match self {
            Fields::Invite { id, app_id, remaining_ms, message_len, data_len, index, chunk } => {
                json!({
                    "invite_id": hex(id),
                    "app_id": hex(app_id),
                    "remaining_ms": remaining_ms,
                    "message_len": message_len,
                    "data_len": data_len,
                    "index": index,
                    "chunk": hex(chunk),
                })
            }
            Fields::Sack { id, received } => json!({ "invite_id": hex(id), "received": received }),
            Fields::Ringing { id } => json!({ "invite_id": hex(id) }),
            Fields::Final { id, code, retry_after_ms, reason } => json!({
                "invite_id": hex(id),
                "code": final_code_name(*code),
                "retry_after_ms": retry_after_ms,
                "reason": reason,
            }),
            Fields::Ack { id, code } => {
                json!({ "invite_id": hex(id), "code": final_code_name(*code) })
            }
            Fields::Cancel { id, reason, text } => json!({
                "invite_id": hex(id),
                "reason": cancel_reason_name(*reason),
                "text": text,
            }),
        };
        v["type"] = json!(self.type_name());
        v
    }

    fn from_json(v: &Value) -> Self {
        let id = unhex_n(str_of(v, "invite_id"));
        let num = |k: &str| u64_of(v, k);
        match str_of(v, "type") {
            "Invite" => Fields::Invite {
                id,
                app_id: unhex_n(str_of(v, "app_id")),
                remaining_ms: u32::try_from(num("remaining_ms")).expect("remaining_ms is a u32"),
                message_len: u16::try_from(num("message_len")).expect("message_len is a u16"),
                data_len: u16::try_from(num("data_len")).expect("data_len is a u16"),
                index: u8::try_from(num("index")).expect("index is a u8"),
                chunk: unhex(str_of(v, "chunk")),
            },
            "Sack" => Fields::Sack {
                id,
                received: u16::try_from(num("received")).expect("received is a u16"),
            },
            "Ringing" => Fields::Ringing { id },
            "Final" => Fields::Final {
                id,
                code: final_code_named(str_of(v, "code")),
                retry_after_ms: u32::try_from(num("retry_after_ms"))
                    .expect("retry_after_ms is a u32"),
                reason: str_of(v, "reason").to_owned(),
            },
            "Ack" => Fields::Ack { id, code: final_code_named(str_of(v, "code")) },
            "Cancel" => Fields::Cancel {
                id,
                reason: cancel_reason_named(str_of(v, "reason")),
                text: str_of(v, "text").to_owned(),
            },
            other => panic!("unknown message type {other:?}"),
        }
    }
}

/// One message vector's inputs: a name and the fields.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MessageInputs {
    name: String,
    fields: Fields,
}

/// The message vectors the file is generated from.
fn default_messages() -> Vec<MessageInputs> {
    let id = label_id("message vectors invite id");
    let app_id = label_id("message vectors app id");
    // A body of a 7-byte message and 1100 bytes of data: two fragments, the
    // second carrying bytes 1088..1107.
    let body: Vec<u8> =
        b"join me".iter().copied().chain(label_bytes("message vectors data", 1100)).collect();
    let m = |name: &str, fields: Fields| MessageInputs { name: name.into(), fields };
    vec![
        m(
            "invite-empty-body",
            Fields::Invite {
                id,
                app_id,
                remaining_ms: 300_000,
                message_len: 0,
                data_len: 0,
                index: 0,
                chunk: Vec::new(),
            },
        ),
        m(
            "invite-fragment-1-of-2",
            Fields::Invite {
                id,
                app_id,
                remaining_ms: 299_750,
                message_len: 7,
                data_len: 1100,
                index: 1,
                chunk: body[1088..].to_vec(),
            },
        ),
        m("sack", Fields::Sack { id, received: 0x0105 }),
        m("ringing", Fields::Ringing { id }),
        m(
            "final-busy",
            Fields::Final {
                id,
                code: FinalCode::Busy,
                retry_after_ms: 600_000,
                reason: "en réunion ☕".into(),
            },
        ),
        m(
            "final-accepted",
            Fields::Final {
                id,
                code: FinalCode::Accepted,
                retry_after_ms: 0,
                reason: String::new(),
            },
        ),
        m("ack", Fields::Ack { id, code: FinalCode::Accepted }),
        m(
            "cancel-answered-elsewhere",
            Fields::Cancel {
                id,
                reason: CancelReason::AnsweredElsewhere,
                text: "answered on another device".into(),
            },
        ),
    ]
}

fn message_json(m: &MessageInputs) -> Value {
    let bytes = m.fields.emit();
    let parsed = Message::parse(&bytes).unwrap_or_else(|e| panic!("{}: parse: {e}", m.name));
    assert_eq!(Fields::of(&parsed), m.fields, "{}: emit then parse", m.name);
    json!({
        "name": m.name,
        "fields": m.fields.to_json(),
        "len": bytes.len(),
        "hex": hex(&bytes),
    })
}

fn messages_from_json(file: &Value) -> Vec<MessageInputs> {
    file["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|v| MessageInputs {
            name: str_of(v, "name").into(),
            fields: Fields::from_json(&v["fields"]),
        })
        .collect()
}

// ---------------------------------------------------------------- invitation inputs

/// Everything one side of an invitation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Side {
    identity_secret: [u8; 32],
    static_secret: [u8; 32],
    endpoint_id: u32,
    serial: u64,
    drbg_seed: [u8; 32],
    index: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct OfferInputs {
    invite_id: [u8; 16],
    app_id: [u8; 16],
    message: String,
    data: Vec<u8>,
    expires_in_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct AnswerInputs {
    /// From the `Invited` event to the answer.
    after_ms: u64,
    answer: Answer,
    reason: String,
}

/// One invitation vector's inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct InvitationInputs {
    name: String,
    mode: Mode,
    /// IK only: how the inviter states its identity.
    statement: StatementForm,
    /// When the inviter calls `Invitation::invite`.
    start_ms: u64,
    /// Every datagram is delivered this long after it is sent.
    latency_ms: u64,
    inviter: Side,
    invitee: Side,
    invitee_max_expiry_ms: u64,
    offer: OfferInputs,
    answer: AnswerInputs,
}

fn side(who: &str, endpoint_id: u32, serial: u64, index: u32) -> Side {
    Side {
        identity_secret: label_key(&format!("{who} identity")),
        static_secret: label_key(&format!("{who} static")),
        endpoint_id,
        serial,
        drbg_seed: label_key(&format!("{who} invitation drbg")),
        index,
    }
}

/// The invitation vectors the file is generated from.
fn default_invitations() -> Vec<InvitationInputs> {
    vec![
        InvitationInputs {
            name: "ik-contact-accept".into(),
            mode: Mode::Ik,
            statement: StatementForm::Certificate,
            start_ms: 1_000,
            latency_ms: 50,
            inviter: side("alice", 1, 1, 0x1a2b_3c4d),
            invitee: side("bob", 2, 3, 0x5e6f_7a8b),
            invitee_max_expiry_ms: 300_000,
            offer: OfferInputs {
                invite_id: label_id("ik-contact-accept invite id"),
                app_id: label_id("chess app id"),
                message: "join me".into(),
                data: label_bytes("ik-contact-accept data", 2000),
                expires_in_ms: 120_000,
            },
            answer: AnswerInputs { after_ms: 1_000, answer: Answer::Accept, reason: String::new() },
        },
        InvitationInputs {
            name: "xx-endpoint-decline".into(),
            mode: Mode::Xx,
            statement: StatementForm::Certificate,
            start_ms: 2_000,
            latency_ms: 20,
            inviter: side("carol", 7, 1, 0x0102_0304),
            invitee: side("dave", 1, 2, 0xa0b0_c0d0),
            invitee_max_expiry_ms: 300_000,
            offer: OfferInputs {
                invite_id: label_id("xx-endpoint-decline invite id"),
                app_id: label_id("whiteboard app id"),
                message: String::new(),
                data: Vec::new(),
                expires_in_ms: 300_000,
            },
            answer: AnswerInputs {
                after_ms: 1_500,
                answer: Answer::Decline,
                reason: "busy day".into(),
            },
        },
    ]
}

/// What each default vector's datagrams must be, in order: the frame type
/// of handshake datagrams, the message type of transport ones.
fn expected_kinds(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "ik-contact-accept" => {
            Some(&["initiation", "response", "Invite", "Invite", "Ringing", "Final", "Ack"])
        }
        "xx-endpoint-decline" => Some(&[
            "initiation",
            "response",
            "handshake_final",
            "Invite",
            "Ringing",
            "Final",
            "Ack",
        ]),
        _ => None,
    }
}

fn side_json(s: &Side) -> Value {
    json!({
        "identity_secret": hex(&s.identity_secret),
        "static_secret": hex(&s.static_secret),
        "endpoint_id": s.endpoint_id,
        "serial": s.serial,
        "drbg_seed": hex(&s.drbg_seed),
        "index": s.index,
    })
}

fn side_from_json(v: &Value) -> Side {
    Side {
        identity_secret: unhex_n(str_of(v, "identity_secret")),
        static_secret: unhex_n(str_of(v, "static_secret")),
        endpoint_id: u32::try_from(u64_of(v, "endpoint_id")).expect("endpoint_id is a u32"),
        serial: u64_of(v, "serial"),
        drbg_seed: unhex_n(str_of(v, "drbg_seed")),
        index: u32::try_from(u64_of(v, "index")).expect("index is a u32"),
    }
}

fn answer_json(a: &AnswerInputs) -> Value {
    let mut v = json!({ "after_ms": a.after_ms, "reason": a.reason });
    match a.answer {
        Answer::Accept => v["answer"] = json!("Accept"),
        Answer::Decline => v["answer"] = json!("Decline"),
        Answer::Busy { retry_after } => {
            v["answer"] = json!("Busy");
            v["retry_after_ms"] = json!(retry_after.as_millis());
        }
        other => panic!("no JSON form for {other:?}"),
    }
    v
}

fn answer_from_json(v: &Value) -> AnswerInputs {
    let answer = match str_of(v, "answer") {
        "Accept" => Answer::Accept,
        "Decline" => Answer::Decline,
        "Busy" => Answer::Busy { retry_after: Duration::from_millis(u64_of(v, "retry_after_ms")) },
        other => panic!("unknown answer {other:?}"),
    };
    AnswerInputs { after_ms: u64_of(v, "after_ms"), answer, reason: str_of(v, "reason").into() }
}

fn invitation_inputs_json(i: &InvitationInputs) -> Value {
    let mut v = json!({
        "mode": mode_name(i.mode),
        "start_ms": i.start_ms,
        "latency_ms": i.latency_ms,
        "inviter": side_json(&i.inviter),
        "invitee": side_json(&i.invitee),
        "invitee_max_expiry_ms": i.invitee_max_expiry_ms,
        "offer": {
            "invite_id": hex(&i.offer.invite_id),
            "app_id": hex(&i.offer.app_id),
            "message": i.offer.message,
            "data": hex(&i.offer.data),
            "expires_in_ms": i.offer.expires_in_ms,
        },
        "answer": answer_json(&i.answer),
    });
    if i.mode == Mode::Ik {
        v["inviter_statement"] = json!(statement_name(i.statement));
    }
    v
}

fn invitation_inputs_from_json(name: &str, v: &Value) -> InvitationInputs {
    let mode = mode_from_json(name, &v["mode"]);
    let statement = statement_from_json(name, v.get("inviter_statement"));
    let o = &v["offer"];
    InvitationInputs {
        name: name.into(),
        mode,
        statement,
        start_ms: u64_of(v, "start_ms"),
        latency_ms: u64_of(v, "latency_ms"),
        inviter: side_from_json(&v["inviter"]),
        invitee: side_from_json(&v["invitee"]),
        invitee_max_expiry_ms: u64_of(v, "invitee_max_expiry_ms"),
        offer: OfferInputs {
            invite_id: unhex_n(str_of(o, "invite_id")),
            app_id: unhex_n(str_of(o, "app_id")),
            message: str_of(o, "message").into(),
            data: unhex(str_of(o, "data")),
            expires_in_ms: u64_of(o, "expires_in_ms"),
        },
        answer: answer_from_json(&v["answer"]),
    }
}

fn invitations_from_json(file: &Value) -> Vec<InvitationInputs> {
    file["invitations"]
        .as_array()
        .expect("invitations")
        .iter()
        .map(|v| invitation_inputs_from_json(str_of(v, "name"), &v["inputs"]))
        .collect()
}

// ---------------------------------------------------------------- the drive loop

fn local(s: &Side) -> LocalIdentity {
    let secret = IdentitySecret::from_bytes(&s.identity_secret).expect("identity secret is weak");
    LocalIdentity::new(
        secret,
        KeyPair::from_secret_bytes(s.static_secret),
        EndpointId(s.endpoint_id),
        s.serial,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Inviter = 0,
    Invitee = 1,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Inviter => "inviter",
            Who::Invitee => "invitee",
        }
    }
}

/// One datagram of a run.
struct Datagram {
    from: Who,
    /// When it was sent; it arrives `latency_ms` later.
    at: Instant,
    bytes: Vec<u8>,
    /// Transport datagrams: the plaintext, as the shadow session opened it.
    plaintext: Option<Vec<u8>>,
    /// Why the receiving `Invitation` dropped it, if it did (none may be).
    dropped: Option<String>,
}

/// Everything a run produced.
struct Run {
    datagrams: Vec<Datagram>,
    events: [Vec<(Instant, InvitationEvent)>; 2],
    closed_at: [Option<Instant>; 2],
    peer_reason: [String; 2],
    /// The invitee's view at `Invited`: app id, message, data.
    presented: Option<(AppId, String, Vec<u8>)>,
    handshake_hash: [u8; 32],
}

/// The invitee's screen: present everything.
fn present(_: &Certificate, _: AppId) -> Admission {
    Admission::Present
}

/// Two `Invitation`s and their shadows, with the datagrams in flight.
struct Driver<'i> {
    i: &'i InvitationInputs,
    b: LocalIdentity,
    directory: Vec<PinnedPeer>,
    inviter: Invitation,
    invitee: Option<Invitation>,
    pools: [DataPool<1>; 2],
    rngs: [HashDrbg; 2],
    /// Bare sessions from the same inputs: the shadow of each side.
    shadows: [Option<Session>; 2],
    shadow_rngs: [HashDrbg; 2],
    /// Handshake datagrams the shadows wrote, per side.
    shadow_sent: [Vec<Vec<u8>>; 2],
    /// (arrival, send order) -> index into `datagrams`.
    in_flight: BTreeMap<(Instant, usize), usize>,
    datagrams: Vec<Datagram>,
    events: [Vec<(Instant, InvitationEvent)>; 2],
    closed_at: [Option<Instant>; 2],
    hashes: [Option<[u8; 32]>; 2],
    answer_at: Option<Instant>,
    presented: Option<(AppId, String, Vec<u8>)>,
}

impl<'i> Driver<'i> {
    fn new(i: &'i InvitationInputs) -> Self {
        let start = Instant::from_millis(i.start_ms);
        let a = local(&i.inviter);
        let b = local(&i.invitee);
        let initiate = |rng: &mut HashDrbg| match i.mode {
            Mode::Ik => {
                let pinned_b = PinnedPeer::new(&a, *b.certificate()).expect("pin invitee");
                Session::initiate_contact(&a, &pinned_b, i.inviter.index, i.statement, start, rng)
                    .expect("initiate_contact")
            }
            Mode::Xx => Session::initiate_endpoint(&a, None, i.inviter.index, start, rng)
                .expect("initiate_endpoint"),
        };
        let mut rngs = [HashDrbg::new(i.inviter.drbg_seed), HashDrbg::new(i.invitee.drbg_seed)];
        let mut shadow_rngs =
            [HashDrbg::new(i.inviter.drbg_seed), HashDrbg::new(i.invitee.drbg_seed)];
        let session = initiate(&mut rngs[0]);
        let mut shadow = initiate(&mut shadow_rngs[0]);
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = shadow.poll_transmit(start, &mut buf).expect("shadow initiation");
        let shadow_sent = [vec![buf[..n].to_vec()], Vec::new()];
        let directory = match i.mode {
            Mode::Ik => vec![PinnedPeer::new(&b, *a.certificate()).expect("pin inviter")],
            Mode::Xx => Vec::new(),
        };
        let mut pools = [DataPool::<1>::new(), DataPool::<1>::new()];
        let offer = Offer {
            id: InviteId(i.offer.invite_id),
            app_id: AppId(i.offer.app_id),
            message: &i.offer.message,
            data: &i.offer.data,
            expires_in: Duration::from_millis(i.offer.expires_in_ms),
        };
        let inviter = Invitation::invite(session, &offer, start, &mut pools[0]).expect("invite");
        Driver {
            i,
            b,
            directory,
            inviter,
            invitee: None,
            pools,
            rngs,
            shadows: [Some(shadow), None],
            shadow_rngs,
            shadow_sent,
            in_flight: BTreeMap::new(),
            datagrams: Vec::new(),
            events: [Vec::new(), Vec::new()],
            closed_at: [None, None],
            hashes: [None, None],
            answer_at: None,
            presented: None,
        }
    }

    /// Drains both sides' outputs in the contract's order: datagrams (put in
    /// flight), then events. The invitee's user schedules its answer when
    /// the invitation is presented.
    fn drain(&mut self, now: Instant) {
        let latency = Duration::from_millis(self.i.latency_ms);
        let mut buf = [0u8; MAX_DATAGRAM];
        let [pool_a, pool_b] = &self.pools;
        let mut sent = Vec::new();
        while let Some(n) = self.inviter.poll_transmit(now, pool_a, &mut buf) {
            sent.push((Who::Inviter, buf[..n].to_vec()));
        }
        if let Some(inv) = self.invitee.as_mut() {
            while let Some(n) = inv.poll_transmit(now, pool_b, &mut buf) {
                sent.push((Who::Invitee, buf[..n].to_vec()));
            }
        }
        for (from, bytes) in sent {
            let k = self.datagrams.len();
            self.in_flight.insert((now + latency, k), k);
            self.datagrams.push(Datagram { from, at: now, bytes, plaintext: None, dropped: None });
        }
        while let Some(e) = self.inviter.poll_event() {
            self.events[0].push((now, e));
        }
        if let Some(inv) = self.invitee.as_mut() {
            while let Some(e) = inv.poll_event() {
                self.events[1].push((now, e));
                if e == InvitationEvent::Invited {
                    let pool = &self.pools[1];
                    let message = inv.message(pool).expect("presented message").to_owned();
                    let data = inv.data(pool).expect("presented data").to_vec();
                    self.presented = Some((inv.app_id(), message, data));
                    assert!(self.answer_at.is_none(), "presented twice");
                    self.answer_at = Some(now + Duration::from_millis(self.i.answer.after_ms));
                }
            }
        }
        let sides = [Some(&self.inviter), self.invitee.as_ref()];
        for (k, inv) in sides.into_iter().enumerate() {
            let Some(inv) = inv else { continue };
            if self.hashes[k].is_none() {
                self.hashes[k] = inv.session().handshake_hash().copied();
            }
            if self.closed_at[k].is_none() && inv.is_closed() {
                self.closed_at[k] = Some(now);
            }
        }
    }

    /// Hands datagram `k` to the other side and to the other side's shadow.
    fn deliver(&mut self, now: Instant, k: usize) {
        let from = self.datagrams[k].from;
        let bytes = self.datagrams[k].bytes.clone();
        let to = 1 - from as usize;
        let mut buf = [0u8; MAX_DATAGRAM];
        // The shadow first: it opens transport datagrams.
        let plaintext = match self.shadows[to].as_mut() {
            None => {
                // The initiation creates the invitee's shadow session.
                let incoming = Incoming::read(&self.b, self.directory.as_slice(), &bytes)
                    .expect("shadow reads the initiation");
                let mut s = incoming
                    .accept(&self.b, self.i.invitee.index, now, &mut self.shadow_rngs[1])
                    .expect("shadow accepts");
                while let Some(n) = s.poll_transmit(now, &mut buf) {
                    self.shadow_sent[1].push(buf[..n].to_vec());
                }
                self.shadows[1] = Some(s);
                None
            }
            Some(s) => {
                let mut plain = [0u8; MAX_DATAGRAM];
                let r = s.handle_datagram(now, &bytes, &mut plain, &mut self.shadow_rngs[to]);
                while let Some(n) = s.poll_transmit(now, &mut buf) {
                    self.shadow_sent[to].push(buf[..n].to_vec());
                }
                match r {
                    Ok(Received::Handshake) => None,
                    Ok(Received::Keepalive) => Some(Vec::new()),
                    Ok(Received::Payload(n)) => Some(plain[..n].to_vec()),
                    Err(d) => panic!(
                        "{}: the shadow of side {to} dropped datagram {k}: {d:?}",
                        self.i.name
                    ),
                }
            }
        };
        self.datagrams[k].plaintext = plaintext;
        // Then the real side.
        let mut screen = present;
        let result = match (to, self.invitee.as_mut()) {
            (0, _) => self.inviter.handle_datagram(
                now,
                &bytes,
                &mut self.pools[0],
                &mut screen,
                &mut self.rngs[0],
            ),
            (_, Some(inv)) => {
                inv.handle_datagram(now, &bytes, &mut self.pools[1], &mut screen, &mut self.rngs[1])
            }
            (_, None) => {
                let incoming = Incoming::read(&self.b, self.directory.as_slice(), &bytes)
                    .expect("invitee reads the initiation");
                let session = incoming
                    .accept(&self.b, self.i.invitee.index, now, &mut self.rngs[1])
                    .expect("invitee accepts");
                let config = InviteeConfig::with_max_expiry(Duration::from_millis(
                    self.i.invitee_max_expiry_ms,
                ));
                self.invitee =
                    Some(Invitation::invitee(session, config, now).expect("invitee invitation"));
                Ok(())
            }
        };
        self.datagrams[k].dropped = result.err().map(|d| format!("{d:?}"));
    }

    /// Runs to the end: every datagram delivered, every timer fired, both
    /// sides closed.
    fn run(mut self) -> Run {
        let start = Instant::from_millis(self.i.start_ms);
        let name = self.i.name.clone();
        self.drain(start);
        let mut now = start;
        for _ in 0..10_000 {
            let next_delivery = self.in_flight.keys().next().map(|&(t, _)| t);
            let next_timeout = [
                self.inviter.poll_timeout(),
                self.invitee.as_ref().and_then(Invitation::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) =
                [next_delivery, next_timeout, self.answer_at].into_iter().flatten().min()
            else {
                break;
            };
            assert!(next >= now, "{name}: time went back from {now:?} to {next:?}");
            now = next;
            // At one instant: deliveries in send order, then timers, then
            // the user's answer; outputs drained after each.
            while let Some((&(t, _), &k)) = self.in_flight.iter().next() {
                if t > now {
                    break;
                }
                self.in_flight.remove(&(t, k));
                self.deliver(now, k);
                self.drain(now);
            }
            if self.inviter.poll_timeout().is_some_and(|t| t <= now) {
                self.inviter.handle_timeout(now, &mut self.pools[0], &mut self.rngs[0]);
                assert!(self.inviter.poll_timeout().is_none_or(|t| t > now));
                self.drain(now);
            }
            if let Some(inv) = self.invitee.as_mut()
                && inv.poll_timeout().is_some_and(|t| t <= now)
            {
                inv.handle_timeout(now, &mut self.pools[1], &mut self.rngs[1]);
                assert!(inv.poll_timeout().is_none_or(|t| t > now));
                self.drain(now);
            }
            if self.answer_at.is_some_and(|t| t <= now) {
                self.answer_at = None;
                let a = &self.i.answer;
                let inv = self.invitee.as_mut().expect("an invitee to answer");
                inv.respond(now, a.answer, &a.reason).expect("respond");
                self.drain(now);
            }
        }
        assert!(self.in_flight.is_empty() && self.answer_at.is_none(), "{name}: did not settle");
        let invitee = self.invitee.as_mut().expect("the invitee exists");
        assert!(self.inviter.is_closed() && invitee.is_closed(), "{name}: both sides close");
        // Closed means silent for good: nothing to send, no timer, even
        // long after.
        let later = now + Duration::from_secs(3_600);
        let mut buf = [0u8; MAX_DATAGRAM];
        for (inv, k) in [(&mut self.inviter, 0), (invitee, 1)] {
            assert_eq!(inv.poll_timeout(), None, "{name}: a closed side keeps no timer");
            inv.handle_timeout(later, &mut self.pools[k], &mut self.rngs[k]);
            assert_eq!(
                inv.poll_transmit(later, &self.pools[k], &mut buf),
                None,
                "{name}: a closed side sends nothing"
            );
            assert_eq!(inv.poll_event(), None, "{name}: a closed side reports nothing");
            assert_eq!(self.pools[k].free(), self.pools[k].capacity(), "{name}: buffers freed");
        }
        // The shadows wrote the very handshake datagrams the real sides sent,
        // and hold the same handshake hash.
        for who in [Who::Inviter, Who::Invitee] {
            let real: Vec<&[u8]> = self
                .datagrams
                .iter()
                .filter(|d| d.from == who && !is_transport(&d.bytes))
                .map(|d| d.bytes.as_slice())
                .collect();
            let shadow: Vec<&[u8]> =
                self.shadow_sent[who as usize].iter().map(Vec::as_slice).collect();
            assert_eq!(
                shadow.iter().map(|b| hex(b)).collect::<Vec<_>>(),
                real.iter().map(|b| hex(b)).collect::<Vec<_>>(),
                "{name}: the {} shadow's handshake datagrams",
                who.name()
            );
        }
        let h = self.hashes[0].expect("inviter handshake hash");
        assert_eq!(self.hashes[1], Some(h), "{name}: the real sides' handshake hashes");
        for (k, s) in self.shadows.iter().enumerate() {
            let s = s.as_ref().expect("shadow");
            assert_eq!(s.handshake_hash(), Some(&h), "{name}: shadow {k}'s handshake hash");
        }
        let invitee = self.invitee.as_ref().expect("the invitee exists");
        Run {
            datagrams: self.datagrams,
            events: self.events,
            closed_at: self.closed_at,
            peer_reason: [self.inviter.peer_reason().into(), invitee.peer_reason().into()],
            presented: self.presented,
            handshake_hash: h,
        }
    }
}

fn is_transport(bytes: &[u8]) -> bool {
    matches!(Frame::parse(bytes), Ok(Frame::Transport(_)))
}

fn frame_kind(bytes: &[u8]) -> &'static str {
    match Frame::parse(bytes).expect("emitted datagram parses") {
        Frame::Initiation(_) => "initiation",
        Frame::Response(_) => "response",
        Frame::HandshakeFinal(_) => "handshake_final",
        Frame::CookieReply(_) => "cookie_reply",
        Frame::Transport(_) => "transport",
    }
}

/// The invitation message of a transport datagram's plaintext, or
/// "keepalive" for an empty one.
fn message_kind(plain: &[u8]) -> String {
    if plain.is_empty() {
        return "keepalive".into();
    }
    let m = Message::parse(plain).expect("plaintext parses as an invitation message");
    format!("{:?}", m.message_type())
}

fn expected_outcome(a: &Answer) -> Outcome {
    match *a {
        Answer::Accept => Outcome::Accepted,
        Answer::Decline => Outcome::Declined,
        Answer::Busy { retry_after } => Outcome::Busy { retry_after },
        other => panic!("no outcome for {other:?}"),
    }
}

fn expected_code(a: &Answer) -> (FinalCode, u32) {
    match *a {
        Answer::Accept => (FinalCode::Accepted, 0),
        Answer::Decline => (FinalCode::Declined, 0),
        Answer::Busy { retry_after } => {
            (FinalCode::Busy, u32::try_from(retry_after.as_millis()).expect("fits"))
        }
        other => panic!("no code for {other:?}"),
    }
}

/// Checks the transcript against the inputs: every plaintext is the message
/// its sender should send, the outcomes agree and are the answer's.
fn check_run(i: &InvitationInputs, run: &Run) {
    let name = &i.name;
    let start = Instant::from_millis(i.start_ms);
    let id = InviteId(i.offer.invite_id);
    let body: Vec<u8> = i.offer.message.bytes().chain(i.offer.data.iter().copied()).collect();
    let (code, retry_after_ms) = expected_code(&i.answer.answer);
    let mut kinds = Vec::new();
    for (k, d) in run.datagrams.iter().enumerate() {
        let at = format!("{name}: datagram {k}");
        assert_eq!(d.dropped, None, "{at} was dropped");
        let Some(plain) = &d.plaintext else {
            assert!(!is_transport(&d.bytes), "{at}: transport without a plaintext");
            kinds.push(frame_kind(&d.bytes).to_owned());
            continue;
        };
        assert!(is_transport(&d.bytes), "{at}: a plaintext from a handshake datagram");
        kinds.push(message_kind(plain));
        if plain.is_empty() {
            continue;
        }
        let m = Message::parse(plain).expect("parses");
        assert_eq!(m.id(), id, "{at}: invite id");
        match (d.from, m) {
            (Who::Inviter, Message::Invite(f)) => {
                assert_eq!(f.app_id, AppId(i.offer.app_id), "{at}: app id");
                assert_eq!(usize::from(f.message_len), i.offer.message.len(), "{at}: message len");
                assert_eq!(usize::from(f.data_len), i.offer.data.len(), "{at}: data len");
                let range = chunk_range(body.len(), usize::from(f.index)).expect("index");
                assert_eq!(hex(f.chunk), hex(&body[range]), "{at}: chunk");
                let remaining =
                    i.offer.expires_in_ms - d.at.saturating_duration_since(start).as_millis();
                assert_eq!(u64::from(f.remaining_ms), remaining, "{at}: the time remaining now");
            }
            (Who::Inviter, Message::Ack { code: c, .. }) => assert_eq!(c, code, "{at}: Ack code"),
            (Who::Invitee, Message::Final(f)) => {
                assert_eq!((f.code, f.retry_after_ms), (code, retry_after_ms), "{at}: Final");
                assert_eq!(f.reason, i.answer.reason, "{at}: Final reason");
            }
            (Who::Invitee, Message::Sack { .. } | Message::Ringing { .. }) => {}
            (from, m) => panic!("{at}: {from:?} sent {m:?}"),
        }
    }
    if let Some(want) = expected_kinds(name) {
        assert_eq!(kinds, want, "{name}: the datagrams, in order");
    }
    let outcome = expected_outcome(&i.answer.answer);
    for (k, events) in run.events.iter().enumerate() {
        let ended: Vec<_> = events
            .iter()
            .filter_map(|(_, e)| match e {
                InvitationEvent::Ended(o) => Some(*o),
                _ => None,
            })
            .collect();
        assert_eq!(ended, [outcome], "{name}: side {k}'s one outcome");
    }
    let (app_id, message, data) = run.presented.as_ref().expect("presented");
    assert_eq!(*app_id, AppId(i.offer.app_id), "{name}: presented app id");
    assert_eq!(message, &i.offer.message, "{name}: presented message");
    assert_eq!(hex(data), hex(&i.offer.data), "{name}: presented data");
    assert_eq!(run.peer_reason[0], i.answer.reason, "{name}: the inviter reads the reason");
}

// ---------------------------------------------------------------- invitation JSON

fn outcome_json(o: Outcome) -> Value {
    match o {
        Outcome::Busy { retry_after } => {
            json!({ "outcome": "Busy", "retry_after_ms": retry_after.as_millis() })
        }
        Outcome::Cancelled(r) => json!({ "outcome": "Cancelled", "reason": cancel_reason_name(r) }),
        Outcome::Failed(c) => json!({ "outcome": "Failed", "cause": format!("{c:?}") }),
        other => json!({ "outcome": format!("{other:?}") }),
    }
}

fn event_json(at: Instant, e: InvitationEvent) -> Value {
    match e {
        InvitationEvent::Ringing => json!({ "at_ms": at.as_millis(), "event": "Ringing" }),
        InvitationEvent::Invited => json!({ "at_ms": at.as_millis(), "event": "Invited" }),
        InvitationEvent::Ended(o) => {
            json!({ "at_ms": at.as_millis(), "event": "Ended", "outcome": outcome_json(o) })
        }
        other => panic!("no JSON form for {other:?}"),
    }
}

fn invitation_json(i: &InvitationInputs) -> Value {
    let run = Driver::new(i).run();
    check_run(i, &run);
    let datagrams: Vec<Value> = run
        .datagrams
        .iter()
        .map(|d| {
            let mut v = json!({
                "from": d.from.name(),
                "at_ms": d.at.as_millis(),
                "type": frame_kind(&d.bytes),
                "len": d.bytes.len(),
                "hex": hex(&d.bytes),
            });
            if let Some(p) = &d.plaintext {
                v["message"] = json!(message_kind(p));
                v["plaintext_hex"] = json!(hex(p));
            }
            v
        })
        .collect();
    let side_result = |k: usize| {
        let events = &run.events[k];
        let outcome = events.iter().find_map(|(_, e)| match e {
            InvitationEvent::Ended(o) => Some(outcome_json(*o)),
            _ => None,
        });
        json!({
            "outcome": outcome,
            "events": events.iter().map(|&(t, e)| event_json(t, e)).collect::<Vec<_>>(),
            "closed_at_ms": run.closed_at[k].map(Instant::as_millis),
            "peer_reason": run.peer_reason[k],
        })
    };
    let mut invitee = side_result(1);
    if let Some((app_id, message, data)) = &run.presented {
        invitee["presented"] = json!({
            "app_id": hex(&app_id.0),
            "message": message,
            "data": hex(data),
        });
    }
    json!({
        "name": i.name,
        "inputs": invitation_inputs_json(i),
        "datagrams": datagrams,
        "handshake_hash": hex(&run.handshake_hash),
        "inviter": side_result(0),
        "invitee": invitee,
    })
}

fn document(messages: &[MessageInputs], invitations: &[InvitationInputs]) -> Value {
    json!({
        "description": "peercollab invitation test vectors, protocol version 1: every invitation message with its exact encoding, and complete invitations between two parties as datagrams. See spec/vectors/README.md.",
        "protocol_version": wire::VERSION,
        "drbg": "HashDrbg(seed): output = B(0) || B(1) || ..., B(i) = SHA-256(\"peercollab hash-drbg v1\\0\" || seed || u64_le(i)); each side's ephemeral secret is the first 32 bytes of its stream",
        "messages": messages.iter().map(message_json).collect::<Vec<_>>(),
        "invitations": invitations.iter().map(invitation_json).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------- tests

#[test]
fn invitation_vectors_regenerate_byte_for_byte() {
    let path = Path::new(VECTORS);
    let file = read_or_regenerate(path, || document(&default_messages(), &default_invitations()));
    let messages = messages_from_json(&file);
    let invitations = invitations_from_json(&file);
    assert_eq!(messages.len(), 8, "one message vector per type and variant");
    assert_eq!(invitations.len(), 2, "one IK and one XX invitation");

    let regenerated = document(&messages, &invitations);
    let mut differences = Vec::new();
    json_diff("$", &file, &regenerated, &mut differences);
    // The recorded bytes parse to the recorded fields (emit is checked by
    // the regeneration above).
    for (k, (m, v)) in
        messages.iter().zip(file["messages"].as_array().expect("messages")).enumerate()
    {
        let bytes = unhex(str_of(v, "hex"));
        match Message::parse(&bytes) {
            Ok(parsed) => json_diff(
                &format!("$.messages[{k}] ({}): parse(hex) vs fields", m.name),
                &m.fields.to_json(),
                &Fields::of(&parsed).to_json(),
                &mut differences,
            ),
            Err(e) => differences.push(format!("$.messages[{k}] ({}): parse(hex): {e}", m.name)),
        }
    }
    assert_no_differences(path, &differences);
}

#[test]
fn invitation_vector_file_inputs_are_the_generators() {
    // The file was generated from the defaults; a change to either must be
    // deliberate.
    let text = std::fs::read_to_string(VECTORS).unwrap_or_default();
    if text.is_empty() {
        return; // the other test writes it
    }
    let file: Value = serde_json::from_str(&text).expect("the vector file is JSON");
    // Compared as JSON, so a difference reads as a path.
    let inputs = |messages: &[MessageInputs], invitations: &[InvitationInputs]| {
        json!({
            "messages": messages.iter().map(|m| json!({"name": m.name, "fields": m.fields.to_json()})).collect::<Vec<_>>(),
            "invitations": invitations.iter().map(|i| json!({"name": i.name, "inputs": invitation_inputs_json(i)})).collect::<Vec<_>>(),
        })
    };
    let from_file = inputs(&messages_from_json(&file), &invitations_from_json(&file));
    let defaults = inputs(&default_messages(), &default_invitations());
    let mut differences = Vec::new();
    json_diff("$", &from_file, &defaults, &mut differences);
    assert!(
        differences.is_empty(),
        "the file's inputs are not the generator's (\"file\" is the file, \"regenerated\" the \
         defaults):\n{}",
        differences.join("\n")
    );
    assert_eq!(messages_from_json(&file), default_messages());
    assert_eq!(invitations_from_json(&file), default_invitations());
}
