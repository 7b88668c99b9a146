//! One secure session between two peers, over datagrams, sans-IO.
//!
//! A [`Session`] runs one Noise handshake — IK to a pinned contact, XX to an
//! endpoint known only by address — and then seals and opens transport
//! payloads. It never touches a socket or a clock.
//!
//! # The contract
//! - **Inputs**: [`Session::handle_datagram`] for every datagram from the
//!   peer, [`Session::handle_timeout`] when the deadline from
//!   [`Session::poll_timeout`] has come (calling it early is harmless).
//! - **Commands**: [`Session::send`] seals a payload into a transport
//!   datagram; [`Session::close`] ends the session. A command that is misused
//!   returns an error and changes nothing.
//! - **Outputs**, drained after every input or command, in this order:
//!   [`Session::poll_transmit`] until `None` (each call writes one datagram
//!   into the caller's buffer), then [`Session::poll_event`] until `None`,
//!   then [`Session::poll_timeout`] for the next deadline.
//! - **Time** is the caller's monotonic [`Instant`]. A `now` earlier than one
//!   seen before is treated as the latest one seen: time never runs
//!   backwards inside the session and nothing panics. After
//!   `handle_timeout(now)`, `poll_timeout()` is `None` or later than `now`.
//! - **Entropy** is passed to the calls that consume it (ephemeral keys,
//!   retransmission jitter).
//!
//! # Reliability of the handshake
//! Only the initiator retransmits, and always the **cached bytes** of its
//! last handshake message (never a fresh write): from
//! [`HANDSHAKE_RETRANSMIT_INITIAL`], doubling up to
//! [`HANDSHAKE_RETRANSMIT_MAX`], each delay plus up to
//! [`HANDSHAKE_JITTER_MAX`] of jitter, until [`HANDSHAKE_TIMEOUT`] after the
//! first attempt, when it gives up with [`Failure::Unreachable`]. The
//! responder never retransmits on a timer of its own: it answers a duplicate
//! initiation (recognised by its ephemeral key) with its cached response, and
//! a duplicate XX final message with an empty transport datagram (a
//! keepalive), which confirms the handshake to the initiator.
//!
//! Confirmation: an IK responder knows the initiator holds the keys when the
//! first transport datagram arrives; an XX initiator, when an authentic
//! transport datagram (payload or keepalive) arrives from the responder after
//! its final message (it retransmits that message until then). Until then an
//! IK responder cannot send: its payloads would have only message 2's
//! security.
//!
//! # Identity statements
//! Each side states its identity inside the handshake, encrypted: the full
//! certificate, or its hash where the peer already pinned it. The receiver
//! checks that the certificate certifies the very static key the handshake
//! used and that its identity is the one expected; so an identity that
//! certified somebody else's static key cannot pass for them.

use heapless::{Deque, Vec};
use zeroize::Zeroize;

use crate::identity::{CERT_LEN, CertHash, Certificate, IdentityError, IdentityKey, LocalIdentity};
use crate::mac::{MacKey, XX_MAC1_KEY_MATERIAL};
use crate::mutation::{Defence, enabled};
use crate::noise::{
    self, DH_LEN, HandshakePattern, HandshakeState, Role, StaticDhCache, TransportState, Work,
};
use crate::replay::ReplayWindow;
use crate::util::ct_eq;
use crate::wire::{
    self, COOKIE_LEN, Frame, HandshakeFinal, Initiation, MAC_LEN, MAX_DATAGRAM,
    MAX_TRANSPORT_PAYLOAD, MIN_IK_INITIATION_LEN, MIN_XX_INITIATION_LEN, Mode, Response,
    TRANSPORT_HEADER_LEN, WireError, tlv,
};
use crate::{Duration, Entropy, Instant};

/// First retransmission delay of a handshake message: twice SIP's T1
/// (500 ms), a fifth of WireGuard's REKEY_TIMEOUT (5 s). Interactive
/// invitations want a lost first datagram repaired within about a second,
/// and no healthy path has a round trip anywhere near it.
pub const HANDSHAKE_RETRANSMIT_INITIAL: Duration = Duration::from_millis(1_000);
/// Cap of the doubling retransmission delay (SIP's T2 is 4 s; WireGuard
/// retries every 5 s): long outages cost few datagrams.
pub const HANDSHAKE_RETRANSMIT_MAX: Duration = Duration::from_millis(8_000);
/// Upper bound of the random delay added to each retransmission, as
/// WireGuard's REKEY_TIMEOUT_JITTER_MAX (334 ms): initiators that lost the
/// same datagrams do not retry in lockstep.
pub const HANDSHAKE_JITTER_MAX: Duration = Duration::from_millis(333);
/// How long an initiator tries before it reports [`Failure::Unreachable`]:
/// SIP's Timer B (64·T1 = 32 s). Attempts go out at about 0, 1, 3, 7, 15,
/// 23 and 31 s. A responder keeps an unconfirmed handshake as long, since a
/// retransmission may arrive until then.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(32);
/// How long a cookie received in a cookie reply is used for mac2: the
/// responder's cookie secret rotates every 120 s (WireGuard's
/// COOKIE_SECRET_MAX_AGE), so an older cookie would be refused anyway.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(120);
/// The largest handshake datagram this implementation writes (an IK
/// initiation stating a full certificate is 315 bytes, a padded XX
/// initiation 300, an XX response 268): the size of the per-session cache
/// that retransmissions and duplicate answers are served from.
pub const MAX_HANDSHAKE_FRAME: usize = 320;
/// Label at the start of the Noise prologue; version and mode follow, so a
/// frame whose header was altered fails the handshake.
pub const PROLOGUE_LABEL: &[u8] = b"peercollab invite\0";

const PROLOGUE_LEN: usize = PROLOGUE_LABEL.len() + 2;
/// Largest handshake payload written or read (a certificate statement and
/// padding fit several times over).
const MAX_HANDSHAKE_PAYLOAD: usize = 512;

/// The Noise prologue of a handshake in `mode`.
#[must_use]
pub fn prologue(mode: Mode) -> [u8; PROLOGUE_LEN] {
    let mut p = [0u8; PROLOGUE_LEN];
    p[..PROLOGUE_LABEL.len()].copy_from_slice(PROLOGUE_LABEL);
    p[PROLOGUE_LABEL.len()] = wire::VERSION;
    p[PROLOGUE_LABEL.len() + 1] = mode as u8;
    p
}

fn pattern(mode: Mode) -> HandshakePattern {
    match mode {
        Mode::Ik => HandshakePattern::IK,
        Mode::Xx => HandshakePattern::XX,
    }
}

/// A peer whose certificate this side pinned (a contact), with the values
/// derived from it computed once: the certificate's hash and the
/// static-static Diffie-Hellman result IK needs, as WireGuard precomputes it.
#[derive(Clone)]
pub struct PinnedPeer {
    cert: Certificate,
    cert_hash: CertHash,
    static_dh: [u8; DH_LEN],
}

impl PinnedPeer {
    /// Pins `cert` for use by `local`. Fails only if the certified static key
    /// is of small order, which [`Certificate::parse`] already refuses.
    pub fn new(local: &LocalIdentity, cert: Certificate) -> Result<Self, noise::Error> {
        let static_dh = noise::dh(local.static_keys(), cert.static_key())?;
        Ok(PinnedPeer { cert_hash: cert.hash(), cert, static_dh })
    }

    /// The pinned certificate.
    #[must_use]
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// Its hash.
    #[must_use]
    pub fn certificate_hash(&self) -> CertHash {
        self.cert_hash
    }
}

impl Drop for PinnedPeer {
    fn drop(&mut self) {
        self.static_dh.zeroize();
    }
}

impl core::fmt::Debug for PinnedPeer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PinnedPeer").field("certificate", &self.cert).finish_non_exhaustive()
    }
}

/// Where a responder looks up the peers it pinned, by static key.
pub trait PeerDirectory {
    /// The pinned peer whose certificate certifies `static_key`, if any.
    fn by_static_key(&self, static_key: &[u8; DH_LEN]) -> Option<&PinnedPeer>;
}

impl PeerDirectory for () {
    fn by_static_key(&self, _: &[u8; DH_LEN]) -> Option<&PinnedPeer> {
        None
    }
}

impl PeerDirectory for [PinnedPeer] {
    fn by_static_key(&self, static_key: &[u8; DH_LEN]) -> Option<&PinnedPeer> {
        self.iter().find(|p| ct_eq(p.cert.static_key(), static_key))
    }
}

struct DirectoryDh<'a, D: ?Sized>(&'a D);

impl<D: PeerDirectory + ?Sized> StaticDhCache for DirectoryDh<'_, D> {
    fn static_dh(&self, remote_static: &[u8; DH_LEN]) -> Option<[u8; DH_LEN]> {
        self.0.by_static_key(remote_static).map(|p| p.static_dh)
    }
}

/// How this side states its identity in its handshake message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementForm {
    /// The full certificate (141 bytes): always understood.
    Certificate,
    /// The certificate's hash (32 bytes): only for a peer known to have
    /// pinned this very certificate.
    Hash,
}

/// What the peer's identity must be.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// This pinned certificate's identity (IK initiator).
    Pinned { cert: Certificate, hash: CertHash },
    /// This identity (an XX initiator that knows whom it wants).
    Identity(IdentityKey),
    /// Whoever answers; the caller decides after the fact.
    Anyone,
}

impl Expect {
    fn identity(&self) -> Option<&IdentityKey> {
        match self {
            Expect::Pinned { cert, .. } => Some(cert.identity()),
            Expect::Identity(id) => Some(id),
            Expect::Anyone => None,
        }
    }
}

/// Why a datagram was dropped. Dropping is the normal fate of junk: the
/// session is unchanged, and the caller may count these for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dropped {
    /// The datagram does not parse.
    Malformed(WireError),
    /// A frame type or mode this session does not expect in its state.
    Unexpected,
    /// The receiver index is not this session's.
    WrongIndex,
    /// mac1 does not verify.
    BadMac,
    /// A handshake message this session already processed.
    Duplicate,
    /// A transport counter already seen, too old, or reserved.
    Replayed,
    /// Authenticated decryption failed.
    Decrypt,
    /// The handshake payload is malformed, lacks an identity statement, has
    /// two, or has an unknown critical field.
    BadPayload,
    /// The stated certificate is invalid.
    BadCertificate(IdentityError),
    /// The stated certificate hash names no certificate pinned for that key.
    UnknownCertificateHash,
    /// The stated certificate does not certify the handshake's static key.
    StaticKeyMismatch,
    /// The caller's admission check turned the stated identity away (see
    /// [`Incoming::read_admitting`]).
    NotAdmitted,
    /// The session is closed.
    Closed,
}

impl From<WireError> for Dropped {
    fn from(e: WireError) -> Self {
        Dropped::Malformed(e)
    }
}

impl From<noise::Error> for Dropped {
    fn from(e: noise::Error) -> Self {
        match e {
            noise::Error::BadLength => Dropped::Malformed(WireError::TooShort),
            _ => Dropped::Decrypt,
        }
    }
}

/// Why a handshake ended without a usable session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The initiator heard nothing authentic back within
    /// [`HANDSHAKE_TIMEOUT`] (or, in XX, its final message was never
    /// confirmed).
    Unreachable,
    /// The peer proved an identity other than the one expected.
    IdentityMismatch,
    /// A responder's handshake was never confirmed by the initiator within
    /// [`HANDSHAKE_TIMEOUT`].
    Unconfirmed,
}

/// What a session reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The handshake completed and the peer's identity is verified
    /// ([`Session::peer`]). Transport payloads can flow.
    Established,
    /// The handshake failed, or (XX initiator) its final message was never
    /// confirmed. Nothing more will happen on this session.
    Failed(Failure),
}

/// What a datagram delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Received {
    /// A handshake message; check `poll_transmit` and `poll_event`.
    Handshake,
    /// An authentic empty transport datagram.
    Keepalive,
    /// An authentic transport payload of this many bytes, written to the
    /// front of the caller's payload buffer.
    Payload(usize),
}

/// Local misuse of a session command. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// Transport keys do not exist yet (or any more).
    NotEstablished,
    /// The payload exceeds [`MAX_TRANSPORT_PAYLOAD`].
    PayloadTooLarge,
    /// The send counter is exhausted; start a new session.
    NonceExhausted,
    /// The response would be larger than the initiation that triggered it,
    /// which the anti-amplification rule forbids.
    ResponseLargerThanTrigger,
    /// A Noise operation failed (a key pair or certificate is unusable).
    Noise(noise::Error),
}

impl From<noise::Error> for SessionError {
    fn from(e: noise::Error) -> Self {
        match e {
            noise::Error::NonceExhausted => SessionError::NonceExhausted,
            e => SessionError::Noise(e),
        }
    }
}

/// Counters for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Handshake messages sent again from cache (timer or duplicate answer).
    pub handshake_retransmissions: u32,
    /// Datagrams dropped.
    pub dropped: u32,
    /// Transport datagrams sealed.
    pub sent: u64,
    /// Transport datagrams opened.
    pub received: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    /// The cached handshake datagram.
    CachedHandshake,
    /// An empty transport datagram.
    Keepalive,
}

/// The session's timers, indexing [`Session::timers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// Send the cached handshake datagram again.
    Retransmit = 0,
    /// Give up the handshake.
    GiveUp = 1,
}

const TIMER_COUNT: usize = 2;

/// Transport keys and the receive window.
#[derive(Clone, Debug)]
struct Keys {
    transport: TransportState,
    replay: ReplayWindow,
}

/// Why a session is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    Failed(Failure),
    ByCaller,
}

// Without a heap there is nothing to box: a session's size is the size of
// its largest state, by design, and is reported in the spec.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum State {
    /// Initiator: initiation sent, waiting for the response. An XX
    /// initiator keeps the certificate it will state in message 3.
    AwaitingResponse { hs: HandshakeState, expect: Expect, final_statement: Option<[u8; CERT_LEN]> },
    /// XX responder: response sent, waiting for the final message.
    AwaitingFinal { hs: HandshakeState },
    /// Keys exist but the peer has not yet proved it has them (XX initiator
    /// after its final message; IK responder after its response).
    Confirming { keys: Keys },
    /// Both sides hold the keys.
    Established { keys: Keys },
    /// Over.
    Closed(Closed),
}

impl State {
    fn keys_mut(&mut self) -> Option<&mut Keys> {
        match self {
            State::Confirming { keys } | State::Established { keys } => Some(keys),
            _ => None,
        }
    }

    fn keys(&self) -> Option<&Keys> {
        match self {
            State::Confirming { keys } | State::Established { keys } => Some(keys),
            _ => None,
        }
    }
}

/// One secure session. See the [module documentation](self) for the
/// contract.
///
/// `Clone` copies the live keys: a clone is a snapshot (to try an input,
/// in tests and fuzzing). Two copies that both send would reuse nonces; an
/// [`Invitation`](crate::invite::Invitation), which owns its session, is
/// not `Clone` for that reason.
#[derive(Clone)]
pub struct Session {
    role: Role,
    mode: Mode,
    local_index: u32,
    remote_index: Option<u32>,
    state: State,
    peer: Option<Certificate>,
    /// The last handshake datagram this side sent.
    cached: Vec<u8, MAX_HANDSHAKE_FRAME>,
    /// Responder: the initiation's ephemeral key (duplicates carry it).
    /// Initiator: its own ephemeral key (keys the response's mac1).
    initiation_ephemeral: [u8; DH_LEN],
    /// XX responder: SHA-256 of the final message, to recognise a duplicate.
    final_digest: Option<[u8; 32]>,
    /// Initiator: key material of the cookie-sealing key.
    cookie_key_material: [u8; DH_LEN],
    /// Initiator: the key of its initiation's mac1.
    initiation_mac1_key: MacKey,
    cookie: Option<([u8; COOKIE_LEN], Instant)>,
    timers: [Option<Instant>; TIMER_COUNT],
    retransmit_delay: Duration,
    /// When the last attempt was due before jitter: attempts keep to the
    /// nominal schedule, so jitter never accumulates.
    retransmit_base: Instant,
    outputs: Deque<Output, 2>,
    events: Deque<SessionEvent, 2>,
    last_now: Instant,
    stats: SessionStats,
}

/// A parsed, authenticated-as-far-as-possible initiation, before the
/// responder commits any state: the caller inspects [`Incoming::peer`] (IK)
/// and either [`accept`](Incoming::accept)s it or drops it, in which case
/// nothing is sent.
#[derive(Clone, Debug)]
pub struct Incoming {
    hs: HandshakeState,
    mode: Mode,
    remote_index: u32,
    peer: Option<Certificate>,
    initiation_ephemeral: [u8; DH_LEN],
    trigger_len: usize,
    /// IK: the hash of our certificate the initiator pinned, if it said.
    pinned_by_initiator: Option<[u8; 32]>,
    /// What reading the initiation cost, for [`Incoming::refuse`].
    work: Work,
}

/// The work every silent refusal of an IK initiation costs once its mac1
/// held, whichever check refused it: the most any refusal can cost (`es`
/// and `ss`, the static key and the payload opened, a certificate's
/// signature checked). A refusal that stopped earlier, or used a
/// precomputed `ss`, makes up the rest with work thrown away, so that the
/// holder of a responder's card cannot tell by its work (its time) whom it
/// pins, trusts, revoked or refuses (`spec/agent.md` §4.1). XX message 1
/// needs no such padding: it costs nothing before it is answered.
pub const IK_REFUSAL_WORK: Work = Work { dh: 2, aead_open: 2, verify: 1 };

/// Makes up the work `done` lacks to reach [`IK_REFUSAL_WORK`]: X25519 of
/// the static key and the base point (the result is our public key), AEAD
/// decryptions under a key nobody uses, a check of our own certificate.
fn pad_refusal(local: &LocalIdentity, done: Work) {
    if !enabled(Defence::UniformWork) {
        return;
    }
    const BASE_POINT: [u8; DH_LEN] = {
        let mut u = [0u8; DH_LEN];
        u[0] = 9;
        u
    };
    for _ in done.dh..IK_REFUSAL_WORK.dh {
        let _ = core::hint::black_box(noise::dh(local.static_keys(), &BASE_POINT));
    }
    for _ in done.aead_open..IK_REFUSAL_WORK.aead_open {
        noise::open_discarded();
    }
    for _ in done.verify..IK_REFUSAL_WORK.verify {
        let _ = core::hint::black_box(Certificate::parse(local.certificate_bytes()));
    }
}

fn write_statement(local: &LocalIdentity, form: StatementForm, w: &mut tlv::Writer<'_>) {
    // The buffer is sized for a statement; these writes cannot run out.
    let _ = match form {
        StatementForm::Certificate => w.field(tlv::CERTIFICATE, local.certificate_bytes()),
        StatementForm::Hash => w.field(tlv::CERTIFICATE_HASH, &local.certificate_hash().0),
    };
}

/// Checks the identity statement in a handshake payload. `pinned` is what
/// this side pinned for `remote_static`, if anything.
fn verify_statement(
    payload: &[u8],
    remote_static: &[u8; DH_LEN],
    pinned: Option<(Certificate, CertHash)>,
    expect: &Expect,
    admit: impl FnOnce(&IdentityKey) -> bool,
    work: &mut Work,
) -> Result<Result<Certificate, Failure>, Dropped> {
    let mut statement = None;
    for field in tlv::fields(payload) {
        let (ty, value) = field.map_err(|_| Dropped::BadPayload)?;
        match ty {
            tlv::CERTIFICATE | tlv::CERTIFICATE_HASH if statement.is_none() => {
                statement = Some((ty, value))
            }
            tlv::CERTIFICATE | tlv::CERTIFICATE_HASH => return Err(Dropped::BadPayload),
            t if t & tlv::CRITICAL != 0 => return Err(Dropped::BadPayload),
            _ => {}
        }
    }
    let (ty, value) = statement.ok_or(Dropped::BadPayload)?;
    let cert = if ty == tlv::CERTIFICATE {
        match pinned {
            // Byte-equal to the pinned certificate: already verified.
            Some((p, _)) if value.len() == CERT_LEN && ct_eq(value, &p.encode()) => p,
            _ => {
                // Policy before the signature check, the costliest step:
                // whom the caller turns away costs no verification.
                let claimed = value.get(1..33).and_then(|b| <[u8; 32]>::try_from(b).ok());
                let claimed = claimed.map(|b| IdentityKey::from_bytes(&b));
                match claimed {
                    Some(Ok(id)) if !admit(&id) => return Err(Dropped::NotAdmitted),
                    _ => {}
                }
                let parsed = Certificate::parse(value);
                // `parse` checks the signature last: it was checked exactly
                // when it held or was refused.
                if matches!(parsed, Ok(_) | Err(IdentityError::BadSignature)) {
                    work.verify = work.verify.saturating_add(1);
                }
                parsed.map_err(Dropped::BadCertificate)?
            }
        }
    } else {
        match pinned {
            Some((p, h)) if ct_eq(value, &h.0) => p,
            // An authenticated answer from the pinned static key naming a
            // certificate other than the pinned one: not who we called.
            _ if matches!(expect, Expect::Pinned { .. }) => {
                return Ok(Err(Failure::IdentityMismatch));
            }
            _ => return Err(Dropped::UnknownCertificateHash),
        }
    };
    if enabled(Defence::CertificateBinding) && !ct_eq(cert.static_key(), remote_static) {
        return Err(Dropped::StaticKeyMismatch);
    }
    match expect.identity() {
        Some(id) if id != cert.identity() && enabled(Defence::IdentityCheck) => {
            Ok(Err(Failure::IdentityMismatch))
        }
        _ => Ok(Ok(cert)),
    }
}

/// Computes mac1 (and mac2 with a cookie) over an initiation in place.
fn seal_initiation_macs(frame: &mut [u8], mac1_key: &MacKey, cookie: Option<&[u8; COOKIE_LEN]>) {
    let len = frame.len();
    let mac1 = mac1_key.mac(&frame[..len - 2 * MAC_LEN]);
    frame[len - 2 * MAC_LEN..len - MAC_LEN].copy_from_slice(&mac1);
    let mac2 = match cookie {
        Some(c) => MacKey::from_cookie(c).mac(&frame[..len - MAC_LEN]),
        None => [0; MAC_LEN],
    };
    frame[len - MAC_LEN..].copy_from_slice(&mac2);
}

impl Session {
    fn new(role: Role, mode: Mode, local_index: u32, state: State, now: Instant) -> Self {
        Session {
            role,
            mode,
            local_index,
            remote_index: None,
            state,
            peer: None,
            cached: Vec::new(),
            initiation_ephemeral: [0; DH_LEN],
            final_digest: None,
            cookie_key_material: [0; DH_LEN],
            initiation_mac1_key: MacKey::mac1(&XX_MAC1_KEY_MATERIAL),
            cookie: None,
            timers: [None; TIMER_COUNT],
            retransmit_delay: HANDSHAKE_RETRANSMIT_INITIAL,
            retransmit_base: now,
            outputs: Deque::new(),
            events: Deque::new(),
            last_now: now,
            stats: SessionStats::default(),
        }
    }

    /// Starts an IK handshake to a pinned contact; the initiation is ready
    /// in `poll_transmit`.
    pub fn initiate_contact(
        local: &LocalIdentity,
        peer: &PinnedPeer,
        local_index: u32,
        statement: StatementForm,
        now: Instant,
        rng: &mut impl Entropy,
    ) -> Result<Self, SessionError> {
        let expect = Expect::Pinned { cert: peer.cert, hash: peer.cert_hash };
        let rs = *peer.cert.static_key();
        let mut s = Self::new_initiator(
            local,
            Mode::Ik,
            Some((rs, peer.static_dh)),
            expect,
            local_index,
            now,
        )?;
        s.initiation_mac1_key = MacKey::mac1(&rs);
        s.cookie_key_material = rs;
        s.write_initiation(local, statement, Some(peer.cert_hash), rng)?;
        s.start_handshake_timers(now, rng);
        Ok(s)
    }

    /// Starts an XX handshake to an endpoint; `expected` is the identity the
    /// answerer must prove, or `None` to accept whoever answers (then read it
    /// from [`Session::peer`]).
    pub fn initiate_endpoint(
        local: &LocalIdentity,
        expected: Option<IdentityKey>,
        local_index: u32,
        now: Instant,
        rng: &mut impl Entropy,
    ) -> Result<Self, SessionError> {
        let expect = expected.map_or(Expect::Anyone, Expect::Identity);
        let mut s = Self::new_initiator(local, Mode::Xx, None, expect, local_index, now)?;
        s.write_initiation(local, StatementForm::Certificate, None, rng)?;
        s.cookie_key_material = s.initiation_ephemeral;
        s.start_handshake_timers(now, rng);
        Ok(s)
    }

    /// An initiator awaiting its first write. `pinned` is the responder's
    /// static key with the precomputed static-static DH (IK).
    fn new_initiator(
        local: &LocalIdentity,
        mode: Mode,
        pinned: Option<([u8; DH_LEN], [u8; DH_LEN])>,
        expect: Expect,
        local_index: u32,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let mut hs = HandshakeState::new(
            pattern(mode),
            Role::Initiator,
            &prologue(mode),
            Some(local.static_keys().clone()),
            pinned.map(|(rs, _)| rs),
            None,
        )?;
        if let Some((_, ss)) = pinned {
            hs = hs.with_precomputed_ss(ss);
        }
        // XX states the certificate in message 3, written when message 2
        // arrives; the session keeps it until then.
        let final_statement = (mode == Mode::Xx).then(|| *local.certificate_bytes());
        let state = State::AwaitingResponse { hs, expect, final_statement };
        Ok(Session::new(Role::Initiator, mode, local_index, state, now))
    }

    fn write_initiation(
        &mut self,
        local: &LocalIdentity,
        statement: StatementForm,
        pinned_peer: Option<CertHash>,
        rng: &mut impl Entropy,
    ) -> Result<(), SessionError> {
        let State::AwaitingResponse { hs, .. } = &mut self.state else {
            return Err(SessionError::NotEstablished);
        };
        let mut payload = [0u8; MAX_HANDSHAKE_PAYLOAD];
        let mut w = tlv::Writer::new(&mut payload);
        match self.mode {
            // IK message 1 is encrypted to the responder: state who we are
            // and which of its certificates we pinned, padded so that even a
            // response stating the full certificate is no larger.
            Mode::Ik => {
                write_statement(local, statement, &mut w);
                if let Some(h) = pinned_peer {
                    let _ = w.field(tlv::PEER_CERTIFICATE_HASH, &h.0);
                }
                let fixed = wire::INITIATION_OVERHEAD + hs.next_message_len(0);
                let _ = w.pad_to(MIN_IK_INITIATION_LEN.saturating_sub(fixed));
            }
            // XX message 1 is cleartext: only padding, so that the response
            // (which carries the responder's certificate) is no larger.
            Mode::Xx => {
                let _ = w.pad_to(MIN_XX_INITIATION_LEN - wire::INITIATION_OVERHEAD - DH_LEN);
            }
        }
        let plen = w.len();
        let mut noise_buf = [0u8; MAX_HANDSHAKE_FRAME];
        let n = hs.write_message(&payload[..plen], &mut noise_buf, rng)?;
        self.initiation_ephemeral = *hs.local_ephemeral().ok_or(noise::Error::MissingKey)?;
        let frame = Frame::Initiation(Initiation {
            mode: self.mode,
            sender_index: self.local_index,
            noise: &noise_buf[..n],
            mac1: [0; MAC_LEN],
            mac2: [0; MAC_LEN],
        });
        self.cache_frame(&frame)?;
        seal_initiation_macs(&mut self.cached, &self.initiation_mac1_key, None);
        self.push_output(Output::CachedHandshake);
        Ok(())
    }

    fn cache_frame(&mut self, frame: &Frame<'_>) -> Result<(), SessionError> {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n =
            frame.emit(&mut buf).map_err(|_| SessionError::Noise(noise::Error::BufferTooSmall))?;
        self.cached.clear();
        self.cached
            .extend_from_slice(&buf[..n])
            .map_err(|_| SessionError::Noise(noise::Error::BufferTooSmall))
    }

    fn start_handshake_timers(&mut self, now: Instant, rng: &mut impl Entropy) {
        self.retransmit_delay = HANDSHAKE_RETRANSMIT_INITIAL;
        self.retransmit_base = now;
        self.timers[Timer::GiveUp as usize] = Some(now + HANDSHAKE_TIMEOUT);
        self.schedule_retransmit(rng);
    }

    /// Schedules the next attempt at the nominal time (the last nominal time
    /// plus the current delay) plus fresh jitter, then doubles the delay.
    fn schedule_retransmit(&mut self, rng: &mut impl Entropy) {
        self.retransmit_base += self.retransmit_delay;
        let jitter = Duration::from_millis(rng.below(HANDSHAKE_JITTER_MAX.as_millis() + 1));
        self.timers[Timer::Retransmit as usize] = Some(self.retransmit_base + jitter);
        self.retransmit_delay =
            self.retransmit_delay.saturating_mul(2).min(HANDSHAKE_RETRANSMIT_MAX);
    }

    fn push_output(&mut self, o: Output) {
        if !self.outputs.iter().any(|x| *x == o) {
            // Capacity 2 holds one of each kind.
            let _ = self.outputs.push_back(o);
        }
    }

    fn push_event(&mut self, e: SessionEvent) {
        // At most one Established and one Failed are ever pushed.
        let _ = self.events.push_back(e);
    }

    fn clock(&mut self, now: Instant) -> Instant {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    fn fail(&mut self, failure: Failure) {
        self.state = State::Closed(Closed::Failed(failure));
        self.timers = [None; TIMER_COUNT];
        self.outputs.clear();
        self.push_event(SessionEvent::Failed(failure));
    }

    /// Handles one datagram from the peer. A transport payload is written to
    /// the front of `payload`. Errors mean the datagram was dropped and
    /// nothing changed.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        payload: &mut [u8; MAX_DATAGRAM],
        rng: &mut impl Entropy,
    ) -> Result<Received, Dropped> {
        let now = self.clock(now);
        let result = self.dispatch(now, datagram, payload, rng);
        if result.is_err() {
            self.stats.dropped = self.stats.dropped.saturating_add(1);
        }
        result
    }

    fn dispatch(
        &mut self,
        now: Instant,
        datagram: &[u8],
        payload: &mut [u8; MAX_DATAGRAM],
        rng: &mut impl Entropy,
    ) -> Result<Received, Dropped> {
        if matches!(self.state, State::Closed(_)) {
            return Err(Dropped::Closed);
        }
        match Frame::parse(datagram)? {
            Frame::Initiation(f) => self.on_duplicate_initiation(&f),
            Frame::Response(f) => self.on_response(now, datagram, &f, rng),
            Frame::HandshakeFinal(f) => self.on_final(&f),
            Frame::CookieReply(f) => self.on_cookie_reply(now, &f),
            Frame::Transport(f) => self.on_transport(datagram, &f, payload),
        }
    }

    fn on_duplicate_initiation(&mut self, f: &Initiation<'_>) -> Result<Received, Dropped> {
        let is_ours = self.role == Role::Responder
            && Some(f.sender_index) == self.remote_index
            && f.mode == self.mode
            && f.noise.get(..DH_LEN).is_some_and(|e| ct_eq(e, &self.initiation_ephemeral));
        if !is_ours {
            return Err(Dropped::Unexpected);
        }
        // Answered from cache, never with fresh work.
        self.push_output(Output::CachedHandshake);
        self.stats.handshake_retransmissions =
            self.stats.handshake_retransmissions.saturating_add(1);
        Ok(Received::Handshake)
    }

    fn on_response(
        &mut self,
        now: Instant,
        datagram: &[u8],
        f: &Response<'_>,
        rng: &mut impl Entropy,
    ) -> Result<Received, Dropped> {
        if f.receiver_index != self.local_index {
            return Err(Dropped::WrongIndex);
        }
        let State::AwaitingResponse { hs, expect, final_statement } = &self.state else {
            return Err(if self.role == Role::Initiator {
                Dropped::Duplicate
            } else {
                Dropped::Unexpected
            });
        };
        if f.mode != self.mode {
            return Err(Dropped::Unexpected);
        }
        let len = datagram.len();
        if !MacKey::mac1(&self.initiation_ephemeral).verify(&datagram[..len - MAC_LEN], &f.mac1) {
            return Err(Dropped::BadMac);
        }
        let mut next = hs.clone();
        let expect = *expect;
        let final_statement = *final_statement;
        let mut plain = [0u8; MAX_DATAGRAM];
        let n = next.read_message(f.noise, &mut plain)?;
        let remote_static = *next.remote_static().ok_or(Dropped::Unexpected)?;
        let pinned = match expect {
            Expect::Pinned { cert, hash } => Some((cert, hash)),
            _ => None,
        };
        let cert = match verify_statement(
            &plain[..n],
            &remote_static,
            pinned,
            &expect,
            |_| true,
            &mut Work::default(),
        )? {
            Ok(cert) => cert,
            Err(failure) => {
                self.fail(failure);
                return Ok(Received::Handshake);
            }
        };
        // Nothing above changed the session; from here on the response is
        // accepted and the session commits.
        match self.mode {
            Mode::Ik => {
                let transport = next.into_transport()?;
                self.state = State::Established {
                    keys: Keys { transport, replay: ReplayWindow::default() },
                };
                self.timers = [None; TIMER_COUNT];
                self.outputs.clear();
            }
            Mode::Xx => {
                let statement = final_statement.ok_or(Dropped::Unexpected)?;
                self.write_final(now, next, f.sender_index, &statement, rng)?;
            }
        }
        self.remote_index = Some(f.sender_index);
        self.peer = Some(cert);
        self.push_event(SessionEvent::Established);
        Ok(Received::Handshake)
    }

    /// XX initiator: writes message 3 (its certificate), caches it and
    /// retransmits it until the responder confirms.
    fn write_final(
        &mut self,
        now: Instant,
        mut hs: HandshakeState,
        remote_index: u32,
        statement: &[u8; CERT_LEN],
        rng: &mut impl Entropy,
    ) -> Result<(), Dropped> {
        let mut payload = [0u8; MAX_HANDSHAKE_PAYLOAD];
        let mut w = tlv::Writer::new(&mut payload);
        let _ = w.field(tlv::CERTIFICATE, statement);
        let plen = w.len();
        let mut noise_buf = [0u8; MAX_HANDSHAKE_FRAME];
        let n = hs
            .write_message(&payload[..plen], &mut noise_buf, rng)
            .map_err(|_| Dropped::Unexpected)?;
        let frame = Frame::HandshakeFinal(HandshakeFinal {
            receiver_index: remote_index,
            noise: &noise_buf[..n],
        });
        let transport = hs.into_transport()?;
        self.cache_frame(&frame).map_err(|_| Dropped::Unexpected)?;
        self.state =
            State::Confirming { keys: Keys { transport, replay: ReplayWindow::default() } };
        self.outputs.clear();
        self.push_output(Output::CachedHandshake);
        self.start_handshake_timers(now, rng);
        Ok(())
    }

    fn on_final(&mut self, f: &HandshakeFinal<'_>) -> Result<Received, Dropped> {
        if f.receiver_index != self.local_index
            || self.role != Role::Responder
            || self.mode != Mode::Xx
        {
            return Err(Dropped::WrongIndex);
        }
        let digest = noise::hash(&[f.noise]);
        let State::AwaitingFinal { hs } = &self.state else {
            if self.final_digest.is_some_and(|d| ct_eq(&d, &digest)) {
                // A duplicate final: the initiator has not heard from us
                // since. An empty transport datagram confirms the handshake.
                self.push_output(Output::Keepalive);
                return Ok(Received::Handshake);
            }
            return Err(Dropped::Duplicate);
        };
        let mut next = hs.clone();
        let mut plain = [0u8; MAX_DATAGRAM];
        let n = next.read_message(f.noise, &mut plain)?;
        let remote_static = *next.remote_static().ok_or(Dropped::Unexpected)?;
        let cert = match verify_statement(
            &plain[..n],
            &remote_static,
            None,
            &Expect::Anyone,
            |_| true,
            &mut Work::default(),
        )? {
            Ok(cert) => cert,
            Err(failure) => {
                self.fail(failure);
                return Ok(Received::Handshake);
            }
        };
        let transport = next.into_transport()?;
        self.peer = Some(cert);
        self.final_digest = Some(digest);
        self.state =
            State::Established { keys: Keys { transport, replay: ReplayWindow::default() } };
        self.timers = [None; TIMER_COUNT];
        self.push_event(SessionEvent::Established);
        Ok(Received::Handshake)
    }

    fn on_cookie_reply(
        &mut self,
        now: Instant,
        f: &wire::CookieReply,
    ) -> Result<Received, Dropped> {
        if f.receiver_index != self.local_index || f.mode != self.mode {
            return Err(Dropped::WrongIndex);
        }
        if !matches!(self.state, State::AwaitingResponse { .. }) {
            return Err(Dropped::Unexpected);
        }
        let len = self.cached.len();
        let mut mac1 = [0u8; MAC_LEN];
        mac1.copy_from_slice(&self.cached[len - 2 * MAC_LEN..len - MAC_LEN]);
        let cookie = MacKey::cookie(&self.cookie_key_material)
            .open_cookie(&f.nonce, &f.sealed_cookie, &mac1)
            .ok_or(Dropped::Decrypt)?;
        // Used from the next retransmission on, as WireGuard does.
        self.cookie = Some((cookie, now));
        Ok(Received::Handshake)
    }

    fn on_transport(
        &mut self,
        datagram: &[u8],
        f: &wire::Transport<'_>,
        payload: &mut [u8; MAX_DATAGRAM],
    ) -> Result<Received, Dropped> {
        if f.receiver_index != self.local_index {
            return Err(Dropped::WrongIndex);
        }
        let keys = self.state.keys_mut().ok_or(Dropped::Unexpected)?;
        if enabled(Defence::ReplayWindow) && !keys.replay.check(f.counter) {
            return Err(Dropped::Replayed);
        }
        let ad = &datagram[..TRANSPORT_HEADER_LEN];
        if !enabled(Defence::WindowAfterAead) {
            keys.replay.commit(f.counter);
        }
        let n = keys.transport.recv.decrypt_with_nonce(f.counter, ad, f.ciphertext, payload)?;
        keys.replay.commit(f.counter);
        self.stats.received = self.stats.received.saturating_add(1);
        if let State::Confirming { .. } = self.state {
            self.confirm();
        }
        Ok(if n == 0 { Received::Keepalive } else { Received::Payload(n) })
    }

    /// The peer proved it holds the transport keys.
    fn confirm(&mut self) {
        let state = core::mem::replace(&mut self.state, State::Closed(Closed::ByCaller));
        if let State::Confirming { keys } = state {
            self.state = State::Established { keys };
            self.timers = [None; TIMER_COUNT];
            self.outputs.retain(|o| *o != Output::CachedHandshake);
            if self.role == Role::Responder {
                self.push_event(SessionEvent::Established);
            }
        } else {
            self.state = state;
        }
    }

    /// Handles the deadline from [`poll_timeout`](Self::poll_timeout).
    /// Calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut impl Entropy) {
        let now = self.clock(now);
        if self.timers[Timer::GiveUp as usize].is_some_and(|t| t <= now) {
            let failure = match self.role {
                Role::Initiator => Failure::Unreachable,
                Role::Responder => Failure::Unconfirmed,
            };
            self.fail(failure);
            return;
        }
        if self.timers[Timer::Retransmit as usize].is_some_and(|t| t <= now) {
            if self
                .cookie
                .is_some_and(|(_, at)| now.saturating_duration_since(at) >= COOKIE_LIFETIME)
            {
                self.cookie = None;
            }
            if matches!(self.state, State::AwaitingResponse { .. }) {
                // mac2 follows the cookie: set while one is fresh, zeros after.
                let cookie = self.cookie.map(|(c, _)| c);
                seal_initiation_macs(&mut self.cached, &self.initiation_mac1_key, cookie.as_ref());
            }
            self.push_output(Output::CachedHandshake);
            self.stats.handshake_retransmissions =
                self.stats.handshake_retransmissions.saturating_add(1);
            self.schedule_retransmit(rng);
            // A caller that was late past several nominal attempts sends once.
            while self.timers[Timer::Retransmit as usize].is_some_and(|t| t <= now) {
                self.schedule_retransmit(rng);
            }
        }
    }

    /// Writes the next datagram to send into `buf` and returns its length.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8; MAX_DATAGRAM]) -> Option<usize> {
        let _ = self.clock(now);
        while let Some(o) = self.outputs.pop_front() {
            match o {
                Output::CachedHandshake => {
                    let n = self.cached.len();
                    buf[..n].copy_from_slice(&self.cached);
                    return Some(n);
                }
                Output::Keepalive => {
                    if let Ok(n) = self.seal(&[], buf) {
                        return Some(n);
                    }
                }
            }
        }
        None
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The next deadline at which [`handle_timeout`](Self::handle_timeout)
    /// must be called, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// Seals `payload` into a transport datagram in `buf`; returns its length.
    pub fn send(
        &mut self,
        now: Instant,
        payload: &[u8],
        buf: &mut [u8; MAX_DATAGRAM],
    ) -> Result<usize, SessionError> {
        let _ = self.clock(now);
        self.seal(payload, buf)
    }

    fn seal(
        &mut self,
        payload: &[u8],
        buf: &mut [u8; MAX_DATAGRAM],
    ) -> Result<usize, SessionError> {
        if payload.len() > MAX_TRANSPORT_PAYLOAD {
            return Err(SessionError::PayloadTooLarge);
        }
        if !self.can_send() {
            return Err(SessionError::NotEstablished);
        }
        let remote_index = self.remote_index.ok_or(SessionError::NotEstablished)?;
        let keys = self.state.keys_mut().ok_or(SessionError::NotEstablished)?;
        let counter = keys.transport.send.nonce();
        let (header, body) = buf.split_at_mut(TRANSPORT_HEADER_LEN);
        header[..4].copy_from_slice(&[wire::VERSION, wire::FrameType::Transport as u8, 0, 0]);
        header[4..8].copy_from_slice(&remote_index.to_be_bytes());
        header[8..16].copy_from_slice(&counter.to_be_bytes());
        let n = keys.transport.send.encrypt_with_ad(header, payload, body)?;
        self.stats.sent = self.stats.sent.saturating_add(1);
        Ok(TRANSPORT_HEADER_LEN + n)
    }

    /// Ends the session: no more datagrams, timers or events. Keys are
    /// zeroized as they are dropped.
    pub fn close(&mut self) {
        self.state = State::Closed(Closed::ByCaller);
        self.timers = [None; TIMER_COUNT];
        self.outputs.clear();
    }

    /// The peer's verified certificate, once its statement was checked.
    #[must_use]
    pub fn peer(&self) -> Option<&Certificate> {
        self.peer.as_ref()
    }

    /// Initiator: the ephemeral public key of its initiation (all zeros
    /// for a responder). An agent drops an initiation carrying one of its
    /// own (a reflection).
    #[must_use]
    pub fn initiation_ephemeral(&self) -> Option<&[u8; DH_LEN]> {
        (self.role == Role::Initiator).then_some(&self.initiation_ephemeral)
    }

    /// Whether transport payloads can be sent.
    #[must_use]
    pub fn can_send(&self) -> bool {
        match self.state {
            State::Established { .. } => true,
            // An XX initiator's final message gives its payloads full
            // security (Noise levels 2/5) before the responder confirms; an IK
            // responder waits for the initiator's first transport datagram.
            State::Confirming { .. } => self.role == Role::Initiator,
            _ => false,
        }
    }

    /// Whether the handshake is complete and confirmed.
    #[must_use]
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established { .. })
    }

    /// Why the handshake failed, if it did.
    #[must_use]
    pub fn failure(&self) -> Option<Failure> {
        match self.state {
            State::Closed(Closed::Failed(f)) => Some(f),
            _ => None,
        }
    }

    /// Whether the session is over.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// This side's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The handshake pattern.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The index the peer addresses this session by.
    #[must_use]
    pub fn local_index(&self) -> u32 {
        self.local_index
    }

    /// The index this side addresses the peer's session by, once known.
    #[must_use]
    pub fn remote_index(&self) -> Option<u32> {
        self.remote_index
    }

    /// The Noise handshake hash, once transport keys exist.
    #[must_use]
    pub fn handshake_hash(&self) -> Option<&[u8; 32]> {
        self.state.keys().map(|k| k.transport.handshake_hash())
    }

    /// Diagnostic counters.
    #[must_use]
    pub fn stats(&self) -> SessionStats {
        self.stats
    }
}

impl core::fmt::Debug for Session {
    /// Shows what the session is doing; never keys, cookies or cached bytes.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = match &self.state {
            State::AwaitingResponse { .. } => "awaiting-response",
            State::AwaitingFinal { .. } => "awaiting-final",
            State::Confirming { .. } => "confirming",
            State::Established { .. } => "established",
            State::Closed(Closed::ByCaller) => "closed",
            State::Closed(Closed::Failed(_)) => "failed",
        };
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("mode", &self.mode)
            .field("state", &state)
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("peer", &self.peer)
            .field("next_timeout", &self.poll_timeout())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// Reads an initiation addressed to `local`. Checks run cheapest first:
    /// parse, mode, mac1, then the Diffie-Hellman work of the Noise message,
    /// then (IK) the initiator's identity statement against `directory`.
    /// Nothing is sent and no state is kept; on success the caller decides.
    pub fn read(
        local: &LocalIdentity,
        directory: &(impl PeerDirectory + ?Sized),
        datagram: &[u8],
    ) -> Result<Incoming, Dropped> {
        Self::read_admitting(local, directory, datagram, |_| true)
    }

    /// Whether the mac1 of `initiation` (parsed from `datagram`) holds for
    /// `local`: one HMAC, the first check after the parse and before any
    /// Diffie-Hellman (wire.md §4, §7.1). [`read`](Self::read) checks it
    /// too; a caller applying its own defences first checks it here.
    #[must_use]
    pub fn mac1_ok(local: &LocalIdentity, initiation: &Initiation<'_>, datagram: &[u8]) -> bool {
        let mac_material = match initiation.mode {
            Mode::Ik => local.static_keys().public(),
            Mode::Xx => &XX_MAC1_KEY_MATERIAL,
        };
        let Some(covered) = datagram.len().checked_sub(2 * MAC_LEN).and_then(|n| datagram.get(..n))
        else {
            return false;
        };
        MacKey::mac1(mac_material).verify(covered, &initiation.mac1)
    }

    /// [`read`](Self::read), with the caller's policy applied as soon as the
    /// initiator's claimed identity is known (IK) and before its certificate
    /// signature is checked: an identity `admit` refuses is dropped with
    /// [`Dropped::NotAdmitted`] at the cost of the Diffie-Hellman work only.
    /// (A certificate byte-equal to the one pinned for the key needs no
    /// signature check and is admitted or refused by the caller afterwards.)
    pub fn read_admitting(
        local: &LocalIdentity,
        directory: &(impl PeerDirectory + ?Sized),
        datagram: &[u8],
        admit: impl FnOnce(&IdentityKey) -> bool,
    ) -> Result<Incoming, Dropped> {
        let Frame::Initiation(f) = Frame::parse(datagram)? else {
            return Err(Dropped::Unexpected);
        };
        if enabled(Defence::Mac1) && !Self::mac1_ok(local, &f, datagram) {
            return Err(Dropped::BadMac);
        }
        Self::read_after_mac1(local, directory, datagram, &f, admit)
    }

    /// [`read_admitting`](Self::read_admitting) for an initiation `f`
    /// (parsed from `datagram`) whose mac1 the caller has checked with
    /// [`mac1_ok`](Self::mac1_ok): the agent checks it first, before its
    /// own defences, and does not pay for it twice.
    pub(crate) fn read_after_mac1(
        local: &LocalIdentity,
        directory: &(impl PeerDirectory + ?Sized),
        datagram: &[u8],
        f: &Initiation<'_>,
        admit: impl FnOnce(&IdentityKey) -> bool,
    ) -> Result<Incoming, Dropped> {
        let mut work = Work::default();
        let read = Self::read_counted(local, directory, datagram, f, admit, &mut work);
        if read.is_err() && f.mode == Mode::Ik {
            pad_refusal(local, work);
        }
        read
    }

    fn read_counted(
        local: &LocalIdentity,
        directory: &(impl PeerDirectory + ?Sized),
        datagram: &[u8],
        f: &Initiation<'_>,
        admit: impl FnOnce(&IdentityKey) -> bool,
        work: &mut Work,
    ) -> Result<Incoming, Dropped> {
        let len = datagram.len();
        let mut hs = HandshakeState::new(
            pattern(f.mode),
            Role::Responder,
            &prologue(f.mode),
            Some(local.static_keys().clone()),
            None,
            None,
        )
        .map_err(|_| Dropped::Unexpected)?;
        let mut plain = [0u8; MAX_DATAGRAM];
        let n = hs.read_message_counted(f.noise, &mut plain, &DirectoryDh(directory), work)?;
        let initiation_ephemeral = *hs.remote_ephemeral().ok_or(Dropped::Unexpected)?;
        let mut pinned_by_initiator = None;
        let peer = match f.mode {
            Mode::Ik => {
                pinned_by_initiator = tlv::fields(&plain[..n])
                    .filter_map(Result::ok)
                    .find(|(ty, _)| *ty == tlv::PEER_CERTIFICATE_HASH)
                    .and_then(|(_, v)| <[u8; 32]>::try_from(v).ok());
                let rs = *hs.remote_static().ok_or(Dropped::Unexpected)?;
                let pinned = directory.by_static_key(&rs).map(|p| (p.cert, p.cert_hash));
                match verify_statement(&plain[..n], &rs, pinned, &Expect::Anyone, admit, work)? {
                    Ok(cert) => Some(cert),
                    Err(_) => return Err(Dropped::BadPayload),
                }
            }
            Mode::Xx => {
                // Cleartext message 1 carries padding only.
                if plain[..n].iter().any(|&b| b != 0) {
                    return Err(Dropped::BadPayload);
                }
                None
            }
        };
        Ok(Incoming {
            hs,
            mode: f.mode,
            remote_index: f.sender_index,
            peer,
            initiation_ephemeral,
            trigger_len: len,
            pinned_by_initiator,
            work: *work,
        })
    }

    /// Drops the initiation without a word, after the same work as every
    /// other silent refusal of its kind ([`IK_REFUSAL_WORK`]): a caller
    /// that turns an initiation away after reading it (its policy, a
    /// revoked certificate) calls this rather than letting it go.
    pub fn refuse(self, local: &LocalIdentity) {
        if self.mode == Mode::Ik {
            pad_refusal(local, self.work);
        }
    }

    /// The handshake pattern.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// IK: the initiator's verified certificate. XX: `None` (the initiator
    /// states its identity in message 3).
    #[must_use]
    pub fn peer(&self) -> Option<&Certificate> {
        self.peer.as_ref()
    }

    /// The initiator's ephemeral key: a retransmitted initiation carries the
    /// same one, so a responder recognises duplicates by it.
    #[must_use]
    pub fn initiation_ephemeral(&self) -> &[u8; DH_LEN] {
        &self.initiation_ephemeral
    }

    /// The initiator's session index.
    #[must_use]
    pub fn remote_index(&self) -> u32 {
        self.remote_index
    }

    /// Answers the initiation: writes the response (this side's identity
    /// statement: the certificate hash in IK, whose initiator pinned it; the
    /// full certificate in XX), caches it for duplicates and returns the
    /// session, with the response ready in `poll_transmit`.
    ///
    /// An error means nothing was sent and the initiation should be dropped:
    /// `Noise(NonContributory)` is an XX initiator's low-order ephemeral key
    /// (XX message 1 does no Diffie-Hellman, so it shows only here).
    pub fn accept(
        self,
        local: &LocalIdentity,
        local_index: u32,
        now: Instant,
        rng: &mut impl Entropy,
    ) -> Result<Session, SessionError> {
        let Incoming {
            mut hs,
            mode,
            remote_index,
            peer,
            initiation_ephemeral,
            trigger_len,
            pinned_by_initiator,
            work,
        } = self;
        let mut payload = [0u8; MAX_HANDSHAKE_PAYLOAD];
        let mut w = tlv::Writer::new(&mut payload);
        // The hash suffices only where the initiator pinned this very
        // certificate; otherwise it learns the current one in-band.
        let pinned_current =
            pinned_by_initiator.is_some_and(|h| ct_eq(&h, &local.certificate_hash().0));
        let form = match mode {
            Mode::Ik if pinned_current => StatementForm::Hash,
            _ => StatementForm::Certificate,
        };
        write_statement(local, form, &mut w);
        let plen = w.len();
        // Refused before any Diffie-Hellman of the answer, as silently and
        // at the same cost as every other refusal.
        if enabled(Defence::ResponseSize)
            && wire::RESPONSE_OVERHEAD + hs.next_message_len(plen) > trigger_len
        {
            if mode == Mode::Ik {
                pad_refusal(local, work);
            }
            return Err(SessionError::ResponseLargerThanTrigger);
        }
        let mut noise_buf = [0u8; MAX_HANDSHAKE_FRAME];
        let n = hs.write_message(&payload[..plen], &mut noise_buf, rng)?;
        let frame = Frame::Response(Response {
            mode,
            sender_index: local_index,
            receiver_index: remote_index,
            noise: &noise_buf[..n],
            mac1: [0; MAC_LEN],
        });
        let state = match mode {
            Mode::Ik => {
                let transport = hs.into_transport()?;
                State::Confirming { keys: Keys { transport, replay: ReplayWindow::default() } }
            }
            Mode::Xx => State::AwaitingFinal { hs },
        };
        let mut s = Session::new(Role::Responder, mode, local_index, state, now);
        s.remote_index = Some(remote_index);
        s.peer = peer;
        s.initiation_ephemeral = initiation_ephemeral;
        s.cache_frame(&frame)?;
        let len = s.cached.len();
        let mac1 = MacKey::mac1(&initiation_ephemeral).mac(&s.cached[..len - MAC_LEN]);
        s.cached[len - MAC_LEN..].copy_from_slice(&mac1);
        s.push_output(Output::CachedHandshake);
        // No retransmission timer: only the give-up deadline.
        s.timers[Timer::GiveUp as usize] = Some(now + HANDSHAKE_TIMEOUT);
        Ok(s)
    }
}
