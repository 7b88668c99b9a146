//! The endpoint: one agent, its sockets in the caller's `Poll`, and the
//! owned side of its outputs.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use mio::{Events, Poll, Registry, Token, Waker};
use peercollab_driver::core::agent::{
    Agent, AgentConfig, ContactId, ContactUpdate, Handle, HandleMode, IncomingId, InviteOptions,
    Policy, Target, Trust,
};
use peercollab_driver::core::card::{CardError, ContactCard};
use peercollab_driver::core::identity::{EndpointId, LocalIdentity};
use peercollab_driver::core::invite::{Answer as Reply, AppId, CancelEffect};
use peercollab_driver::core::{Duration, Instant};
use peercollab_driver::{
    Answer, Clock, Driver, DriverStats, Error, Invitation, Notice, Request, Status,
};

use crate::sockets::{RECV_BUF, Sockets, canonical};
use peercollab_driver::net::no_socket_for;

/// The reason text of the answers [`Endpoint::shutdown`] gives.
pub const SHUTDOWN_REASON: &str = "the endpoint is shutting down";

/// Where an [`Endpoint`] registers in the caller's [`Poll`].
///
/// Socket `k` (in the order of the addresses given to
/// [`Endpoint::bind`]) is registered under `Token(sockets.0 + k)`. A
/// waker is optional with a [`SystemClock`](crate::SystemClock) and needed
/// with a [`ManualClock`](crate::ManualClock): a jump of the clock triggers
/// it, so a `Poll::poll` waiting with no timeout returns and the loop reads
/// the new deadline. Only one [`Waker`] may be active per `Poll`: endpoints
/// sharing a `Poll` share one with [`shared_waker`](Self::shared_waker).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Tokens {
    /// The token of the first socket.
    pub sockets: Token,
    /// The waker, if any.
    pub waker: Option<WakerToken>,
}

/// How an endpoint is woken when its clock jumps.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum WakerToken {
    /// Make a [`Waker`] registered under this token.
    New(Token),
    /// Use the caller's waker, registered under this token (one waker per
    /// `Poll`, shared by its endpoints).
    Shared(Arc<Waker>, Token),
}

impl Tokens {
    /// Sockets from `first` on, no waker.
    #[must_use]
    pub fn new(first: Token) -> Self {
        Tokens { sockets: first, waker: None }
    }

    /// With a new waker registered under `token`.
    #[must_use]
    pub fn waker(mut self, token: Token) -> Self {
        self.waker = Some(WakerToken::New(token));
        self
    }

    /// With the caller's `waker`, registered under `token`.
    #[must_use]
    pub fn shared_waker(mut self, waker: Arc<Waker>, token: Token) -> Self {
        self.waker = Some(WakerToken::Shared(waker, token));
        self
    }
}

/// What [`Endpoint::shutdown`] did and what it left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Outgoing invitations without an outcome that were cancelled (their
    /// handles closed).
    pub cancelled: usize,
    /// Presented incoming invitations that were declined unanswered: those
    /// waiting when the shutdown began and those presented since.
    pub declined: usize,
    /// Answered incoming invitations whose Final the inviter had not
    /// acknowledged when the time ran out: their inviters may not know the
    /// answer.
    pub unacknowledged: Vec<IncomingId>,
    /// Invitation slots still in use: finished invitations lingering to
    /// re-acknowledge a lost Final (32 s after their outcome), accepted
    /// invitations whose launch information is held, and the above.
    pub slots_in_use: usize,
}

/// An incoming invitation the endpoint presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Incoming {
    Unanswered,
    Answered,
}

/// One peer on UDP, driven by the caller's mio event loop.
///
/// See the [crate documentation](crate) for the loop. In short: give every
/// event of the `Poll` to [`handle_event`](Self::handle_event), call
/// [`handle_timeout`](Self::handle_timeout) after every `poll`, wait at
/// most [`next_timeout`](Self::next_timeout), and drain
/// [`poll_event`](Self::poll_event) after each of these and after
/// commands.
///
/// Every command (`add_contact`, `start_invite_*`, `respond`, …) sends what
/// it has to send before it returns. Errors of the caller's input are
/// returned as [`Error::Agent`] and change nothing; nothing received from
/// the network can make it panic.
///
/// Dropping the endpoint deregisters its sockets and closes them: its
/// invitations end without another datagram (see
/// [`shutdown`](Self::shutdown) to end them politely first).
pub struct Endpoint {
    driver: Driver,
    sockets: Sockets,
    registry: Registry,
    waker: Option<(Arc<Waker>, Token)>,
    notices: VecDeque<Notice>,
    /// Open handles, and whether each has its outcome.
    outgoing: HashMap<Handle, bool>,
    incoming: HashMap<IncomingId, Incoming>,
    /// The handle of a waiting call in progress: its notices are its own.
    waiting: Option<Handle>,
    foreign: Vec<mio::event::Event>,
    buf: Box<[u8; RECV_BUF]>,
    closed: bool,
    declined_at_shutdown: usize,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("driver", &self.driver)
            .field("sockets", &self.sockets.local_addrs())
            .field("notices", &self.notices.len())
            .field("outgoing", &self.outgoing.len())
            .field("incoming", &self.incoming.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Binds a UDP socket on each of `addrs` (IPv4 or IPv6; port 0 picks
    /// one) and registers them, and the waker if asked, with `registry`.
    /// The agent's entropy comes from the operating system.
    ///
    /// Errors: [`Error::Bind`] naming the address that could not be bound
    /// (a port in use, an address not on this host, IPv6 unavailable);
    /// [`Error::Io`] if registration fails or `addrs` is empty;
    /// [`Error::Entropy`].
    pub fn bind(
        addrs: &[SocketAddr],
        identity: LocalIdentity,
        config: AgentConfig,
        clock: Arc<dyn Clock>,
        registry: &Registry,
        tokens: Tokens,
    ) -> Result<Self, Error> {
        Self::with_driver(Driver::new(identity, config, clock)?, addrs, registry, tokens)
    }

    /// As [`bind`](Self::bind), around a driver built by the caller (for
    /// instance [`Driver::with_seed`] for a reproducible agent).
    pub fn with_driver(
        driver: Driver,
        addrs: &[SocketAddr],
        registry: &Registry,
        tokens: Tokens,
    ) -> Result<Self, Error> {
        let sockets = Sockets::bind(addrs, registry, tokens.sockets)?;
        let waker = match tokens.waker {
            None => None,
            Some(WakerToken::New(token)) => Some((Arc::new(Waker::new(registry, token)?), token)),
            Some(WakerToken::Shared(waker, token)) => Some((waker, token)),
        };
        if let Some((waker, _)) = &waker {
            let weak: Weak<Waker> = Arc::downgrade(waker);
            driver.clock().on_jump(Arc::new(move || {
                if let Some(waker) = weak.upgrade()
                    && let Err(e) = waker.wake()
                {
                    tracing::warn!(error = %e, "cannot wake the event loop after a clock jump");
                }
            }));
        }
        Ok(Endpoint {
            driver,
            sockets,
            registry: registry.try_clone()?,
            waker,
            notices: VecDeque::new(),
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            waiting: None,
            foreign: Vec::new(),
            buf: Box::new([0; RECV_BUF]),
            closed: false,
            declined_at_shutdown: 0,
        })
    }

    // ----- the event loop --------------------------------------------------

    /// Handles one event of the caller's `Poll`, if it is this endpoint's
    /// (one of its sockets, or its waker): reads the socket until it would
    /// block, drives the agent, sends what it has to send. Returns whether
    /// the event was this endpoint's; an event of another source is left
    /// alone.
    pub fn handle_event(&mut self, event: &mio::event::Event) -> bool {
        let token = event.token();
        if let Some(k) = self.sockets.index_of(token) {
            self.read(k);
            true
        } else if self.waker.as_ref().is_some_and(|(_, t)| *t == token) {
            self.handle_timeout();
            true
        } else {
            false
        }
    }

    /// Runs the agent's timers that are due, and sends what they send.
    /// Early calls are harmless: calling it after every `poll` is the
    /// simplest correct loop.
    pub fn handle_timeout(&mut self) {
        self.driver.handle_timeout();
        self.flush();
    }

    /// How long `Poll::poll` may wait before [`handle_timeout`] is due:
    /// `None` when there is no deadline (or, with a manual clock, when only
    /// the clock's jump, which triggers the waker, can bring it). Zero when
    /// events are waiting to be drained with [`poll_event`].
    ///
    /// [`handle_timeout`]: Self::handle_timeout
    /// [`poll_event`]: Self::poll_event
    #[must_use]
    pub fn next_timeout(&self) -> Option<std::time::Duration> {
        if self.notices.is_empty() { self.driver.wait() } else { Some(std::time::Duration::ZERO) }
    }

    /// The next event, oldest first: ringing and answers of outgoing
    /// invitations, incoming invitations and their ends, contact updates.
    pub fn poll_event(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// Events of other sources of the `Poll` that a waiting call
    /// ([`invite_contact_blocking`](Self::invite_contact_blocking), …) or
    /// [`shutdown`](Self::shutdown) met while it ran the loop: the caller's
    /// to handle, as if its own `poll` had returned them.
    pub fn take_foreign_events(&mut self) -> Vec<mio::event::Event> {
        std::mem::take(&mut self.foreign)
    }

    fn read(&mut self, k: usize) {
        let mut errors = 0u32;
        loop {
            let Some(socket) = self.sockets.list.get(k) else { return };
            let local = socket.local;
            match socket.udp.recv_from(&mut self.buf[..]) {
                Ok((len, from)) => {
                    let from = canonical(from);
                    let Some(datagram) = self.buf.get(..len) else { continue };
                    self.driver.handle_datagram(from, datagram);
                    self.sockets.heard(from, k);
                    let sockets = &self.sockets;
                    self.driver.flush(|to, d| sockets.send(to, d));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // An ICMP error reported on the socket (Windows reports
                    // port unreachable this way): the protocol's silence
                    // timers handle the peer; keep reading, within reason.
                    errors += 1;
                    tracing::debug!(socket = %local, error = %e, "receive error");
                    if errors > 64 {
                        tracing::warn!(socket = %local, error = %e, "receive keeps failing");
                        break;
                    }
                }
            }
        }
        self.pump();
    }

    /// Sends what the agent has to send and takes its events.
    fn flush(&mut self) {
        let sockets = &self.sockets;
        self.driver.flush(|to, d| sockets.send(to, d));
        self.pump();
    }

    fn pump(&mut self) {
        while let Some(notice) = self.driver.poll_notice() {
            match &notice {
                Notice::Ringing(h) | Notice::Responded { handle: h, .. }
                    if self.waiting == Some(*h) =>
                {
                    continue;
                }
                Notice::Responded { handle, .. } => {
                    if let Some(answered) = self.outgoing.get_mut(handle) {
                        *answered = true;
                    }
                }
                Notice::Invited(invitation) => {
                    self.incoming.insert(invitation.id, Incoming::Unanswered);
                    if self.closed {
                        self.decline_for_shutdown(invitation.id);
                    }
                }
                Notice::IncomingEnded { incoming, .. } => {
                    self.incoming.remove(incoming);
                }
                _ => {}
            }
            self.notices.push_back(notice);
        }
    }

    // ----- commands --------------------------------------------------------

    fn open(&self) -> Result<(), Error> {
        if self.closed { Err(Error::Closed) } else { Ok(()) }
    }

    /// The agent, for its getters (contacts, applications, identity,
    /// statistics…).
    #[must_use]
    pub fn agent(&self) -> &Agent {
        self.driver.agent()
    }

    /// Runs any command on the agent at the clock's now, then sends what it
    /// sent and takes its events: the way to every agent command this type
    /// does not wrap. Events it causes that name handles are delivered as
    /// usual; handles it creates are not tracked by
    /// [`shutdown`](Self::shutdown).
    pub fn with_agent<R>(&mut self, f: impl FnOnce(&mut Agent, Instant) -> R) -> R {
        let r = self.driver.command(f);
        self.flush();
        r
    }

    /// The clock's now.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.driver.now()
    }

    /// The driver's counters: datagrams in, dropped, out, send failures.
    #[must_use]
    pub fn stats(&self) -> DriverStats {
        self.driver.stats()
    }

    /// The local addresses of the sockets, in the order bound (the actual
    /// ports when 0 was asked for).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.local_addrs()
    }

    /// This endpoint's contact card, naming the addresses it is bound to
    /// (those that are not unspecified: for `0.0.0.0` or `[::]` use
    /// [`my_card_at`](Self::my_card_at) with addresses others can reach).
    pub fn my_card(&self, display_name: &str) -> Result<ContactCard, CardError> {
        let addresses: Vec<SocketAddr> =
            self.local_addrs().into_iter().filter(|a| !a.ip().is_unspecified()).collect();
        self.my_card_at(display_name, &addresses)
    }

    /// This endpoint's contact card with `display_name` and `addresses`.
    pub fn my_card_at(
        &self,
        display_name: &str,
        addresses: &[SocketAddr],
    ) -> Result<ContactCard, CardError> {
        self.driver.agent().my_card(display_name, addresses)
    }

    /// The agent's identity.
    #[must_use]
    pub fn identity(&self) -> &LocalIdentity {
        self.driver.agent().identity()
    }

    /// Adds a contact from its card (Windows' `PeerCollabAddContact`).
    pub fn add_contact(&mut self, card: &ContactCard, trust: Trust) -> Result<ContactId, Error> {
        self.open()?;
        Ok(self.driver.command(|a, _| a.add_contact(card, trust))?)
    }

    /// Changes a contact's name, trust or addresses.
    pub fn update_contact(
        &mut self,
        contact: ContactId,
        update: ContactUpdate<'_>,
    ) -> Result<(), Error> {
        self.open()?;
        Ok(self.driver.command(|a, _| a.update_contact(contact, update))?)
    }

    /// Pins the newer certificates of a newer card of the contact; returns
    /// how many.
    pub fn refresh_contact(
        &mut self,
        contact: ContactId,
        card: &ContactCard,
    ) -> Result<usize, Error> {
        self.open()?;
        Ok(self.driver.command(|a, _| a.refresh_contact(contact, card))?)
    }

    /// Revokes one endpoint of a contact (a lost device).
    pub fn revoke_endpoint(
        &mut self,
        contact: ContactId,
        endpoint: EndpointId,
    ) -> Result<(), Error> {
        self.open()?;
        Ok(self.driver.command(|a, _| a.revoke_endpoint(contact, endpoint))?)
    }

    /// Removes a contact (Windows' `PeerCollabDeleteContact`): its pending
    /// outgoing invitations end `Cancelled(ByUser)`.
    pub fn remove_contact(&mut self, contact: ContactId) -> Result<(), Error> {
        self.open()?;
        let r = self.driver.command(|a, now| a.remove_contact(now, contact));
        self.flush();
        Ok(r?)
    }

    /// Registers an application (Windows' `PeerCollabRegisterApplication`),
    /// with its own policy or the global one.
    pub fn register_application(
        &mut self,
        app: AppId,
        name: &str,
        policy: Option<Policy>,
    ) -> Result<(), Error> {
        self.open()?;
        Ok(self.driver.command(|a, _| a.register_application(app, name, policy))?)
    }

    /// Unregisters an application.
    pub fn unregister_application(&mut self, app: AppId) -> Result<(), Error> {
        self.open()?;
        Ok(self.driver.command(|a, _| a.unregister_application(app))?)
    }

    /// Sets the global policy.
    pub fn set_policy(&mut self, policy: Policy) -> Result<(), Error> {
        self.open()?;
        self.driver.command(|a, _| a.set_policy(policy));
        Ok(())
    }

    // ----- outgoing invitations: the handle API -----------------------------

    /// Invites a contact at every endpoint its card names, each at an
    /// address of a family this endpoint has a socket for (Windows'
    /// `PeerCollabAsyncInviteContact`). Progress and the outcome arrive as
    /// [`Notice::Ringing`] and [`Notice::Responded`]; [`status`] reads it;
    /// [`close`] must be called in the end. `options.handle` is ignored: a
    /// handle is always kept.
    ///
    /// [`status`]: Self::status
    /// [`close`]: Self::close
    pub fn start_invite_contact(
        &mut self,
        contact: ContactId,
        request: &Request,
        mut options: InviteOptions,
    ) -> Result<Handle, Error> {
        self.open()?;
        options.handle = HandleMode::Keep;
        let sockets = &self.sockets;
        let handle =
            self.driver.invite_contact_where(contact, |a| sockets.reaches(a), request, options);
        self.started(handle)
    }

    /// Invites a contact at the named endpoints and addresses.
    pub fn start_invite_contact_at(
        &mut self,
        contact: ContactId,
        targets: &[Target],
        request: &Request,
        mut options: InviteOptions,
    ) -> Result<Handle, Error> {
        self.open()?;
        if let Some(t) = targets.iter().find(|t| !self.sockets.reaches(&t.address)) {
            return Err(Error::Io(no_socket_for(&t.address)));
        }
        options.handle = HandleMode::Keep;
        let handle = self.driver.invite_contact(contact, targets, request, options);
        self.started(handle)
    }

    /// Invites whoever answers at `address` (Windows'
    /// `PeerCollabAsyncInviteEndpoint`); the answerer's authenticated
    /// certificate comes with the outcome ([`Answer::answered_by`]);
    /// `options.expect` binds it to one identity.
    pub fn start_invite_endpoint(
        &mut self,
        address: SocketAddr,
        request: &Request,
        mut options: InviteOptions,
    ) -> Result<Handle, Error> {
        self.open()?;
        if !self.sockets.reaches(&address) {
            return Err(Error::Io(no_socket_for(&address)));
        }
        options.handle = HandleMode::Keep;
        let handle = self.driver.invite_endpoint(address, request, options);
        self.started(handle)
    }

    fn started(&mut self, handle: Result<Option<Handle>, Error>) -> Result<Handle, Error> {
        self.flush();
        let handle = handle?.ok_or(Error::Closed)?;
        self.outgoing.insert(handle, false);
        Ok(handle)
    }

    /// An outgoing invitation's status (Windows'
    /// `PeerCollabGetInvitationResponse`): pending (ringing or not) or
    /// answered.
    pub fn status(&self, handle: Handle) -> Result<Status, Error> {
        self.driver.status(handle)
    }

    /// Cancels an outgoing invitation (Windows'
    /// `PeerCollabCancelInvitation`): its outcome becomes
    /// `Cancelled(ByUser)` unless it had one; invitees it reached are told.
    /// The handle stays valid until [`close`](Self::close).
    pub fn cancel(&mut self, handle: Handle) -> Result<CancelEffect, Error> {
        let effect = self.driver.cancel(handle);
        self.flush();
        effect
    }

    /// Closes a handle (Windows' `PeerCollabCloseHandle`), cancelling the
    /// invitation first if it has no outcome. No event names it afterwards.
    pub fn close(&mut self, handle: Handle) -> Result<(), Error> {
        let r = self.driver.close(handle);
        self.flush();
        r?;
        self.outgoing.remove(&handle);
        self.notices.retain(|n| match n {
            Notice::Ringing(h) | Notice::Responded { handle: h, .. } => *h != handle,
            _ => true,
        });
        Ok(())
    }

    // ----- outgoing invitations: the waiting call ---------------------------

    /// Invites a contact and runs the event loop on `poll` until the
    /// outcome (Windows' `PeerCollabInviteContact`), then closes the
    /// handle. Everything else the loop brings is kept: this endpoint's
    /// events for [`poll_event`](Self::poll_event), other sources' events
    /// for [`take_foreign_events`](Self::take_foreign_events).
    ///
    /// It returns by the invitation's expiry at the latest (plus the
    /// protocol's grace), since the agent gives every invitation exactly
    /// one outcome — with a manual clock, once the clock is advanced that
    /// far. An error of `poll` itself is returned after closing the handle
    /// (which cancels the invitation).
    pub fn invite_contact_blocking(
        &mut self,
        poll: &mut Poll,
        contact: ContactId,
        request: &Request,
        options: InviteOptions,
    ) -> Result<Answer, Error> {
        let span = tracing::info_span!("invite_contact_blocking", ?contact);
        let _enter = span.enter();
        let handle = self.start_invite_contact(contact, request, options)?;
        self.wait_for(poll, handle)
    }

    /// Invites whoever answers at `address` and runs the event loop until
    /// the outcome (Windows' `PeerCollabInviteEndpoint`); as
    /// [`invite_contact_blocking`](Self::invite_contact_blocking).
    pub fn invite_endpoint_blocking(
        &mut self,
        poll: &mut Poll,
        address: SocketAddr,
        request: &Request,
        options: InviteOptions,
    ) -> Result<Answer, Error> {
        let span = tracing::info_span!("invite_endpoint_blocking", %address);
        let _enter = span.enter();
        let handle = self.start_invite_endpoint(address, request, options)?;
        self.wait_for(poll, handle)
    }

    fn wait_for(&mut self, poll: &mut Poll, handle: Handle) -> Result<Answer, Error> {
        // The caller never saw this handle: its notices are dropped.
        self.waiting = Some(handle);
        self.notices.retain(|n| match n {
            Notice::Ringing(h) | Notice::Responded { handle: h, .. } => *h != handle,
            _ => true,
        });
        let mut events = Events::with_capacity(64);
        let result = loop {
            match self.driver.status(handle) {
                Ok(Status::Answered(answer)) => break Ok(answer),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
            if let Err(e) = self.turn(poll, &mut events, self.driver.wait()) {
                break Err(Error::Io(e));
            }
        };
        self.waiting = None;
        if let Err(e) = self.close(handle) {
            tracing::debug!(?handle, error = %e, "closing the waiting call's handle");
        }
        if let Ok(answer) = &result {
            tracing::info!(?handle, outcome = ?answer.outcome, "waiting call answered");
        }
        result
    }

    /// One turn of the loop: poll, handle this endpoint's events, keep the
    /// others, run the timers.
    fn turn(
        &mut self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<()> {
        match poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if !self.handle_event(event) {
                self.foreign.push(event.clone());
            }
        }
        self.handle_timeout();
        Ok(())
    }

    // ----- incoming invitations --------------------------------------------

    /// Answers a presented invitation ([`Notice::Invited`]) with Accept,
    /// Decline or Busy and a reason text (at most 128 bytes). Its end
    /// follows as [`Notice::IncomingEnded`], once the inviter has
    /// acknowledged the answer.
    pub fn respond(&mut self, id: IncomingId, reply: Reply, reason: &str) -> Result<(), Error> {
        self.open()?;
        let r = self.driver.respond(id, reply, reason);
        if r.is_ok()
            && let Some(state) = self.incoming.get_mut(&id)
        {
            *state = Incoming::Answered;
        }
        self.flush();
        r
    }

    /// Accepts a presented invitation.
    pub fn accept(&mut self, id: IncomingId) -> Result<(), Error> {
        self.respond(id, Reply::Accept, "")
    }

    /// Declines a presented invitation, saying why.
    pub fn decline(&mut self, id: IncomingId, reason: &str) -> Result<(), Error> {
        self.respond(id, Reply::Decline, reason)
    }

    /// Answers Busy: the inviter may try again after `retry_after`.
    pub fn busy(&mut self, id: IncomingId, retry_after: Duration) -> Result<(), Error> {
        self.respond(id, Reply::Busy { retry_after }, "")
    }

    /// A presented incoming invitation, read again.
    pub fn invitation(&self, id: IncomingId) -> Result<Invitation, Error> {
        Ok(self.driver.invitation(id)?)
    }

    /// The launch information of an accepted invitation (Windows'
    /// `PeerCollabGetAppLaunchInfo`), until [`release`](Self::release).
    pub fn launch_info(&self, id: IncomingId) -> Result<Invitation, Error> {
        self.driver.launch_info(id)
    }

    /// Releases an accepted invitation's launch information and its slot.
    pub fn release(&mut self, id: IncomingId) -> Result<(), Error> {
        let r = self.driver.release(id);
        self.flush();
        r
    }

    // ----- shutdown ----------------------------------------------------------

    /// Ends politely, running the loop on `poll` for at most `within`
    /// (real time):
    ///
    /// 1. the global policy becomes [`Policy::Nobody`] and the endpoint
    ///    refuses further commands ([`Error::Closed`]); invitations that
    ///    are presented from now on are declined at once;
    /// 2. every open handle is closed (an invitation without an outcome is
    ///    cancelled: its invitees are told);
    /// 3. every presented, unanswered invitation is declined with
    ///    [`SHUTDOWN_REASON`];
    /// 4. the loop runs until every answered incoming invitation has ended,
    ///    that is until its inviter acknowledged the Final (retransmitted
    ///    meanwhile), or until `within` has passed.
    ///
    /// The [`ShutdownReport`] says what was cancelled and declined and which
    /// answers were not acknowledged. Events stay drainable with
    /// [`poll_event`](Self::poll_event) (the `IncomingEnded` of each
    /// decline, for instance), other sources' events with
    /// [`take_foreign_events`](Self::take_foreign_events); then drop the
    /// endpoint. Finished invitations that linger to re-acknowledge a lost
    /// Final are not waited for (they are counted in
    /// [`ShutdownReport::slots_in_use`]): their peers already have their
    /// outcome unless the last acknowledgement was lost.
    pub fn shutdown(
        &mut self,
        poll: &mut Poll,
        within: std::time::Duration,
    ) -> Result<ShutdownReport, Error> {
        let span = tracing::info_span!("shutdown");
        let _enter = span.enter();
        let deadline = std::time::Instant::now() + within;
        let mut report = ShutdownReport::default();
        if !self.closed {
            self.closed = true;
            self.driver.command(|a, _| a.set_policy(Policy::Nobody));
            let open: Vec<(Handle, bool)> = self.outgoing.iter().map(|(h, a)| (*h, *a)).collect();
            for (handle, answered) in open {
                if !answered {
                    report.cancelled += 1;
                }
                if let Err(e) = self.close(handle) {
                    tracing::debug!(?handle, error = %e, "closing at shutdown");
                }
            }
            let unanswered: Vec<IncomingId> = self
                .incoming
                .iter()
                .filter(|(_, s)| **s == Incoming::Unanswered)
                .map(|(id, _)| *id)
                .collect();
            for id in unanswered {
                self.decline_for_shutdown(id);
            }
            self.flush();
        }
        let mut events = Events::with_capacity(64);
        loop {
            if self.incoming.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let timeout = self.driver.wait().map_or(left, |w| w.min(left));
            self.turn(poll, &mut events, Some(timeout))?;
        }
        report.declined = self.declined_at_shutdown;
        report.unacknowledged = self.incoming.keys().copied().collect();
        report.unacknowledged.sort();
        report.slots_in_use = self.driver.agent().invitations_in_use();
        tracing::info!(
            cancelled = report.cancelled,
            declined = report.declined,
            unacknowledged = report.unacknowledged.len(),
            slots_in_use = report.slots_in_use,
            "shut down"
        );
        Ok(report)
    }

    fn decline_for_shutdown(&mut self, id: IncomingId) {
        match self.driver.respond(id, Reply::Decline, SHUTDOWN_REASON) {
            Ok(()) => {
                self.declined_at_shutdown += 1;
                self.incoming.insert(id, Incoming::Answered);
            }
            Err(e) => {
                // It ended meanwhile (its IncomingEnded is queued) or was
                // answered already: nothing to wait for from us.
                tracing::debug!(incoming = ?id, error = %e, "not declined at shutdown");
            }
        }
        let sockets = &self.sockets;
        self.driver.flush(|to, d| sockets.send(to, d));
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    #[must_use]
    pub fn is_shut_down(&self) -> bool {
        self.closed
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        for socket in &mut self.sockets.list {
            if let Err(e) = self.registry.deregister(&mut socket.udp) {
                tracing::debug!(socket = %socket.local, error = %e, "deregistering");
            }
        }
    }
}
