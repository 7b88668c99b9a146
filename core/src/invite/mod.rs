//! Invitations: one invitation's whole life, both roles, over one secure
//! session.
//!
//! An [`Invitation`] owns the [`Session`] it travels in. The inviter builds
//! it with [`Invitation::invite`] from a freshly initiated session and an
//! [`Offer`]; the invitee with [`Invitation::invitee`] from the session
//! [`Incoming::accept`](crate::session::Incoming::accept) returned. Once the
//! handshake is confirmed, the inviter sends the Invite in fragments; the
//! invitee reassembles it, screens it (is the application registered? does
//! policy accept this peer?), presents it and rings; the user answers; the
//! Final is retransmitted until the inviter acknowledges it. A Cancel can
//! come at any point. Each side ends with exactly one [`Outcome`], and the
//! two agree whenever they could communicate. `spec/invitation.md` is the
//! normative text; [`table`] holds every transition.
//!
//! # The contract
//! Inputs, commands and outputs as for a [`Session`]:
//! - **Inputs**: [`handle_datagram`](Invitation::handle_datagram) for every
//!   datagram of this invitation's session,
//!   [`handle_timeout`](Invitation::handle_timeout) when the deadline from
//!   [`poll_timeout`](Invitation::poll_timeout) has come.
//! - **Commands**: [`respond`](Invitation::respond) (invitee) and
//!   [`cancel`](Invitation::cancel) (inviter). A command that is not allowed
//!   returns an error and changes nothing.
//! - **Outputs**, drained after every input or command in this order:
//!   [`poll_transmit`](Invitation::poll_transmit) until `None`, then
//!   [`poll_event`](Invitation::poll_event) until `None`, then
//!   [`poll_timeout`](Invitation::poll_timeout).
//! - **Time** only moves forward: an earlier `now` counts as the latest one
//!   seen. After `handle_timeout(now)`, `poll_timeout()` is `None` or later
//!   than `now`.
//! - **Buffers**: bodies live in a [`BufferPool`] the caller owns and passes
//!   to the calls that may need it; pass the same pool every time.
//! - Nothing received can make it panic, allocate or grow: malformed,
//!   misdirected and unexpected datagrams are [`Dropped`] and counted.
//!
//! # Outcomes and agreement
//! The inviter decides its outcome from the invitee's Final, from its own
//! cancel, or by giving up (Unreachable). The invitee's outcome is settled
//! by the inviter: its Final counts once the inviter acknowledges it, and a
//! Cancel overrides a Final the inviter has not acknowledged — so a Cancel
//! that crosses an Accept wins on both sides, and an invitee never ends
//! Accepted unless its inviter did. Only the invitee declares Expired.

pub mod message;
pub mod pool;
pub mod table;

use heapless::{Deque, String};

use crate::identity::Certificate;
use crate::mutation::{Defence, enabled};
use crate::session::{self, Failure, Received, Session, SessionEvent};
use crate::wire::{MAX_DATAGRAM, MAX_TRANSPORT_PAYLOAD};
use crate::{Duration, Entropy, Instant};

pub use message::{
    AppId, CancelReason, FRAGMENT_CHUNK, FinalCode, InviteId, MAX_APP_DATA, MAX_BODY,
    MAX_FRAGMENTS, MAX_MESSAGE_BYTES, MAX_MESSAGE_CHARS, MAX_REASON_BYTES, Message, MessageError,
};
use message::{Cancel, Final, InviteFragment};
pub use pool::{BufferId, BufferPool, DataPool};
use table::{
    InviteeAction, InviteeEvent, InviteeState, InviterAction, InviterEvent, InviterState, Verdict,
};

/// Expiry when the inviter does not choose one: Windows' five minutes.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(300);
/// The longest expiry an invitee accepts unless configured otherwise
/// (Windows' five minutes); a longer one is clamped to it.
pub const DEFAULT_MAX_EXPIRY: Duration = Duration::from_secs(300);
/// The longest expiry the wire can carry (`u32` milliseconds, ~49 days).
pub const MAX_EXPIRY_ON_WIRE: Duration = Duration::from_millis(u32::MAX as u64);
/// First retransmission delay of a fragment, Final or Cancel: SIP's T1. The
/// session is confirmed, so the path is known to work; half a second repairs
/// a loss quickly without flooding a slow path.
pub const RETRANSMIT_INITIAL: Duration = Duration::from_millis(500);
/// Retransmission delays double up to this: SIP's T2.
pub const RETRANSMIT_MAX: Duration = Duration::from_secs(4);
/// The invitee acknowledges fragments at most once per this delay, so a
/// burst of sixteen fragments costs one acknowledgement: QUIC's default
/// `max_ack_delay`.
pub const ACK_DELAY: Duration = Duration::from_millis(25);
/// Ringing is repeated this often while ringing: it shows the inviter the
/// invitee is alive and keeps NAT bindings open (below the 30 s some NATs
/// keep an idle UDP binding; WireGuard's recommended keepalive is 25 s).
pub const RINGING_INTERVAL: Duration = Duration::from_secs(25);
/// An inviter whose Invite is not yet wholly acknowledged gives up (outcome
/// Unreachable) after this long without hearing from the invitee: SIP's
/// Timer B (64 × T1), the same as the handshake's give-up.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(32);
/// An inviter whose invitee is ringing and has been silent this long — one
/// Ringing late, with five seconds of slack — probes it (an empty transport
/// datagram, which a ringing invitee answers with Ringing), then again 1, 2
/// and 4 s later and every [`RETRANSMIT_MAX`] after. Lost Ringings then cost
/// a round trip, not the invitation.
pub const LIVENESS_PROBE_AFTER: Duration = Duration::from_secs(30);
/// An inviter whose invitee is ringing gives up after this long without
/// hearing from it: two Ringing intervals and ten seconds of slack, in which
/// it probes nine times ([`LIVENESS_PROBE_AFTER`]).
pub const LIVENESS_TIMEOUT: Duration = Duration::from_secs(60);
/// The inviter waits this long past its own expiry for the invitee's
/// Final(Expired) before it gives up (Unreachable). The invitee's clock
/// starts one one-way delay later, and its Final may need retransmissions:
/// 16 s covers the first six transmissions (0, 0.5, 1.5, 3.5, 7.5, 11.5 s)
/// over a path with up to two seconds of one-way delay.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(16);
/// An invitee gives up a Final the inviter does not acknowledge after this
/// long (outcome Unreachable): SIP's Timer H (64 × T1).
pub const FINAL_TIMEOUT: Duration = Duration::from_secs(32);
/// An inviter stops retransmitting an unconfirmed Cancel after this long:
/// SIP's Timer F (64 × T1).
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(32);
/// An invitee whose session is up but which receives no Invite gives up
/// after this long (the inviter would have retransmitted many times).
pub const INVITE_WAIT_TIMEOUT: Duration = Duration::from_secs(32);
/// An invitee gives up a reassembly that makes no progress for this long,
/// and frees its buffer.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(32);
/// After its outcome an invitation stays this long to answer duplicates,
/// then frees everything. The peer retransmits for at most 32 s
/// ([`FINAL_TIMEOUT`], [`CANCEL_TIMEOUT`]) after its first send, so 32 s
/// after our first answer covers all of it: SIP's Timer J (64 × T1).
pub const LINGER: Duration = Duration::from_secs(32);
/// What an invitee with no free body buffer asks the inviter to wait before
/// trying again.
pub const POOL_BUSY_RETRY_AFTER: Duration = Duration::from_secs(10);

/// What the inviter offers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Offer<'a> {
    /// Names the invitation (see [`InviteId::random`]); the invitee dedupes
    /// by it.
    pub id: InviteId,
    /// The application to start.
    pub app_id: AppId,
    /// Shown to the user: at most [`MAX_MESSAGE_CHARS`] characters and
    /// [`MAX_MESSAGE_BYTES`] bytes.
    pub message: &'a str,
    /// Opaque application data, at most [`MAX_APP_DATA`] bytes.
    pub data: &'a [u8],
    /// How long the invitee may take to answer ([`DEFAULT_EXPIRY`] unless
    /// there is a reason), counted from [`Invitation::invite`].
    pub expires_in: Duration,
}

impl core::fmt::Debug for Offer<'_> {
    /// Lengths only: the message and data are the users'.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Offer")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("message_len", &self.message.len())
            .field("data_len", &self.data.len())
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// An invitation body taken out of its invitation
/// ([`Invitation::take_body`]): the message and application data, in a
/// pool buffer the holder must release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body {
    buffer: Option<BufferId>,
    message_len: u16,
    data_len: u16,
}

impl Body {
    /// The message, from `pool` (the pool the invitation used).
    #[must_use]
    pub fn message<'p>(&self, pool: &'p (impl BufferPool + ?Sized)) -> Option<&'p str> {
        let bytes = self.bytes(pool)?.get(..usize::from(self.message_len))?;
        core::str::from_utf8(bytes).ok()
    }

    /// The application data, from `pool`.
    #[must_use]
    pub fn data<'p>(&self, pool: &'p (impl BufferPool + ?Sized)) -> Option<&'p [u8]> {
        let end = usize::from(self.message_len) + usize::from(self.data_len);
        self.bytes(pool)?.get(usize::from(self.message_len)..end)
    }

    fn bytes<'p>(&self, pool: &'p (impl BufferPool + ?Sized)) -> Option<&'p [u8]> {
        match self.buffer {
            Some(b) => pool.get(b).map(|b| &b[..]),
            None => Some(&[]),
        }
    }

    /// Gives the buffer back to `pool`.
    pub fn release(self, pool: &mut (impl BufferPool + ?Sized)) {
        if let Some(b) = self.buffer {
            pool.release(b);
        }
    }
}

/// The invitee's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InviteeConfig {
    /// Longer expiries are clamped to this.
    pub max_expiry: Duration,
}

impl InviteeConfig {
    /// The defaults, with `max_expiry`.
    #[must_use]
    pub const fn with_max_expiry(max_expiry: Duration) -> Self {
        InviteeConfig { max_expiry }
    }
}

impl Default for InviteeConfig {
    fn default() -> Self {
        InviteeConfig::with_max_expiry(DEFAULT_MAX_EXPIRY)
    }
}

/// The invitee's verdict on an arriving invitation, before it is presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Present it to the user.
    Present,
    /// The application is not registered here.
    NotRegistered,
    /// Policy does not accept invitations from this peer (for this
    /// application).
    NotAccepted,
    /// Too busy now; try again after this long.
    Busy {
        /// The wait the inviter is asked for.
        retry_after: Duration,
    },
    /// An invitation with this id was already presented: ids name one
    /// invitation each, so it is refused as invalid and never surfaces
    /// twice.
    Duplicate,
}

/// Decides whether an arriving invitation is presented. The agent screens
/// by its application registrations, trust policy and the ids it has seen;
/// a closure of the peer and application does too.
///
/// An invitation is asked about twice: [`screen`](Self::screen) when its
/// first fragment arrives (a refusal then costs no buffer and no waiting
/// for the rest), and [`confirm`](Self::confirm) when its body is complete,
/// just before it is presented, so that a registration, trust or policy
/// changed while the fragments arrived applies to it.
pub trait Screen {
    /// The verdict for invitation `id` to `app` from `peer`, on its first
    /// fragment.
    fn screen(&mut self, peer: &Certificate, app: AppId, id: InviteId) -> Admission;

    /// The verdict for invitation `id`, which `screen` admitted, now that
    /// it is complete. It must not count `id` as seen again: `screen` did.
    fn confirm(&mut self, peer: &Certificate, app: AppId, id: InviteId) -> Admission;
}

impl<F: FnMut(&Certificate, AppId) -> Admission> Screen for F {
    fn screen(&mut self, peer: &Certificate, app: AppId, _id: InviteId) -> Admission {
        self(peer, app)
    }

    fn confirm(&mut self, peer: &Certificate, app: AppId, _id: InviteId) -> Admission {
        self(peer, app)
    }
}

impl Admission {
    /// The Final code and wait that refuse an invitation with this verdict,
    /// or `None` to present it.
    fn refusal(self) -> Option<(FinalCode, Duration)> {
        match self {
            Admission::Present => None,
            Admission::NotRegistered => Some((FinalCode::NotRegistered, Duration::ZERO)),
            Admission::NotAccepted => Some((FinalCode::NotAccepted, Duration::ZERO)),
            Admission::Duplicate => Some((FinalCode::Invalid, Duration::ZERO)),
            Admission::Busy { retry_after } => {
                Some((FinalCode::Busy, retry_after.min(MAX_EXPIRY_ON_WIRE)))
            }
        }
    }
}

/// The user's answer to a presented invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// Join.
    Accept,
    /// Do not join.
    Decline,
    /// Not now; try again after this long.
    Busy {
        /// The wait the inviter is asked for.
        retry_after: Duration,
    },
}

/// Why an invitation failed, when no other outcome says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// The peer proved an identity other than the one called.
    IdentityMismatch,
    /// The invitation broke the protocol (inconsistent fragments, a message
    /// that is not valid text, an id already used); the invitee refused it
    /// as invalid.
    InvalidInvitation,
    /// The peer presented a certificate its identity revoked (or one older
    /// than the one pinned): the invitation was withdrawn before anything
    /// was revealed.
    RevokedCertificate,
}

/// How an invitation ended. Each side has exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The invitee accepted (and, on the invitee, the inviter acknowledged).
    Accepted,
    /// The invitee declined.
    Declined,
    /// The invitee was busy.
    Busy {
        /// The wait the invitee asked for.
        retry_after: Duration,
    },
    /// The invitee did not answer in time (only the invitee declares it).
    Expired,
    /// The inviter withdrew the invitation.
    Cancelled(CancelReason),
    /// The peer could not be reached, or stopped answering.
    Unreachable,
    /// The application is not registered at the invitee.
    NotRegistered,
    /// The invitee's policy does not accept this inviter.
    NotAccepted,
    /// Something else went wrong.
    Failed(FailureCause),
}

/// What an invitation reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvitationEvent {
    /// Inviter: the invitee holds the whole invitation and is ringing.
    Ringing,
    /// Invitee: an invitation is presented. Read it with
    /// [`Invitation::app_id`], [`Invitation::message`] and
    /// [`Invitation::data`], answer with [`Invitation::respond`].
    Invited,
    /// The invitation ended. Exactly once per invitation.
    Ended(Outcome),
}

/// What a [`cancel`](Invitation::cancel) did (Windows' three cases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelEffect {
    /// The Invite was never sent: abandoned silently, the invitee never
    /// sees it.
    Abandoned,
    /// The invitee is told; it can no longer answer. The outcome is
    /// Cancelled.
    Withdrawing,
    /// The outcome was already decided (answered, cancelled or given up):
    /// nothing changes.
    NoEffect,
}

/// A command that could not be carried out; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InviteError {
    /// The message is not valid or is too long.
    BadMessage(MessageError),
    /// The application data is longer than [`MAX_APP_DATA`].
    DataTooLarge,
    /// A duration does not fit the wire ([`MAX_EXPIRY_ON_WIRE`]).
    DurationTooLong,
    /// A reason text is longer than [`MAX_REASON_BYTES`].
    ReasonTooLong,
    /// No body buffer is free in the pool.
    PoolFull,
    /// The session has the wrong role for this call (an inviter needs an
    /// initiator session, an invitee a responder session), or the command
    /// belongs to the other role.
    WrongRole,
    /// The session has already failed or been closed.
    SessionClosed,
    /// The session's handshake is already past its first message: an
    /// invitation needs a freshly initiated session.
    SessionStarted,
    /// Invitee: nothing is presented yet.
    NotPresented,
    /// Invitee: already answered.
    AlreadyAnswered,
    /// The invitation has ended.
    Ended,
    /// [`CancelReason::GaveUp`] is the inviter's own timeout, not a caller's
    /// reason.
    ReservedReason,
}

impl core::fmt::Display for InviteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InviteError::BadMessage(e) => write!(f, "invitation message refused: {e}"),
            InviteError::DataTooLarge => f.write_str("application data too large"),
            InviteError::DurationTooLong => f.write_str("duration too long for the wire"),
            InviteError::ReasonTooLong => f.write_str("reason text too long"),
            InviteError::PoolFull => f.write_str("no body buffer free"),
            InviteError::WrongRole => f.write_str("wrong role for this call"),
            InviteError::SessionClosed => f.write_str("the session is closed"),
            InviteError::SessionStarted => f.write_str("the session's handshake has progressed"),
            InviteError::NotPresented => f.write_str("no invitation presented yet"),
            InviteError::AlreadyAnswered => f.write_str("already answered"),
            InviteError::Ended => f.write_str("the invitation has ended"),
            InviteError::ReservedReason => f.write_str("reserved cancel reason"),
        }
    }
}

impl core::error::Error for InviteError {}

/// Why a datagram was dropped. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dropped {
    /// The session dropped it.
    Session(session::Dropped),
    /// An authentic payload that is not a valid invitation message.
    Malformed(MessageError),
    /// A message for another invitation id.
    WrongInvite,
    /// A message only the other role sends (e.g. reflected).
    WrongDirection,
    /// A message the state machine does not expect from an honest peer
    /// now (an `Unexpected` row), or that contradicts what it said before.
    Unexpected,
    /// The invitation is closed.
    Closed,
}

/// Which side of the invitation this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    /// Sends the Invite.
    Inviter,
    /// Receives it.
    Invitee,
}

/// The state of either role, as declared in [`table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// An inviter's state.
    Inviter(InviterState),
    /// An invitee's state.
    Invitee(InviteeState),
}

/// Diagnostic counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvitationStats {
    /// Invitation messages sealed and sent.
    pub messages_sent: u32,
    /// Of those, sent again: fragments, Finals, Cancels and Ringings after
    /// their first transmission (on a timer or in answer to a duplicate),
    /// and liveness probes.
    pub retransmissions: u32,
    /// Invitation messages received and opened.
    pub messages_received: u32,
    /// Datagrams dropped.
    pub dropped: u32,
    /// Inputs answered by an `Ignore` row (stale, duplicate).
    pub ignored: u32,
}

/// The invitation's timers, indexing `Invitation::timers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Retransmit = 0,
    GiveUp = 1,
    Ack = 2,
    Ringing = 3,
    Expiry = 4,
    Linger = 5,
}

/// Every timer, in the order timers due at the same instant fire: those
/// that end a state first, so nothing is sent that the state's end makes
/// pointless (a Ringing at the instant of expiry, a retransmission at the
/// instant of giving up). This order also guarantees progress where a
/// deadline cannot lie in the future: at `Instant::MAX` every re-armed
/// timer is due again at once, and the ending ones must win.
const TIMERS: [Timer; 6] =
    [Timer::Linger, Timer::GiveUp, Timer::Expiry, Timer::Retransmit, Timer::Ack, Timer::Ringing];

/// Messages waiting for `poll_transmit`, as bits; fragments have their own
/// bitmap.
mod out {
    pub(super) const FINAL: u8 = 1 << 0;
    pub(super) const ACK: u8 = 1 << 1;
    pub(super) const CANCEL: u8 = 1 << 2;
    pub(super) const RINGING: u8 = 1 << 3;
    pub(super) const SACK: u8 = 1 << 4;
    /// An empty transport datagram (liveness probe).
    pub(super) const PROBE: u8 = 1 << 5;
    /// In the order `poll_transmit` sends them.
    pub(super) const ORDER: [u8; 6] = [FINAL, ACK, CANCEL, RINGING, SACK, PROBE];
}

/// What came with an event: the parsed message or the command's arguments.
#[derive(Clone, Copy, Debug, Default)]
struct Input<'a> {
    fragment: Option<InviteFragment<'a>>,
    sack: u16,
    /// A Final received (inviter) or to send (invitee): code, retry-after,
    /// reason.
    final_: Option<(FinalCode, Duration, &'a str)>,
    /// A Cancel received (invitee) or requested (inviter).
    cancel: Option<(CancelReason, &'a str)>,
    /// The id of the message, for adoption.
    id: Option<InviteId>,
}

/// One invitation, either role. See the [module documentation](self).
///
/// Not `Clone`: it holds live transport keys, and two copies sending would
/// reuse nonces.
pub struct Invitation {
    session: Session,
    state: State,
    id: InviteId,
    app_id: AppId,
    message_len: u16,
    data_len: u16,
    buffer: Option<BufferId>,
    /// Inviter: fragments the invitee holds. Invitee: fragments held.
    held: u16,
    /// Inviter: fragments waiting to be sent (again).
    pending_fragments: u16,
    /// Inviter: from `invite`; invitee: from the first fragment, clamped.
    expires_at: Instant,
    max_expiry: Duration,
    /// The Final in play: received (inviter) or sent (invitee).
    final_code: FinalCode,
    retry_after: Duration,
    /// The Cancel in play: sent (inviter) or received (invitee).
    cancel_reason: CancelReason,
    /// Text of the Final or Cancel this side sends.
    own_text: String<MAX_REASON_BYTES>,
    /// Text of the Final or Cancel the peer sent.
    peer_text: String<MAX_REASON_BYTES>,
    outcome: Option<Outcome>,
    /// Invitee: the invitation was presented (its body is the user's now).
    presented: bool,
    /// Invitee: the body was handed over by [`Invitation::take_body`].
    body_taken: bool,
    session_failure: Option<Failure>,
    last_heard: Instant,
    retransmit_delay: Duration,
    timers: [Option<Instant>; TIMERS.len()],
    outputs: u8,
    events: Deque<InvitationEvent, 4>,
    last_now: Instant,
    stats: InvitationStats,
}

impl InviteId {
    /// A fresh id from `rng`: 128 random bits never collide in practice, so
    /// the invitee can dedupe by id alone.
    pub fn random(rng: &mut impl Entropy) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        InviteId(id)
    }
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn all_fragments(body_len: usize) -> u16 {
    let count = message::fragment_count(body_len);
    if count >= 16 { u16::MAX } else { (1u16 << count) - 1 }
}

fn copy_text(text: &str) -> Result<String<MAX_REASON_BYTES>, InviteError> {
    let mut s = String::new();
    s.push_str(text).map_err(|_| InviteError::ReasonTooLong)?;
    Ok(s)
}

fn outcome_of(code: FinalCode, retry_after: Duration) -> Outcome {
    match code {
        FinalCode::Accepted => Outcome::Accepted,
        FinalCode::Declined => Outcome::Declined,
        FinalCode::Busy => Outcome::Busy { retry_after },
        FinalCode::Expired => Outcome::Expired,
        FinalCode::Cancelled => Outcome::Cancelled(CancelReason::ByUser),
        FinalCode::NotRegistered => Outcome::NotRegistered,
        FinalCode::NotAccepted => Outcome::NotAccepted,
        FinalCode::Invalid => Outcome::Failed(FailureCause::InvalidInvitation),
    }
}

impl Invitation {
    fn new(session: Session, state: State, now: Instant) -> Self {
        Invitation {
            session,
            state,
            id: InviteId([0; 16]),
            app_id: AppId([0; 16]),
            message_len: 0,
            data_len: 0,
            buffer: None,
            held: 0,
            pending_fragments: 0,
            expires_at: now,
            max_expiry: DEFAULT_MAX_EXPIRY,
            final_code: FinalCode::Declined,
            retry_after: Duration::ZERO,
            cancel_reason: CancelReason::ByUser,
            own_text: String::new(),
            peer_text: String::new(),
            outcome: None,
            presented: false,
            body_taken: false,
            session_failure: None,
            last_heard: now,
            retransmit_delay: RETRANSMIT_INITIAL,
            timers: [None; TIMERS.len()],
            outputs: 0,
            events: Deque::new(),
            last_now: now,
            stats: InvitationStats::default(),
        }
    }

    /// Starts an invitation on `session`, a freshly initiated session
    /// ([`Session::initiate_contact`] or [`Session::initiate_endpoint`]):
    /// the Invite goes out as soon as its handshake completes. The body is
    /// copied into a buffer taken from `pool` (none for an empty body).
    pub fn invite(
        session: Session,
        offer: &Offer<'_>,
        now: Instant,
        pool: &mut (impl BufferPool + ?Sized),
    ) -> Result<Self, InviteError> {
        if session.role() != crate::noise::Role::Initiator {
            return Err(InviteError::WrongRole);
        }
        if session.is_closed() {
            return Err(InviteError::SessionClosed);
        }
        // The Invite goes out when the handshake completes: the session must
        // not have heard its response yet.
        if session.remote_index().is_some() {
            return Err(InviteError::SessionStarted);
        }
        message::validate_message(offer.message.as_bytes()).map_err(InviteError::BadMessage)?;
        if offer.data.len() > MAX_APP_DATA {
            return Err(InviteError::DataTooLarge);
        }
        if offer.expires_in > MAX_EXPIRY_ON_WIRE {
            return Err(InviteError::DurationTooLong);
        }
        let message_len = offer.message.len();
        let body_len = message_len + offer.data.len();
        let buffer = if body_len > 0 {
            let id = pool.take().ok_or(InviteError::PoolFull)?;
            if let Some(buf) = pool.get_mut(id) {
                buf[..message_len].copy_from_slice(offer.message.as_bytes());
                buf[message_len..body_len].copy_from_slice(offer.data);
            }
            Some(id)
        } else {
            None
        };
        let mut inv = Invitation::new(session, State::Inviter(InviterState::Connecting), now);
        inv.id = offer.id;
        inv.app_id = offer.app_id;
        // Both lengths were checked against limits that fit u16.
        inv.message_len = u16::try_from(message_len).unwrap_or(u16::MAX);
        inv.data_len = u16::try_from(offer.data.len()).unwrap_or(u16::MAX);
        inv.buffer = buffer;
        inv.expires_at = now + offer.expires_in;
        Ok(inv)
    }

    /// The invitee's side of the invitation arriving on `session`, the
    /// session [`Incoming::accept`](crate::session::Incoming::accept)
    /// returned.
    pub fn invitee(
        session: Session,
        config: InviteeConfig,
        now: Instant,
    ) -> Result<Self, InviteError> {
        if session.role() != crate::noise::Role::Responder {
            return Err(InviteError::WrongRole);
        }
        if session.is_closed() {
            return Err(InviteError::SessionClosed);
        }
        let mut inv = Invitation::new(session, State::Invitee(InviteeState::AwaitingInvite), now);
        inv.max_expiry = config.max_expiry;
        inv.arm(Timer::GiveUp, now + INVITE_WAIT_TIMEOUT);
        Ok(inv)
    }

    // ----- inputs -----------------------------------------------------------

    /// Handles one datagram of this invitation's session. Errors mean it was
    /// dropped and nothing changed. The invitee screens a new invitation
    /// with `screen` (the inviter never calls it).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        pool: &mut (impl BufferPool + ?Sized),
        screen: &mut impl Screen,
        rng: &mut impl Entropy,
    ) -> Result<(), Dropped> {
        let now = self.clock(now);
        let result = self.receive(now, datagram, pool, screen, rng);
        if result.is_err() {
            self.stats.dropped = self.stats.dropped.saturating_add(1);
        }
        result
    }

    fn receive(
        &mut self,
        now: Instant,
        datagram: &[u8],
        pool: &mut (impl BufferPool + ?Sized),
        screen: &mut impl Screen,
        rng: &mut impl Entropy,
    ) -> Result<(), Dropped> {
        if self.is_closed() {
            return Err(Dropped::Closed);
        }
        let mut plain = [0u8; MAX_DATAGRAM];
        let received = self.session.handle_datagram(now, datagram, &mut plain, rng);
        self.drain_session(now, pool);
        match received.map_err(Dropped::Session)? {
            Received::Handshake => Ok(()),
            Received::Keepalive => {
                self.heard(now);
                match self.state {
                    // The inviter asks whether we are still there.
                    State::Invitee(_) => {
                        self.invitee_step(now, InviteeEvent::Probe, &Input::default(), pool)
                    }
                    State::Inviter(_) => Ok(()),
                }
            }
            Received::Payload(n) => {
                self.heard(now);
                let msg = Message::parse(&plain[..n]).map_err(Dropped::Malformed)?;
                self.stats.messages_received = self.stats.messages_received.saturating_add(1);
                match self.state {
                    State::Inviter(_) => self.inviter_receive(now, msg, pool),
                    State::Invitee(_) => self.invitee_receive(now, msg, pool, screen),
                }
            }
        }
    }

    fn inviter_receive(
        &mut self,
        now: Instant,
        msg: Message<'_>,
        pool: &mut (impl BufferPool + ?Sized),
    ) -> Result<(), Dropped> {
        if msg.id() != self.id {
            return Err(Dropped::WrongInvite);
        }
        let mut input = Input::default();
        let event = match msg {
            Message::Sack { received, .. } => {
                if received & !self.all_fragments() != 0 {
                    return Err(Dropped::Unexpected);
                }
                input.sack = received;
                InviterEvent::Sack
            }
            Message::Ringing { .. } => InviterEvent::Ringing,
            Message::Final(f) => {
                input.final_ =
                    Some((f.code, Duration::from_millis(f.retry_after_ms.into()), f.reason));
                if f.code == FinalCode::Cancelled {
                    InviterEvent::CancelConfirmed
                } else {
                    InviterEvent::Final
                }
            }
            Message::Invite(_) | Message::Ack { .. } | Message::Cancel(_) => {
                return Err(Dropped::WrongDirection);
            }
        };
        self.inviter_step(now, event, &input, pool).map(|_| ())
    }

    fn invitee_receive(
        &mut self,
        now: Instant,
        msg: Message<'_>,
        pool: &mut (impl BufferPool + ?Sized),
        screen: &mut impl Screen,
    ) -> Result<(), Dropped> {
        let adopted = !matches!(self.state, State::Invitee(InviteeState::AwaitingInvite));
        if adopted && msg.id() != self.id {
            return Err(Dropped::WrongInvite);
        }
        let mut input = Input { id: Some(msg.id()), ..Input::default() };
        let event = match msg {
            Message::Invite(f) => {
                input.fragment = Some(f);
                self.classify_fragment(&f, &mut input, pool, screen)?
            }
            Message::Ack { code, .. } => {
                let answering = matches!(self.state, State::Invitee(InviteeState::Answering));
                if answering && code != self.final_code {
                    return Err(Dropped::Unexpected);
                }
                InviteeEvent::Ack
            }
            Message::Cancel(c) => {
                input.cancel = Some((c.reason, c.text));
                InviteeEvent::Cancel
            }
            Message::Sack { .. } | Message::Ringing { .. } | Message::Final(_) => {
                return Err(Dropped::WrongDirection);
            }
        };
        self.invitee_step(now, event, &input, pool)?;
        // A fragment that completes the body: present it, or refuse it if
        // the message is not valid text or the screen no longer admits it.
        if event == InviteeEvent::Fragment
            && self.state == State::Invitee(InviteeState::Receiving)
            && self.held == self.all_fragments()
        {
            let valid = match self.buffer.and_then(|b| pool.get(b)) {
                Some(buf) => {
                    message::validate_message(&buf[..usize::from(self.message_len)]).is_ok()
                }
                None => self.message_len == 0,
            };
            let (event, input) = if valid && now >= self.expires_at && enabled(Defence::Expiry) {
                // Complete, but too late to present: it expires instead.
                (InviteeEvent::ExpiryTimer, Input::default())
            } else if valid {
                // The peer is known in Receiving (the first fragment was
                // screened against it); one that is not is not admitted.
                let admission = self
                    .session
                    .peer()
                    .map_or(Admission::NotAccepted, |p| screen.confirm(p, self.app_id, self.id));
                match admission.refusal() {
                    None => (InviteeEvent::Reassembled, Input::default()),
                    Some((code, retry)) => (
                        InviteeEvent::Refused,
                        Input { final_: Some((code, retry, "")), ..Input::default() },
                    ),
                }
            } else {
                let refusal = Input {
                    final_: Some((FinalCode::Invalid, Duration::ZERO, "")),
                    ..Input::default()
                };
                (InviteeEvent::Refused, refusal)
            };
            self.invitee_step(now, event, &input, pool)?;
        }
        Ok(())
    }

    /// Which event a fragment is, without changing anything.
    fn classify_fragment<'a>(
        &self,
        f: &InviteFragment<'a>,
        input: &mut Input<'a>,
        pool: &(impl BufferPool + ?Sized),
        screen: &mut impl Screen,
    ) -> Result<InviteeEvent, Dropped> {
        match self.state {
            State::Invitee(InviteeState::AwaitingInvite) => {
                let peer = self.session.peer().ok_or(Dropped::Unexpected)?;
                let body_len = usize::from(f.message_len) + usize::from(f.data_len);
                let refusal = match screen.screen(peer, f.app_id, f.id) {
                    Admission::Present if body_len > 0 && pool.free() == 0 => {
                        Some((FinalCode::Busy, POOL_BUSY_RETRY_AFTER))
                    }
                    admission => admission.refusal(),
                };
                Ok(match refusal {
                    Some((code, retry)) => {
                        input.final_ = Some((code, retry, ""));
                        InviteeEvent::Refused
                    }
                    None => InviteeEvent::Fragment,
                })
            }
            State::Invitee(InviteeState::Receiving) => {
                let consistent = f.app_id == self.app_id
                    && f.message_len == self.message_len
                    && f.data_len == self.data_len;
                if !consistent {
                    input.final_ = Some((FinalCode::Invalid, Duration::ZERO, ""));
                    return Ok(InviteeEvent::Refused);
                }
                Ok(if self.held & (1 << f.index) != 0 {
                    InviteeEvent::FragmentDuplicate
                } else {
                    InviteeEvent::Fragment
                })
            }
            _ => Ok(InviteeEvent::FragmentDuplicate),
        }
    }

    /// Handles the deadline from [`poll_timeout`](Self::poll_timeout).
    /// Calling it early does nothing.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        pool: &mut (impl BufferPool + ?Sized),
        rng: &mut impl Entropy,
    ) {
        let now = self.clock(now);
        self.session.handle_timeout(now, rng);
        self.drain_session(now, pool);
        // Each round fires the earliest due timer (ties in `TIMERS` order)
        // and clears it; transitions re-arm timers in the future, so this
        // ends. The bound is a second guarantee, for the end of time.
        for _ in 0..2 * TIMERS.len() {
            let due = TIMERS
                .iter()
                .enumerate()
                .filter_map(|(rank, &t)| {
                    self.timers[t as usize].filter(|&at| at <= now).map(|at| (at, rank, t))
                })
                .min_by_key(|&(at, rank, _)| (at, rank));
            let Some((_, _, timer)) = due else { break };
            self.timers[timer as usize] = None;
            // Mutation builds only: the give-up or the expiry never comes.
            if (timer == Timer::GiveUp && !enabled(Defence::GiveUp))
                || (timer == Timer::Expiry && !enabled(Defence::Expiry))
            {
                continue;
            }
            let input = Input::default();
            // Timer rows never refuse; their verdicts need no answer.
            let _ = match self.state {
                State::Inviter(_) => {
                    let event = match timer {
                        Timer::Retransmit => InviterEvent::RetransmitTimer,
                        Timer::GiveUp => InviterEvent::GiveUpTimer,
                        Timer::Linger => InviterEvent::LingerTimer,
                        Timer::Ack | Timer::Ringing | Timer::Expiry => continue,
                    };
                    self.inviter_step(now, event, &input, pool).map(|_| ())
                }
                State::Invitee(_) => {
                    let event = match timer {
                        Timer::Retransmit => InviteeEvent::RetransmitTimer,
                        Timer::GiveUp => InviteeEvent::GiveUpTimer,
                        Timer::Ack => InviteeEvent::AckTimer,
                        Timer::Ringing => InviteeEvent::RingingTimer,
                        Timer::Expiry => InviteeEvent::ExpiryTimer,
                        Timer::Linger => InviteeEvent::LingerTimer,
                    };
                    self.invitee_step(now, event, &input, pool)
                }
            };
        }
        // At the end of time a retransmission re-arms at `now` itself: drop
        // it, so no deadline stays at or before `now`.
        for t in &mut self.timers {
            if t.is_some_and(|at| at <= now) {
                *t = None;
            }
        }
    }

    /// Session events become table events.
    fn drain_session(&mut self, now: Instant, pool: &mut (impl BufferPool + ?Sized)) {
        while let Some(e) = self.session.poll_event() {
            let input = Input::default();
            let _ = match (self.state, e) {
                (State::Inviter(_), SessionEvent::Established) => {
                    self.inviter_step(now, InviterEvent::Established, &input, pool).map(|_| ())
                }
                (State::Inviter(_), SessionEvent::Failed(f)) => {
                    self.session_failure = Some(f);
                    self.inviter_step(now, InviterEvent::SessionFailed, &input, pool).map(|_| ())
                }
                // The invitee waits for the Invite, not for the handshake.
                (State::Invitee(_), SessionEvent::Established) => Ok(()),
                (State::Invitee(_), SessionEvent::Failed(f)) => {
                    self.session_failure = Some(f);
                    self.invitee_step(now, InviteeEvent::SessionFailed, &input, pool)
                }
            };
        }
    }

    /// An authentic datagram arrived: the peer is alive. This holds even for
    /// a datagram the invitation then drops (unexpected now, another invite
    /// id): the session authenticated it, so it proves the peer is there.
    fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        if matches!(self.state, State::Inviter(InviterState::Delivering | InviterState::Ringing)) {
            self.arm_inviter_give_up();
        }
    }

    // ----- commands ---------------------------------------------------------

    /// Invitee: answers the presented invitation. The Final is retransmitted
    /// until the inviter acknowledges it; the outcome follows then (or
    /// Cancelled, if the inviter's Cancel crossed it). An answer at or after
    /// the expiry is too late: the invitation expires instead (Final
    /// Expired) and the answer is refused with [`InviteError::Ended`]. Any
    /// other refusal changes nothing, not even the clock.
    pub fn respond(
        &mut self,
        now: Instant,
        answer: Answer,
        reason: &str,
    ) -> Result<(), InviteError> {
        let State::Invitee(state) = self.state else {
            return Err(InviteError::WrongRole);
        };
        let text = copy_text(reason)?;
        let (code, retry) = match answer {
            Answer::Accept => (FinalCode::Accepted, Duration::ZERO),
            Answer::Decline => (FinalCode::Declined, Duration::ZERO),
            Answer::Busy { retry_after } if retry_after > MAX_EXPIRY_ON_WIRE => {
                return Err(InviteError::DurationTooLong);
            }
            Answer::Busy { retry_after } => (FinalCode::Busy, retry_after),
        };
        let row = table::invitee(state, InviteeEvent::Respond);
        if row.verdict == Verdict::Misuse {
            return Err(match state {
                InviteeState::AwaitingInvite | InviteeState::Receiving => InviteError::NotPresented,
                InviteeState::Answering if !self.presented => InviteError::NotPresented,
                InviteeState::Answering => InviteError::AlreadyAnswered,
                InviteeState::Ringing | InviteeState::Lingering | InviteeState::Closed => {
                    InviteError::Ended
                }
            });
        }
        // Answering needs no buffer: a pool of none will do.
        let mut no_pool = DataPool::<0>::new();
        let now = self.clock(now);
        if now >= self.expires_at && enabled(Defence::Expiry) {
            // Too late: the invitation expired before this answer, whether
            // or not `handle_timeout` has run since.
            let _ =
                self.invitee_step(now, InviteeEvent::ExpiryTimer, &Input::default(), &mut no_pool);
            return Err(InviteError::Ended);
        }
        self.own_text = text;
        let input = Input { final_: Some((code, retry, reason)), ..Input::default() };
        let _ = self.invitee_step(now, InviteeEvent::Respond, &input, &mut no_pool);
        Ok(())
    }

    /// Inviter: withdraws the invitation. Before the Invite is sent it is
    /// abandoned silently; once sent, the invitee is told and can no longer
    /// answer, and the outcome is Cancelled; once answered, nothing changes.
    /// A Cancel that crosses the invitee's Final wins: the inviter does not
    /// acknowledge that Final, and the invitee ends Cancelled too.
    pub fn cancel(
        &mut self,
        now: Instant,
        reason: CancelReason,
        text: &str,
        pool: &mut (impl BufferPool + ?Sized),
    ) -> Result<CancelEffect, InviteError> {
        let State::Inviter(state) = self.state else {
            return Err(InviteError::WrongRole);
        };
        if reason == CancelReason::GaveUp {
            return Err(InviteError::ReservedReason);
        }
        let text_copy = copy_text(text)?;
        let now = self.clock(now);
        let row = table::inviter(state, InviterEvent::Cancel);
        if row.verdict != Verdict::Go {
            return Ok(CancelEffect::NoEffect);
        }
        self.own_text = text_copy;
        let input = Input { cancel: Some((reason, text)), ..Input::default() };
        let _ = self.inviter_step(now, InviterEvent::Cancel, &input, pool);
        Ok(match row.next {
            InviterState::Closed => CancelEffect::Abandoned,
            _ => CancelEffect::Withdrawing,
        })
    }

    // ----- the machines -----------------------------------------------------

    /// Applies one row of either role's table: a refusal changes nothing;
    /// otherwise the row's actions run in order, then, if the state
    /// changes, the new state's entry actions.
    #[allow(clippy::too_many_arguments)]
    fn apply<S: Copy + PartialEq, E, A: Copy, P: BufferPool + ?Sized>(
        &mut self,
        row: table::Row<S, E, A>,
        now: Instant,
        input: &Input<'_>,
        pool: &mut P,
        act: fn(&mut Self, Instant, A, &Input<'_>, &mut P),
        enter: fn(&mut Self, Instant, S, &mut P),
        wrap: fn(S) -> State,
    ) -> Result<Verdict, Dropped> {
        match row.verdict {
            Verdict::Unexpected => return Err(Dropped::Unexpected),
            Verdict::Ignore | Verdict::Misuse => {
                self.stats.ignored = self.stats.ignored.saturating_add(1);
                return Ok(row.verdict);
            }
            Verdict::Go | Verdict::Stay => {}
        }
        for &action in row.actions {
            act(self, now, action, input, pool);
        }
        if row.next != row.state {
            self.state = wrap(row.next);
            enter(self, now, row.next, pool);
        }
        Ok(row.verdict)
    }

    fn inviter_step<P: BufferPool + ?Sized>(
        &mut self,
        now: Instant,
        event: InviterEvent,
        input: &Input<'_>,
        pool: &mut P,
    ) -> Result<Verdict, Dropped> {
        let State::Inviter(state) = self.state else {
            return Err(Dropped::WrongDirection);
        };
        let row = table::inviter(state, event);
        self.apply(row, now, input, pool, Self::inviter_action, Self::enter_inviter, State::Inviter)
    }

    fn inviter_action<P: BufferPool + ?Sized>(
        &mut self,
        now: Instant,
        action: InviterAction,
        input: &Input<'_>,
        pool: &mut P,
    ) {
        match action {
            InviterAction::SendInvite => self.pending_fragments = self.all_fragments(),
            InviterAction::ApplySack => {
                let news = input.sack & !self.held;
                if news != 0 {
                    self.held |= input.sack;
                    // Lost: a fragment missing below one the invitee holds
                    // (fragments go out in order). Those above may still be
                    // on their way; the probe covers them.
                    let below_highest = (1u16 << (15 - self.held.leading_zeros())) - 1;
                    let lost = self.all_fragments() & !self.held & below_highest;
                    self.pending_fragments |= lost;
                    self.stats.retransmissions =
                        self.stats.retransmissions.saturating_add(lost.count_ones());
                    self.retransmit_delay = RETRANSMIT_INITIAL;
                    self.arm(Timer::Retransmit, now + RETRANSMIT_INITIAL);
                }
            }
            InviterAction::ResendProbe => {
                let missing = self.all_fragments() & !self.held;
                // The lowest missing fragment; if the invitee holds them all
                // but its Ringing was lost, the last fragment asks again.
                let probe = if missing != 0 {
                    1 << missing.trailing_zeros()
                } else {
                    1 << (15 - self.all_fragments().leading_zeros())
                };
                self.pending_fragments |= probe;
                self.stats.retransmissions = self.stats.retransmissions.saturating_add(1);
            }
            InviterAction::SendProbe => {
                self.outputs |= out::PROBE;
                self.stats.retransmissions = self.stats.retransmissions.saturating_add(1);
            }
            InviterAction::BackOff => self.back_off(now),
            InviterAction::StopDelivery => {
                self.pending_fragments = 0;
                if let Some(b) = self.buffer.take() {
                    pool.release(b);
                }
            }
            InviterAction::NotifyRinging => self.push_event(InvitationEvent::Ringing),
            InviterAction::SendAck => {
                if let Some((code, _, _)) = input.final_ {
                    self.final_code = code;
                }
                self.outputs |= out::ACK;
            }
            InviterAction::SendCancel => {
                self.outputs |= out::CANCEL;
                self.stats.retransmissions = self.stats.retransmissions.saturating_add(1);
            }
            InviterAction::AnswerLateFinal => {
                let acked = match input.final_ {
                    Some((code, _, _)) => {
                        self.final_code == code
                            && self.outcome == Some(outcome_of(code, self.retry_after))
                    }
                    None => false,
                };
                self.outputs |= if acked { out::ACK } else { out::CANCEL };
            }
            InviterAction::EndWithFinal => {
                if let Some((code, retry, reason)) = input.final_ {
                    self.final_code = code;
                    self.retry_after = retry;
                    self.peer_text = copy_text(reason).unwrap_or_default();
                    self.end(outcome_of(code, retry));
                }
            }
            InviterAction::EndCancelled => {
                if let Some((reason, _)) = input.cancel {
                    self.cancel_reason = reason;
                }
                self.end(Outcome::Cancelled(self.cancel_reason));
            }
            InviterAction::EndUnreachable => {
                self.cancel_reason = CancelReason::GaveUp;
                self.own_text.clear();
                self.end(Outcome::Unreachable);
            }
            InviterAction::EndWithSessionFailure => {
                let outcome = match self.session_failure {
                    Some(Failure::IdentityMismatch) => {
                        Outcome::Failed(FailureCause::IdentityMismatch)
                    }
                    _ => Outcome::Unreachable,
                };
                self.end(outcome);
            }
        }
    }

    fn enter_inviter<P: BufferPool + ?Sized>(
        &mut self,
        now: Instant,
        state: InviterState,
        pool: &mut P,
    ) {
        match state {
            InviterState::Connecting => {}
            InviterState::Delivering => {
                self.last_heard = now;
                self.retransmit_delay = RETRANSMIT_INITIAL;
                self.arm(Timer::Retransmit, now + RETRANSMIT_INITIAL);
                self.arm_inviter_give_up();
            }
            InviterState::Ringing => self.arm_inviter_give_up(),
            InviterState::Cancelling => {
                self.timers = [None; TIMERS.len()];
                self.outputs |= out::CANCEL;
                self.retransmit_delay = RETRANSMIT_INITIAL;
                self.arm(Timer::Retransmit, now + RETRANSMIT_INITIAL);
                self.arm(Timer::GiveUp, now + CANCEL_TIMEOUT);
            }
            InviterState::Lingering => {
                self.timers = [None; TIMERS.len()];
                self.arm(Timer::Linger, now + LINGER);
            }
            InviterState::Closed => self.free(pool),
        }
    }

    /// Give-up while delivering or ringing: a silence limit, and in any case
    /// expiry plus grace. While ringing, also the liveness probe.
    fn arm_inviter_give_up(&mut self) {
        let silence = match self.state {
            State::Inviter(InviterState::Ringing) => {
                self.retransmit_delay = RETRANSMIT_INITIAL;
                self.arm(Timer::Retransmit, self.last_heard + LIVENESS_PROBE_AFTER);
                LIVENESS_TIMEOUT
            }
            _ => DELIVERY_TIMEOUT,
        };
        let at = (self.last_heard + silence).min(self.expires_at + EXPIRY_GRACE);
        self.arm(Timer::GiveUp, at);
    }

    fn invitee_step<P: BufferPool + ?Sized>(
        &mut self,
        now: Instant,
        event: InviteeEvent,
        input: &Input<'_>,
        pool: &mut P,
    ) -> Result<(), Dropped> {
        let State::Invitee(state) = self.state else {
            return Err(Dropped::WrongDirection);
        };
        // Mutation builds only: an accept that crossed a Cancel stands.
        if (state, event) == (InviteeState::Answering, InviteeEvent::Cancel)
            && !enabled(Defence::CancelWins)
        {
            return Ok(());
        }
        let row = table::invitee(state, event);
        self.apply(row, now, input, pool, Self::invitee_action, Self::enter_invitee, State::Invitee)
            .map(|_| ())
    }

    fn invitee_action<P: BufferPool + ?Sized>(
        &mut self,
        now: Instant,
        action: InviteeAction,
        input: &Input<'_>,
        pool: &mut P,
    ) {
        match action {
            InviteeAction::Adopt => {
                if let Some(id) = input.id {
                    self.id = id;
                }
                if let Some(f) = input.fragment {
                    self.app_id = f.app_id;
                    self.message_len = f.message_len;
                    self.data_len = f.data_len;
                    let remaining = Duration::from_millis(f.remaining_ms.into());
                    let clamp = enabled(Defence::ExpiryClamp);
                    self.expires_at =
                        now + if clamp { remaining.min(self.max_expiry) } else { remaining };
                }
            }
            InviteeAction::TakeBuffer => {
                if self.body_len() > 0 && self.buffer.is_none() {
                    self.buffer = pool.take();
                }
            }
            InviteeAction::StoreFragment => {
                let Some(f) = input.fragment else { return };
                let Some(range) = message::chunk_range(self.body_len(), usize::from(f.index))
                else {
                    return;
                };
                if let Some(buf) = self.buffer.and_then(|b| pool.get_mut(b))
                    && let Some(dst) = buf.get_mut(range)
                    && dst.len() == f.chunk.len()
                {
                    dst.copy_from_slice(f.chunk);
                }
                self.held |= 1 << f.index;
            }
            InviteeAction::ScheduleAck => {
                if self.timers[Timer::Ack as usize].is_none() {
                    self.arm(Timer::Ack, now + ACK_DELAY);
                }
            }
            InviteeAction::RefreshStall => self.arm(Timer::GiveUp, now + REASSEMBLY_TIMEOUT),
            InviteeAction::SendSack => self.outputs |= out::SACK,
            InviteeAction::SendRinging => {
                self.outputs |= out::RINGING;
                self.stats.retransmissions = self.stats.retransmissions.saturating_add(1);
            }
            InviteeAction::ArmRinging => self.arm(Timer::Ringing, now + RINGING_INTERVAL),
            InviteeAction::SendFinal => {
                if enabled(Defence::FinalRetransmit) {
                    self.outputs |= out::FINAL;
                }
                self.stats.retransmissions = self.stats.retransmissions.saturating_add(1);
            }
            InviteeAction::BackOff => self.back_off(now),
            InviteeAction::TakeCode => {
                if let Some((code, retry, _)) = input.final_ {
                    self.final_code = code;
                    self.retry_after = retry;
                }
            }
            InviteeAction::DeclareExpired => {
                self.final_code = FinalCode::Expired;
                self.retry_after = Duration::ZERO;
                self.own_text.clear();
            }
            InviteeAction::EndWithFinal => {
                self.end(outcome_of(self.final_code, self.retry_after));
            }
            InviteeAction::EndCancelled => {
                if let Some((reason, text)) = input.cancel {
                    self.cancel_reason = reason;
                    self.peer_text = copy_text(text).unwrap_or_default();
                }
                self.end(Outcome::Cancelled(self.cancel_reason));
            }
            InviteeAction::EndUnreachable => self.end(Outcome::Unreachable),
            InviteeAction::ConfirmCancel => {
                if matches!(self.outcome, Some(Outcome::Cancelled(_))) {
                    self.final_code = FinalCode::Cancelled;
                    self.retry_after = Duration::ZERO;
                    self.own_text.clear();
                    self.outputs |= out::FINAL;
                }
            }
        }
    }

    fn enter_invitee<P: BufferPool + ?Sized>(
        &mut self,
        now: Instant,
        state: InviteeState,
        pool: &mut P,
    ) {
        match state {
            InviteeState::AwaitingInvite => self.arm(Timer::GiveUp, now + INVITE_WAIT_TIMEOUT),
            InviteeState::Receiving => {
                self.arm(Timer::Expiry, self.expires_at);
                self.arm(Timer::GiveUp, now + REASSEMBLY_TIMEOUT);
            }
            InviteeState::Ringing => {
                self.timers[Timer::Ack as usize] = None;
                self.timers[Timer::GiveUp as usize] = None;
                self.presented = true;
                self.push_event(InvitationEvent::Invited);
                self.outputs |= out::RINGING;
                self.arm(Timer::Ringing, now + RINGING_INTERVAL);
                self.arm(Timer::Expiry, self.expires_at);
            }
            InviteeState::Answering => {
                self.release_unpresented_body(pool);
                self.timers = [None; TIMERS.len()];
                self.outputs = out::FINAL;
                self.retransmit_delay = RETRANSMIT_INITIAL;
                self.arm(Timer::Retransmit, now + RETRANSMIT_INITIAL);
                self.arm(Timer::GiveUp, now + FINAL_TIMEOUT);
            }
            InviteeState::Lingering => {
                self.release_unpresented_body(pool);
                self.timers = [None; TIMERS.len()];
                // Only a cancel confirmation queued on the way in is still
                // owed; a retransmission of an acknowledged Final is not.
                self.outputs &=
                    if self.final_code == FinalCode::Cancelled { out::FINAL } else { 0 };
                self.arm(Timer::Linger, now + LINGER);
            }
            InviteeState::Closed => self.free(pool),
        }
    }

    /// An invitation that was never presented (refused, expired or
    /// cancelled while reassembling) does not need its body: the buffer goes
    /// back to the pool at once rather than when the invitation closes.
    fn release_unpresented_body(&mut self, pool: &mut (impl BufferPool + ?Sized)) {
        if !self.presented
            && let Some(b) = self.buffer.take()
        {
            pool.release(b);
        }
    }

    fn back_off(&mut self, now: Instant) {
        self.retransmit_delay = self.retransmit_delay.saturating_mul(2).min(RETRANSMIT_MAX);
        self.arm(Timer::Retransmit, now + self.retransmit_delay);
    }

    fn arm(&mut self, timer: Timer, at: Instant) {
        self.timers[timer as usize] = Some(at);
    }

    fn end(&mut self, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
            self.push_event(InvitationEvent::Ended(outcome));
        }
    }

    fn push_event(&mut self, e: InvitationEvent) {
        // At most Ringing or Invited, and one Ended, are ever pushed.
        let _ = self.events.push_back(e);
    }

    /// Frees everything: the session (keys zeroized), the buffer, timers and
    /// pending output.
    fn free(&mut self, pool: &mut (impl BufferPool + ?Sized)) {
        self.session.close();
        if let Some(b) = self.buffer.take() {
            pool.release(b);
        }
        self.timers = [None; TIMERS.len()];
        self.outputs = 0;
        self.pending_fragments = 0;
    }

    fn clock(&mut self, now: Instant) -> Instant {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    fn body_len(&self) -> usize {
        usize::from(self.message_len) + usize::from(self.data_len)
    }

    fn all_fragments(&self) -> u16 {
        all_fragments(self.body_len())
    }

    // ----- outputs ----------------------------------------------------------

    /// Writes the next datagram to send into `buf` and returns its length:
    /// the session's handshake datagrams first, then invitation messages.
    #[must_use]
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        pool: &(impl BufferPool + ?Sized),
        buf: &mut [u8; MAX_DATAGRAM],
    ) -> Option<usize> {
        let now = self.clock(now);
        if let Some(n) = self.session.poll_transmit(now, buf) {
            return Some(n);
        }
        if !self.session.can_send() {
            return None;
        }
        let mut payload = [0u8; MAX_TRANSPORT_PAYLOAD];
        loop {
            let len = if let Some(&bit) = out::ORDER.iter().find(|&&b| self.outputs & b != 0) {
                self.outputs &= !bit;
                self.emit_message(bit, &mut payload)
            } else if self.pending_fragments != 0 {
                let index = self.pending_fragments.trailing_zeros();
                self.pending_fragments &= !(1 << index);
                self.emit_fragment(now, index, pool, &mut payload)
            } else {
                return None;
            };
            // A message that cannot be written or sealed is skipped; the
            // retransmission timers repair what matters.
            if let Some(len) = len
                && let Ok(n) = self.session.send(now, &payload[..len], buf)
            {
                self.stats.messages_sent = self.stats.messages_sent.saturating_add(1);
                return Some(n);
            }
        }
    }

    fn emit_message(&self, bit: u8, payload: &mut [u8]) -> Option<usize> {
        let id = self.id;
        let msg = match bit {
            out::FINAL => Message::Final(Final {
                id,
                code: self.final_code,
                retry_after_ms: if self.final_code == FinalCode::Busy {
                    ms(self.retry_after)
                } else {
                    0
                },
                reason: &self.own_text,
            }),
            out::ACK => Message::Ack { id, code: self.final_code },
            out::CANCEL => {
                Message::Cancel(Cancel { id, reason: self.cancel_reason, text: &self.own_text })
            }
            out::RINGING => Message::Ringing { id },
            out::SACK => Message::Sack { id, received: self.held },
            _ => return Some(0),
        };
        msg.emit(payload).ok()
    }

    fn emit_fragment(
        &self,
        now: Instant,
        index: u32,
        pool: &(impl BufferPool + ?Sized),
        payload: &mut [u8],
    ) -> Option<usize> {
        let body_len = self.body_len();
        let index = usize::try_from(index).ok()?;
        let range = message::chunk_range(body_len, index)?;
        let chunk: &[u8] = match self.buffer {
            Some(b) => pool.get(b)?.get(range)?,
            None => &[],
        };
        Message::Invite(InviteFragment {
            id: self.id,
            app_id: self.app_id,
            remaining_ms: ms(self.expires_at.saturating_duration_since(now)),
            message_len: self.message_len,
            data_len: self.data_len,
            index: u8::try_from(index).ok()?,
            chunk,
        })
        .emit(payload)
        .ok()
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<InvitationEvent> {
        self.events.pop_front()
    }

    /// The next deadline at which [`handle_timeout`](Self::handle_timeout)
    /// must be called, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.timers.iter().flatten().min().copied();
        [own, self.session.poll_timeout()].into_iter().flatten().min()
    }

    // ----- accessors --------------------------------------------------------

    /// Which side this is.
    #[must_use]
    pub fn party(&self) -> Party {
        match self.state {
            State::Inviter(_) => Party::Inviter,
            State::Invitee(_) => Party::Invitee,
        }
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> State {
        self.state
    }

    /// The outcome, once decided.
    #[must_use]
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// Whether everything is freed: the caller may drop it.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(
            self.state,
            State::Inviter(InviterState::Closed) | State::Invitee(InviteeState::Closed)
        )
    }

    /// The invitation's id (the invitee's, once the first message arrived).
    #[must_use]
    pub fn id(&self) -> InviteId {
        self.id
    }

    /// The application (the invitee's, once the first fragment arrived).
    #[must_use]
    pub fn app_id(&self) -> AppId {
        self.app_id
    }

    /// The message: the inviter's while it holds the body, the invitee's
    /// from [`InvitationEvent::Invited`] until the invitation closes.
    #[must_use]
    pub fn message<'p>(&self, pool: &'p (impl BufferPool + ?Sized)) -> Option<&'p str> {
        let bytes = self.body(pool)?.get(..usize::from(self.message_len))?;
        core::str::from_utf8(bytes).ok()
    }

    /// The application data, as [`message`](Self::message).
    #[must_use]
    pub fn data<'p>(&self, pool: &'p (impl BufferPool + ?Sized)) -> Option<&'p [u8]> {
        self.body(pool)?.get(usize::from(self.message_len)..self.body_len())
    }

    fn body<'p>(&self, pool: &'p (impl BufferPool + ?Sized)) -> Option<&'p [u8]> {
        let presented = match self.state {
            State::Inviter(_) => true,
            State::Invitee(_) => self.presented,
        };
        if !presented || self.body_taken {
            return None;
        }
        match self.buffer {
            Some(b) => pool.get(b).map(|b| &b[..]),
            None if self.body_len() == 0 && !self.is_closed() => Some(&[]),
            None => None,
        }
    }

    /// Invitee: takes the body of a presented invitation that has ended,
    /// so it outlives the invitation (an agent keeps an accepted
    /// invitation's launch information until the application releases it).
    /// The caller owns the buffer from now on and must
    /// [`release`](BufferPool::release) it; the invitation's
    /// [`message`](Self::message) and [`data`](Self::data) are `None`
    /// afterwards. `None` if this is not an ended, presented invitee, or
    /// the body was taken already.
    pub fn take_body(&mut self) -> Option<Body> {
        let presented_invitee = matches!(self.state, State::Invitee(_)) && self.presented;
        if !presented_invitee || self.outcome.is_none() || self.body_taken {
            return None;
        }
        self.body_taken = true;
        Some(Body {
            buffer: self.buffer.take(),
            message_len: self.message_len,
            data_len: self.data_len,
        })
    }

    /// When the invitation expires (the inviter's clock or the invitee's).
    #[must_use]
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// The reason text the peer gave with its Final or Cancel.
    #[must_use]
    pub fn peer_reason(&self) -> &str {
        &self.peer_text
    }

    /// The peer's verified certificate, once the handshake proved it.
    #[must_use]
    pub fn peer(&self) -> Option<&Certificate> {
        self.session.peer()
    }

    /// The session the invitation travels in.
    #[must_use]
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Diagnostic counters.
    #[must_use]
    pub fn stats(&self) -> InvitationStats {
        self.stats
    }
}

impl core::fmt::Debug for Invitation {
    /// What the invitation is doing; never keys, message or data.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Invitation")
            .field("state", &self.state)
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("body_len", &self.body_len())
            .field("held", &self.held)
            .field("outcome", &self.outcome)
            .field("next_timeout", &self.poll_timeout())
            .field("session", &self.session)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashDrbg;
    use crate::identity::{EndpointId, LocalIdentity};
    use crate::session::{Incoming, PinnedPeer, StatementForm};
    use std::format;

    fn offer<'a>(message: &'a str, data: &'a [u8]) -> Offer<'a> {
        Offer {
            id: InviteId([1; 16]),
            app_id: AppId([2; 16]),
            message,
            data,
            expires_in: DEFAULT_EXPIRY,
        }
    }

    /// An inviter's fresh session, and the invitee's session answering it.
    fn sessions() -> (Session, Session) {
        let mut rng = HashDrbg::from_u64(7);
        let alice = LocalIdentity::generate(&mut rng, EndpointId(1));
        let bob = LocalIdentity::generate(&mut rng, EndpointId(2));
        let pinned = PinnedPeer::new(&alice, *bob.certificate()).unwrap();
        let mut a = Session::initiate_contact(
            &alice,
            &pinned,
            1,
            StatementForm::Certificate,
            Instant::ZERO,
            &mut rng,
        )
        .unwrap();
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = a.poll_transmit(Instant::ZERO, &mut buf).unwrap();
        let dir = [PinnedPeer::new(&bob, *alice.certificate()).unwrap()];
        let b = Incoming::read(&bob, &dir[..], &buf[..n])
            .unwrap()
            .accept(&bob, 2, Instant::ZERO, &mut rng)
            .unwrap();
        (a, b)
    }

    #[test]
    fn an_invalid_offer_is_refused_and_takes_no_buffer() {
        let (a, _) = sessions();
        let mut pool = DataPool::<1>::new();
        let now = Instant::ZERO;
        let long = "é".repeat(MAX_MESSAGE_CHARS + 1);
        let r = Invitation::invite(a.clone(), &offer(&long, &[]), now, &mut pool);
        assert!(matches!(r, Err(InviteError::BadMessage(_))));
        let big = [0u8; MAX_APP_DATA + 1];
        let r = Invitation::invite(a.clone(), &offer("", &big), now, &mut pool);
        assert_eq!(r.err(), Some(InviteError::DataTooLarge));
        let forever = Offer { expires_in: Duration::from_secs(u64::MAX / 1000), ..offer("", &[]) };
        let r = Invitation::invite(a.clone(), &forever, now, &mut pool);
        assert_eq!(r.err(), Some(InviteError::DurationTooLong));
        assert_eq!(pool.free(), 1);
        let r = Invitation::invite(a, &offer("hi", &[]), now, &mut DataPool::<0>::new());
        assert_eq!(r.err(), Some(InviteError::PoolFull));
    }

    #[test]
    fn each_role_needs_the_matching_session_and_refuses_the_other_roles_commands() {
        let (a, b) = sessions();
        let now = Instant::ZERO;
        let mut pool = DataPool::<1>::new();
        let r = Invitation::invitee(a.clone(), InviteeConfig::default(), now);
        assert_eq!(r.err(), Some(InviteError::WrongRole));
        let r = Invitation::invite(b.clone(), &offer("", &[]), now, &mut pool);
        assert_eq!(r.err(), Some(InviteError::WrongRole));

        let mut inviter = Invitation::invite(a, &offer("hi", b"data"), now, &mut pool).unwrap();
        assert_eq!(inviter.respond(now, Answer::Accept, ""), Err(InviteError::WrongRole));
        assert_eq!(
            inviter.cancel(now, CancelReason::GaveUp, "", &mut pool),
            Err(InviteError::ReservedReason)
        );
        assert_eq!(
            inviter.cancel(now, CancelReason::ByUser, &"x".repeat(200), &mut pool),
            Err(InviteError::ReasonTooLong)
        );
        assert_eq!(inviter.state(), State::Inviter(InviterState::Connecting));

        let mut invitee = Invitation::invitee(b, InviteeConfig::default(), now).unwrap();
        assert_eq!(
            invitee.cancel(now, CancelReason::ByUser, "", &mut pool),
            Err(InviteError::WrongRole)
        );
        assert_eq!(invitee.respond(now, Answer::Accept, ""), Err(InviteError::NotPresented));
        assert_eq!(invitee.state(), State::Invitee(InviteeState::AwaitingInvite));
    }

    #[test]
    fn cancelling_before_the_handshake_abandons_and_frees_at_once() {
        let (a, _) = sessions();
        let mut pool = DataPool::<1>::new();
        let now = Instant::ZERO;
        let mut inv = Invitation::invite(a, &offer("hi", b"data"), now, &mut pool).unwrap();
        assert_eq!(pool.free(), 0);
        let effect = inv.cancel(now, CancelReason::ByUser, "", &mut pool);
        assert_eq!(effect, Ok(CancelEffect::Abandoned));
        assert_eq!(
            inv.poll_event(),
            Some(InvitationEvent::Ended(Outcome::Cancelled(CancelReason::ByUser)))
        );
        assert!(inv.is_closed());
        assert_eq!(pool.free(), 1);
        let mut buf = [0u8; MAX_DATAGRAM];
        assert_eq!(inv.poll_transmit(now, &pool, &mut buf), None);
        assert_eq!(inv.poll_timeout(), None);
        assert_eq!(
            inv.cancel(now, CancelReason::ByUser, "", &mut pool),
            Ok(CancelEffect::NoEffect)
        );
    }

    #[test]
    fn debug_output_shows_the_state_but_never_the_message_or_data() {
        let (a, _) = sessions();
        let mut pool = DataPool::<1>::new();
        let inv = Invitation::invite(
            a,
            &offer("secret meeting", b"SECRET-DATA"),
            Instant::ZERO,
            &mut pool,
        )
        .unwrap();
        let text = format!("{inv:?} {pool:?}");
        assert!(text.contains("Connecting"));
        assert!(!text.contains("secret meeting") && !text.contains("SECRET-DATA"), "{text}");
    }

    #[test]
    fn a_session_that_fails_before_the_invite_ends_the_invitee_unreachable() {
        let (_, b) = sessions();
        let mut pool = DataPool::<0>::new();
        let mut rng = HashDrbg::from_u64(1);
        let mut inv = Invitation::invitee(b, InviteeConfig::default(), Instant::ZERO).unwrap();
        // Nothing follows the handshake: the session gives up unconfirmed
        // at 32 s, the invitation with it.
        let mut now = Instant::ZERO;
        while let Some(t) = inv.poll_timeout() {
            now = t;
            inv.handle_timeout(now, &mut pool, &mut rng);
        }
        assert_eq!(now, Instant::ZERO + INVITE_WAIT_TIMEOUT);
        assert_eq!(inv.poll_event(), Some(InvitationEvent::Ended(Outcome::Unreachable)));
        assert_eq!(inv.poll_event(), None);
        assert!(inv.is_closed());
    }

    #[test]
    fn an_invitation_needs_a_session_that_has_not_heard_its_response() {
        let (mut a, mut b) = sessions();
        let mut rng = HashDrbg::from_u64(8);
        let (mut buf, mut out) = ([0u8; MAX_DATAGRAM], [0u8; MAX_DATAGRAM]);
        let n = b.poll_transmit(Instant::ZERO, &mut buf).unwrap();
        let _ = a.handle_datagram(Instant::ZERO, &buf[..n], &mut out, &mut rng).unwrap();
        let mut pool = DataPool::<1>::new();
        let r = Invitation::invite(a, &offer("hi", &[]), Instant::ZERO, &mut pool);
        assert_eq!(r.err(), Some(InviteError::SessionStarted));
        assert_eq!(pool.free(), 1);
    }

    #[test]
    fn a_sack_resends_only_fragments_missing_below_the_highest_one_held() {
        let (a, b) = sessions();
        let now = Instant::ZERO;
        let mut rng = HashDrbg::from_u64(9);
        let mut pools = std::boxed::Box::new((DataPool::<1>::new(), DataPool::<1>::new()));
        let data = [7u8; 5 * FRAGMENT_CHUNK];
        let mut inviter = Invitation::invite(a, &offer("", &data), now, &mut pools.0).unwrap();
        let mut invitee = Invitation::invitee(b, InviteeConfig::default(), now).unwrap();
        let mut screen = |_: &Certificate, _| Admission::Present;
        let mut buf = [0u8; MAX_DATAGRAM];
        // The response reaches the inviter, which sends its five fragments.
        let n = invitee.poll_transmit(now, &pools.1, &mut buf).unwrap();
        inviter.handle_datagram(now, &buf[..n], &mut pools.0, &mut screen, &mut rng).unwrap();
        let mut fragments = std::vec::Vec::new();
        while let Some(n) = inviter.poll_transmit(now, &pools.0, &mut buf) {
            fragments.push(buf[..n].to_vec());
        }
        assert_eq!(fragments.len(), 5);
        // Fragments 0, 1 and 3 arrive; 2 is lost, 4 is still on its way.
        for i in [0, 1, 3] {
            invitee
                .handle_datagram(now, &fragments[i], &mut pools.1, &mut screen, &mut rng)
                .unwrap();
        }
        let later = now + ACK_DELAY;
        invitee.handle_timeout(later, &mut pools.1, &mut rng);
        let n = invitee.poll_transmit(later, &pools.1, &mut buf).unwrap();
        inviter.handle_datagram(later, &buf[..n], &mut pools.0, &mut screen, &mut rng).unwrap();
        // Only fragment 2 goes again.
        let mut resent = 0;
        while let Some(n) = inviter.poll_transmit(later, &pools.0, &mut buf) {
            resent += 1;
            invitee.handle_datagram(later, &buf[..n], &mut pools.1, &mut screen, &mut rng).unwrap();
        }
        assert_eq!(resent, 1);
        assert_eq!(invitee.held, 0b01111);
    }
}
