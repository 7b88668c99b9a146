//! peercollab on tokio: real UDP sockets and timers around the sans-IO
//! agent of `peercollab-core`, by way of `peercollab-driver`.
//!
//! [`Endpoint::builder`] binds one or more UDP sockets (IPv4 and IPv6; an
//! IPv6 socket on `[::]` carries IPv4 too where the platform allows and no
//! IPv4 address is bound beside it) and starts one task per socket and a
//! timer task. It returns a cheap, cloneable [`Endpoint`] and the stream of
//! [`Incoming`] invitations.
//!
//! | Windows | here |
//! |---|---|
//! | `PeerCollabInviteContact`, `PeerCollabInviteEndpoint` (waiting) | [`Endpoint::invite_contact`], [`Endpoint::invite_endpoint`]: `.await` the [`Answer`] |
//! | `PeerCollabAsyncInviteContact`, `…AsyncInviteEndpoint` | [`Endpoint::start_invite_contact`], [`Endpoint::start_invite_endpoint`]: an [`Invitation`] handle |
//! | the invitation's event | [`Invitation::changed`] |
//! | `GetInvitationResponse` | [`Invitation::status`] (pending or answered) |
//! | `CancelInvitation` | [`Invitation::cancel`] |
//! | `CloseHandle` | dropping the [`Invitation`] |
//! | invitations arriving, `GetAppLaunchInfo` | [`Incoming::next`], [`IncomingInvitation`] |
//!
//! ```no_run
//! use peercollab_tokio::{AppId, Endpoint, EndpointId, Request, generate_identity};
//!
//! # async fn example() -> Result<(), peercollab_tokio::Error> {
//! let app = AppId(*b"example-app-0001");
//! let (alice, _) = Endpoint::builder(generate_identity(EndpointId(1))?)
//!     .bind(&["127.0.0.1:0".parse().unwrap()])
//!     .await?;
//! let (bob, mut invitations) = Endpoint::builder(generate_identity(EndpointId(1))?)
//!     .bind(&["127.0.0.1:0".parse().unwrap()])
//!     .await?;
//! bob.register_application(app, "example", None)?;
//! tokio::spawn(async move {
//!     while let Some(mut invitation) = invitations.next().await {
//!         let _ = invitation.accept();
//!     }
//! });
//! let address = bob.local_addrs()[0];
//! let answer = alice.invite_endpoint(address, Request::new(app).message("join me"), Default::default()).await?;
//! println!("{:?} by {:?}", answer.outcome, answer.identity());
//! # Ok(()) }
//! ```
//!
//! # Behaviour
//! - **Commands return at once**; the agent's misuse errors come back as
//!   [`Error::Agent`] and change nothing.
//! - **Cancellation**: dropping the future of a waiting call, or an
//!   [`Invitation`] handle, closes the invitation, which cancels it if it
//!   has no outcome yet (the invitee sees Cancelled). Every future here is
//!   cancellation-safe: no state is lost by dropping one between polls.
//! - **Incoming invitations** wait in a queue of [`INCOMING_QUEUE`]; when
//!   the application does not take them, further ones are answered Busy
//!   (retry after [`BUSY_RETRY_AFTER`]). Dropping an
//!   [`IncomingInvitation`] unanswered leaves it to expire; dropping an
//!   accepted one releases its launch information.
//! - **Shutdown** ([`Endpoint::shutdown`]): the policy becomes Nobody,
//!   open handles are closed (cancelling pending invitations), unanswered
//!   incoming invitations are declined with [`SHUTDOWN_REASON`], and the
//!   endpoint keeps serving until every answer it gave is acknowledged or
//!   the given time passes; the [`ShutdownReport`] says what happened.
//!   Then its tasks end and its sockets close. Dropping every clone of an
//!   [`Endpoint`] (and the [`Incoming`]) without shutting down stops the
//!   tasks too, abruptly.
//! - **Time** comes from a [`Clock`]: [`SystemClock`] by default; a
//!   [`ManualClock`] makes five-minute expiries instant in tests while real
//!   sockets carry the datagrams (tokio's paused time would race them).
//! - Every invitation is traced (`tracing`): the driver logs the agent's
//!   events; the waiting calls run in an `invitation` span.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use peercollab_driver::net::{self, RECV_BUF, Routes};

pub use peercollab_driver::core::agent::{
    AgentConfig, AgentError, ContactId, ContactUpdate, Handle, IncomingId, InviteOptions, Policy,
    Target, Trust,
};
pub use peercollab_driver::core::card::ContactCard;
pub use peercollab_driver::core::identity::{EndpointId, IdentityKey, LocalIdentity};
pub use peercollab_driver::core::invite::{
    Answer as Reply, AppId, CancelEffect, CancelReason, Outcome,
};
pub use peercollab_driver::core::{Duration, Instant};
pub use peercollab_driver::{
    Answer, Clock, Driver, DriverStats, Error, Invitation as InvitationInfo, ManualClock, Notice,
    Request, Status, SystemClock, generate_identity, os_seed,
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

/// The shared state: the driver and who waits on what.
struct State {
    driver: Driver,
    routes: Routes,
    /// Status of each open handle, for its [`Invitation`].
    handles: BTreeMap<Handle, watch::Sender<Status>>,
    /// The end of each presented incoming invitation.
    incoming: BTreeMap<IncomingId, watch::Sender<Option<Outcome>>>,
    /// Where presented invitations go; `None` once the [`Incoming`] is gone.
    queue: Option<mpsc::Sender<IncomingInvitation>>,
    /// Incoming invitations answered during shutdown, until they end.
    shutting_down: Option<Vec<IncomingId>>,
}

struct Inner {
    state: Mutex<State>,
    /// For receiving: tokio's readiness.
    sockets: Vec<Arc<UdpSocket>>,
    /// The same sockets for sending, non-blocking: a datagram goes out at
    /// once, without waiting for tokio to learn the socket is writable
    /// (its `try_send_to` refuses a fresh socket until then).
    senders: Vec<std::net::UdpSocket>,
    /// Wakes the timer task to read the next deadline again.
    wake: Arc<Notify>,
    /// Ends the tasks: on shutdown, or when the last [`Endpoint`] clone
    /// goes (the tasks hold only weak references).
    stop: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// One peer on the network: an agent behind UDP sockets. Clones share it.
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
    /// The agent's settings (policy, longest expiry accepted).
    pub fn config(mut self, config: AgentConfig) -> Self {
        self.config = config;
        self
    }

    /// Where `now` comes from: [`SystemClock`] unless told otherwise.
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

    /// Binds a UDP socket to each of `addrs` and starts serving. Must be
    /// called within a tokio runtime.
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
            sockets.push(Arc::new(UdpSocket::from_std(udp)?));
            locals.push(local);
        }
        let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                driver,
                routes: Routes::new(locals),
                handles: BTreeMap::new(),
                incoming: BTreeMap::new(),
                queue: Some(tx),
                shutting_down: None,
            }),
            sockets,
            senders,
            wake: Arc::new(Notify::new()),
            stop,
        });
        let weak = Arc::downgrade(&inner);
        inner.lock().driver.clock().on_jump(Arc::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.wake.notify_one();
            }
        }));
        for (k, socket) in inner.sockets.iter().enumerate() {
            let task =
                receive(Arc::downgrade(&inner), Arc::clone(socket), k, inner.stop.subscribe());
            tokio::spawn(task);
        }
        let task = timers(Arc::downgrade(&inner), Arc::clone(&inner.wake), inner.stop.subscribe());
        tokio::spawn(task);
        let endpoint = Endpoint { inner };
        tracing::info!(addrs = ?endpoint.local_addrs(), "endpoint serving");
        let incoming = Incoming { rx, endpoint: endpoint.clone() };
        Ok((endpoint, incoming))
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
            let State { driver, routes, .. } = &mut *state;
            driver.flush(|to, datagram| {
                let (k, to) = routes.route(to)?;
                let socket = self.senders.get(k).ok_or_else(|| net::no_socket_for(&to))?;
                match socket.send_to(datagram, to)? {
                    n if n == datagram.len() => Ok(()),
                    _ => Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "datagram truncated",
                    )),
                }
            });
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
    }

    /// [`pump`](Self::pump), then has the timer task read the (possibly
    /// new) deadline: after inputs and commands, not after timeouts.
    fn pump_and_rearm(self: &Arc<Self>, state: &mut State) {
        self.pump(state);
        self.wake.notify_one();
    }

    fn dispatch(self: &Arc<Self>, state: &mut State, notice: Notice) {
        match notice {
            Notice::Ringing(handle) => {
                if let Some(tx) = state.handles.get(&handle) {
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
                if let Some(tx) = state.handles.get(&handle) {
                    tx.send_replace(Status::Answered(answer));
                }
            }
            Notice::Invited(info) => {
                let id = info.id;
                if let Some(answered) = state.shutting_down.as_mut() {
                    if state.driver.respond(id, Reply::Decline, SHUTDOWN_REASON).is_ok() {
                        answered.push(id);
                    }
                    return;
                }
                let (ended_tx, ended) = watch::channel(None);
                let invitation = IncomingInvitation {
                    info,
                    ended,
                    endpoint: Endpoint { inner: Arc::clone(self) },
                    accepted: false,
                };
                let Some(queue) = &state.queue else { return };
                match queue.try_send(invitation) {
                    Ok(()) => {
                        state.incoming.insert(id, ended_tx);
                    }
                    Err(
                        mpsc::error::TrySendError::Full(refused)
                        | mpsc::error::TrySendError::Closed(refused),
                    ) => {
                        // Nobody takes it: Busy. (Dropping it unanswered
                        // touches no state.)
                        drop(refused);
                        let busy = Reply::Busy { retry_after: BUSY_RETRY_AFTER };
                        if state.driver.respond(id, busy, "").is_ok() {
                            tracing::warn!(incoming = ?id, "no one takes incoming invitations: busy");
                        }
                    }
                }
            }
            Notice::IncomingEnded { incoming, outcome } => {
                if let Some(tx) = state.incoming.remove(&incoming) {
                    tx.send_replace(Some(outcome));
                }
                if let Some(answered) = state.shutting_down.as_mut() {
                    answered.retain(|id| *id != incoming);
                }
            }
            _ => {}
        }
    }
}

/// Receives on socket `k` until the endpoint stops. Holds the endpoint
/// only weakly while it waits.
async fn receive(
    inner: Weak<Inner>,
    socket: Arc<UdpSocket>,
    k: usize,
    mut stop: watch::Receiver<bool>,
) {
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
            Some(strong) => strong.lock().driver.wait(),
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
        // Woken by a command, a datagram or a manual clock's jump, a
        // deadline may be due or not: running the timers early is harmless.
        state.driver.handle_timeout();
        strong.pump(&mut state);
    }
}

impl Endpoint {
    /// An endpoint for `identity`; bind it with [`Builder::bind`].
    pub fn builder(identity: LocalIdentity) -> Builder {
        Builder {
            identity,
            config: AgentConfig::default(),
            clock: Arc::new(SystemClock::new()),
            seed: None,
        }
    }

    /// Runs `f` on the driver, then sends and dispatches what it produced.
    fn command<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.inner.lock();
        let result = f(&mut state);
        self.inner.pump_and_rearm(&mut state);
        result
    }

    /// Any agent command (or getter) at the clock's `now`, with its output
    /// sent: for what the methods here do not cover.
    pub fn with_agent<R>(
        &self,
        f: impl FnOnce(&mut peercollab_driver::core::agent::Agent, Instant) -> R,
    ) -> R {
        self.command(|s| s.driver.command(f))
    }

    /// The addresses the sockets are bound to.
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.lock().routes.local_addrs()
    }

    /// The driver's counters.
    #[must_use]
    pub fn stats(&self) -> DriverStats {
        self.inner.lock().driver.stats()
    }

    /// This endpoint's identity.
    #[must_use]
    pub fn identity(&self) -> IdentityKey {
        self.inner.lock().driver.agent().identity().identity()
    }

    /// My contact card, naming `addresses` (the bound addresses if empty;
    /// an unspecified address is useless to others, so name real ones).
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

    /// Adds a contact from its card.
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

    /// Registers an application (the latest registration wins).
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

    /// Sets whom invitations are accepted from.
    pub fn set_policy(&self, policy: Policy) -> Result<(), Error> {
        self.check_open()?;
        self.with_agent(|a, _| a.set_policy(policy));
        Ok(())
    }

    fn check_open(&self) -> Result<(), Error> {
        match self.inner.lock().shutting_down {
            Some(_) => Err(Error::Closed),
            None => Ok(()),
        }
    }

    /// Starts inviting `contact` at `targets`, or at every endpoint its card
    /// names that a socket here can reach when `targets` is empty (the
    /// handle API: Windows' `PeerCollabAsyncInviteContact`).
    pub fn start_invite_contact(
        &self,
        contact: ContactId,
        targets: &[Target],
        request: &Request,
        options: InviteOptions,
    ) -> Result<Invitation, Error> {
        self.check_open()?;
        self.start(|s| {
            let defaults;
            let targets = if targets.is_empty() {
                let State { driver, routes, .. } = &*s;
                defaults = peercollab_driver::default_targets(driver.agent(), contact, |a| {
                    routes.reaches(a)
                })?;
                &defaults[..]
            } else {
                targets
            };
            s.driver.invite_contact(contact, targets, request, options)
        })
    }

    /// Starts inviting whoever answers at `address` (Windows'
    /// `PeerCollabAsyncInviteEndpoint`).
    pub fn start_invite_endpoint(
        &self,
        address: SocketAddr,
        request: &Request,
        options: InviteOptions,
    ) -> Result<Invitation, Error> {
        self.check_open()?;
        {
            let state = self.inner.lock();
            if !state.routes.reaches(&address) {
                return Err(Error::Io(net::no_socket_for(&address)));
            }
        }
        self.start(|s| s.driver.invite_endpoint(address, request, options))
    }

    fn start(
        &self,
        f: impl FnOnce(&mut State) -> Result<Option<Handle>, Error>,
    ) -> Result<Invitation, Error> {
        let (tx, status) = watch::channel(Status::Pending { ringing: false });
        let handle = self.command(|s| {
            let handle = f(s)?;
            if let Some(h) = handle {
                s.handles.insert(h, tx);
            }
            Ok::<_, Error>(handle)
        })?;
        Ok(Invitation { endpoint: self.clone(), handle, status })
    }

    /// Invites `contact` and waits for the answer (Windows'
    /// `PeerCollabInviteContact`). Dropping the future cancels the
    /// invitation.
    pub async fn invite_contact(
        &self,
        contact: ContactId,
        request: Request,
        options: InviteOptions,
    ) -> Result<Answer, Error> {
        let mut invitation = self.start_invite_contact(contact, &[], &request, options)?;
        let span = tracing::info_span!("invitation", handle = ?invitation.handle, ?contact);
        async move { invitation.outcome().await }.instrument(span).await
    }

    /// Invites whoever answers at `address` and waits for the answer
    /// (Windows' `PeerCollabInviteEndpoint`); the answer carries the
    /// answerer's authenticated identity. Dropping the future cancels the
    /// invitation.
    pub async fn invite_endpoint(
        &self,
        address: SocketAddr,
        request: Request,
        options: InviteOptions,
    ) -> Result<Answer, Error> {
        let mut invitation = self.start_invite_endpoint(address, &request, options)?;
        let span = tracing::info_span!("invitation", handle = ?invitation.handle, %address);
        async move { invitation.outcome().await }.instrument(span).await
    }

    /// Shuts down gracefully (see the crate documentation), waiting at most
    /// `within` for acknowledgements, then stops the endpoint's tasks.
    pub async fn shutdown(&self, within: std::time::Duration) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        {
            let mut state = self.inner.lock();
            if state.shutting_down.is_none() {
                state.driver.command(|a, _| a.set_policy(Policy::Nobody));
                let handles: Vec<Handle> = state.handles.keys().copied().collect();
                for h in handles {
                    let pending = matches!(state.driver.status(h), Ok(Status::Pending { .. }));
                    if pending && state.driver.cancel(h).is_ok() {
                        report.cancelled += 1;
                    }
                }
                let mut answered = Vec::new();
                let ids: Vec<IncomingId> = state.incoming.keys().copied().collect();
                for id in ids {
                    if state.driver.respond(id, Reply::Decline, SHUTDOWN_REASON).is_ok() {
                        report.declined += 1;
                        answered.push(id);
                    }
                }
                state.queue = None;
                state.shutting_down = Some(answered);
                self.inner.pump_and_rearm(&mut state);
            }
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = self.inner.lock().shutting_down.as_ref().map_or(0, Vec::len);
            if left == 0 || tokio::time::Instant::now() >= deadline {
                report.unacknowledged = left;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        report.slots_in_use = self.inner.lock().driver.agent().invitations_in_use();
        self.inner.stop.send_replace(true);
        tracing::info!(?report, "endpoint shut down");
        report
    }
}

/// What a [`shutdown`](Endpoint::shutdown) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Outgoing invitations without an outcome, cancelled.
    pub cancelled: usize,
    /// Incoming invitations not yet answered, declined.
    pub declined: usize,
    /// Of the answers given during the shutdown, those not acknowledged in
    /// time (the peer may still retransmit, unanswered).
    pub unacknowledged: usize,
    /// Invitation slots still held (lingering ends), freed as the agent
    /// is dropped.
    pub slots_in_use: usize,
}

/// An outgoing invitation (Windows' invitation `HANDLE`). Dropping it
/// closes it, cancelling it first if it has no outcome yet.
#[derive(Debug)]
pub struct Invitation {
    endpoint: Endpoint,
    handle: Option<Handle>,
    status: watch::Receiver<Status>,
}

impl Invitation {
    /// Its handle at the agent (`None` when started with
    /// [`InviteOptions::discard_handle`]: then nothing is reported).
    #[must_use]
    pub fn handle(&self) -> Option<Handle> {
        self.handle
    }

    /// Pending (ringing or not) or answered (Windows'
    /// `GetInvitationResponse`).
    #[must_use]
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Waits until the status changes (it rings, or is answered); returns
    /// the new status. Cancellation-safe.
    pub async fn changed(&mut self) -> Result<Status, Error> {
        if self.handle.is_none() {
            return Err(Error::Agent(AgentError::UnknownHandle));
        }
        self.status.changed().await.map_err(|_| Error::Closed)?;
        Ok(self.status())
    }

    /// Waits for the outcome. Cancellation-safe.
    pub async fn outcome(&mut self) -> Result<Answer, Error> {
        if self.handle.is_none() {
            return Err(Error::Agent(AgentError::UnknownHandle));
        }
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

    /// Cancels it (Windows' `CancelInvitation`): what the cancel did
    /// depends on how far it got.
    pub fn cancel(&self) -> Result<CancelEffect, Error> {
        let handle = self.handle.ok_or(Error::Agent(AgentError::UnknownHandle))?;
        self.endpoint.command(|s| s.driver.cancel(handle))
    }
}

impl Drop for Invitation {
    fn drop(&mut self) {
        if let Some(handle) = self.handle {
            self.endpoint.command(|s| {
                s.handles.remove(&handle);
                if let Err(e) = s.driver.close(handle) {
                    tracing::debug!(?handle, error = %e, "closing a handle");
                }
            });
        }
    }
}

/// Incoming invitations, as the agent presents them.
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

    /// The endpoint they arrive at.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// A presented invitation: answer it with [`accept`](Self::accept),
/// [`decline`](Self::decline) or [`busy`](Self::busy).
#[derive(Debug)]
pub struct IncomingInvitation {
    info: InvitationInfo,
    ended: watch::Receiver<Option<Outcome>>,
    endpoint: Endpoint,
    /// Accepted here: its launch information is released on drop.
    accepted: bool,
}

impl IncomingInvitation {
    /// Who invites, to what, with which message and data.
    #[must_use]
    pub fn info(&self) -> &InvitationInfo {
        &self.info
    }

    fn respond(&mut self, reply: Reply, reason: &str) -> Result<(), Error> {
        let id = self.info.id;
        self.endpoint.command(|s| s.driver.respond(id, reply, reason))?;
        self.accepted = reply == Reply::Accept;
        Ok(())
    }

    /// Accepts it. Once the inviter acknowledges, it ends Accepted and the
    /// launch information stays readable until this is dropped.
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

    /// Waits for its end and returns its outcome. Cancellation-safe.
    pub async fn ended(&mut self) -> Result<Outcome, Error> {
        let outcome = self.ended.wait_for(Option::is_some).await.map_err(|_| Error::Closed)?;
        (*outcome).ok_or(Error::Closed)
    }

    /// The launch information of an accepted invitation (Windows'
    /// `GetAppLaunchInfo`): readable once it ended Accepted.
    pub fn launch_info(&self) -> Result<InvitationInfo, Error> {
        let id = self.info.id;
        self.endpoint.inner.lock().driver.launch_info(id)
    }
}

impl Drop for IncomingInvitation {
    fn drop(&mut self) {
        if self.accepted {
            let id = self.info.id;
            let mut state = self.endpoint.inner.lock();
            state.incoming.remove(&id);
            // Only an invitation that ended Accepted holds launch
            // information; one still in flight is left to end.
            let _ = state.driver.release(id);
        }
    }
}
