//! The agent behind a clock, drained in the contract's order.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use peercollab_core::Instant;
use peercollab_core::agent::{
    Agent, AgentConfig, AgentError, ContactId, Event, Handle, IncomingId, InviteOptions, Target,
};
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::{Answer as Reply, CancelEffect, Outcome};
use peercollab_core::wire::MAX_DATAGRAM;

use crate::{Answer, Arena, Clock, Error, Invitation, Request, Status};

/// What the agent reported, owned. Drained with [`Driver::poll_notice`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// An outgoing invitation rings at (at least) one endpoint.
    Ringing(Handle),
    /// An outgoing invitation has its outcome.
    Responded {
        /// The invitation.
        handle: Handle,
        /// Its outcome and who decided it.
        answer: Answer,
    },
    /// An invitation arrived and is presented: answer it with
    /// [`Driver::respond`].
    Invited(Invitation),
    /// An incoming invitation ended; if Accepted, its launch information is
    /// readable with [`Driver::launch_info`] until [`Driver::release`].
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
        /// The endpoint.
        endpoint: EndpointId,
    },
}

/// Counters of the driver's own work (the agent keeps its own:
/// [`Agent::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Datagrams handed to the agent.
    pub datagrams_in: u64,
    /// Datagrams the agent dropped (malformed, unknown, not admitted…).
    pub datagrams_dropped: u64,
    /// Datagrams handed to the socket.
    pub datagrams_out: u64,
    /// Datagrams the socket refused (full buffer, unreachable network):
    /// lost like any datagram, and retransmitted by the protocol.
    pub send_failures: u64,
}

/// One agent, its clock and the owned side of its outputs: everything an
/// adapter needs except sockets and timers.
///
/// Use: after every input ([`handle_datagram`](Self::handle_datagram),
/// [`handle_timeout`](Self::handle_timeout)) and every command, call
/// [`flush`](Self::flush) with a function that sends one datagram, then
/// drain [`poll_notice`](Self::poll_notice), then wait for a datagram or
/// for [`wait`](Self::wait) to pass — the core's drain order, done once
/// here for both adapters.
///
/// **Allocations**: everything is allocated when the driver is made; in
/// steady state a whole invitation allocates nothing. The owned copies it
/// hands out ([`Invitation`], [`Answer`]) take their text and bytes from an
/// [`Arena`] that is recycled once the copies are dropped, the notice queue
/// and the scratch list of targets keep their capacity.
pub struct Driver {
    agent: Box<Agent>,
    clock: Arc<dyn Clock>,
    buf: Box<[u8; MAX_DATAGRAM]>,
    notices: VecDeque<Notice>,
    stats: DriverStats,
    arena: Arena,
    targets: Vec<Target>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("agent", &self.agent)
            .field("clock", &self.clock)
            .field("notices", &self.notices.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Driver {
    /// An agent for `identity`, its entropy seeded by the operating system.
    pub fn new(
        identity: LocalIdentity,
        config: AgentConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        Ok(Self::with_seed(identity, config, clock, crate::os_seed()?))
    }

    /// An agent whose entropy is `seed`: for reproducible tests.
    #[must_use]
    pub fn with_seed(
        identity: LocalIdentity,
        config: AgentConfig,
        clock: Arc<dyn Clock>,
        seed: [u8; 32],
    ) -> Self {
        Driver {
            agent: Box::new(Agent::new(identity, config, seed)),
            clock,
            buf: Box::new([0; MAX_DATAGRAM]),
            // The agent has 16 invitation slots; each can ring, answer and
            // end at once.
            notices: VecDeque::with_capacity(64),
            stats: DriverStats::default(),
            arena: Arena::default(),
            targets: Vec::with_capacity(8),
        }
    }

    /// The agent, for its getters.
    #[must_use]
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// Runs a command on the agent at the clock's `now`. Flush afterwards.
    pub fn command<R>(&mut self, f: impl FnOnce(&mut Agent, Instant) -> R) -> R {
        let now = self.clock.now();
        f(&mut self.agent, now)
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The clock's now.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The driver's counters.
    #[must_use]
    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    /// Hands a received datagram to the agent. Flush afterwards.
    pub fn handle_datagram(&mut self, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_in += 1;
        let now = self.clock.now();
        if let Err(why) = self.agent.handle_datagram(now, from, datagram) {
            self.stats.datagrams_dropped += 1;
            tracing::trace!(%from, len = datagram.len(), ?why, "datagram dropped");
        }
    }

    /// Runs the agent's timers that are due. Early calls are harmless.
    /// Flush afterwards.
    pub fn handle_timeout(&mut self) {
        let now = self.clock.now();
        self.agent.handle_timeout(now);
    }

    /// How long to wait for a datagram before calling
    /// [`handle_timeout`](Self::handle_timeout): `None` when there is no
    /// deadline, or when only the (manual) clock's [`Wake`](crate::Wake) can
    /// bring it.
    #[must_use]
    pub fn wait(&self) -> Option<std::time::Duration> {
        self.agent.poll_timeout().and_then(|deadline| self.clock.wait_until(deadline))
    }

    /// Drains the agent in the contract's order: every datagram to `send`
    /// (its failures are counted and otherwise treated as loss, which the
    /// protocol repairs), then every event into the notice queue.
    pub fn flush(&mut self, mut send: impl FnMut(SocketAddr, &[u8]) -> std::io::Result<()>) {
        let now = self.clock.now();
        while let Some(t) = self.agent.poll_transmit(now, &mut self.buf) {
            let Some(datagram) = self.buf.get(..t.len) else { continue };
            match send(t.destination, datagram) {
                Ok(()) => self.stats.datagrams_out += 1,
                Err(e) => {
                    self.stats.send_failures += 1;
                    tracing::debug!(to = %t.destination, error = %e, "send failed; counted as loss");
                }
            }
        }
        while let Some(event) = self.agent.poll_event() {
            if let Some(notice) = self.notice(event) {
                self.notices.push_back(notice);
            }
        }
    }

    /// The next notice, oldest first.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    fn notice(&self, event: Event) -> Option<Notice> {
        let notice = match event {
            Event::Ringing(handle) => {
                tracing::info!(?handle, "ringing");
                Notice::Ringing(handle)
            }
            Event::Responded { handle, outcome } => {
                let answer = match self.agent.response(handle) {
                    Ok(peercollab_core::agent::Status::Answered(r)) => {
                        Answer::from_response(&r, &self.arena)
                    }
                    _ => Answer::unanswered(outcome),
                };
                tracing::info!(?handle, ?outcome, "responded");
                Notice::Responded { handle, answer }
            }
            Event::Invited(id) => match self.invitation(id) {
                Ok(invitation) => {
                    tracing::info!(
                        incoming = ?id,
                        inviter = %invitation.inviter.identity().fingerprint(),
                        contact = invitation.contact.as_ref().map(|c| c.1.as_str()),
                        app = ?invitation.app_id,
                        "invited"
                    );
                    Notice::Invited(invitation)
                }
                Err(e) => {
                    tracing::warn!(incoming = ?id, error = %e, "presented invitation unreadable");
                    return None;
                }
            },
            Event::IncomingEnded { incoming, outcome } => {
                tracing::info!(?incoming, ?outcome, "incoming invitation ended");
                Notice::IncomingEnded { incoming, outcome }
            }
            Event::ContactUpdated { contact, endpoint } => {
                tracing::info!(?contact, ?endpoint, "contact certificate updated in-band");
                Notice::ContactUpdated { contact, endpoint }
            }
            other => {
                tracing::debug!(event = ?other, "event not handled by this driver version");
                return None;
            }
        };
        Some(notice)
    }

    /// A presented (or ended, until released) incoming invitation, copied
    /// with its text and data cut from the driver's arena.
    pub fn invitation(&self, id: IncomingId) -> Result<Invitation, AgentError> {
        let view = self.agent.incoming(id)?;
        let contact = view.contact.and_then(|c| self.agent.contact(c).ok());
        Ok(Invitation::from_view_in(
            &self.arena,
            id,
            &view,
            contact.map(|c| (c.display_name(), c.trust())),
        ))
    }

    /// The arena the owned copies are cut from.
    #[must_use]
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// Invites `contact` at `targets`, or at every endpoint its card names
    /// ([`default_targets`]) when `targets` is empty. Flush afterwards.
    pub fn invite_contact(
        &mut self,
        contact: ContactId,
        targets: &[Target],
        request: &Request,
        options: InviteOptions,
    ) -> Result<Option<Handle>, Error> {
        if targets.is_empty() {
            return self.invite_contact_where(contact, |_| true, request, options);
        }
        let now = self.clock.now();
        let handle =
            self.agent.invite_contact(now, contact, targets, &request.as_core(), options)?;
        tracing::info!(?handle, ?contact, endpoints = targets.len(), "inviting contact");
        Ok(handle)
    }

    /// Invites `contact` at every endpoint its card names, each at an
    /// address `usable` accepts ([`default_targets`]), without allocating
    /// (the targets are listed in a buffer the driver keeps). Flush
    /// afterwards.
    pub fn invite_contact_where(
        &mut self,
        contact: ContactId,
        usable: impl Fn(&SocketAddr) -> bool,
        request: &Request,
        options: InviteOptions,
    ) -> Result<Option<Handle>, Error> {
        let mut targets = std::mem::take(&mut self.targets);
        let result = default_targets_into(&self.agent, contact, usable, &mut targets)
            .map_err(Error::from)
            .and_then(|()| self.invite_contact(contact, &targets, request, options));
        targets.clear();
        self.targets = targets;
        result
    }

    /// Invites whoever answers at `address`. Flush afterwards.
    pub fn invite_endpoint(
        &mut self,
        address: SocketAddr,
        request: &Request,
        options: InviteOptions,
    ) -> Result<Option<Handle>, Error> {
        let now = self.clock.now();
        let handle = self.agent.invite_endpoint(now, address, &request.as_core(), options)?;
        tracing::info!(?handle, %address, "inviting endpoint");
        Ok(handle)
    }

    /// An outgoing invitation's status.
    pub fn status(&self, handle: Handle) -> Result<Status, Error> {
        Ok(match self.agent.response(handle)? {
            peercollab_core::agent::Status::Answered(r) => {
                Status::Answered(Answer::from_response(&r, &self.arena))
            }
            peercollab_core::agent::Status::Pending { ringing } => Status::Pending { ringing },
            _ => Status::Pending { ringing: false },
        })
    }

    /// Cancels an outgoing invitation. Flush afterwards.
    pub fn cancel(&mut self, handle: Handle) -> Result<CancelEffect, Error> {
        let now = self.clock.now();
        let effect = self.agent.cancel(now, handle)?;
        tracing::info!(?handle, ?effect, "cancelled");
        Ok(effect)
    }

    /// Closes a handle, cancelling first if there is no outcome yet. Flush
    /// afterwards.
    pub fn close(&mut self, handle: Handle) -> Result<(), Error> {
        let now = self.clock.now();
        self.agent.close(now, handle)?;
        tracing::debug!(?handle, "closed");
        Ok(())
    }

    /// Answers a presented invitation. Flush afterwards.
    pub fn respond(&mut self, id: IncomingId, reply: Reply, reason: &str) -> Result<(), Error> {
        let now = self.clock.now();
        self.agent.respond(now, id, reply, reason)?;
        tracing::info!(incoming = ?id, ?reply, "answered");
        Ok(())
    }

    /// The launch information of an accepted invitation, until released.
    pub fn launch_info(&self, id: IncomingId) -> Result<Invitation, Error> {
        self.agent.launch_info(id)?;
        Ok(self.invitation(id)?)
    }

    /// Releases an accepted invitation's launch information and its slot.
    pub fn release(&mut self, id: IncomingId) -> Result<(), Error> {
        Ok(self.agent.release(id)?)
    }
}

/// The targets of a contact invitation when none are named: every endpoint
/// the contact's card certifies that is not revoked, the k-th at the k-th
/// of the card's addresses that `usable` accepts (the first usable one when
/// there are fewer addresses than endpoints).
pub fn default_targets(
    agent: &Agent,
    contact: ContactId,
    usable: impl Fn(&SocketAddr) -> bool,
) -> Result<Vec<Target>, AgentError> {
    let mut targets = Vec::new();
    default_targets_into(agent, contact, usable, &mut targets)?;
    Ok(targets)
}

/// [`default_targets`], appended to `targets` (no allocation once it has
/// the capacity).
pub fn default_targets_into(
    agent: &Agent,
    contact: ContactId,
    usable: impl Fn(&SocketAddr) -> bool,
    targets: &mut Vec<Target>,
) -> Result<(), AgentError> {
    let record = agent.contact(contact)?;
    let mut addresses = record.addresses().iter().copied().filter(|a| usable(a));
    let Some(first) = addresses.next() else {
        return Err(AgentError::NoTargets);
    };
    // The k-th endpoint at the k-th usable address, the first once they
    // run out.
    let mut next = Some(first);
    for endpoint in record.endpoints().filter(|e| !record.is_revoked(*e)) {
        let address = next.unwrap_or(first);
        targets.push(Target { endpoint, address });
        next = next.and_then(|_| addresses.next());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use peercollab_core::agent::{Trust, policy::Policy};
    use peercollab_core::invite::AppId;
    use peercollab_core::{Duration, HashDrbg};

    const APP: AppId = AppId(*b"driver-test-app!");

    struct Pair {
        clock: ManualClock,
        a: Driver,
        b: Driver,
        a_addr: SocketAddr,
        b_addr: SocketAddr,
    }

    fn driver(seed: u64, clock: &ManualClock) -> Driver {
        let identity = LocalIdentity::generate(&mut HashDrbg::from_u64(seed), EndpointId(1));
        let clock: Arc<dyn Clock> = Arc::new(clock.clone());
        Driver::with_seed(
            identity,
            AgentConfig::with_policy(Policy::Anyone),
            clock,
            [seed as u8; 32],
        )
    }

    /// Two drivers; b knows a as a trusted contact and a knows b.
    fn pair() -> (Pair, ContactId) {
        let clock = ManualClock::new();
        let (mut a, mut b) = (driver(1, &clock), driver(2, &clock));
        let a_addr: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:1002".parse().unwrap();
        let a_card = a.agent().my_card("alice", &[a_addr]).unwrap();
        let b_card = b.agent().my_card("bob", &[b_addr]).unwrap();
        let bob = a.command(|agent, _| agent.add_contact(&b_card, Trust::Trusted)).unwrap();
        b.command(|agent, _| agent.add_contact(&a_card, Trust::Trusted)).unwrap();
        b.command(|agent, _| agent.register_application(APP, "test", None)).unwrap();
        (Pair { clock, a, b, a_addr, b_addr }, bob)
    }

    impl Pair {
        /// Delivers datagrams both ways until neither sends; collects
        /// notices.
        fn settle(&mut self) -> (Vec<Notice>, Vec<Notice>) {
            let (mut na, mut nb) = (Vec::new(), Vec::new());
            for _ in 0..64 {
                let mut to_b = Vec::new();
                let mut to_a = Vec::new();
                self.a.flush(|to, d| {
                    to_b.push((to, d.to_vec()));
                    Ok(())
                });
                self.b.flush(|to, d| {
                    to_a.push((to, d.to_vec()));
                    Ok(())
                });
                na.extend(std::iter::from_fn(|| self.a.poll_notice()));
                nb.extend(std::iter::from_fn(|| self.b.poll_notice()));
                if to_a.is_empty() && to_b.is_empty() {
                    break;
                }
                for (to, d) in to_b {
                    assert_eq!(to, self.b_addr);
                    self.b.handle_datagram(self.a_addr, &d);
                }
                for (to, d) in to_a {
                    assert_eq!(to, self.a_addr);
                    self.a.handle_datagram(self.b_addr, &d);
                }
            }
            (na, nb)
        }
    }

    #[test]
    fn a_contact_invitation_accepted_reaches_both_sides_as_owned_notices() {
        let (mut p, bob) = pair();
        let request = Request::new(APP).message("join me").data(&b"port=4000"[..]);
        let handle = p.a.invite_contact(bob, &[], &request, InviteOptions::default()).unwrap();
        let handle = handle.expect("a handle was asked for");
        let (na, nb) = p.settle();
        assert_eq!(na, [Notice::Ringing(handle)]);
        let [Notice::Invited(invitation)] = &nb[..] else { panic!("expected Invited: {nb:?}") };
        assert_eq!(invitation.message, "join me");
        assert_eq!(&invitation.data[..], b"port=4000");
        assert_eq!(invitation.identity(), p.a.agent().identity().identity());
        assert_eq!(
            invitation.contact.as_ref().map(|c| (c.1.as_str(), c.2)),
            Some(("alice", Trust::Trusted))
        );
        assert_eq!(p.a.status(handle).unwrap(), Status::Pending { ringing: true });

        p.b.respond(invitation.id, Reply::Accept, "").unwrap();
        let (na, nb) = p.settle();
        let [Notice::Responded { handle: h, answer }] = &na[..] else { panic!("{na:?}") };
        assert_eq!(*h, handle);
        assert_eq!(answer.outcome, Outcome::Accepted);
        assert_eq!(answer.identity(), Some(p.b.agent().identity().identity()));
        assert_eq!(answer.contact, Some(bob));
        assert_eq!(
            nb,
            [Notice::IncomingEnded { incoming: invitation.id, outcome: Outcome::Accepted }]
        );
        assert_eq!(p.a.status(handle).unwrap(), Status::Answered(answer.clone()));
        let launch = p.b.launch_info(invitation.id).unwrap();
        assert_eq!(&launch.data[..], b"port=4000");
        p.b.release(invitation.id).unwrap();
        assert!(matches!(p.b.launch_info(invitation.id), Err(Error::Agent(_))));
        p.a.close(handle).unwrap();
        assert!(matches!(p.a.status(handle), Err(Error::Agent(AgentError::UnknownHandle))));
    }

    #[test]
    fn an_unanswered_invitation_expires_on_the_manual_clock_and_wait_follows_it() {
        let (mut p, bob) = pair();
        let options = InviteOptions::default().expires_in(Duration::from_secs(5));
        let handle = p.a.invite_contact(bob, &[], &Request::new(APP), options).unwrap().unwrap();
        p.settle();
        // A manual clock never asks for a real-time wait until its deadline has come.
        assert_eq!(p.a.wait(), None);
        let mut outcome = None;
        for _ in 0..100 {
            p.clock.advance(Duration::from_secs(1));
            p.a.handle_timeout();
            p.b.handle_timeout();
            let (na, _) = p.settle();
            if let Some(Notice::Responded { answer, .. }) = na.into_iter().last() {
                outcome = Some(answer.outcome);
                break;
            }
        }
        assert_eq!(outcome, Some(Outcome::Expired));
        assert!(matches!(p.a.status(handle).unwrap(), Status::Answered(_)));
    }

    #[test]
    fn send_failures_are_counted_as_loss_and_the_protocol_retransmits() {
        let (mut p, bob) = pair();
        p.a.invite_contact(bob, &[], &Request::new(APP), InviteOptions::default()).unwrap();
        p.a.flush(|_, _| Err(std::io::ErrorKind::WouldBlock.into()));
        assert_eq!(p.a.stats().send_failures, 1);
        assert_eq!(p.a.stats().datagrams_out, 0);
        let (mut na, mut nb) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            p.clock.advance(Duration::from_secs(1));
            p.a.handle_timeout();
            let (a, b) = p.settle();
            na.extend(a);
            nb.extend(b);
        }
        assert!(matches!(na[..], [Notice::Ringing(_)]), "{na:?}");
        assert!(matches!(nb[..], [Notice::Invited(_)]), "{nb:?}");
    }

    #[test]
    fn default_targets_pair_each_endpoint_with_a_usable_address() {
        let (p, bob) = pair();
        let targets = default_targets(p.a.agent(), bob, |_| true).unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].address, p.b_addr);
        assert_eq!(
            default_targets(p.a.agent(), bob, SocketAddr::is_ipv6),
            Err(AgentError::NoTargets)
        );
    }
}
