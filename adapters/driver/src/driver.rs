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

use crate::{Answer, Clock, Error, Invitation, Request, Status};

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
pub struct Driver {
    agent: Box<Agent>,
    clock: Arc<dyn Clock>,
    buf: Box<[u8; MAX_DATAGRAM]>,
    notices: VecDeque<Notice>,
    stats: DriverStats,
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
            notices: VecDeque::new(),
            stats: DriverStats::default(),
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
                    Ok(peercollab_core::agent::Status::Answered(r)) => Answer::from(r),
                    _ => {
                        Answer { outcome, answered_by: None, contact: None, reason: String::new() }
                    }
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

    fn invitation(&self, id: IncomingId) -> Result<Invitation, AgentError> {
        let view = self.agent.incoming(id)?;
        let contact = view.contact.and_then(|c| self.agent.contact(c).ok());
        Ok(Invitation::from_view(
            id,
            &view,
            contact.map(|c| (c.display_name().to_owned(), c.trust())),
        ))
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
        let defaults;
        let targets = if targets.is_empty() {
            defaults = default_targets(&self.agent, contact, |_| true)?;
            &defaults[..]
        } else {
            targets
        };
        let now = self.clock.now();
        let handle =
            self.agent.invite_contact(now, contact, targets, &request.as_core(), options)?;
        tracing::info!(?handle, ?contact, endpoints = targets.len(), "inviting contact");
        Ok(handle)
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
            peercollab_core::agent::Status::Answered(r) => Status::Answered(r.into()),
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
    let record = agent.contact(contact)?;
    let addresses: Vec<SocketAddr> =
        record.addresses().iter().copied().filter(|a| usable(a)).collect();
    let Some(first) = addresses.first().copied() else {
        return Err(AgentError::NoTargets);
    };
    Ok(record
        .endpoints()
        .filter(|e| !record.is_revoked(*e))
        .enumerate()
        .map(|(k, endpoint)| Target {
            endpoint,
            address: addresses.get(k).copied().unwrap_or(first),
        })
        .collect())
}
