//! peercollab on tokio: real UDP sockets and timers around the sans-IO
//! agent of `peercollab-core`, by way of `peercollab-driver`.
//!
//! # A guide
//! [`Endpoint::builder`] takes an identity ([`generate_identity`], or one
//! you stored), optionally a [`config`](Builder::config) (policy, longest
//! expiry accepted), a [`clock`](Builder::clock) and a
//! [`seed`](Builder::seed), and [`bind`](Builder::bind)s one UDP socket per
//! address given. It returns an [`Endpoint`] — cheap to clone, every clone
//! the same peer — and [`Incoming`], the stream of invitations that arrive.
//!
//! - **Inviting, waiting** (Windows' `PeerCollabInviteContact` /
//!   `PeerCollabInviteEndpoint`): [`Endpoint::invite_contact`] and
//!   [`Endpoint::invite_endpoint`] resolve to the [`Answer`]: its
//!   [`outcome`](Answer::outcome) (Accepted, Declined, Busy, Expired,
//!   Cancelled, Unreachable…: outcomes are not errors) and the
//!   authenticated certificate of whoever decided it.
//! - **Inviting, with a handle** (`PeerCollabAsyncInvite*`):
//!   [`Endpoint::start_invite_contact`] and
//!   [`Endpoint::start_invite_endpoint`] return an [`Invitation`] at once.
//! - **Being invited**: [`Incoming::next`] yields each
//!   [`IncomingInvitation`] the agent presents (its policy and the
//!   registered applications decide which it presents; see
//!   [`Endpoint::register_application`], [`Endpoint::set_policy`]).
//! - **Contacts** come from contact cards: [`Endpoint::my_card`] makes
//!   ours, [`Endpoint::add_contact`] pins someone else's.
//!   [`Endpoint::with_agent`] reaches every other command and getter of
//!   the agent.
//!
//! | Windows | here |
//! |---|---|
//! | `PeerCollabInviteContact`, `PeerCollabInviteEndpoint` (waiting) | [`Endpoint::invite_contact`], [`Endpoint::invite_endpoint`]: `.await` the [`Answer`] |
//! | `PeerCollabAsyncInviteContact`, `…AsyncInviteEndpoint` | [`Endpoint::start_invite_contact`], [`Endpoint::start_invite_endpoint`]: an [`Invitation`] |
//! | the same with `phInvitation == NULL` | the same with [`InviteOptions::discard_handle`] |
//! | the invitation's event (`hEvent`) | [`Invitation::changed`] |
//! | `PeerCollabGetInvitationResponse` | [`Invitation::status`] (pending or answered), [`Invitation::outcome`] |
//! | `PeerCollabCancelInvitation` | [`Invitation::cancel`] |
//! | `PeerCollabCloseHandle` | dropping the [`Invitation`] |
//! | an invitation arriving | [`Incoming::next`] → [`IncomingInvitation`]: [`accept`](IncomingInvitation::accept), [`decline`](IncomingInvitation::decline), [`busy`](IncomingInvitation::busy) |
//! | `PeerCollabGetAppLaunchInfo` | [`IncomingInvitation::launch_info`], [`IncomingInvitation::release`] |
//! | `PeerCollabShutdown` | [`Endpoint::shutdown`] |
//!
//! ```
//! use peercollab_tokio::{
//!     AppId, Endpoint, EndpointId, Error, InviteOptions, Outcome, Request, Status, Trust,
//!     generate_identity,
//! };
//!
//! # fn main() -> Result<(), Error> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let app = AppId(*b"example-app-0001");
//! let here = ["127.0.0.1:0".parse().expect("an address")];
//! let (alice, _) = Endpoint::builder(generate_identity(EndpointId(1))?).bind(&here).await?;
//! let (bob, mut invitations) =
//!     Endpoint::builder(generate_identity(EndpointId(1))?).bind(&here).await?;
//! bob.register_application(app, "example", None)?;
//! let bob_as_contact = alice.add_contact(&bob.my_card("bob", &[])?, Trust::Trusted)?;
//!
//! // Bob accepts whatever arrives and reads the launch information.
//! let bob_side = tokio::spawn(async move {
//!     let mut invitation = invitations.next().await.ok_or(Error::Closed)?;
//!     println!("{} invites: {}", invitation.info().identity().fingerprint(), invitation.info().message);
//!     invitation.accept()?;
//!     assert_eq!(invitation.ended().await?, Outcome::Accepted);
//!     let launch = invitation.launch_info()?; // released when `invitation` drops
//!     Ok::<_, Error>(launch.data)
//! });
//!
//! // The waiting call: dropping this future would cancel the invitation.
//! let request = Request::new(app).message("join me").data(&b"port=4000"[..]);
//! let answer = alice.invite_contact(bob_as_contact, request.clone(), InviteOptions::default()).await?;
//! assert_eq!(answer.outcome, Outcome::Accepted);
//! assert_eq!(answer.identity(), Some(bob.identity()));
//! assert_eq!(&bob_side.await.expect("no panic")?[..], b"port=4000");
//!
//! // The handle API: start, watch, poll, cancel; dropping closes.
//! let mut invitation = alice.start_invite_endpoint(bob.local_addrs()[0], &request, InviteOptions::default())?;
//! assert!(matches!(invitation.status(), Status::Pending { .. }));
//! invitation.cancel()?; // nobody answers this one: cancel it
//! assert!(matches!(invitation.outcome().await?.outcome, Outcome::Cancelled(_)));
//! drop(invitation);
//!
//! let report = alice.shutdown(std::time::Duration::from_secs(1)).await;
//! println!("{report:?}");
//! # Ok(()) }) }
//! ```
//!
//! # Behaviour
//! - **One lock, no blocking.** The agent sits behind a
//!   [`std::sync::Mutex`] that is never held across an `.await`. Every
//!   command locks it, runs, sends what the agent produced (non-blocking;
//!   a full socket buffer counts as a lost datagram, which the protocol
//!   retransmits), hands out the agent's events, and unlocks. One task per
//!   socket receives; one task runs the agent's timers. Nothing here blocks
//!   the runtime; a current-thread runtime is enough.
//! - **Commands return at once**; the agent's misuse errors come back as
//!   [`Error::Agent`] and change nothing.
//! - **Cancellation**: dropping the future of a waiting call, or an
//!   [`Invitation`], closes the invitation, which cancels it if it has no
//!   outcome yet (its invitees see Cancelled). Every future here is
//!   cancellation-safe: dropping one between polls loses nothing else
//!   ([`Invitation::changed`], [`Invitation::outcome`], [`Incoming::next`],
//!   [`IncomingInvitation::ended`] can be used in `select!` loops).
//! - **Incoming invitations** wait in a queue of [`INCOMING_QUEUE`]; when
//!   the application does not take them (or dropped the [`Incoming`]),
//!   further ones are answered Busy (retry after [`BUSY_RETRY_AFTER`]).
//!   Dropping an [`IncomingInvitation`] unanswered leaves it ringing until
//!   it expires (the inviter may still cancel it); dropping an accepted one
//!   releases its launch information (at once if it ended, else when it
//!   ends).
//! - **Routing**: each datagram leaves by the socket its destination was
//!   last heard on, else by a socket of its family (IPv4 or IPv6; an IPv6
//!   socket bound to `[::]` carries IPv4 too where the platform allows and
//!   no IPv4 address is bound beside it). Inviting an address no socket can
//!   reach is an [`Error::Io`] naming the family to bind.
//! - **Time** comes from a [`Clock`]: [`SystemClock`] by default; a
//!   [`ManualClock`] makes five-minute expiries instant in tests while real
//!   sockets carry the datagrams (tokio's paused time would race them).
//! - **Allocations**: everything an endpoint needs is allocated when it
//!   binds; in steady state an invitation allocates nothing on the heap,
//!   on either side: starting one ([`Endpoint::start_invite_contact`], or
//!   the waiting call) and awaiting it, accepting an incoming one and
//!   dropping it. Status and end channels come from pools refilled when
//!   handles drop, the owned text of invitations and answers ([`Text`],
//!   the data) is cut from a buffer allocated once and reclaimed once
//!   dropped, and no task or channel is made per invitation.
//!   `tests/allocations.rs` checks this with a counting allocator. (The
//!   [`Request`] is the caller's: build it once and lend it.)
//! - **Tracing**: every invitation has a span (`invitation`, or `incoming`
//!   with its id) around its start, answer, waits and close; the driver
//!   logs the agent's events (ringing, responded, invited, ended).
//!
//! # Shutdown
//! [`Endpoint::shutdown`] ends politely, then stops the endpoint:
//!
//! 1. the policy becomes Nobody (no new invitation is admitted), the
//!    [`Incoming`] stream ends once the invitations already queued are
//!    read (step 3 declined those: answering them fails), and starting an
//!    invitation fails with [`Error::Closed`];
//! 2. **outgoing invitations without an outcome** are cancelled: their
//!    waiting calls and handles resolve to Cancelled at once, and their
//!    invitees are told (the Cancel is retransmitted until confirmed);
//!    answered ones are left as they are (their Ack was sent when the
//!    Final arrived);
//! 3. **incoming invitations not answered yet** (held by the application or
//!    still queued) are declined with [`SHUTDOWN_REASON`]; invitations
//!    presented during the shutdown are declined the same way;
//! 4. **answers in flight** (given before or during the shutdown) are
//!    retransmitted until the inviter acknowledges them, so an accept given
//!    just before shutting down still launches on both sides;
//! 5. the endpoint keeps serving until every answer is acknowledged and
//!    every cancel confirmed (the agent has nothing left to retransmit —
//!    the core gives each up after 32 s), or until the time given passes;
//! 6. then its tasks end, its sockets close (the ports are free when
//!    `shutdown` returns), pending [`IncomingInvitation::ended`] calls get
//!    [`Error::Closed`], and later commands that would send fail with
//!    [`Error::Closed`] (getters and [`Endpoint::with_agent`] still work).
//!
//! The [`ShutdownReport`] counts what was cancelled and declined and the
//! answers left unacknowledged. Not waited for: finished invitations that
//! linger 32 s to re-acknowledge a Final whose Ack was lost (their peers
//! already have their outcome unless that last Ack was lost). Dropping
//! every clone of an [`Endpoint`] and the [`Incoming`] without shutting
//! down stops the tasks too, abruptly: peers see the endpoint vanish.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use peercollab_driver::net::{self, RECV_BUF, Routes};

pub use peercollab_driver::core::agent::{
    AgentConfig, AgentError, AgentStats, ContactId, ContactUpdate, Handle, HandleMode, IncomingId,
    InviteOptions, Policy, Target, Trust,
};
pub use peercollab_driver::core::card::ContactCard;
pub use peercollab_driver::core::identity::{EndpointId, IdentityKey, LocalIdentity};
pub use peercollab_driver::core::invite::{
    Answer as Reply, AppId, CancelEffect, CancelReason, Outcome,
};
pub use peercollab_driver::core::{Duration, Instant};
pub use peercollab_driver::{
    Answer, Clock, Driver, DriverStats, Error, Invitation as InvitationInfo, ManualClock, Notice,
    Request, Status, SystemClock, Text, generate_identity, os_seed,
};

/// The reason given with invitations declined by a shutdown.
pub const SHUTDOWN_REASON: &str = "the endpoint is shutting down";

/// Incoming invitations waiting for the application at most; further ones
/// are answered Busy. The agent holds at most 16 invitations at once (its
/// slots), so a queue this long is only full when the application stopped
/// reading.
pub const INCOMING_QUEUE: usize = 64;

/// The retry-after of invitations answered Busy because the application
/// does not take them.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Channels and table entries made when binding, so that invitations
/// allocate nothing in steady state: the agent's invitation slots (16);
/// more are made if the application holds more.
const POOLED: usize = 16;

/// The most channels kept for reuse.
const POOL_MAX: usize = 4 * POOLED;

const PENDING: Status = Status::Pending { ringing: false };

/// An incoming invitation the application holds.
struct IncomingEntry {
    id: IncomingId,
    ended: watch::Sender<Option<Outcome>>,
    /// Its outcome came.
    done: bool,
    /// The application dropped it unanswered: forgotten when it ends (the
    /// shutdown still declines it meanwhile).
    dropped: bool,
}

/// Removes the first `x` from `v`; whether it was there.
fn remove_id<T: PartialEq>(v: &mut Vec<T>, x: &T) -> bool {
    match v.iter().position(|y| y == x) {
        Some(k) => {
            v.swap_remove(k);
            true
        }
        None => false,
    }
}

impl State {
    fn status_tx(&self, handle: Handle) -> Option<&watch::Sender<Status>> {
        self.handles.iter().find(|(h, _)| *h == handle).map(|(_, tx)| tx)
    }

    /// A status channel for a new handle, from the pool.
    fn take_status(&mut self) -> watch::Sender<Status> {
        self.status_pool.pop().unwrap_or_else(|| watch::Sender::new(PENDING))
    }

    /// Forgets a handle; its channel goes back to the pool (its only
    /// receiver is the dropped [`Invitation`]'s).
    fn forget_handle(&mut self, handle: Handle) {
        if let Some(k) = self.handles.iter().position(|(h, _)| *h == handle) {
            let (_, tx) = self.handles.swap_remove(k);
            if self.status_pool.len() < POOL_MAX && tx.receiver_count() <= 1 {
                // Drops the old answer (and the text it shares).
                tx.send_replace(PENDING);
                self.status_pool.push(tx);
            }
        }
    }

    /// Forgets an incoming invitation the application dropped; its channel
    /// goes back to the pool.
    fn forget_incoming(&mut self, id: IncomingId) {
        if let Some(k) = self.incoming.iter().position(|e| e.id == id) {
            let entry = self.incoming.swap_remove(k);
            if self.ended_pool.len() < POOL_MAX && entry.ended.receiver_count() <= 1 {
                entry.ended.send_replace(None);
                self.ended_pool.push(entry.ended);
            }
        }
    }
}

/// Where the endpoint is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    /// [`Endpoint::shutdown`] began: answering, cancelling, waiting.
    Closing,
    /// Shut down: tasks ended, sockets closed.
    Stopped,
}

/// The shared state: the driver, the sockets it sends by, and who waits on
/// what.
struct State {
    driver: Driver,
    routes: Routes,
    /// The sockets for sending, non-blocking: a datagram goes out at once,
    /// without waiting for tokio to learn the socket is writable (its
    /// `try_send_to` refuses a fresh socket until then). Emptied on
    /// shutdown.
    senders: Vec<std::net::UdpSocket>,
    /// Status of each open handle, for its [`Invitation`].
    handles: Vec<(Handle, watch::Sender<Status>)>,
    /// The end of each presented incoming invitation held by the
    /// application (until its [`IncomingInvitation`] is dropped), and
    /// whether it ended.
    incoming: Vec<IncomingEntry>,
    /// Incoming invitations answered (by the application, Busy because
    /// nobody takes them, or declined by the shutdown) that have not ended:
    /// their Final waits for the inviter's Ack.
    answered: Vec<IncomingId>,
    /// Accepted incoming invitations dropped before they ended: their
    /// launch information is released when they end.
    release_on_end: Vec<IncomingId>,
    /// Status channels of closed handles, ready for the next invitation
    /// (so that starting one allocates nothing).
    status_pool: Vec<watch::Sender<Status>>,
    /// End channels of dropped incoming invitations, likewise.
    ended_pool: Vec<watch::Sender<Option<Outcome>>>,
    /// Never changes: what handle-less invitations watch.
    no_status: watch::Sender<Status>,
    /// Where presented invitations go; `None` once shutting down.
    queue: Option<mpsc::Sender<IncomingInvitation>>,
    phase: Phase,
    /// Invitations declined by the shutdown.
    declined_at_shutdown: usize,
    /// The deadline the timer task last read: a command that leaves a
    /// later one need not wake it.
    armed: Option<Instant>,
}

struct Inner {
    state: Mutex<State>,
    /// Wakes the timer task to read the next deadline again.
    wake: Arc<Notify>,
    /// Signalled after every pump while shutting down.
    progress: Notify,
    /// Ends the tasks: on shutdown, or when the last [`Endpoint`] clone
    /// goes (the tasks hold only weak references).
    stop: watch::Sender<bool>,
    /// The receiving and timer tasks, awaited by the shutdown.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// One peer on the network: an agent behind UDP sockets. Cheap to clone;
/// clones share it. See the [crate documentation](crate) for a guide.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("local_addrs", &self.local_addrs()).finish_non_exhaustive()
    }
}

/// Sets up an [`Endpoint`]; see [`Endpoint::builder`].
#[derive(Debug)]
#[must_use]
pub struct Builder {
    identity: LocalIdentity,
    config: AgentConfig,
    clock: Arc<dyn Clock>,
    seed: Option<[u8; 32]>,
}

impl Builder {
    /// The agent's settings (policy, longest expiry accepted):
    /// [`AgentConfig::default`] (policy Anyone) unless told otherwise.
    pub fn config(mut self, config: AgentConfig) -> Self {
        self.config = config;
        self
    }

    /// Where `now` comes from: [`SystemClock`] unless told otherwise; a
    /// [`ManualClock`] for tests of long timers.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The agent's entropy from `seed` instead of the operating system:
    /// for reproducible tests only.
    pub fn seed(mut self, seed: [u8; 32]) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Binds a UDP socket to each of `addrs` (port 0 picks a free port:
    /// read it back with [`Endpoint::local_addrs`]) and starts serving.
    /// Must be called within a tokio runtime (any flavour).
    ///
    /// Fails with [`Error::Bind`] naming the address that could not be
    /// bound (in use, not local…), or [`Error::Io`] when `addrs` is empty.
    pub async fn bind(self, addrs: &[SocketAddr]) -> Result<(Endpoint, Incoming), Error> {
        let driver = match self.seed {
            Some(seed) => Driver::with_seed(self.identity, self.config, self.clock, seed),
            None => Driver::new(self.identity, self.config, self.clock)?,
        };
        let mut sockets = Vec::new();
        let mut senders = Vec::new();
        let mut locals = Vec::new();
        for (udp, local) in net::bind_all(addrs)? {
            senders.push(udp.try_clone()?);
            sockets.push(UdpSocket::from_std(udp)?);
            locals.push(local);
        }
        let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                driver,
                routes: Routes::new(locals),
                senders,
                handles: Vec::with_capacity(POOLED),
                incoming: Vec::with_capacity(POOLED),
                answered: Vec::with_capacity(POOLED),
                release_on_end: Vec::with_capacity(POOLED),
                status_pool: (0..POOLED).map(|_| watch::Sender::new(PENDING)).collect(),
                ended_pool: (0..POOLED).map(|_| watch::Sender::new(None)).collect(),
                no_status: watch::Sender::new(PENDING),
                queue: Some(tx),
                phase: Phase::Serving,
                declined_at_shutdown: 0,
                armed: None,
            }),
            wake: Arc::new(Notify::new()),
            progress: Notify::new(),
            stop,
            tasks: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&inner);
        inner.lock().driver.clock().on_jump(Arc::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.wake.notify_one();
            }
        }));
        let mut tasks = Vec::new();
        for (k, socket) in sockets.into_iter().enumerate() {
            let task = receive(Arc::downgrade(&inner), socket, k, inner.stop.subscribe());
            tasks.push(tokio::spawn(task));
        }
        let task = timers(Arc::downgrade(&inner), Arc::clone(&inner.wake), inner.stop.subscribe());
        tasks.push(tokio::spawn(task));
        *inner.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
        let endpoint = Endpoint { inner };
        tracing::info!(addrs = ?endpoint.local_addrs(), "endpoint serving");
        let incoming = Incoming { rx, endpoint: endpoint.clone() };
        Ok((endpoint, incoming))
    }
}

/// Sends one datagram by the socket routing picks.
fn send(
    routes: &Routes,
    senders: &[std::net::UdpSocket],
    to: SocketAddr,
    datagram: &[u8],
) -> std::io::Result<()> {
    let (k, to) = routes.route(to)?;
    let socket = senders.get(k).ok_or_else(|| net::no_socket_for(&to))?;
    match socket.send_to(datagram, to)? {
        n if n == datagram.len() => Ok(()),
        _ => Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "datagram truncated")),
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After any input, command or timeout: send what the agent has to
    /// send and hand out its notices.
    fn pump(self: &Arc<Self>, state: &mut State) {
        loop {
            if state.phase != Phase::Stopped {
                let State { driver, routes, senders, .. } = &mut *state;
                driver.flush(|to, datagram| send(routes, senders, to, datagram));
            }
            // Dispatching may answer (Busy, shutdown's Decline): flush again.
            let mut dispatched = false;
            while let Some(notice) = state.driver.poll_notice() {
                dispatched = true;
                self.dispatch(state, notice);
            }
            if !dispatched {
                break;
            }
        }
        if state.phase == Phase::Closing {
            self.progress.notify_waiters();
        }
    }

    /// [`pump`](Self::pump), then has the timer task read the new
    /// deadline if it is earlier than the one it waits for: after inputs
    /// and commands.
    fn pump_and_rearm(self: &Arc<Self>, state: &mut State) {
        self.pump(state);
        let earlier = match (state.driver.agent().poll_timeout(), state.armed) {
            (None, _) => false,
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
        };
        if earlier {
            self.wake.notify_one();
        }
    }

    fn dispatch(self: &Arc<Self>, state: &mut State, notice: Notice) {
        match notice {
            Notice::Ringing(handle) => {
                if let Some(tx) = state.status_tx(handle) {
                    tx.send_if_modified(|s| match s {
                        Status::Pending { ringing } if !*ringing => {
                            *ringing = true;
                            true
                        }
                        _ => false,
                    });
                }
            }
            Notice::Responded { handle, answer } => {
                if let Some(tx) = state.status_tx(handle) {
                    tx.send_replace(Status::Answered(answer));
                }
            }
            Notice::Invited(info) => self.present(state, info),
            Notice::IncomingEnded { incoming, outcome } => {
                if let Some(entry) = state.incoming.iter_mut().find(|e| e.id == incoming) {
                    if entry.dropped {
                        state.forget_incoming(incoming);
                    } else {
                        entry.done = true;
                        entry.ended.send_replace(Some(outcome));
                    }
                }
                remove_id(&mut state.answered, &incoming);
                if remove_id(&mut state.release_on_end, &incoming)
                    && state.driver.release(incoming).is_ok()
                {
                    tracing::debug!(?incoming, "launch information released");
                }
            }
            _ => {}
        }
    }

    /// Hands a presented invitation to the application, or answers it
    /// when nobody can take it.
    fn present(self: &Arc<Self>, state: &mut State, info: InvitationInfo) {
        let id = info.id;
        if state.phase != Phase::Serving {
            if state.driver.respond(id, Reply::Decline, SHUTDOWN_REASON).is_ok() {
                state.answered.push(id);
                state.declined_at_shutdown += 1;
            }
            return;
        }
        let ended_tx = state.ended_pool.pop().unwrap_or_else(|| watch::Sender::new(None));
        let ended = ended_tx.subscribe();
        let span = tracing::info_span!(
            "incoming",
            incoming = ?id,
            inviter = %info.identity().fingerprint(),
        );
        let invitation = IncomingInvitation {
            info,
            ended,
            endpoint: Endpoint { inner: Arc::clone(self) },
            accepted: false,
            answered: false,
            registered: true,
            span,
        };
        let mut refused = match &state.queue {
            Some(queue) => match queue.try_send(invitation) {
                Ok(()) => {
                    let entry = IncomingEntry { id, ended: ended_tx, done: false, dropped: false };
                    state.incoming.push(entry);
                    return;
                }
                Err(
                    mpsc::error::TrySendError::Full(refused)
                    | mpsc::error::TrySendError::Closed(refused),
                ) => refused,
            },
            None => invitation,
        };
        // Nobody takes it: Busy. (Dropping it unregistered touches no
        // state: the lock is held.)
        refused.registered = false;
        drop(refused);
        state.ended_pool.push(ended_tx);
        let busy = Reply::Busy { retry_after: BUSY_RETRY_AFTER };
        if state.driver.respond(id, busy, "").is_ok() {
            state.answered.push(id);
            tracing::warn!(incoming = ?id, "no one takes incoming invitations: busy");
        }
    }

    /// Whether a shutdown has nothing left to wait for: every answer
    /// acknowledged, and nothing the agent would retransmit (a cancel not
    /// yet confirmed retransmits within `RETRANSMIT_MAX`; finished
    /// invitations only linger, their next deadline further away).
    fn settled(state: &State) -> bool {
        let horizon =
            state.driver.now().saturating_add(peercollab_driver::core::invite::RETRANSMIT_MAX);
        state.answered.is_empty()
            && state.driver.agent().poll_timeout().is_none_or(|deadline| deadline > horizon)
    }
}

/// Receives on `socket` (the `k`-th) until the endpoint stops. Holds the
/// endpoint only weakly while it waits.
async fn receive(inner: Weak<Inner>, socket: UdpSocket, k: usize, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let ready = tokio::select! {
            r = socket.readable() => r,
            _ = stop.changed() => return,
        };
        if let Err(e) = ready {
            tracing::warn!(error = %e, "socket unreadable; receiver stops");
            return;
        }
        let Some(strong) = inner.upgrade() else { return };
        loop {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => {
                    let from = net::canonical(from);
                    let mut state = strong.lock();
                    if state.phase == Phase::Stopped {
                        return;
                    }
                    state.routes.heard(from, k);
                    state.driver.handle_datagram(from, buf.get(..n).unwrap_or(&[]));
                    strong.pump_and_rearm(&mut state);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors surface as failed receives on some
                // platforms: the protocol's timers handle the loss.
                Err(e) => tracing::debug!(error = %e, "receive failed"),
            }
        }
        drop(strong);
    }
}

/// Runs the agent's deadlines until the endpoint stops. Holds the endpoint
/// only weakly while it waits.
async fn timers(inner: Weak<Inner>, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    loop {
        let woken = wake.notified();
        tokio::pin!(woken);
        // Interest registered before the deadline is read: a wake between
        // the two is not lost.
        woken.as_mut().enable();
        let wait = match inner.upgrade() {
            Some(strong) => {
                let mut state = strong.lock();
                state.armed = state.driver.agent().poll_timeout();
                state.driver.wait()
            }
            None => return,
        };
        match wait {
            Some(wait) => tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut woken => {}
                _ = stop.changed() => return,
            },
            None => tokio::select! {
                () = &mut woken => {}
                _ = stop.changed() => return,
            },
        }
        let Some(strong) = inner.upgrade() else { return };
        let mut state = strong.lock();
        if state.phase == Phase::Stopped {
            return;
        }
        // Woken by an earlier deadline or a manual clock's jump, a
        // deadline may be due or not: running the timers early is harmless.
        state.driver.handle_timeout();
        strong.pump(&mut state);
    }
}

impl Endpoint {
    /// An endpoint for `identity`; set it up and bind it with the
    /// [`Builder`].
    pub fn builder(identity: LocalIdentity) -> Builder {
        Builder {
            identity,
            config: AgentConfig::default(),
            clock: Arc::new(SystemClock::new()),
            seed: None,
        }
    }

    /// Runs `f` on the state, then sends and dispatches what it produced.
    fn command<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.inner.lock();
        let result = f(&mut state);
        self.inner.pump_and_rearm(&mut state);
        result
    }

    /// Like [`command`](Self::command), for commands that send: refused
    /// once the endpoint has shut down.
    fn sending<R>(&self, f: impl FnOnce(&mut State) -> Result<R, Error>) -> Result<R, Error> {
        self.command(|s| if s.phase == Phase::Stopped { Err(Error::Closed) } else { f(s) })
    }

    /// Any agent command (or getter) at the clock's `now`, with its output
    /// sent: for what the methods here do not cover (contact updates and
    /// revocations, the list of contacts and applications, counters…).
    /// `f` runs under the endpoint's lock: keep it short, and do not call
    /// back into the endpoint from it (that would deadlock).
    pub fn with_agent<R>(
        &self,
        f: impl FnOnce(&mut peercollab_driver::core::agent::Agent, Instant) -> R,
    ) -> R {
        self.command(|s| s.driver.command(f))
    }

    /// The addresses the sockets are bound to (with the ports picked for
    /// port 0).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.lock().routes.local_addrs()
    }

    /// The driver's counters (datagrams in, out, dropped, send failures).
    #[must_use]
    pub fn stats(&self) -> DriverStats {
        self.inner.lock().driver.stats()
    }

    /// The agent's counters (drops by reason, cookies, roaming…).
    #[must_use]
    pub fn agent_stats(&self) -> AgentStats {
        self.inner.lock().driver.agent().stats()
    }

    /// The clock's now, as the agent sees it (for
    /// [`InvitationInfo::expires_in`]).
    #[must_use]
    pub fn now(&self) -> Instant {
        self.inner.lock().driver.now()
    }

    /// This endpoint's identity.
    #[must_use]
    pub fn identity(&self) -> IdentityKey {
        self.inner.lock().driver.agent().identity().identity()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    #[must_use]
    pub fn is_shut_down(&self) -> bool {
        self.inner.lock().phase != Phase::Serving
    }

    /// My contact card, naming `addresses` (the bound addresses if empty;
    /// an unspecified address such as `0.0.0.0` is useless to others, so
    /// name real ones then).
    pub fn my_card(
        &self,
        display_name: &str,
        addresses: &[SocketAddr],
    ) -> Result<ContactCard, Error> {
        let state = self.inner.lock();
        let bound;
        let addresses = if addresses.is_empty() {
            bound = state.routes.local_addrs();
            &bound[..]
        } else {
            addresses
        };
        Ok(state.driver.agent().my_card(display_name, addresses)?)
    }

    /// Adds a contact from its card (its fingerprint should be checked
    /// with its owner out of band).
    pub fn add_contact(&self, card: &ContactCard, trust: Trust) -> Result<ContactId, Error> {
        Ok(self.with_agent(|a, _| a.add_contact(card, trust))?)
    }

    /// Changes a contact.
    pub fn update_contact(
        &self,
        contact: ContactId,
        update: ContactUpdate<'_>,
    ) -> Result<(), Error> {
        Ok(self.with_agent(|a, _| a.update_contact(contact, update))?)
    }

    /// Removes a contact, cancelling its invitations.
    pub fn remove_contact(&self, contact: ContactId) -> Result<(), Error> {
        Ok(self.with_agent(|a, now| a.remove_contact(now, contact))?)
    }

    /// The contact whose identity is `identity`.
    #[must_use]
    pub fn contact_by_identity(&self, identity: &IdentityKey) -> Option<ContactId> {
        self.inner.lock().driver.agent().contact_by_identity(identity)
    }

    /// Registers an application (the latest registration wins); `policy`
    /// overrides the endpoint's for its invitations.
    pub fn register_application(
        &self,
        app: AppId,
        name: &str,
        policy: Option<Policy>,
    ) -> Result<(), Error> {
        Ok(self.with_agent(|a, _| a.register_application(app, name, policy))?)
    }

    /// Unregisters an application.
    pub fn unregister_application(&self, app: AppId) -> Result<(), Error> {
        Ok(self.with_agent(|a, _| a.unregister_application(app))?)
    }

    /// Sets whom invitations are accepted from. Refused
    /// ([`Error::Closed`]) once shutting down: the shutdown set Nobody.
    pub fn set_policy(&self, policy: Policy) -> Result<(), Error> {
        self.command(|s| {
            if s.phase != Phase::Serving {
                return Err(Error::Closed);
            }
            s.driver.command(|a, _| a.set_policy(policy));
            Ok(())
        })
    }

    /// Starts inviting `contact` at `targets`, or, when `targets` is
    /// empty, at every endpoint its card names, each at an address a
    /// socket here can reach (Windows' `PeerCollabAsyncInviteContact`).
    /// Returns at once with the [`Invitation`]; the first endpoint to
    /// accept wins, the others are cancelled.
    ///
    /// Fails with [`Error::Agent`] (unknown contact, no usable address:
    /// `NoTargets`, message or data too long, no slot free…) or
    /// [`Error::Closed`] once shutting down.
    pub fn start_invite_contact(
        &self,
        contact: ContactId,
        targets: &[Target],
        request: &Request,
        options: InviteOptions,
    ) -> Result<Invitation, Error> {
        let span = tracing::info_span!("invitation", handle = tracing::field::Empty, ?contact);
        self.start(span, |s| {
            if targets.is_empty() {
                let State { driver, routes, .. } = s;
                driver.invite_contact_where(contact, |a| routes.reaches(a), request, options)
            } else {
                s.driver.invite_contact(contact, targets, request, options)
            }
        })
    }

    /// Starts inviting whoever answers at `address` (Windows'
    /// `PeerCollabAsyncInviteEndpoint`); the answer names the answerer's
    /// authenticated identity ([`Answer::identity`]), which
    /// [`InviteOptions::expect`] can require in advance.
    ///
    /// Fails with [`Error::Io`] when no socket here can reach `address`'s
    /// family, [`Error::Agent`] as [`start_invite_contact`](Self::start_invite_contact),
    /// or [`Error::Closed`].
    pub fn start_invite_endpoint(
        &self,
        address: SocketAddr,
        request: &Request,
        options: InviteOptions,
    ) -> Result<Invitation, Error> {
        let span = tracing::info_span!("invitation", handle = tracing::field::Empty, %address);
        self.start(span, |s| {
            if !s.routes.reaches(&address) {
                return Err(Error::Io(net::no_socket_for(&address)));
            }
            s.driver.invite_endpoint(address, request, options)
        })
    }

    fn start(
        &self,
        span: tracing::Span,
        f: impl FnOnce(&mut State) -> Result<Option<Handle>, Error>,
    ) -> Result<Invitation, Error> {
        let started = span.in_scope(|| {
            self.command(|s| {
                if s.phase != Phase::Serving {
                    return Err(Error::Closed);
                }
                let handle = f(s)?;
                let status = match handle {
                    Some(h) => {
                        let tx = s.take_status();
                        let status = tx.subscribe();
                        s.handles.push((h, tx));
                        status
                    }
                    None => s.no_status.subscribe(),
                };
                Ok::<_, Error>((handle, status))
            })
        });
        let (handle, status) = match started {
            Ok(started) => started,
            Err(e) => {
                span.in_scope(|| tracing::info!(error = %e, "not started"));
                return Err(e);
            }
        };
        span.record("handle", tracing::field::debug(handle));
        span.in_scope(|| tracing::info!(discard = handle.is_none(), "started"));
        Ok(Invitation { endpoint: self.clone(), handle, status, span })
    }

    /// Invites `contact` at every endpoint its card names and waits for
    /// the answer (Windows' `PeerCollabInviteContact`). A waiting call
    /// always keeps its handle ([`InviteOptions::handle`] is ignored).
    ///
    /// Errors are those of [`start_invite_contact`](Self::start_invite_contact),
    /// at once, or [`Error::Closed`] if the endpoint stops while waiting;
    /// every outcome (declined, expired, unreachable…) is an `Ok`
    /// [`Answer`].
    ///
    /// **Cancellation-safe**: dropping the future before it resolves
    /// cancels and closes the invitation (its invitees see Cancelled).
    pub async fn invite_contact(
        &self,
        contact: ContactId,
        request: Request,
        mut options: InviteOptions,
    ) -> Result<Answer, Error> {
        options.handle = HandleMode::Keep;
        let mut invitation = self.start_invite_contact(contact, &[], &request, options)?;
        invitation.outcome().await
    }

    /// Invites whoever answers at `address` and waits for the answer
    /// (Windows' `PeerCollabInviteEndpoint`); the answer carries the
    /// answerer's authenticated identity. As
    /// [`invite_contact`](Self::invite_contact): the handle is kept,
    /// outcomes are `Ok`, and dropping the future cancels the invitation.
    pub async fn invite_endpoint(
        &self,
        address: SocketAddr,
        request: Request,
        mut options: InviteOptions,
    ) -> Result<Answer, Error> {
        options.handle = HandleMode::Keep;
        let mut invitation = self.start_invite_endpoint(address, &request, options)?;
        invitation.outcome().await
    }

    /// Shuts down gracefully, serving at most `within` (real time) for
    /// acknowledgements, then stops the endpoint's tasks and closes its
    /// sockets: see [Shutdown](crate#shutdown) for each in-flight case.
    /// Calling it again (or from several clones at once) is harmless: each
    /// call waits, then stops.
    pub async fn shutdown(&self, within: std::time::Duration) -> ShutdownReport {
        let span = tracing::info_span!("shutdown");
        let deadline = tokio::time::Instant::now() + within;
        let mut report = ShutdownReport::default();
        {
            let _enter = span.enter();
            let mut state = self.inner.lock();
            if state.phase == Phase::Serving {
                state.phase = Phase::Closing;
                state.queue = None;
                state.driver.command(|a, _| a.set_policy(Policy::Nobody));
                let handles: Vec<Handle> = state.handles.iter().map(|(h, _)| *h).collect();
                for h in handles {
                    let pending = matches!(state.driver.status(h), Ok(Status::Pending { .. }));
                    if pending && state.driver.cancel(h).is_ok() {
                        report.cancelled += 1;
                    }
                }
                let unanswered: Vec<IncomingId> = state
                    .incoming
                    .iter()
                    .filter(|e| !e.done && !state.answered.contains(&e.id))
                    .map(|e| e.id)
                    .collect();
                for id in unanswered {
                    if state.driver.respond(id, Reply::Decline, SHUTDOWN_REASON).is_ok() {
                        state.answered.push(id);
                        state.declined_at_shutdown += 1;
                    }
                }
                tracing::info!(
                    cancelled = report.cancelled,
                    declined = state.declined_at_shutdown,
                    answers_in_flight = state.answered.len(),
                    "shutting down"
                );
                self.inner.pump_and_rearm(&mut state);
            }
        }
        loop {
            let progress = self.inner.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            {
                let state = self.inner.lock();
                if state.phase == Phase::Stopped || Inner::settled(&state) {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                report.timed_out = true;
                break;
            }
        }
        let tasks = {
            let mut state = self.inner.lock();
            report.declined = state.declined_at_shutdown;
            report.unacknowledged = state.answered.len();
            report.slots_in_use = state.driver.agent().invitations_in_use();
            state.phase = Phase::Stopped;
            state.senders.clear();
            state.queue = None;
            // Waiters on what can no longer change get `Error::Closed`
            // (answered handles keep their answer).
            state.handles.clear();
            state.incoming.clear();
            self.inner.stop.send_replace(true);
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner))
        };
        for task in tasks {
            if let Err(e) = task.await {
                span.in_scope(|| tracing::warn!(error = %e, "an endpoint task failed"));
            }
        }
        span.in_scope(|| tracing::info!(?report, "endpoint shut down"));
        report
    }
}

/// What a [`shutdown`](Endpoint::shutdown) did and left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Outgoing invitations without an outcome, cancelled.
    pub cancelled: usize,
    /// Incoming invitations declined unanswered: those waiting when the
    /// shutdown began and those presented since.
    pub declined: usize,
    /// Answers (the application's, Busy, or the shutdown's declines) the
    /// inviter had not acknowledged when the time ran out: those inviters
    /// may not know the answer, and those invitations end Unreachable here.
    pub unacknowledged: usize,
    /// The time given ran out before everything was acknowledged and
    /// every cancel confirmed.
    pub timed_out: bool,
    /// Invitation slots still held when it stopped (finished invitations
    /// lingering, accepted ones whose launch information is held), freed
    /// with the agent.
    pub slots_in_use: usize,
}

/// An outgoing invitation (Windows' invitation `HANDLE`), from
/// [`Endpoint::start_invite_contact`] or
/// [`Endpoint::start_invite_endpoint`].
///
/// Watch it with [`changed`](Self::changed), poll it with
/// [`status`](Self::status), wait for its answer with
/// [`outcome`](Self::outcome), [`cancel`](Self::cancel) it. **Dropping it
/// closes it** (`CloseHandle`), cancelling it first if it has no outcome
/// yet. Started with [`InviteOptions::discard_handle`], it has no handle:
/// the invitation runs to its end unobserved, its status stays pending,
/// and the waits and cancel fail with `AgentError::UnknownHandle`.
#[derive(Debug)]
#[must_use = "dropping an Invitation closes it, cancelling it if it has no outcome yet"]
pub struct Invitation {
    endpoint: Endpoint,
    handle: Option<Handle>,
    status: watch::Receiver<Status>,
    span: tracing::Span,
}

impl Invitation {
    /// Its handle at the agent (`None` when started with
    /// [`InviteOptions::discard_handle`]).
    #[must_use]
    pub fn handle(&self) -> Option<Handle> {
        self.handle
    }

    /// Pending (ringing or not) or answered (Windows'
    /// `GetInvitationResponse`: `PEER_E_INVITE_RESPONSE_NOT_AVAILABLE` or
    /// the response). Never waits.
    #[must_use]
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    fn handle_or_err(&self) -> Result<Handle, Error> {
        self.handle.ok_or(Error::Agent(AgentError::UnknownHandle))
    }

    /// Waits until the status changes from the one last returned by
    /// `changed` (at first: from pending, not ringing), and returns the
    /// new one: ringing, then answered (a change may skip ringing). Once
    /// the answer was returned nothing changes any more: use
    /// [`outcome`](Self::outcome) then, as this would wait until the
    /// endpoint stops ([`Error::Closed`]). Cancellation-safe.
    pub async fn changed(&mut self) -> Result<Status, Error> {
        self.handle_or_err()?;
        let span = self.span.clone();
        async {
            self.status.changed().await.map_err(|_| Error::Closed)?;
            let status = self.status.borrow_and_update().clone();
            tracing::debug!(?status, "status changed");
            Ok(status)
        }
        .instrument(span)
        .await
    }

    /// Waits for the outcome (at once if it is in). Cancellation-safe:
    /// dropping this future leaves the invitation running (dropping the
    /// `Invitation` closes it). [`Error::Closed`] if the endpoint stops
    /// first.
    pub async fn outcome(&mut self) -> Result<Answer, Error> {
        self.handle_or_err()?;
        let span = self.span.clone();
        async {
            let status = self
                .status
                .wait_for(|s| matches!(s, Status::Answered(_)))
                .await
                .map_err(|_| Error::Closed)?;
            match &*status {
                Status::Answered(answer) => Ok(answer.clone()),
                _ => Err(Error::Closed),
            }
        }
        .instrument(span)
        .await
    }

    /// Cancels it (Windows' `CancelInvitation`): `Abandoned` if its Invite
    /// was not sent yet (the invitee never sees it), `Withdrawing` if it
    /// was (the invitee is told and can no longer answer) — either way its
    /// outcome becomes Cancelled at once; `NoEffect` if it was answered
    /// already. The handle stays open until dropped.
    pub fn cancel(&self) -> Result<CancelEffect, Error> {
        let handle = self.handle_or_err()?;
        let _enter = self.span.enter();
        self.endpoint.sending(|s| s.driver.cancel(handle))
    }
}

impl Drop for Invitation {
    fn drop(&mut self) {
        if let Some(handle) = self.handle {
            let _enter = self.span.enter();
            self.endpoint.command(|s| {
                s.forget_handle(handle);
                if let Err(e) = s.driver.close(handle) {
                    tracing::debug!(?handle, error = %e, "closing a handle");
                }
            });
        }
    }
}

/// The invitations that arrive, as the agent presents them: a stream, read
/// with [`next`](Self::next) (or [`poll_next`](Self::poll_next)). It ends
/// (`None`) once the endpoint shuts down and the invitations queued before
/// are read. Dropping it makes the endpoint answer further invitations
/// Busy.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<IncomingInvitation>,
    endpoint: Endpoint,
}

impl Incoming {
    /// The next presented invitation; `None` once the endpoint shut down.
    /// Cancellation-safe.
    pub async fn next(&mut self) -> Option<IncomingInvitation> {
        self.rx.recv().await
    }

    /// The poll form of [`next`](Self::next), for `Stream` adapters.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<IncomingInvitation>> {
        self.rx.poll_recv(cx)
    }

    /// The endpoint they arrive at.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// A presented invitation (the owned [`info`](Self::info): inviter's
/// verified certificate and contact, application, message, data, expiry).
/// Answer it once with [`accept`](Self::accept),
/// [`decline`](Self::decline) or [`busy`](Self::busy); its outcome
/// follows when the inviter acknowledges ([`ended`](Self::ended)).
///
/// Dropping it unanswered leaves it ringing until it expires (or the
/// inviter cancels); dropping it accepted releases its launch information
/// (when it ends, if it has not yet).
#[derive(Debug)]
pub struct IncomingInvitation {
    info: InvitationInfo,
    ended: watch::Receiver<Option<Outcome>>,
    endpoint: Endpoint,
    /// Accepted here: its launch information is released on drop.
    accepted: bool,
    /// Answered here.
    answered: bool,
    /// Its end is watched in the endpoint's state (not when it was refused
    /// before reaching the application).
    registered: bool,
    span: tracing::Span,
}

impl IncomingInvitation {
    /// Who invites, to what, with which message and data, until when.
    #[must_use]
    pub fn info(&self) -> &InvitationInfo {
        &self.info
    }

    /// Time left to answer, on the endpoint's clock.
    #[must_use]
    pub fn expires_in(&self) -> Duration {
        self.info.expires_in(self.endpoint.now())
    }

    fn respond(&mut self, reply: Reply, reason: &str) -> Result<(), Error> {
        let id = self.info.id;
        let _enter = self.span.enter();
        self.endpoint.sending(|s| {
            s.driver.respond(id, reply, reason)?;
            s.answered.push(id);
            Ok(())
        })?;
        self.accepted = reply == Reply::Accept;
        self.answered = true;
        Ok(())
    }

    /// Accepts it. Once the inviter acknowledges, it ends Accepted and the
    /// launch information is readable until [`release`](Self::release)d
    /// or this is dropped. Fails with `AgentError` `Ended`-like errors if
    /// it expired or was cancelled or answered meanwhile.
    pub fn accept(&mut self) -> Result<(), Error> {
        self.respond(Reply::Accept, "")
    }

    /// Declines it, with a reason shown to the inviter (at most 128 bytes).
    pub fn decline(&mut self, reason: &str) -> Result<(), Error> {
        self.respond(Reply::Decline, reason)
    }

    /// Answers busy: the inviter may try again after `retry_after`.
    pub fn busy(&mut self, retry_after: Duration) -> Result<(), Error> {
        self.respond(Reply::Busy { retry_after }, "")
    }

    /// Waits for its end and returns its outcome: the answer once
    /// acknowledged, Cancelled if the inviter cancelled, Expired,
    /// Unreachable… Cancellation-safe. [`Error::Closed`] if the endpoint
    /// stops first.
    pub async fn ended(&mut self) -> Result<Outcome, Error> {
        let span = self.span.clone();
        async {
            let outcome = self.ended.wait_for(Option::is_some).await.map_err(|_| Error::Closed)?;
            (*outcome).ok_or(Error::Closed)
        }
        .instrument(span)
        .await
    }

    /// The launch information of an accepted invitation (Windows'
    /// `GetAppLaunchInfo`): readable once it ended Accepted, until
    /// released.
    pub fn launch_info(&self) -> Result<InvitationInfo, Error> {
        let id = self.info.id;
        self.endpoint.inner.lock().driver.launch_info(id)
    }

    /// Releases the launch information of an invitation that ended
    /// Accepted, and its slot (dropping it does the same).
    pub fn release(mut self) -> Result<(), Error> {
        let id = self.info.id;
        // Released here, not again on drop (which forgets it).
        self.accepted = false;
        let mut state = self.endpoint.inner.lock();
        state.driver.release(id)?;
        Ok(())
    }
}

impl Drop for IncomingInvitation {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        let id = self.info.id;
        let mut state = self.endpoint.inner.lock();
        let Some(entry) = state.incoming.iter_mut().find(|e| e.id == id) else { return };
        let done = entry.done;
        if !done && !self.answered {
            // Left ringing: the shutdown may still decline it.
            entry.dropped = true;
            return;
        }
        state.forget_incoming(id);
        if self.accepted {
            // Only an invitation that ended Accepted holds launch
            // information; one still in flight has it released when it
            // ends.
            if state.driver.release(id).is_ok() {
                self.span.in_scope(|| tracing::debug!("launch information released"));
            } else if !done {
                state.release_on_end.push(id);
            }
        }
    }
}
