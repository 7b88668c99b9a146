//! The agent: one peer's identity, contacts, registered applications and
//! policy, running any number of outgoing and incoming invitations at once.
//! It is what the adapters wrap and what users program against.
//!
//! See [`Agent`] for the contract; `spec/agent.md` for the normative text,
//! the combined-outcome rule and the Windows mapping; `spec/policy-table.md`
//! for the policy table (generated from [`policy::POLICY_TABLE`]).

mod contacts;
pub mod guard;
pub mod policy;
mod slab;
mod timer_heap;

use core::net::SocketAddr;

use heapless::Deque;

use crate::card::{CardError, ContactCard, MAX_ADDRESSES, MAX_CERTIFICATES};
use crate::entropy::{Entropy, HashDrbg};
use crate::identity::{Certificate, EndpointId, IdentityKey, LocalIdentity};
use crate::invite::{
    self, Admission, Answer, AppId, Body, BufferPool, CancelEffect, CancelReason, DataPool,
    EXPIRY_GRACE, FailureCause, Invitation, InvitationEvent, InviteError, InviteId, InviteeConfig,
    MAX_APP_DATA, MAX_EXPIRY_ON_WIRE, MAX_REASON_BYTES, Offer, Outcome, Screen,
};
use crate::mutation::{Defence, enabled};
use crate::noise::DH_LEN;
use crate::session::{self, Incoming, PeerDirectory, PinnedPeer, Session, StatementForm};
use crate::wire::{
    COOKIE_NONCE_LEN, COOKIE_REPLY_LEN, CookieReply, Frame, Initiation, MAX_DATAGRAM, Mode,
    WireError,
};
use crate::{Duration, Instant};

use contacts::CertCheck;
pub use contacts::{Contact, Trust};
use guard::{Guard, HALF_OPEN_PER_CONTACT};
pub use policy::{Application, MAX_APP_NAME, Policy, Sender};
use slab::{Key, Slab};
use timer_heap::TimerHeap;

/// The most endpoints one contact invitation reaches at once: every
/// endpoint a contact card can name.
pub const MAX_TARGETS: usize = MAX_CERTIFICATES;

/// Under load when unconfirmed handshakes fill this fraction (numerator,
/// denominator) of the invitation slots: WireGuard's rule (under load at
/// 1/8 of its handshake queue), applied to the slots. Then initiations must
/// carry a cookie.
pub const UNDER_LOAD_HALF_OPEN: (usize, usize) = (1, 8);

/// Under load, too, after this many initiations read (each costs one or two
/// Diffie-Hellman operations) within one second, whatever became of them:
/// about 5 ms of CPU on a PC, so junk that passes mac1 (whoever holds the
/// card can make it) cannot make a responder spend much more.
pub const UNDER_LOAD_DH_PER_SECOND: u32 = 64;

/// Cookie replies waiting to be sent at most: a flood's replies beyond
/// this are not sent (its initiators retransmit).
pub const COOKIE_REPLIES: usize = 4;

/// How many incoming legs may be unconfirmed at once: half the slots, so
/// handshakes in progress can never keep established invitations from
/// their slots, and at least one.
#[must_use]
pub const fn half_open_places(slots: usize) -> usize {
    if slots < 2 { 1 } else { slots / 2 }
}

/// Names an outgoing invitation (Windows' invitation `HANDLE`). Generation
/// checked: once closed it never names another invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(Key);

/// Names an incoming invitation. Generation checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncomingId(Key);

/// Names a contact. Generation checked: a removed contact's id never names
/// another contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactId(Key);

/// One endpoint of a contact to invite: which certificate (so which static
/// key answers) and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The endpoint, as named by its certificate.
    pub endpoint: EndpointId,
    /// Its address.
    pub address: SocketAddr,
}

/// What an invitation offers (Windows' `PEER_INVITATION`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InvitationRequest<'a> {
    /// The application to start.
    pub app_id: AppId,
    /// Shown to the invitee: at most 255 characters and 1,020 UTF-8 bytes.
    pub message: &'a str,
    /// Opaque application data, at most [`MAX_APP_DATA`] bytes.
    pub data: &'a [u8],
}

impl core::fmt::Debug for InvitationRequest<'_> {
    /// Lengths only: the message and data are the users'.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InvitationRequest")
            .field("app_id", &self.app_id)
            .field("message_len", &self.message.len())
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Whether an outgoing invitation keeps a handle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HandleMode {
    /// Return a handle: events report progress, [`Agent::response`] reads
    /// the outcome, and [`Agent::close`] must be called in the end.
    #[default]
    Keep,
    /// No handle (Windows' `phInvitation == NULL`): the invitation runs to
    /// its end and its outcome is discarded on arrival.
    Discard,
}

/// Options of an outgoing invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InviteOptions {
    /// How long the invitee may take to answer.
    pub expires_in: Duration,
    /// Handle or not.
    pub handle: HandleMode,
    /// Endpoint invitations: the identity the answerer must prove (the
    /// invitation fails with `IdentityMismatch` otherwise); `None` accepts
    /// whoever answers, whose identity the response carries.
    pub expect: Option<IdentityKey>,
}

impl Default for InviteOptions {
    fn default() -> Self {
        InviteOptions { expires_in: invite::DEFAULT_EXPIRY, handle: HandleMode::Keep, expect: None }
    }
}

impl InviteOptions {
    /// With this expiry.
    #[must_use]
    pub const fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = expires_in;
        self
    }

    /// Without a handle: the outcome is discarded.
    #[must_use]
    pub const fn discard_handle(mut self) -> Self {
        self.handle = HandleMode::Discard;
        self
    }

    /// Endpoint invitations: the answerer must prove `identity`.
    #[must_use]
    pub const fn expect(mut self, identity: IdentityKey) -> Self {
        self.expect = Some(identity);
        self
    }
}

/// The agent's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentConfig {
    /// Whom invitations are accepted from, unless an application says
    /// otherwise.
    pub policy: Policy,
    /// Longer expiries of incoming invitations are clamped to this.
    pub max_expiry: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { policy: Policy::Anyone, max_expiry: invite::DEFAULT_MAX_EXPIRY }
    }
}

impl AgentConfig {
    /// The defaults with `policy`.
    #[must_use]
    pub const fn with_policy(policy: Policy) -> Self {
        AgentConfig { policy, max_expiry: invite::DEFAULT_MAX_EXPIRY }
    }
}

/// What an agent reports. Events carry small ids; read the rest through
/// the getters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An outgoing invitation rings at (at least) one endpoint.
    Ringing(Handle),
    /// An outgoing invitation has its outcome (Windows signals the
    /// invitation's event); [`Agent::response`] has the details.
    Responded {
        /// The invitation.
        handle: Handle,
        /// Its combined outcome.
        outcome: Outcome,
    },
    /// An invitation arrived and is presented: read it with
    /// [`Agent::incoming`], answer with [`Agent::respond`].
    Invited(IncomingId),
    /// An incoming invitation ended. If it ended Accepted, its launch
    /// information stays readable ([`Agent::launch_info`]) until
    /// [`Agent::release`].
    IncomingEnded {
        /// The invitation.
        incoming: IncomingId,
        /// Its outcome.
        outcome: Outcome,
    },
    /// A contact's endpoint presented a newer certificate, which replaced
    /// the pinned one.
    ContactUpdated {
        /// The contact.
        contact: ContactId,
        /// The endpoint whose certificate changed.
        endpoint: EndpointId,
    },
}

/// A datagram to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// Its length, at the front of the caller's buffer.
    pub len: usize,
}

/// An outgoing invitation's response (Windows' `GetInvitationResponse`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status<'a> {
    /// No outcome yet (Windows' `PEER_E_INVITE_RESPONSE_NOT_AVAILABLE`).
    Pending {
        /// Whether some endpoint rings.
        ringing: bool,
    },
    /// The outcome is in.
    Answered(Response<'a>),
}

/// The outcome of an outgoing invitation and who gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response<'a> {
    /// The combined outcome.
    pub outcome: Outcome,
    /// The authenticated certificate of the endpoint whose answer decided
    /// it, if an endpoint answered.
    pub answered_by: Option<&'a Certificate>,
    /// The contact invited, or (endpoint invitations) the contact the
    /// answerer turned out to be, if any.
    pub contact: Option<ContactId>,
    /// The reason text that came with the deciding answer.
    pub reason: &'a str,
}

/// An incoming invitation, as presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncomingView<'a> {
    /// The inviter's authenticated certificate.
    pub inviter: &'a Certificate,
    /// The inviter's contact record, if it is a contact.
    pub contact: Option<ContactId>,
    /// Where the invitation came from (its latest authenticated address).
    pub address: SocketAddr,
    /// The application.
    pub app_id: AppId,
    /// The message.
    pub message: &'a str,
    /// The application data (validate it: it is the inviter's).
    pub data: &'a [u8],
    /// When it expires, on this agent's clock.
    pub expires_at: Instant,
    /// Its outcome, once ended.
    pub outcome: Option<Outcome>,
}

/// What an application launched by an accepted invitation reads (Windows'
/// `PEER_APP_LAUNCH_INFO`).
pub type LaunchInfo<'a> = IncomingView<'a>;

/// Changes to a contact; `None` leaves a field as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContactUpdate<'a> {
    /// A new display name (1 to 64 bytes).
    pub display_name: Option<&'a str>,
    /// Trusted or known.
    pub trust: Option<Trust>,
    /// Where it may be reached (at most 4 addresses).
    pub addresses: Option<&'a [SocketAddr]>,
}

impl<'a> ContactUpdate<'a> {
    /// With a new display name.
    #[must_use]
    pub const fn display_name(mut self, name: &'a str) -> Self {
        self.display_name = Some(name);
        self
    }

    /// With a new trust.
    #[must_use]
    pub const fn trust(mut self, trust: Trust) -> Self {
        self.trust = Some(trust);
        self
    }

    /// With new addresses.
    #[must_use]
    pub const fn addresses(mut self, addresses: &'a [SocketAddr]) -> Self {
        self.addresses = Some(addresses);
        self
    }
}

/// Local misuse: the command was refused and nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentError {
    /// The handle is not (or no longer) valid (Windows' `E_HANDLE`).
    UnknownHandle,
    /// The incoming invitation is not (or no longer) known.
    UnknownIncoming,
    /// The contact is not (or no longer) known.
    UnknownContact,
    /// The contact has no such endpoint.
    UnknownEndpoint,
    /// The endpoint's certificate was revoked; no newer one is known.
    RevokedEndpoint,
    /// The same endpoint is named twice.
    DuplicateEndpoint,
    /// No endpoint to invite (Windows' `E_NOTIMPL`, "pcEndpoint is NULL").
    NoTargets,
    /// More than [`MAX_TARGETS`] endpoints.
    TooManyTargets,
    /// The card is this agent's own.
    OwnIdentity,
    /// The card is another identity's than the contact's.
    WrongIdentity,
    /// The identity is already a contact (Windows'
    /// `PEER_E_ALREADY_EXISTS`).
    AlreadyExists(ContactId),
    /// The contact table is full.
    ContactsFull,
    /// The application table is full.
    ApplicationsFull,
    /// The application is not registered (Windows' `PEER_E_NOT_FOUND`).
    UnknownApplication,
    /// Every invitation slot is taken; close handles or wait.
    InvitationsFull,
    /// A name is empty, longer than 64 bytes, or holds a control or
    /// bidirectional-formatting character (the rules of contact-card
    /// names: names are shown to people).
    BadName,
    /// More than four addresses.
    TooManyAddresses,
    /// The incoming invitation was not accepted, or its launch information
    /// was released (Windows' `PEER_E_NOT_FOUND` from `GetAppLaunchInfo`).
    NoLaunchInfo,
    /// The incoming invitation is not presented (not yet, or it ended
    /// without being presented).
    NotPresented,
    /// The invitation command was refused.
    Invitation(InviteError),
    /// A key or certificate could not be used.
    Session(session::SessionError),
}

impl From<InviteError> for AgentError {
    fn from(e: InviteError) -> Self {
        AgentError::Invitation(e)
    }
}

impl core::fmt::Display for AgentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AgentError::UnknownHandle => f.write_str("unknown or closed invitation handle"),
            AgentError::UnknownIncoming => f.write_str("unknown incoming invitation"),
            AgentError::UnknownContact => f.write_str("unknown contact"),
            AgentError::UnknownEndpoint => f.write_str("the contact has no such endpoint"),
            AgentError::RevokedEndpoint => f.write_str("the endpoint's certificate is revoked"),
            AgentError::DuplicateEndpoint => f.write_str("an endpoint is named twice"),
            AgentError::NoTargets => f.write_str("no endpoint to invite"),
            AgentError::TooManyTargets => f.write_str("too many endpoints"),
            AgentError::OwnIdentity => f.write_str("that is this agent's own identity"),
            AgentError::WrongIdentity => f.write_str("the card is another identity's"),
            AgentError::AlreadyExists(_) => f.write_str("already a contact"),
            AgentError::ContactsFull => f.write_str("the contact table is full"),
            AgentError::ApplicationsFull => f.write_str("the application table is full"),
            AgentError::UnknownApplication => f.write_str("application not registered"),
            AgentError::InvitationsFull => f.write_str("every invitation slot is taken"),
            AgentError::BadName => f.write_str("name empty or too long"),
            AgentError::TooManyAddresses => f.write_str("too many addresses"),
            AgentError::NoLaunchInfo => f.write_str("no launch information"),
            AgentError::NotPresented => f.write_str("the invitation is not presented"),
            AgentError::Invitation(e) => write!(f, "{e}"),
            AgentError::Session(e) => write!(f, "session: {e:?}"),
        }
    }
}

impl core::error::Error for AgentError {}

/// Why a datagram was dropped. Nothing changed but the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dropped {
    /// It does not parse.
    Malformed(WireError),
    /// Its receiver index names no live session.
    UnknownIndex,
    /// A new initiation, but every invitation slot is taken.
    Full,
    /// Policy: the sender is answered with silence (see the policy table).
    NotAdmitted,
    /// The sender's certificate is revoked or older than the one pinned.
    Revoked,
    /// An initiation accepted before (its ephemeral key is remembered),
    /// replayed: dropped before any Diffie-Hellman.
    ReplayedInitiation,
    /// An initiation from a source whose rate limit is spent
    /// ([`guard::RATE_PER_SECOND`], [`guard::RATE_BURST`]).
    RateLimited,
    /// Under load, an initiation without a valid mac2: answered with a
    /// cookie reply instead, leaving no state.
    CookieRequired,
    /// An initiation carrying the ephemeral key of one of this agent's own
    /// outgoing initiations: its own frame, reflected back to it.
    Reflected,
    /// The session layer dropped it.
    Session(session::Dropped),
    /// An initiation that read well but cannot be answered (an XX
    /// initiator's low-order ephemeral key shows only here).
    Unanswerable(session::SessionError),
    /// The invitation layer dropped it.
    Invitation(invite::Dropped),
}

/// Counters for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentStats {
    /// Datagrams handed to [`Agent::handle_datagram`].
    pub received: u64,
    /// Datagrams returned by [`Agent::poll_transmit`].
    pub sent: u64,
    /// Datagrams dropped, all reasons.
    pub dropped: u64,
    /// Of those, initiations turned away by policy or revocation.
    pub not_admitted: u64,
    /// Of those, initiations dropped because every slot was taken.
    pub full: u64,
    /// Sessions moved to a new address by an authenticated datagram.
    pub roamed: u64,
    /// Of the dropped, datagrams that do not parse.
    pub malformed: u64,
    /// Of the dropped, datagrams naming no live session.
    pub unknown_index: u64,
    /// Of the dropped, initiations whose mac1 is wrong (scanners, junk).
    pub bad_mac: u64,
    /// Of the dropped, replayed initiations.
    pub replayed_initiations: u64,
    /// Of the dropped, initiations over their source's rate limit.
    pub rate_limited: u64,
    /// Cookie replies sent (each for an initiation dropped under load).
    pub cookie_replies: u64,
    /// Unconfirmed handshakes evicted to make room for new ones.
    pub evicted_half_open: u64,
}

/// The parts of an agent an incoming invitation is screened against.
struct Screening<'a, const C: usize, const A: usize, const R: usize> {
    local: &'a LocalIdentity,
    contacts: &'a Slab<Contact, C>,
    apps: &'a heapless::Vec<Application, A>,
    policy: Policy,
    recent: &'a mut heapless::Vec<(InviteId, Instant), R>,
    now: Instant,
    remember_for: Duration,
}

impl<const C: usize, const A: usize, const R: usize> Screening<'_, C, A, R> {
    /// Checks 1 to 3 of agent.md §4.2 as things are now: revocation, the
    /// policy in force for `app`, its registration.
    fn admits(&self, peer: &Certificate, app: AppId) -> Admission {
        let (sender, _, check) = classify(self.local, self.contacts, peer);
        if check == CertCheck::Revoked && enabled(Defence::Revocation) {
            return Admission::NotAccepted;
        }
        let registered = self.apps.iter().find(|a| a.id == app);
        let effective = registered.and_then(|a| a.policy).unwrap_or(self.policy);
        policy::screen(sender, effective, registered.is_some())
    }
}

impl<const C: usize, const A: usize, const R: usize> Screen for Screening<'_, C, A, R> {
    fn screen(&mut self, peer: &Certificate, app: AppId, id: InviteId) -> Admission {
        let verdict = self.admits(peer, app);
        if verdict != Admission::Present {
            return verdict;
        }
        // Remembered ids: an invitation is presented at most once. The
        // table forgets an id only after its invitation expired.
        let now = self.now;
        self.recent.retain(|(_, until)| *until > now);
        if enabled(Defence::RememberedIds) && self.recent.iter().any(|(seen, _)| seen == &id) {
            return Admission::Duplicate;
        }
        match self.recent.push((id, now + self.remember_for)) {
            Ok(()) => Admission::Present,
            Err(_) => {
                let free_at = self.recent.iter().map(|(_, t)| *t).min().unwrap_or(now);
                Admission::Busy { retry_after: free_at.saturating_duration_since(now) }
            }
        }
    }

    fn confirm(&mut self, peer: &Certificate, app: AppId, _id: InviteId) -> Admission {
        self.admits(peer, app)
    }
}

/// Who `cert` is to this agent: its sender class, its contact and how the
/// certificate compares with the pinned one. This agent's own identity (its
/// other endpoints: Windows lets a peer invite its own endpoints) counts as
/// trusted.
fn classify<const C: usize>(
    local: &LocalIdentity,
    contacts: &Slab<Contact, C>,
    cert: &Certificate,
) -> (Sender, Option<ContactId>, CertCheck) {
    if cert.identity() == &local.identity() {
        return (Sender::Trusted, None, CertCheck::Current);
    }
    match contacts.iter().find(|(_, c)| c.identity() == cert.identity()) {
        Some((key, c)) => (c.sender(), Some(ContactId(key)), c.check(cert)),
        None => (Sender::Stranger, None, CertCheck::Current),
    }
}

/// The contacts as a responder's directory of pinned static keys.
struct Directory<'a, const C: usize>(&'a Slab<Contact, C>);

impl<const C: usize> PeerDirectory for Directory<'_, C> {
    fn by_static_key(&self, static_key: &[u8; DH_LEN]) -> Option<&PinnedPeer> {
        self.0.iter().find_map(|(_, c)| c.by_static_key(static_key))
    }
}

/// Pending events of a slot, as bits.
mod pending {
    pub(super) const RINGING: u8 = 1 << 0;
    pub(super) const RESPONDED: u8 = 1 << 1;
    pub(super) const INVITED: u8 = 1 << 2;
    pub(super) const ENDED: u8 = 1 << 3;
}

/// What an incoming leg holds besides its invitation.
struct IncomingLeg {
    contact: Option<ContactId>,
    /// The body of an accepted invitation, until released.
    launch: Option<Body>,
    /// The inviter's certificate, kept for the launch information.
    inviter: Option<Certificate>,
    /// Its ephemeral key, the key of `Agent::initiations`.
    ephemeral: [u8; DH_LEN],
    /// It was presented (and so reported).
    presented: bool,
    /// Its launch information was released.
    released: bool,
    /// Its handshake is not confirmed yet (counted in `Agent::half_open`).
    half_open: bool,
    /// When its initiation was accepted (the oldest half-open is evicted
    /// first).
    opened: Instant,
}

// Without a heap there is nothing to box; a leg is dominated by its
// invitation (over 2 KiB) either way.
#[allow(clippy::large_enum_variant)]
enum LegRole {
    Outgoing { request: Key },
    Incoming(IncomingLeg),
}

/// One invitation over one session: a leg of an outgoing request, or an
/// incoming invitation.
struct Leg {
    invitation: Invitation,
    remote: SocketAddr,
    role: LegRole,
    /// Events not yet polled (incoming legs).
    pending: u8,
    /// The peer's certificate was checked against the contacts.
    identity_checked: bool,
    /// Outgoing: withdrawn because the answerer's certificate is revoked.
    revoked: bool,
}

/// How a request's handle stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandleState {
    Open,
    /// Closed or never given: no events, outcome discarded.
    Gone,
}

/// An outgoing invitation: one leg per endpoint.
struct Request {
    legs: heapless::Vec<(Key, Option<Outcome>), MAX_TARGETS>,
    contact: Option<ContactId>,
    outcome: Option<Outcome>,
    answered_by: Option<Certificate>,
    answered_contact: Option<ContactId>,
    reason: heapless::String<MAX_REASON_BYTES>,
    ringing: bool,
    cancelled: bool,
    handle: HandleState,
    pending: u8,
}

/// One peer's agent. Capacities are const generics: `CONTACTS` contacts,
/// `APPS` registered applications (Windows allows 64), `INVITATIONS`
/// invitation slots (each outgoing endpoint and each incoming invitation
/// takes one; outgoing handles have a table of the same size), `BUFFERS`
/// body buffers of 17,404 bytes shared by all invitations (one per
/// invitation with a non-empty message or data, while it needs it), and
/// `RECENT` remembered invitation ids. The defaults: 32 contacts, 64
/// applications, 16 invitation slots, 4 buffers (so a contact invitation
/// with a message can reach all four endpoints a card names), 128 ids.
/// Nothing grows; a full table is a typed error or a defined protocol
/// answer (Busy).
///
/// # The contract
/// - **Inputs**: [`handle_datagram`](Self::handle_datagram) for every
///   datagram received, with its source address;
///   [`handle_timeout`](Self::handle_timeout) when the deadline from
///   [`poll_timeout`](Self::poll_timeout) has come (early calls are
///   harmless).
/// - **Commands** return at once. Local misuse returns an [`AgentError`]
///   and changes nothing; a command's effects (datagrams, events) are
///   pulled like those of an input. Outgoing: [`invite_contact`](Self::invite_contact),
///   [`invite_endpoint`](Self::invite_endpoint), [`response`](Self::response),
///   [`cancel`](Self::cancel), [`close`](Self::close). Incoming:
///   [`incoming`](Self::incoming), [`respond`](Self::respond),
///   [`launch_info`](Self::launch_info), [`release`](Self::release).
///   Contacts, applications and policy: [`add_contact`](Self::add_contact)
///   and its siblings, [`register_application`](Self::register_application)
///   and its siblings, [`set_policy`](Self::set_policy).
/// - **Outputs**, drained after every input or command, in this order:
///   [`poll_transmit`](Self::poll_transmit) until `None` (each call writes
///   one datagram into the caller's buffer and names its destination), then
///   [`poll_event`](Self::poll_event) until `None`, then
///   [`poll_timeout`](Self::poll_timeout) for the next deadline.
/// - **Time** is the caller's monotonic [`Instant`]; a `now` earlier than
///   one already seen counts as the latest seen (nothing panics, nothing
///   runs backwards).
/// - **Entropy** comes from the seed given to [`new`](Self::new): session
///   indices, ephemeral keys, invitation ids and jitter are all drawn from
///   it, so a seed reproduces a run byte for byte.
/// - **Routing** is by index, never by scanning sessions: a datagram's
///   receiver index names its slot directly (its low 16 bits are the slot,
///   the rest random, checked in full); a repeated initiation is found by
///   its ephemeral key in a sorted table; deadlines sit in an indexed heap.
///   Contacts and applications are searched only when a new invitation
///   arrives or a command names them.
/// - **Roaming**: an authenticated transport datagram, or the handshake
///   response, from a new address moves that session there.
/// - Nothing received can make it panic, allocate or grow.
///
/// # Outgoing invitations
/// [`invite_contact`](Self::invite_contact) runs IK to one or several
/// endpoints of a contact at once; [`invite_endpoint`](Self::invite_endpoint)
/// runs XX to an address. The combined outcome of a handle is decided by
/// the first of:
/// 1. an endpoint's Accept, confirmed by our Ack: **Accepted**; every other
///    endpoint is cancelled at once with "answered elsewhere" (a Cancel
///    overrides an Accept not yet acknowledged, so exactly one endpoint ends
///    Accepted);
/// 2. [`cancel`](Self::cancel) (or [`remove_contact`](Self::remove_contact)):
///    **Cancelled** (by user);
/// 3. every endpoint ended: the first present of Declined, Busy (the
///    shortest retry-after), Expired, NotAccepted, NotRegistered, Failed,
///    Cancelled, Unreachable — what the user most needs to know first, like
///    .NET's "Declined, else Expired, else error".
///
/// Closing a handle before its outcome cancels the invitation first; an
/// invitation started with [`HandleMode::Discard`] runs to its end and its
/// outcome is discarded.
///
/// # Incoming invitations
/// Policy decides at the first handshake message whether to answer at all,
/// then at the Invite whether to present it (`spec/policy-table.md`, the policy
/// table). A presented invitation is reported by [`Event::Invited`] and
/// answered with [`respond`](Self::respond). An accepted invitation's launch
/// information (inviter, contact, address, application, message, data)
/// stays readable until [`release`](Self::release), and keeps its slot (and
/// its body buffer) until then.
pub struct Agent<
    const CONTACTS: usize = 32,
    const APPS: usize = 64,
    const INVITATIONS: usize = 16,
    const BUFFERS: usize = 4,
    const RECENT: usize = 128,
> {
    local: LocalIdentity,
    config: AgentConfig,
    contacts: Slab<Contact, CONTACTS>,
    apps: heapless::Vec<Application, APPS>,
    legs: Slab<Leg, INVITATIONS>,
    requests: Slab<Request, INVITATIONS>,
    /// Responder legs by the initiation's ephemeral key, sorted.
    initiations: heapless::Vec<([u8; DH_LEN], u16), INVITATIONS>,
    recent: heapless::Vec<(InviteId, Instant), RECENT>,
    /// Replay cache, rate limit, cookies.
    guard: Guard<RECENT>,
    /// Incoming legs whose handshake is not confirmed yet.
    half_open: usize,
    /// Initiations read (Diffie-Hellman done) in the current second, and
    /// when that second began.
    dh_window: (Instant, u32),
    /// Cookie replies waiting to be sent.
    cookie_replies: Deque<(SocketAddr, [u8; COOKIE_REPLY_LEN]), COOKIE_REPLIES>,
    timers: TimerHeap<INVITATIONS>,
    /// Legs that may have datagrams to send; `tx_queued` marks membership.
    tx_ready: Deque<u16, INVITATIONS>,
    tx_queued: [bool; INVITATIONS],
    leg_events: Deque<u16, INVITATIONS>,
    leg_queued: [bool; INVITATIONS],
    request_events: Deque<u16, INVITATIONS>,
    request_queued: [bool; INVITATIONS],
    /// Contacts with updated endpoints to report, as endpoint bitmaps.
    contact_events: Deque<u16, CONTACTS>,
    contact_queued: [bool; CONTACTS],
    contact_updates: [u8; CONTACTS],
    pool: DataPool<BUFFERS>,
    rng: HashDrbg,
    last_now: Instant,
    stats: AgentStats,
}

impl<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>
    core::fmt::Debug for Agent<C, A, I, B, R>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Agent")
            .field("identity", &self.local.identity())
            .field("policy", &self.config.policy)
            .field("contacts", &self.contacts.len())
            .field("applications", &self.apps.len())
            .field("invitations", &self.legs.len())
            .field("handles", &self.requests.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn index_of(local_index: u32) -> u16 {
    (local_index & 0xFFFF) as u16
}

/// The combined outcome of legs that all ended without an Accept.
fn combine(outcomes: impl Iterator<Item = Outcome> + Clone) -> Outcome {
    let rank = |o: &Outcome| match o {
        Outcome::Accepted => 0,
        Outcome::Declined => 1,
        Outcome::Busy { .. } => 2,
        Outcome::Expired => 3,
        Outcome::NotAccepted => 4,
        Outcome::NotRegistered => 5,
        Outcome::Failed(_) => 6,
        Outcome::Cancelled(_) => 7,
        _ => 8,
    };
    let best = outcomes.clone().min_by_key(rank).unwrap_or(Outcome::Unreachable);
    match best {
        Outcome::Busy { .. } => {
            let shortest = outcomes
                .filter_map(|o| match o {
                    Outcome::Busy { retry_after } => Some(retry_after),
                    _ => None,
                })
                .min()
                .unwrap_or(Duration::ZERO);
            Outcome::Busy { retry_after: shortest }
        }
        other => other,
    }
}

impl<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>
    Agent<C, A, I, B, R>
{
    /// An agent for `local`, drawing all its randomness from `seed`.
    #[must_use]
    pub fn new(local: LocalIdentity, config: AgentConfig, seed: [u8; 32]) -> Self {
        Agent {
            local,
            config,
            contacts: Slab::new(),
            apps: heapless::Vec::new(),
            legs: Slab::new(),
            requests: Slab::new(),
            initiations: heapless::Vec::new(),
            recent: heapless::Vec::new(),
            guard: Guard::new(),
            half_open: 0,
            dh_window: (Instant::ZERO, 0),
            cookie_replies: Deque::new(),
            timers: TimerHeap::new(),
            tx_ready: Deque::new(),
            tx_queued: [false; I],
            leg_events: Deque::new(),
            leg_queued: [false; I],
            request_events: Deque::new(),
            request_queued: [false; I],
            contact_events: Deque::new(),
            contact_queued: [false; C],
            contact_updates: [0; C],
            pool: DataPool::new(),
            rng: HashDrbg::new(seed),
            last_now: Instant::ZERO,
            stats: AgentStats::default(),
        }
    }

    // ----- identity, policy, applications -----------------------------------

    /// This agent's identity.
    #[must_use]
    pub fn identity(&self) -> &LocalIdentity {
        &self.local
    }

    /// "Me" as a contact card, with `display_name` and the addresses where
    /// this agent may be reached (Windows' `PeerCollabExportContact(NULL)`).
    pub fn my_card(
        &self,
        display_name: &str,
        addresses: &[SocketAddr],
    ) -> Result<ContactCard, CardError> {
        ContactCard::issue(
            self.local.secret(),
            display_name,
            core::slice::from_ref(self.local.certificate()),
            addresses,
        )
    }

    /// The global policy.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.config.policy
    }

    /// Sets the global policy. It applies to every first handshake message
    /// and every Invite screened from now on (an invitation whose handshake
    /// was answered under the old policy is judged under the new one when
    /// its Invite arrives); presented invitations stay presented.
    pub fn set_policy(&mut self, policy: Policy) {
        self.config.policy = policy;
    }

    /// Registers an application (or replaces its registration): invitations
    /// to it are presented, subject to `policy` (the global policy if
    /// `None`).
    pub fn register_application(
        &mut self,
        id: AppId,
        name: &str,
        policy: Option<Policy>,
    ) -> Result<(), AgentError> {
        let name = crate::card::check_name(name.as_bytes()).map_err(|_| AgentError::BadName)?;
        let app = Application { id, name, policy };
        match self.apps.iter_mut().find(|a| a.id == id) {
            Some(existing) => *existing = app,
            None => self.apps.push(app).map_err(|_| AgentError::ApplicationsFull)?,
        }
        Ok(())
    }

    /// Unregisters an application. Invitations to it already presented are
    /// unaffected; later ones, and those whose fragments are still
    /// arriving, are answered NotRegistered (an invitation is screened
    /// again just before it is presented).
    pub fn unregister_application(&mut self, id: AppId) -> Result<(), AgentError> {
        let at = self.apps.iter().position(|a| a.id == id).ok_or(AgentError::UnknownApplication)?;
        self.apps.remove(at);
        Ok(())
    }

    /// A registered application.
    #[must_use]
    pub fn application(&self, id: AppId) -> Option<&Application> {
        self.apps.iter().find(|a| a.id == id)
    }

    /// Every registered application, in registration order.
    pub fn applications(&self) -> impl Iterator<Item = &Application> {
        self.apps.iter()
    }

    // ----- contacts --------------------------------------------------------

    /// Adds the identity of `card` as a contact (Windows'
    /// `PeerCollabAddContact`). Its certificates are pinned; its addresses
    /// are where it may be reached.
    pub fn add_contact(
        &mut self,
        card: &ContactCard,
        trust: Trust,
    ) -> Result<ContactId, AgentError> {
        if card.identity() == &self.local.identity() {
            return Err(AgentError::OwnIdentity);
        }
        if let Some(id) = self.contact_by_identity(card.identity()) {
            return Err(AgentError::AlreadyExists(id));
        }
        if self.contacts.is_full() {
            return Err(AgentError::ContactsFull);
        }
        let contact = Contact::from_card(&self.local, card, trust)
            .map_err(|e| AgentError::Session(e.into()))?;
        self.contacts.insert(contact).map(ContactId).map_err(|_| AgentError::ContactsFull)
    }

    /// A contact.
    pub fn contact(&self, id: ContactId) -> Result<&Contact, AgentError> {
        self.contacts.get(id.0).ok_or(AgentError::UnknownContact)
    }

    /// The contact with this identity.
    #[must_use]
    pub fn contact_by_identity(&self, identity: &IdentityKey) -> Option<ContactId> {
        self.contacts.iter().find(|(_, c)| c.identity() == identity).map(|(k, _)| ContactId(k))
    }

    /// Every contact.
    pub fn contacts(&self) -> impl Iterator<Item = (ContactId, &Contact)> {
        self.contacts.iter().map(|(k, c)| (ContactId(k), c))
    }

    /// Changes a contact's display name, trust or addresses (all checked
    /// first: on error nothing changes). Trust applies to every check from
    /// now on (the first handshake message, the Invite); presented
    /// invitations stay presented.
    pub fn update_contact(
        &mut self,
        id: ContactId,
        update: ContactUpdate<'_>,
    ) -> Result<(), AgentError> {
        let contact = self.contacts.get_mut(id.0).ok_or(AgentError::UnknownContact)?;
        if let Some(name) = update.display_name
            && crate::card::check_name(name.as_bytes()).is_err()
        {
            return Err(AgentError::BadName);
        }
        if update.addresses.is_some_and(|a| a.len() > MAX_ADDRESSES) {
            return Err(AgentError::TooManyAddresses);
        }
        if let Some(name) = update.display_name {
            let _ = contact.set_name(name);
        }
        if let Some(addresses) = update.addresses {
            let _ = contact.set_addresses(addresses);
        }
        if let Some(trust) = update.trust {
            contact.set_trust(trust);
        }
        Ok(())
    }

    /// Takes the certificates of a newer card of a contact: each that
    /// supersedes the pinned one of its endpoint (or names a new endpoint,
    /// while the card's four fit) is pinned; older ones, and those of a
    /// revoked endpoint up to its revoked serial, are ignored. The name,
    /// trust and addresses stay as they are ([`update_contact`](Self::update_contact)
    /// changes them). Returns how many certificates were pinned.
    pub fn refresh_contact(
        &mut self,
        id: ContactId,
        card: &ContactCard,
    ) -> Result<usize, AgentError> {
        let contact = self.contacts.get_mut(id.0).ok_or(AgentError::UnknownContact)?;
        if card.identity() != contact.identity() {
            return Err(AgentError::WrongIdentity);
        }
        let mut pinned = 0;
        for cert in card.certificates() {
            if contact.check(cert) == CertCheck::Newer && contact.pin(&self.local, *cert).is_ok() {
                pinned += 1;
            }
        }
        Ok(pinned)
    }

    /// Revokes the certificate pinned for one endpoint of a contact (a lost
    /// device): it, and every certificate of that endpoint up to its
    /// serial, are refused from now on, in both directions; a newer one
    /// (from a new card, or presented in-band) is accepted.
    pub fn revoke_endpoint(
        &mut self,
        id: ContactId,
        endpoint: EndpointId,
    ) -> Result<(), AgentError> {
        let contact = self.contacts.get_mut(id.0).ok_or(AgentError::UnknownContact)?;
        if contact.revoke(endpoint) { Ok(()) } else { Err(AgentError::UnknownEndpoint) }
    }

    /// Removes a contact (Windows' `PeerCollabDeleteContact`). Outgoing
    /// invitations to it are cancelled (outcome Cancelled by user); incoming
    /// invitations from it go on, as from a stranger — their `contact`
    /// becomes `None`, and one not yet presented is presented only if the
    /// policy accepts strangers. Its id never names a contact again.
    pub fn remove_contact(&mut self, now: Instant, id: ContactId) -> Result<(), AgentError> {
        self.contacts.get(id.0).ok_or(AgentError::UnknownContact)?;
        let now = self.clock(now);
        let mut to_cancel: heapless::Vec<Key, I> = heapless::Vec::new();
        for (key, r) in self.requests.iter() {
            if r.contact == Some(id) && r.outcome.is_none() {
                let _ = to_cancel.push(key);
            }
        }
        for key in to_cancel {
            self.cancel_request(now, key);
        }
        self.contacts.remove(id.0);
        self.contact_updates[usize::from(id.0.index)] = 0;
        Ok(())
    }

    // ----- outgoing invitations --------------------------------------------

    fn check_request(
        &self,
        invitation: &InvitationRequest<'_>,
        options: &InviteOptions,
        legs: usize,
    ) -> Result<(), AgentError> {
        invite::message::validate_message(invitation.message.as_bytes())
            .map_err(|e| AgentError::Invitation(InviteError::BadMessage(e)))?;
        if invitation.data.len() > MAX_APP_DATA {
            return Err(InviteError::DataTooLarge.into());
        }
        if options.expires_in > MAX_EXPIRY_ON_WIRE {
            return Err(InviteError::DurationTooLong.into());
        }
        if self.requests.is_full() || self.legs.vacancies() < legs {
            return Err(AgentError::InvitationsFull);
        }
        let body = invitation.message.len() + invitation.data.len();
        if body > 0 && self.pool.free() < legs {
            return Err(InviteError::PoolFull.into());
        }
        Ok(())
    }

    /// Invites a contact at one or several of its endpoints at once, over IK
    /// (Windows' `PeerCollabInviteContact` / `AsyncInviteContact`, with
    /// fan-out built in). Only the pinned endpoint can answer. See the
    /// [type documentation](Self) for the combined outcome.
    pub fn invite_contact(
        &mut self,
        now: Instant,
        contact: ContactId,
        targets: &[Target],
        invitation: &InvitationRequest<'_>,
        options: InviteOptions,
    ) -> Result<Option<Handle>, AgentError> {
        let record = self.contacts.get(contact.0).ok_or(AgentError::UnknownContact)?;
        if targets.is_empty() {
            return Err(AgentError::NoTargets);
        }
        if targets.len() > MAX_TARGETS {
            return Err(AgentError::TooManyTargets);
        }
        let mut peers: heapless::Vec<PinnedPeer, MAX_TARGETS> = heapless::Vec::new();
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|o| o.endpoint == t.endpoint) {
                return Err(AgentError::DuplicateEndpoint);
            }
            if !record.endpoints().any(|e| e == t.endpoint) {
                return Err(AgentError::UnknownEndpoint);
            }
            let pinned = record.pinned(t.endpoint).ok_or(AgentError::RevokedEndpoint)?;
            let _ = peers.push(pinned.clone());
        }
        self.check_request(invitation, &options, targets.len())?;
        let now = self.clock(now);
        let mut sessions: heapless::Vec<(Session, SocketAddr), MAX_TARGETS> = heapless::Vec::new();
        for (i, (t, peer)) in targets.iter().zip(&peers).enumerate() {
            let index = self.fresh_index(i);
            let session = Session::initiate_contact(
                &self.local,
                peer,
                index,
                StatementForm::Certificate,
                now,
                &mut self.rng,
            )
            .map_err(AgentError::Session)?;
            let _ = sessions.push((session, t.address));
        }
        self.start_request(now, Some(contact), sessions, invitation, &options)
    }

    /// Invites whoever answers at `address`, over XX (Windows'
    /// `PeerCollabInviteEndpoint` / `AsyncInviteEndpoint`). The answerer's
    /// identity is authenticated and carried by the [`Response`]; with
    /// [`InviteOptions::expect`] only that identity may answer.
    pub fn invite_endpoint(
        &mut self,
        now: Instant,
        address: SocketAddr,
        invitation: &InvitationRequest<'_>,
        options: InviteOptions,
    ) -> Result<Option<Handle>, AgentError> {
        self.check_request(invitation, &options, 1)?;
        let now = self.clock(now);
        let index = self.fresh_index(0);
        let session =
            Session::initiate_endpoint(&self.local, options.expect, index, now, &mut self.rng)
                .map_err(AgentError::Session)?;
        let mut sessions = heapless::Vec::new();
        let _ = sessions.push((session, address));
        let contact = options.expect.and_then(|id| self.contact_by_identity(&id));
        self.start_request(now, contact, sessions, invitation, &options)
    }

    /// A session index for the `nth` leg about to be inserted: the slot in
    /// the low 16 bits, random above.
    fn fresh_index(&mut self, nth: usize) -> u32 {
        let slot = self.legs.nth_next_key(nth).map_or(0, |k| k.index);
        (self.rng.next_u32() & 0xFFFF_0000) | u32::from(slot)
    }

    fn start_request(
        &mut self,
        now: Instant,
        contact: Option<ContactId>,
        sessions: heapless::Vec<(Session, SocketAddr), MAX_TARGETS>,
        invitation: &InvitationRequest<'_>,
        options: &InviteOptions,
    ) -> Result<Option<Handle>, AgentError> {
        let request_key = self.requests.next_key().ok_or(AgentError::InvitationsFull)?;
        let mut legs: heapless::Vec<(Key, Option<Outcome>), MAX_TARGETS> = heapless::Vec::new();
        for (session, address) in sessions {
            let offer = Offer {
                id: InviteId::random(&mut self.rng),
                app_id: invitation.app_id,
                message: invitation.message,
                data: invitation.data,
                expires_in: options.expires_in,
            };
            let expected_slot = index_of(session.local_index());
            let built = Invitation::invite(session, &offer, now, &mut self.pool);
            let leg = match built {
                Ok(inv) => Leg {
                    invitation: inv,
                    remote: address,
                    role: LegRole::Outgoing { request: request_key },
                    pending: 0,
                    identity_checked: false,
                    revoked: false,
                },
                Err(e) => {
                    self.abandon_legs(now, &legs);
                    return Err(e.into());
                }
            };
            match self.legs.insert(leg) {
                Ok(key) if key.index == expected_slot => {
                    let _ = legs.push((key, None));
                }
                Ok(key) => {
                    // Cannot happen: indices were drawn from the free slots
                    // in insertion order. Undo rather than misroute.
                    let _ = legs.push((key, None));
                    self.abandon_legs(now, &legs);
                    return Err(AgentError::InvitationsFull);
                }
                Err(mut leg) => {
                    let _ = leg.invitation.cancel(now, CancelReason::ByUser, "", &mut self.pool);
                    self.abandon_legs(now, &legs);
                    return Err(AgentError::InvitationsFull);
                }
            }
        }
        let handle = options.handle;
        let request = Request {
            legs: legs.clone(),
            contact,
            outcome: None,
            answered_by: None,
            answered_contact: contact,
            reason: heapless::String::new(),
            ringing: false,
            cancelled: false,
            handle: match handle {
                HandleMode::Keep => HandleState::Open,
                HandleMode::Discard => HandleState::Gone,
            },
            pending: 0,
        };
        let key = match self.requests.insert(request) {
            Ok(k) => k,
            Err(_) => {
                self.abandon_legs(now, &legs);
                return Err(AgentError::InvitationsFull);
            }
        };
        for (leg, _) in &legs {
            self.touch(now, leg.index);
        }
        Ok(match handle {
            HandleMode::Keep => Some(Handle(key)),
            HandleMode::Discard => None,
        })
    }

    /// Undoes legs of a request that could not be started: nothing was sent.
    fn abandon_legs(&mut self, now: Instant, legs: &[(Key, Option<Outcome>)]) {
        for (key, _) in legs {
            if let Some(mut leg) = self.legs.remove(*key) {
                let _ = leg.invitation.cancel(now, CancelReason::ByUser, "", &mut self.pool);
            }
        }
    }

    /// The response of an outgoing invitation (Windows'
    /// `PeerCollabGetInvitationResponse`): pending, or the outcome.
    pub fn response(&self, handle: Handle) -> Result<Status<'_>, AgentError> {
        let r = self.request(handle)?;
        Ok(match r.outcome {
            None => Status::Pending { ringing: r.ringing },
            Some(outcome) => Status::Answered(Response {
                outcome,
                answered_by: r.answered_by.as_ref(),
                contact: r.answered_contact.filter(|c| self.contacts.get(c.0).is_some()),
                reason: &r.reason,
            }),
        })
    }

    fn request(&self, handle: Handle) -> Result<&Request, AgentError> {
        match self.requests.get(handle.0) {
            Some(r) if r.handle == HandleState::Open => Ok(r),
            _ => Err(AgentError::UnknownHandle),
        }
    }

    /// Cancels an outgoing invitation (Windows' `PeerCollabCancelInvitation`,
    /// its three cases): not yet delivered anywhere → abandoned silently;
    /// delivered → every endpoint is told and can no longer answer, outcome
    /// Cancelled; already decided → no effect. The handle stays valid until
    /// [`close`](Self::close).
    pub fn cancel(&mut self, now: Instant, handle: Handle) -> Result<CancelEffect, AgentError> {
        let decided = self.request(handle)?.outcome.is_some();
        if decided {
            return Ok(CancelEffect::NoEffect);
        }
        let now = self.clock(now);
        Ok(self.cancel_request(now, handle.0))
    }

    fn cancel_request(&mut self, now: Instant, key: Key) -> CancelEffect {
        let Some(r) = self.requests.get_mut(key) else { return CancelEffect::NoEffect };
        r.cancelled = true;
        let legs = r.legs.clone();
        let mut withdrawing = false;
        for (leg_key, _) in &legs {
            if let Some(leg) = self.legs.get_mut(*leg_key) {
                let effect = leg.invitation.cancel(now, CancelReason::ByUser, "", &mut self.pool);
                withdrawing |= effect == Ok(CancelEffect::Withdrawing);
            }
        }
        self.decide(key, Outcome::Cancelled(CancelReason::ByUser), None);
        for (leg_key, _) in &legs {
            self.touch(now, leg_key.index);
        }
        if withdrawing { CancelEffect::Withdrawing } else { CancelEffect::Abandoned }
    }

    /// Closes a handle (Windows' `PeerCollabCloseHandle`). Before the outcome
    /// this cancels the invitation first; either way no event names the
    /// handle afterwards and it is invalid at once.
    pub fn close(&mut self, now: Instant, handle: Handle) -> Result<(), AgentError> {
        let decided = self.request(handle)?.outcome.is_some();
        let now = self.clock(now);
        if !decided {
            self.cancel_request(now, handle.0);
        }
        if let Some(r) = self.requests.get_mut(handle.0) {
            r.handle = HandleState::Gone;
            r.pending = 0;
        }
        self.try_free_request(handle.0);
        Ok(())
    }

    // ----- incoming invitations --------------------------------------------

    fn incoming_leg(&self, id: IncomingId) -> Result<(&Leg, &IncomingLeg), AgentError> {
        match self.legs.get(id.0) {
            Some(leg) => match &leg.role {
                // Released: the application is done with it, and its id
                // names nothing any more (the invitation may still be
                // lingering to answer duplicates).
                LegRole::Incoming(inc) if inc.released => Err(AgentError::UnknownIncoming),
                LegRole::Incoming(inc) => Ok((leg, inc)),
                LegRole::Outgoing { .. } => Err(AgentError::UnknownIncoming),
            },
            None => Err(AgentError::UnknownIncoming),
        }
    }

    /// A presented incoming invitation: who, from where, for what.
    pub fn incoming(&self, id: IncomingId) -> Result<IncomingView<'_>, AgentError> {
        let (leg, inc) = self.incoming_leg(id)?;
        let inviter = inc.inviter.as_ref().ok_or(AgentError::NotPresented)?;
        let (message, data) = match &inc.launch {
            Some(body) => (body.message(&self.pool), body.data(&self.pool)),
            None => (leg.invitation.message(&self.pool), leg.invitation.data(&self.pool)),
        };
        let (Some(message), Some(data)) = (message, data) else {
            return Err(AgentError::NotPresented);
        };
        Ok(IncomingView {
            inviter,
            contact: inc.contact.filter(|c| self.contacts.get(c.0).is_some()),
            address: leg.remote,
            app_id: leg.invitation.app_id(),
            message,
            data,
            expires_at: leg.invitation.expires_at(),
            outcome: leg.invitation.outcome(),
        })
    }

    /// Answers a presented invitation. The outcome follows once the inviter
    /// acknowledges ([`Event::IncomingEnded`]).
    pub fn respond(
        &mut self,
        now: Instant,
        id: IncomingId,
        answer: Answer,
        reason: &str,
    ) -> Result<(), AgentError> {
        self.incoming_leg(id)?;
        // The clock moves only if the command has an effect.
        let now = now.max(self.last_now);
        let leg = self.legs.get_mut(id.0).ok_or(AgentError::UnknownIncoming)?;
        let answered = leg.invitation.respond(now, answer, reason);
        // Refused at the expiry, the invitation expired instead: its
        // Final(Expired) is this command's effect. Any other refusal
        // changed nothing.
        if matches!(answered, Ok(()) | Err(InviteError::Ended)) {
            self.clock(now);
            self.touch(now, id.0.index);
        }
        Ok(answered?)
    }

    /// The launch information of an accepted invitation (Windows'
    /// `PeerCollabGetAppLaunchInfo`), until [`release`](Self::release).
    pub fn launch_info(&self, id: IncomingId) -> Result<LaunchInfo<'_>, AgentError> {
        let (_, inc) = self.incoming_leg(id)?;
        if inc.launch.is_none() {
            return Err(AgentError::NoLaunchInfo);
        }
        self.incoming(id)
    }

    /// Releases an accepted invitation's launch information: its buffer is
    /// freed at once, its slot once the invitation has finished lingering;
    /// the id names nothing from now on (`UnknownIncoming`).
    pub fn release(&mut self, id: IncomingId) -> Result<(), AgentError> {
        let (_, inc) = self.incoming_leg(id)?;
        if inc.launch.is_none() {
            return Err(AgentError::NoLaunchInfo);
        }
        if let Some(leg) = self.legs.get_mut(id.0)
            && let LegRole::Incoming(inc) = &mut leg.role
            && let Some(body) = inc.launch.take()
        {
            inc.released = true;
            body.release(&mut self.pool);
        }
        self.try_free_leg(id.0.index);
        Ok(())
    }

    // ----- inputs -----------------------------------------------------------

    /// Handles one datagram from `from`. Errors mean it was dropped (and
    /// counted); nothing else changed.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), Dropped> {
        let now = self.clock(now);
        self.stats.received = self.stats.received.saturating_add(1);
        let result = self.dispatch(now, from, datagram);
        if let Err(d) = result {
            self.stats.dropped = self.stats.dropped.saturating_add(1);
            match d {
                Dropped::NotAdmitted | Dropped::Revoked => {
                    self.stats.not_admitted = self.stats.not_admitted.saturating_add(1);
                }
                Dropped::Full => self.stats.full = self.stats.full.saturating_add(1),
                Dropped::Malformed(_) => {
                    self.stats.malformed = self.stats.malformed.saturating_add(1);
                }
                Dropped::UnknownIndex => {
                    self.stats.unknown_index = self.stats.unknown_index.saturating_add(1);
                }
                Dropped::Session(session::Dropped::BadMac) => {
                    self.stats.bad_mac = self.stats.bad_mac.saturating_add(1);
                }
                Dropped::ReplayedInitiation => {
                    self.stats.replayed_initiations =
                        self.stats.replayed_initiations.saturating_add(1);
                }
                Dropped::RateLimited => {
                    self.stats.rate_limited = self.stats.rate_limited.saturating_add(1);
                }
                _ => {}
            }
        }
        result
    }

    fn dispatch(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> Result<(), Dropped> {
        let frame = Frame::parse(datagram).map_err(Dropped::Malformed)?;
        let (receiver, roams) = match frame {
            Frame::Initiation(f) => {
                let ephemeral: [u8; DH_LEN] = f
                    .noise
                    .get(..DH_LEN)
                    .and_then(|e| e.try_into().ok())
                    .ok_or(Dropped::Malformed(WireError::TooShort))?;
                return match self.initiations.binary_search_by(|(e, _)| e.cmp(&ephemeral)) {
                    Ok(at) => {
                        let slot = self.initiations[at].1;
                        self.deliver(now, from, slot, datagram, false)
                    }
                    Err(_) => self.on_initiation(now, from, &f, ephemeral, datagram),
                };
            }
            Frame::Response(f) => (f.receiver_index, true),
            Frame::HandshakeFinal(f) => (f.receiver_index, false),
            Frame::CookieReply(f) => (f.receiver_index, false),
            Frame::Transport(f) => (f.receiver_index, true),
        };
        let slot = index_of(receiver);
        match self.legs.at(slot) {
            Some((_, leg)) if leg.invitation.session().local_index() == receiver => {}
            _ => return Err(Dropped::UnknownIndex),
        }
        self.deliver(now, from, slot, datagram, roams)
    }

    fn deliver(
        &mut self,
        now: Instant,
        from: SocketAddr,
        slot: u16,
        datagram: &[u8],
        roams: bool,
    ) -> Result<(), Dropped> {
        let Agent { local, contacts, apps, legs, recent, pool, rng, config, .. } = self;
        let Some((_, leg)) = legs.at_mut(slot) else { return Err(Dropped::UnknownIndex) };
        let mut screening = Screening {
            local,
            contacts,
            apps,
            policy: config.policy,
            recent,
            now,
            remember_for: config.max_expiry.saturating_add(EXPIRY_GRACE),
        };
        let result = leg.invitation.handle_datagram(now, datagram, pool, &mut screening, rng);
        if result.is_ok() && roams && leg.remote != from {
            leg.remote = from;
            self.stats.roamed = self.stats.roamed.saturating_add(1);
        }
        self.touch(now, slot);
        result.map_err(|d| match d {
            invite::Dropped::Session(s) => Dropped::Session(s),
            d => Dropped::Invitation(d),
        })
    }

    /// Whether any policy in force accepts `sender`, and whether any is not
    /// Nobody.
    fn policy_reach(&self, sender: Sender) -> (bool, bool) {
        let overrides = self.apps.iter().filter_map(|a| a.policy);
        let could =
            self.config.policy.accepts(sender) || overrides.clone().any(|p| p.accepts(sender));
        let open =
            self.config.policy != Policy::Nobody || overrides.clone().any(|p| p != Policy::Nobody);
        (could, open)
    }

    /// Whether the agent is under load: too many unconfirmed handshakes
    /// ([`UNDER_LOAD_HALF_OPEN`] of the slots) or too many Diffie-Hellman
    /// readings this second ([`UNDER_LOAD_DH_PER_SECOND`]). Under load an
    /// initiation must prove its source address with a cookie.
    fn under_load(&self, now: Instant) -> bool {
        let (since, count) = self.dh_window;
        let this_second = now.saturating_duration_since(since) < Duration::from_secs(1);
        self.half_open * UNDER_LOAD_HALF_OPEN.1 >= I * UNDER_LOAD_HALF_OPEN.0 && self.half_open > 0
            || this_second && count >= UNDER_LOAD_DH_PER_SECOND
    }

    /// Counts an initiation read (its Diffie-Hellman work) in the current
    /// second.
    fn count_dh(&mut self, now: Instant) {
        let (since, count) = self.dh_window;
        self.dh_window = if now.saturating_duration_since(since) < Duration::from_secs(1) {
            (since, count.saturating_add(1))
        } else {
            (now, 1)
        };
    }

    /// Queues a cookie reply to an initiation (wire.md §8): 64 bytes, less
    /// than any initiation, and no state kept. A full queue drops it (the
    /// initiator retransmits).
    fn queue_cookie_reply(&mut self, now: Instant, from: SocketAddr, f: &Initiation<'_>) {
        let cookie = self.guard.cookie(now, &from, &mut self.rng);
        let mut nonce = [0u8; COOKIE_NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        let material: &[u8; DH_LEN] = match f.mode {
            Mode::Ik => self.local.static_keys().public(),
            Mode::Xx => match f.noise.get(..DH_LEN).and_then(|e| e.try_into().ok()) {
                Some(e) => e,
                None => return,
            },
        };
        let sealed_cookie =
            crate::mac::MacKey::cookie(material).seal_cookie(&nonce, &cookie, &f.mac1);
        let reply = Frame::CookieReply(CookieReply {
            mode: f.mode,
            receiver_index: f.sender_index,
            nonce,
            sealed_cookie,
        });
        let mut bytes = [0u8; COOKIE_REPLY_LEN];
        if reply.emit(&mut bytes).is_ok() && self.cookie_replies.push_back((from, bytes)).is_ok() {
            self.stats.cookie_replies = self.stats.cookie_replies.saturating_add(1);
        }
    }

    /// The oldest unconfirmed incoming leg, of `contact` if given.
    fn oldest_half_open(&self, contact: Option<Option<ContactId>>) -> Option<Key> {
        self.legs
            .iter()
            .filter_map(|(key, leg)| match &leg.role {
                LegRole::Incoming(inc)
                    if inc.half_open && contact.is_none_or(|c| c == inc.contact) =>
                {
                    Some((inc.opened, key))
                }
                _ => None,
            })
            .min_by_key(|(opened, key)| (*opened, key.index))
            .map(|(_, key)| key)
    }

    /// Whether `ephemeral` is the initiation ephemeral of one of this
    /// agent's outgoing legs (a scan of the slots, made only for a new
    /// initiation whose mac1 holds).
    fn is_own_initiation(&self, ephemeral: &[u8; DH_LEN]) -> bool {
        self.legs.iter().any(|(_, leg)| {
            matches!(leg.role, LegRole::Outgoing { .. })
                && leg
                    .invitation
                    .session()
                    .initiation_ephemeral()
                    .is_some_and(|own| crate::util::ct_eq(own, ephemeral))
        })
    }

    /// Unconfirmed incoming legs of `contact`.
    fn half_open_of(&self, contact: ContactId) -> usize {
        self.legs
            .iter()
            .filter(|(_, leg)| {
                matches!(&leg.role, LegRole::Incoming(inc) if inc.half_open && inc.contact == Some(contact))
            })
            .count()
    }

    /// Gives back the body buffers of presented incoming invitations that
    /// ended other than Accepted (they linger only to answer duplicates).
    /// Called after every input and command whenever the pool is empty, so
    /// that a newer invitation never finds it empty for their sake, while
    /// an ended invitation's message and data stay readable as long as the
    /// pool has room (§1.7). (A scan of the slots, only while the pool is
    /// empty.)
    fn reclaim_bodies(&mut self) {
        for leg in self.legs.values_mut() {
            if let LegRole::Incoming(inc) = &leg.role
                && inc.presented
                && leg.invitation.outcome().is_some_and(|o| o != Outcome::Accepted)
                && let Some(body) = leg.invitation.take_body()
            {
                body.release(&mut self.pool);
            }
        }
    }

    /// Drops an unconfirmed incoming leg without a word: it was never
    /// presented, and its initiator (if real) retransmits.
    fn evict(&mut self, key: Key) {
        let Some(leg) = self.legs.get(key) else { return };
        let LegRole::Incoming(inc) = &leg.role else { return };
        if !inc.half_open {
            return;
        }
        if let Ok(at) = self.initiations.binary_search_by(|(e, _)| e.cmp(&inc.ephemeral)) {
            self.initiations.remove(at);
        }
        self.half_open -= 1;
        self.timers.set(key.index, None);
        self.legs.remove(key);
        self.stats.evicted_half_open = self.stats.evicted_half_open.saturating_add(1);
    }

    /// A new initiation (no live session has its ephemeral key). The
    /// defences run cheapest first, all before any Diffie-Hellman: mac1, the
    /// replay cache, the cookie under load, the source's rate limit, room
    /// (evicting the oldest unconfirmed handshake if every half-open place
    /// is taken); then the Noise work and policy.
    fn on_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        f: &Initiation<'_>,
        ephemeral: [u8; DH_LEN],
        datagram: &[u8],
    ) -> Result<(), Dropped> {
        let mode = f.mode;
        if enabled(Defence::Mac1) && !Incoming::mac1_ok(&self.local, f, datagram) {
            return Err(Dropped::Session(session::Dropped::BadMac));
        }
        if enabled(Defence::ReplayCache) && self.guard.seen(&ephemeral) {
            return Err(Dropped::ReplayedInitiation);
        }
        if enabled(Defence::Reflection) && self.is_own_initiation(&ephemeral) {
            return Err(Dropped::Reflected);
        }
        if enabled(Defence::Cookie)
            && self.under_load(now)
            && !self.guard.mac2_ok(now, &from, datagram, &f.mac2, &mut self.rng)
        {
            self.queue_cookie_reply(now, from, f);
            return Err(Dropped::CookieRequired);
        }
        if enabled(Defence::RateLimit) && !self.guard.allow(now, &from) {
            return Err(Dropped::RateLimited);
        }
        // Room is decided here but made (by eviction) only once the
        // initiation proved good: a dropped initiation changes nothing.
        let mut victim = None;
        let room = enabled(Defence::HalfOpenRoom);
        if room && (self.legs.next_key().is_none() || self.half_open >= half_open_places(I)) {
            victim = Some(self.oldest_half_open(None).ok_or(Dropped::Full)?);
        }
        if self.initiations.is_full() && victim.is_none() {
            return Err(Dropped::Full);
        }
        // XX: nobody is identified yet; answered unless every policy is
        // Nobody.
        let (stranger_could, open) = self.policy_reach(Sender::Stranger);
        let silence = enabled(Defence::PolicySilence);
        if silence
            && mode == Mode::Xx
            && !policy::admits_initiation(mode, Sender::Stranger, false, open)
        {
            return Err(Dropped::NotAdmitted);
        }
        let incoming = {
            let local = &self.local;
            let own = local.identity();
            let contacts = &self.contacts;
            // A stranger that no policy could accept is dropped before its
            // certificate's signature is checked.
            let admit = |id: &IdentityKey| {
                !silence
                    || stranger_could
                    || *id == own
                    || contacts.iter().any(|(_, c)| c.identity() == id)
            };
            Incoming::read_after_mac1(local, &Directory(contacts), datagram, f, admit)
        };
        self.count_dh(now);
        let incoming = incoming.map_err(|d| match d {
            session::Dropped::NotAdmitted => Dropped::NotAdmitted,
            d => Dropped::Session(d),
        })?;
        let mut contact = None;
        let mut inviter = None;
        if let Some(cert) = incoming.peer().copied() {
            let (sender, id, check) = classify(&self.local, &self.contacts, &cert);
            let refusal = if check == CertCheck::Revoked && enabled(Defence::Revocation) {
                Some(Dropped::Revoked)
            } else {
                let (could, open) = self.policy_reach(sender);
                (silence && !policy::admits_initiation(mode, sender, could, open))
                    .then_some(Dropped::NotAdmitted)
            };
            if let Some(refusal) = refusal {
                incoming.refuse(&self.local);
                return Err(refusal);
            }
            if check == CertCheck::Newer
                && let Some(id) = id
            {
                self.pin(id, cert);
            }
            // A contact's own unconfirmed handshakes make room for its new
            // one: a replay flood of its old first messages competes with
            // nobody else. Its oldest also makes any room needed above.
            if let Some(id) = id
                && enabled(Defence::PerContactRoom)
                && self.half_open_of(id) >= HALF_OPEN_PER_CONTACT
                && let Some(oldest) = self.oldest_half_open(Some(Some(id)))
            {
                victim = Some(oldest);
            }
            contact = id;
            inviter = Some(cert);
        }
        // The slot the leg will take: the victim's (a freed slot is the
        // next one handed out), else the next free one.
        let slot = match victim {
            Some(v) => v.index,
            None => self.legs.next_key().ok_or(Dropped::Full)?.index,
        };
        let index = (self.rng.next_u32() & 0xFFFF_0000) | u32::from(slot);
        let session = incoming
            .accept(&self.local, index, now, &mut self.rng)
            .map_err(Dropped::Unanswerable)?;
        let config = InviteeConfig::with_max_expiry(self.config.max_expiry);
        let invitation = Invitation::invitee(session, config, now)
            .map_err(|_| Dropped::Session(session::Dropped::Closed))?;
        if let Some(v) = victim {
            self.evict(v);
        }
        // (Only a slot retired at its 2^32nd generation is not handed out
        // again: then the initiation is dropped.)
        if self.legs.next_key().map(|k| k.index) != Some(slot) {
            return Err(Dropped::Full);
        }
        let leg = Leg {
            invitation,
            remote: from,
            role: LegRole::Incoming(IncomingLeg {
                contact,
                launch: None,
                inviter,
                ephemeral,
                presented: false,
                released: false,
                half_open: true,
                opened: now,
            }),
            pending: 0,
            identity_checked: inviter.is_some(),
            revoked: false,
        };
        let key = self.legs.insert(leg).map_err(|_| Dropped::Full)?;
        self.half_open += 1;
        self.guard.remember(ephemeral);
        let at =
            self.initiations.binary_search_by(|(e, _)| e.cmp(&ephemeral)).unwrap_or_else(|at| at);
        let _ = self.initiations.insert(at, (ephemeral, key.index));
        self.touch(now, key.index);
        Ok(())
    }

    /// Pins a newer certificate for a contact and reports it.
    fn pin(&mut self, id: ContactId, cert: Certificate) {
        let Some(contact) = self.contacts.get_mut(id.0) else { return };
        if contact.pin(&self.local, cert).is_err() {
            return;
        }
        let bit = contact.endpoints().position(|e| e == cert.endpoint()).unwrap_or(0);
        let slot = usize::from(id.0.index);
        self.contact_updates[slot] |= 1 << bit;
        if !self.contact_queued[slot] {
            self.contact_queued[slot] = true;
            // One entry per slot at most: capacity CONTACTS.
            let _ = self.contact_events.push_back(id.0.index);
        }
    }

    /// Handles the deadline from [`poll_timeout`](Self::poll_timeout):
    /// every invitation due runs its timers once.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        let mut due: heapless::Vec<u16, I> = heapless::Vec::new();
        while let Some((at, slot)) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.set(slot, None);
            let _ = due.push(slot);
        }
        for slot in due {
            if let Some((_, leg)) = self.legs.at_mut(slot) {
                leg.invitation.handle_timeout(now, &mut self.pool, &mut self.rng);
            }
            self.touch(now, slot);
        }
    }

    // ----- outputs ----------------------------------------------------------

    /// Writes the next datagram to send into `buf`; `None` when there is
    /// nothing to send.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8; MAX_DATAGRAM],
    ) -> Option<Transmit> {
        let now = self.clock(now);
        if let Some((destination, reply)) = self.cookie_replies.pop_front() {
            buf[..COOKIE_REPLY_LEN].copy_from_slice(&reply);
            self.stats.sent = self.stats.sent.saturating_add(1);
            return Some(Transmit { destination, len: COOKIE_REPLY_LEN });
        }
        while let Some(&slot) = self.tx_ready.front() {
            if let Some((_, leg)) = self.legs.at_mut(slot)
                && let Some(len) = leg.invitation.poll_transmit(now, &self.pool, buf)
            {
                let destination = leg.remote;
                self.timers.set(slot, leg.invitation.poll_timeout());
                self.stats.sent = self.stats.sent.saturating_add(1);
                return Some(Transmit { destination, len });
            }
            self.tx_ready.pop_front();
            self.tx_queued[usize::from(slot)] = false;
            self.settle(now, slot);
        }
        None
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        while let Some(&slot) = self.request_events.front() {
            if let Some((key, r)) = self.requests.at_mut(slot) {
                let handle = Handle(key);
                if r.pending & pending::RINGING != 0 {
                    r.pending &= !pending::RINGING;
                    return Some(Event::Ringing(handle));
                }
                if r.pending & pending::RESPONDED != 0 {
                    r.pending &= !pending::RESPONDED;
                    if let Some(outcome) = r.outcome {
                        return Some(Event::Responded { handle, outcome });
                    }
                }
            }
            self.request_events.pop_front();
            self.request_queued[usize::from(slot)] = false;
        }
        while let Some(&slot) = self.leg_events.front() {
            if let Some((key, leg)) = self.legs.at_mut(slot) {
                let incoming = IncomingId(key);
                if leg.pending & pending::INVITED != 0 {
                    leg.pending &= !pending::INVITED;
                    return Some(Event::Invited(incoming));
                }
                if leg.pending & pending::ENDED != 0 {
                    leg.pending &= !pending::ENDED;
                    if let Some(outcome) = leg.invitation.outcome() {
                        return Some(Event::IncomingEnded { incoming, outcome });
                    }
                }
            }
            self.leg_events.pop_front();
            self.leg_queued[usize::from(slot)] = false;
            self.try_free_leg(slot);
        }
        while let Some(&slot) = self.contact_events.front() {
            let bits = self.contact_updates[usize::from(slot)];
            if let Some((key, contact)) = self.contacts.at(slot)
                && bits != 0
            {
                let bit = bits.trailing_zeros() as usize;
                self.contact_updates[usize::from(slot)] &= !(1 << bit);
                if let Some(endpoint) = contact.endpoints().nth(bit) {
                    return Some(Event::ContactUpdated { contact: ContactId(key), endpoint });
                }
                continue;
            }
            self.contact_updates[usize::from(slot)] = 0;
            self.contact_queued[usize::from(slot)] = false;
            self.contact_events.pop_front();
        }
        None
    }

    /// The next deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|(at, _)| at)
    }

    // ----- bookkeeping -----------------------------------------------------

    fn clock(&mut self, now: Instant) -> Instant {
        if now > self.last_now || !enabled(Defence::MonotonicClock) {
            self.last_now = now;
        }
        self.last_now
    }

    /// After any input or command on a leg: queue it for transmission, take
    /// in its events, re-arm its deadline, free it if it is done.
    fn touch(&mut self, now: Instant, slot: u16) {
        if self.legs.at(slot).is_none() {
            return;
        }
        if !self.tx_queued[usize::from(slot)] {
            self.tx_queued[usize::from(slot)] = true;
            let _ = self.tx_ready.push_back(slot);
        }
        self.settle(now, slot);
        if self.pool.free() == 0 {
            self.reclaim_bodies();
        }
    }

    /// Takes in a leg's events and identity, re-arms its deadline and frees
    /// it if nothing holds it.
    fn settle(&mut self, now: Instant, slot: u16) {
        self.check_identity(now, slot);
        if let Some((_, leg)) = self.legs.at_mut(slot)
            && let LegRole::Incoming(inc) = &mut leg.role
            && inc.half_open
            && (leg.invitation.session().is_established() || leg.invitation.is_closed())
        {
            inc.half_open = false;
            self.half_open -= 1;
        }
        while let Some((key, leg)) = self.legs.at_mut(slot) {
            let Some(event) = leg.invitation.poll_event() else { break };
            match &mut leg.role {
                LegRole::Outgoing { request } => {
                    let (request, revoked) = (*request, leg.revoked);
                    self.on_outgoing_event(now, request, key, event, revoked);
                }
                LegRole::Incoming(inc) => {
                    match event {
                        InvitationEvent::Invited => {
                            inc.presented = true;
                            leg.pending |= pending::INVITED;
                        }
                        // Invitations refused before presentation end
                        // unseen: nobody was told of them.
                        InvitationEvent::Ended(outcome) => {
                            if inc.presented {
                                leg.pending |= pending::ENDED;
                            }
                            if outcome == Outcome::Accepted {
                                inc.launch = leg.invitation.take_body();
                            }
                        }
                        _ => {}
                    }
                    if leg.pending != 0 && !self.leg_queued[usize::from(slot)] {
                        self.leg_queued[usize::from(slot)] = true;
                        let _ = self.leg_events.push_back(slot);
                    }
                }
            }
        }
        if let Some((_, leg)) = self.legs.at(slot) {
            self.timers.set(slot, leg.invitation.poll_timeout());
        }
        self.try_free_leg(slot);
    }

    /// Checks the certificate a leg's peer presented once it is known: a
    /// newer one is pinned; an outgoing leg answered by a revoked one is
    /// withdrawn before the Invite goes out; an incoming leg learns its
    /// contact (XX).
    fn check_identity(&mut self, now: Instant, slot: u16) {
        let Some((_, leg)) = self.legs.at(slot) else { return };
        if leg.identity_checked {
            return;
        }
        let Some(cert) = leg.invitation.peer().copied() else { return };
        let (_, contact, check) = classify(&self.local, &self.contacts, &cert);
        if let Some((_, leg)) = self.legs.at_mut(slot) {
            leg.identity_checked = true;
            match &mut leg.role {
                LegRole::Incoming(inc) => {
                    inc.contact = contact;
                    inc.inviter = Some(cert);
                }
                LegRole::Outgoing { request } => {
                    if check == CertCheck::Revoked {
                        leg.revoked = true;
                        let _ =
                            leg.invitation.cancel(now, CancelReason::ByUser, "", &mut self.pool);
                    } else if let Some(r) = self.requests.get_mut(*request)
                        && r.answered_contact.is_none()
                    {
                        r.answered_contact = contact;
                    }
                }
            }
        }
        if check == CertCheck::Newer
            && let Some(id) = contact
        {
            self.pin(id, cert);
        }
    }

    fn on_outgoing_event(
        &mut self,
        now: Instant,
        request: Key,
        leg: Key,
        event: InvitationEvent,
        revoked: bool,
    ) {
        match event {
            InvitationEvent::Ringing => {
                let Some(r) = self.requests.get_mut(request) else { return };
                if !r.ringing && r.outcome.is_none() {
                    r.ringing = true;
                    self.signal(request, pending::RINGING);
                }
            }
            InvitationEvent::Ended(outcome) => {
                let outcome = if revoked {
                    Outcome::Failed(FailureCause::RevokedCertificate)
                } else {
                    outcome
                };
                let Some(r) = self.requests.get_mut(request) else { return };
                if let Some(entry) = r.legs.iter_mut().find(|(k, _)| *k == leg) {
                    entry.1 = Some(outcome);
                }
                if r.outcome.is_some() {
                    return;
                }
                if outcome == Outcome::Accepted {
                    // The first Accept wins: every other endpoint is
                    // withdrawn now, before another datagram is read.
                    let others: heapless::Vec<Key, MAX_TARGETS> =
                        r.legs.iter().map(|(k, _)| *k).filter(|k| *k != leg).collect();
                    self.decide(request, outcome, Some(leg));
                    for other in others {
                        if let Some(l) = self.legs.get_mut(other) {
                            let _ = l.invitation.cancel(
                                now,
                                CancelReason::AnsweredElsewhere,
                                "",
                                &mut self.pool,
                            );
                            self.touch(now, other.index);
                        }
                    }
                } else if r.legs.iter().all(|(_, o)| o.is_some()) {
                    let combined = combine(r.legs.iter().filter_map(|(_, o)| *o));
                    let decider =
                        r.legs.iter().find(|(_, o)| *o == Some(combined)).map(|(k, _)| *k);
                    self.decide(request, combined, decider);
                }
            }
            _ => {}
        }
    }

    /// Records a request's outcome, from leg `decider` if an endpoint
    /// decided it.
    fn decide(&mut self, request: Key, outcome: Outcome, decider: Option<Key>) {
        let (cert, reason) = match decider.and_then(|k| self.legs.get(k)) {
            Some(leg) => (leg.invitation.peer().copied(), leg.invitation.peer_reason()),
            None => (None, ""),
        };
        let Some(r) = self.requests.get_mut(request) else { return };
        if r.outcome.is_some() {
            return;
        }
        r.outcome = Some(outcome);
        r.answered_by = cert;
        r.reason.clear();
        let _ = r.reason.push_str(reason);
        self.signal(request, pending::RESPONDED);
    }

    fn signal(&mut self, request: Key, bit: u8) {
        let Some(r) = self.requests.get_mut(request) else { return };
        if r.handle != HandleState::Open {
            return;
        }
        r.pending |= bit;
        let slot = usize::from(request.index);
        if !self.request_queued[slot] {
            self.request_queued[slot] = true;
            let _ = self.request_events.push_back(request.index);
        }
    }

    /// Frees a leg whose invitation closed, once nothing holds it: no event
    /// waiting, no launch information kept.
    fn try_free_leg(&mut self, slot: u16) {
        let Some((key, leg)) = self.legs.at(slot) else { return };
        if !leg.invitation.is_closed() || leg.pending != 0 {
            return;
        }
        if let LegRole::Incoming(inc) = &leg.role
            && inc.launch.is_some()
        {
            return;
        }
        let request = match &leg.role {
            LegRole::Outgoing { request } => Some(*request),
            LegRole::Incoming(inc) => {
                if let Ok(at) = self.initiations.binary_search_by(|(e, _)| e.cmp(&inc.ephemeral)) {
                    self.initiations.remove(at);
                }
                if inc.half_open {
                    self.half_open -= 1;
                }
                None
            }
        };
        self.timers.set(slot, None);
        self.legs.remove(key);
        if let Some(request) = request {
            if let Some(r) = self.requests.get_mut(request)
                && let Some(entry) = r.legs.iter_mut().find(|(k, _)| *k == key)
            {
                entry.1.get_or_insert(Outcome::Unreachable);
            }
            self.try_free_request(request);
        }
    }

    /// Frees a request whose handle is gone once all its legs are.
    fn try_free_request(&mut self, key: Key) {
        let Some(r) = self.requests.get(key) else { return };
        if r.handle == HandleState::Open || r.legs.iter().any(|(k, _)| self.legs.get(*k).is_some())
        {
            return;
        }
        self.requests.remove(key);
    }

    // ----- diagnostics -----------------------------------------------------

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> AgentStats {
        self.stats
    }

    /// Invitation slots in use (outgoing endpoints and incoming
    /// invitations).
    #[must_use]
    pub fn invitations_in_use(&self) -> usize {
        self.legs.len()
    }

    /// Outgoing handles in use (open, or closed with endpoints still
    /// finishing).
    #[must_use]
    pub fn handles_in_use(&self) -> usize {
        self.requests.len()
    }

    /// Body buffers free.
    #[must_use]
    pub fn buffers_free(&self) -> usize {
        self.pool.free()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{IpAddr, Ipv4Addr};

    type Small = Agent<2, 2, 2, 1, 2>;

    fn agent() -> Small {
        let mut rng = HashDrbg::from_u64(1);
        let local = LocalIdentity::generate(&mut rng, EndpointId(0));
        Small::new(local, AgentConfig::default(), [7; 32])
    }

    fn somewhere() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 7000)
    }

    const REQUEST: InvitationRequest<'static> =
        InvitationRequest { app_id: AppId([1; 16]), message: "hi", data: &[] };

    #[test]
    fn a_handle_whose_generation_would_wrap_retires_its_slot() {
        let mut a = agent();
        a.requests.set_generation(0, u32::MAX);
        a.legs.set_generation(0, u32::MAX);
        let now = Instant::ZERO;
        let opts = InviteOptions::default();
        let last = a.invite_endpoint(now, somewhere(), &REQUEST, opts).unwrap().unwrap();
        assert_eq!(last.0, Key { index: 0, generation: u32::MAX });
        a.close(now, last).unwrap();
        assert_eq!(a.handles_in_use(), 0);
        // The stale handle reaches nothing, and its slot is never reused.
        assert_eq!(a.response(last), Err(AgentError::UnknownHandle));
        let next = a.invite_endpoint(now, somewhere(), &REQUEST, opts).unwrap().unwrap();
        assert_eq!(next.0.index, 1);
        assert_eq!(a.response(last), Err(AgentError::UnknownHandle));
        assert_eq!(
            a.invite_endpoint(now, somewhere(), &REQUEST, opts),
            Err(AgentError::InvitationsFull)
        );
    }

    #[test]
    fn a_stale_handle_never_reaches_the_next_invitation_in_its_slot() {
        let mut a = agent();
        let now = Instant::ZERO;
        let opts = InviteOptions::default();
        let first = a.invite_endpoint(now, somewhere(), &REQUEST, opts).unwrap().unwrap();
        a.close(now, first).unwrap();
        let second = a.invite_endpoint(now, somewhere(), &REQUEST, opts).unwrap().unwrap();
        assert_eq!(first.0.index, second.0.index);
        assert_eq!(a.response(first), Err(AgentError::UnknownHandle));
        assert_eq!(a.cancel(now, first), Err(AgentError::UnknownHandle));
        assert!(matches!(a.response(second), Ok(Status::Pending { ringing: false })));
    }

    #[test]
    fn combined_outcome_prefers_what_the_user_needs_first() {
        use Outcome::*;
        let busy = |s| Busy { retry_after: Duration::from_secs(s) };
        let cases: [(&[Outcome], Outcome); 6] = [
            (&[Unreachable, Declined, busy(5)], Declined),
            (&[busy(60), Unreachable, busy(5)], busy(5)),
            (&[Unreachable, Expired], Expired),
            (&[NotRegistered, NotAccepted], NotAccepted),
            (
                &[Unreachable, Failed(FailureCause::IdentityMismatch)],
                Failed(FailureCause::IdentityMismatch),
            ),
            (&[Unreachable, Unreachable], Unreachable),
        ];
        for (legs, expected) in cases {
            assert_eq!(combine(legs.iter().copied()), expected, "{legs:?}");
        }
    }

    #[test]
    fn an_invitation_id_is_presented_once_and_a_full_table_answers_busy() {
        let a = agent();
        let mut rng = HashDrbg::from_u64(2);
        let peer = *LocalIdentity::generate(&mut rng, EndpointId(0)).certificate();
        let apps: heapless::Vec<Application, 2> = heapless::Vec::from_iter([Application {
            id: AppId([1; 16]),
            name: heapless::String::try_from("app").unwrap(),
            policy: None,
        }]);
        let mut recent: heapless::Vec<(InviteId, Instant), 2> = heapless::Vec::new();
        let mut screening = Screening {
            local: &a.local,
            contacts: &a.contacts,
            apps: &apps,
            policy: Policy::Anyone,
            recent: &mut recent,
            now: Instant::ZERO,
            remember_for: Duration::from_secs(316),
        };
        let app = AppId([1; 16]);
        let id = |b| InviteId([b; 16]);
        assert_eq!(screening.screen(&peer, app, id(1)), Admission::Present);
        assert_eq!(screening.screen(&peer, app, id(1)), Admission::Duplicate);
        // Confirming a complete invitation neither refuses its own id nor
        // takes room in the table (id 3 below still finds it full at two).
        assert_eq!(screening.confirm(&peer, app, id(1)), Admission::Present);
        assert_eq!(screening.screen(&peer, app, id(2)), Admission::Present);
        assert_eq!(
            screening.screen(&peer, app, id(3)),
            Admission::Busy { retry_after: Duration::from_secs(316) }
        );
        // Unregistered applications are refused before ids are remembered.
        assert_eq!(screening.screen(&peer, AppId([9; 16]), id(4)), Admission::NotRegistered);
        // Once the first ids have expired, the table has room again, and an
        // expired id is new again.
        screening.now = Instant::from_millis(316_000);
        assert_eq!(screening.screen(&peer, app, id(1)), Admission::Present);
    }

    /// `spec/agent.md` specifies every error, drop reason and event: the
    /// exhaustive matches below stop compiling when a variant is added, and
    /// the test fails until the spec names it.
    #[test]
    fn spec_names_every_error_drop_reason_and_event() {
        const SPEC: &str = include_str!("../../../spec/agent.md");
        fn error(e: AgentError) -> &'static str {
            match e {
                AgentError::UnknownHandle => "UnknownHandle",
                AgentError::UnknownIncoming => "UnknownIncoming",
                AgentError::UnknownContact => "UnknownContact",
                AgentError::UnknownEndpoint => "UnknownEndpoint",
                AgentError::RevokedEndpoint => "RevokedEndpoint",
                AgentError::DuplicateEndpoint => "DuplicateEndpoint",
                AgentError::NoTargets => "NoTargets",
                AgentError::TooManyTargets => "TooManyTargets",
                AgentError::OwnIdentity => "OwnIdentity",
                AgentError::WrongIdentity => "WrongIdentity",
                AgentError::AlreadyExists(_) => "AlreadyExists",
                AgentError::ContactsFull => "ContactsFull",
                AgentError::ApplicationsFull => "ApplicationsFull",
                AgentError::UnknownApplication => "UnknownApplication",
                AgentError::InvitationsFull => "InvitationsFull",
                AgentError::BadName => "BadName",
                AgentError::TooManyAddresses => "TooManyAddresses",
                AgentError::NoLaunchInfo => "NoLaunchInfo",
                AgentError::NotPresented => "NotPresented",
                AgentError::Invitation(_) => "Invitation",
                AgentError::Session(_) => "Session",
            }
        }
        fn dropped(d: Dropped) -> &'static str {
            match d {
                Dropped::Malformed(_) => "Malformed",
                Dropped::UnknownIndex => "UnknownIndex",
                Dropped::Full => "Full",
                Dropped::NotAdmitted => "NotAdmitted",
                Dropped::Revoked => "Revoked",
                Dropped::ReplayedInitiation => "ReplayedInitiation",
                Dropped::RateLimited => "RateLimited",
                Dropped::CookieRequired => "CookieRequired",
                Dropped::Reflected => "Reflected",
                Dropped::Session(_) => "Session",
                Dropped::Unanswerable(_) => "Unanswerable",
                Dropped::Invitation(_) => "Invitation",
            }
        }
        fn event(e: Event) -> &'static str {
            match e {
                Event::Ringing(_) => "Ringing",
                Event::Responded { .. } => "Responded",
                Event::Invited(_) => "Invited",
                Event::IncomingEnded { .. } => "IncomingEnded",
                Event::ContactUpdated { .. } => "ContactUpdated",
            }
        }
        let key = Key { index: 0, generation: 0 };
        let errors = [
            AgentError::UnknownHandle,
            AgentError::UnknownIncoming,
            AgentError::UnknownContact,
            AgentError::UnknownEndpoint,
            AgentError::RevokedEndpoint,
            AgentError::DuplicateEndpoint,
            AgentError::NoTargets,
            AgentError::TooManyTargets,
            AgentError::OwnIdentity,
            AgentError::WrongIdentity,
            AgentError::AlreadyExists(ContactId(key)),
            AgentError::ContactsFull,
            AgentError::ApplicationsFull,
            AgentError::UnknownApplication,
            AgentError::InvitationsFull,
            AgentError::BadName,
            AgentError::TooManyAddresses,
            AgentError::NoLaunchInfo,
            AgentError::NotPresented,
            AgentError::Invitation(InviteError::Ended),
            AgentError::Session(session::SessionError::NotEstablished),
        ];
        let drops = [
            Dropped::Malformed(WireError::TooShort),
            Dropped::UnknownIndex,
            Dropped::Full,
            Dropped::NotAdmitted,
            Dropped::Revoked,
            Dropped::ReplayedInitiation,
            Dropped::RateLimited,
            Dropped::CookieRequired,
            Dropped::Reflected,
            Dropped::Session(session::Dropped::Closed),
            Dropped::Unanswerable(session::SessionError::NotEstablished),
            Dropped::Invitation(invite::Dropped::Closed),
        ];
        let events = [
            Event::Ringing(Handle(key)),
            Event::Responded { handle: Handle(key), outcome: Outcome::Accepted },
            Event::Invited(IncomingId(key)),
            Event::IncomingEnded { incoming: IncomingId(key), outcome: Outcome::Accepted },
            Event::ContactUpdated { contact: ContactId(key), endpoint: EndpointId(0) },
        ];
        let names = errors
            .into_iter()
            .map(|e| ("AgentError::", error(e)))
            .chain(drops.into_iter().map(|d| ("Dropped::", dropped(d))))
            .chain(events.into_iter().map(|e| ("Event::", event(e))));
        for (kind, name) in names {
            let plain = ["`", name].concat();
            let qualified = ["`", kind, name].concat();
            assert!(
                SPEC.contains(&plain) || SPEC.contains(&qualified),
                "spec/agent.md does not specify {kind}{name}"
            );
        }
    }
}
