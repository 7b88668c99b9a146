//! Support for the clock and race attack tests (`tests/tests/attack_clock.rs`,
//! `attack_races.rs`): two agents, each reading its **own** clock, with the
//! man-in-the-middle between them.
//!
//! A [`Skewed`] node wraps an [`AgentNode`] and shows it the network's time
//! shifted by an offset of its own (milliseconds, either sign): a peer
//! whose clock runs far ahead of or behind the other's. Changing the offset
//! mid-run is a clock jump — forward (suspend and resume, a wrong NTP step)
//! or backward — and every later input, timeout and command of that agent
//! carries the jumped `now`. The wrapper also remembers the latest `now` it
//! gave its agent and checks, after every timeout it delivers, that the
//! agent's next deadline is `None` or later than it (agent.md §2.4).
//!
//! The datagrams of an invitation are told apart by direction and length
//! ([`msg`]): every message of these tests carries an empty reason text.

use peercollab_core::agent::{
    AgentConfig, Event, Handle, IncomingId, InviteOptions, Target, Trust,
};
use peercollab_core::wire::{FrameType, MAX_DATAGRAM};
use peercollab_core::{Duration, Instant};

use crate::agents::{APP, AddressBook, AgentNode, TestAgent, request};
use crate::mitm::{Captured, Mitm};
use crate::{Faults, Network, Node, NodeId};

/// One day: the network's time when a [`pair`] starts, so that a clock can
/// be set back by up to a day without going below zero.
pub const BASE: Instant = Instant::from_millis(86_400_000);

/// One hour, in milliseconds (for offsets).
pub const HOUR_MS: i128 = 3_600_000;

/// An [`AgentNode`] that reads the network's time shifted by `offset_ms`.
pub struct Skewed {
    /// The agent node; its events, drops and sends are in its own time.
    pub node: AgentNode,
    /// Local time minus network time, in milliseconds.
    pub offset_ms: i128,
    /// The latest `now` this agent was given.
    pub latest: Instant,
}

fn clamp(ms: i128) -> Instant {
    Instant::from_millis(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
}

impl Skewed {
    /// `node`, reading the network's time shifted by `offset_ms`.
    #[must_use]
    pub fn new(node: AgentNode, offset_ms: i128) -> Self {
        Skewed { node, offset_ms, latest: Instant::ZERO }
    }

    /// This agent's time at network time `global`.
    #[must_use]
    pub fn local(&self, global: Instant) -> Instant {
        clamp(i128::from(global.as_millis()) + self.offset_ms)
    }

    /// The network time at which this agent's clock shows `local`.
    #[must_use]
    pub fn global(&self, local: Instant) -> Instant {
        clamp(i128::from(local.as_millis()) - self.offset_ms)
    }

    /// Moves this agent's clock by `by_ms` (a jump; negative: backwards).
    pub fn jump(&mut self, by_ms: i128) {
        self.offset_ms += by_ms;
    }

    fn see(&mut self, local: Instant) -> Instant {
        self.latest = self.latest.max(local);
        local
    }

    /// Gives the agent a command (or any call) at its time `now`, then
    /// records the events it raised.
    pub fn call<R>(&mut self, now: Instant, f: impl FnOnce(&mut TestAgent, Instant) -> R) -> R {
        self.see(now);
        let r = f(&mut self.node.agent, now);
        self.node.drain(now);
        r
    }

    /// `handle_timeout(now)`, whatever `now` is, then checks that the next
    /// deadline is `None` or later than every `now` given so far.
    pub fn timeout_at(&mut self, now: Instant) {
        self.call(now, |agent, now| agent.handle_timeout(now));
        self.assert_deadline_ahead(now);
    }

    /// The agent's next deadline is `None` or later than the latest `now`
    /// it was given.
    pub fn assert_deadline_ahead(&self, context: impl std::fmt::Debug) {
        let next = self.node.agent.poll_timeout();
        assert!(
            next.is_none_or(|t| t > self.latest),
            "{context:?}: next deadline {next:?}, latest now {:?}",
            self.latest
        );
    }
}

impl Node for Skewed {
    fn handle_datagram(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        let now = self.see(self.local(now));
        self.node.handle_datagram(now, from, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let now = self.see(self.local(now));
        self.node.agent.handle_timeout(now);
        self.assert_deadline_ahead(now);
        // Records the events, runs the user's scripts that are due.
        self.node.handle_timeout(now);
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8; MAX_DATAGRAM],
    ) -> Option<(NodeId, usize)> {
        let now = self.see(self.local(now));
        self.node.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout().map(|t| self.global(t))
    }
}

/// Node `id` of `net` (a [`Skewed`]).
#[must_use]
pub fn skewed(net: &Network, id: NodeId) -> &Skewed {
    net.node::<Skewed>(id)
}

/// Node `id` of `net` (a [`Skewed`]), mutably.
pub fn skewed_mut(net: &mut Network, id: NodeId) -> &mut Skewed {
    net.node_mut::<Skewed>(id)
}

/// The agent node of [`Skewed`] node `id`.
#[must_use]
pub fn agent(net: &Network, id: NodeId) -> &AgentNode {
    &skewed(net, id).node
}

/// The agent node of [`Skewed`] node `id`, mutably.
pub fn agent_mut(net: &mut Network, id: NodeId) -> &mut AgentNode {
    &mut skewed_mut(net, id).node
}

/// Node `id`'s time now.
#[must_use]
pub fn local_now(net: &Network, id: NodeId) -> Instant {
    skewed(net, id).local(net.now)
}

/// A (the inviter, node 0) and B (node 1), each the other's trusted
/// contact, B running [`APP`], on clean 20 ms links that start at network
/// time [`BASE`]; A's clock is offset by `offsets[0]` ms, B's by
/// `offsets[1]`. The attacker intercepts both directions (and forwards
/// everything until given a script).
#[must_use]
pub fn pair(seed: u64, offsets: [i128; 2]) -> (Mitm, NodeId, NodeId) {
    let book = AddressBook::default();
    let mut net = Network::new(seed, Faults::clean(20));
    net.now = BASE;
    let config = AgentConfig::default();
    let mut a = AgentNode::new(seed * 2 + 1, 0, &book, config);
    let mut b = AgentNode::new(seed * 2 + 2, 1, &book, config);
    a.agent.add_contact(&b.card(), Trust::Trusted).expect("A knows B");
    b.agent.add_contact(&a.card(), Trust::Trusted).expect("B knows A");
    b.agent.register_application(APP, "test app", None).expect("register");
    let a = net.add(Box::new(Skewed::new(a, offsets[0])));
    let b = net.add(Box::new(Skewed::new(b, offsets[1])));
    assert_eq!((a, b), (0, 1), "node ids are the agents' book ids");
    let mut m = Mitm::new(net);
    m.intercept(a, b);
    (m, a, b)
}

/// A invites its contact B now (A's time) with [`request`] and `options`.
pub fn invite(m: &mut Mitm, a: NodeId, b: NodeId, options: InviteOptions) -> Handle {
    let card = agent(&m.net, b).card();
    let endpoint = agent(&m.net, b).agent.identity().certificate().endpoint();
    let target = Target { endpoint, address: agent(&m.net, b).address() };
    let contact = agent(&m.net, a).agent.contact_by_identity(card.identity()).expect("contact");
    let now = local_now(&m.net, a);
    skewed_mut(&mut m.net, a)
        .call(now, |agent, now| agent.invite_contact(now, contact, &[target], &request(), options))
        .expect("invite")
        .expect("handle")
}

/// Runs everything due up to network time `t` (datagrams queued by earlier
/// commands leave at once), and stops at `t`: a no-op script of node 0 at
/// `t` makes the network stop there.
pub fn run_to(m: &mut Mitm, t: Instant) {
    let local = skewed(&m.net, 0).local(t);
    skewed_mut(&mut m.net, 0).node.at(local, |_, _| {});
    m.run(1_000_000, Instant::MAX, |n| n.next_event_time().is_none_or(|e| e > t))
        .expect("no livelock");
    assert_eq!(m.net.now, t, "run_to stops at its time");
}

/// Runs until `until` holds (at most `secs` of network time).
pub fn run_until(m: &mut Mitm, secs: u64, until: impl FnMut(&Network) -> bool) {
    let deadline = m.net.now + Duration::from_secs(secs);
    m.run(1_000_000, deadline, until).expect("no livelock");
}

/// Runs until B has presented an invitation; returns it and B's time then.
pub fn until_presented(m: &mut Mitm, b: NodeId) -> (IncomingId, Instant) {
    let seen = agent(&m.net, b).invited();
    run_until(m, 60, |n| n.node::<Skewed>(b).node.invited() > seen);
    agent(&m.net, b)
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Invited(id) => Some((*id, *t)),
            _ => None,
        })
        .next_back()
        .expect("presented")
}

/// When (in its own time) node `id` reported `Responded` for `handle`.
#[must_use]
pub fn responded_at(net: &Network, id: NodeId, handle: Handle) -> Vec<Instant> {
    agent(net, id)
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Responded { handle: h, .. } if *h == handle => Some(*t),
            _ => None,
        })
        .collect()
}

/// When (in its own time) node `id` reported `IncomingEnded`.
#[must_use]
pub fn ended_at(net: &Network, id: NodeId) -> Vec<Instant> {
    agent(net, id)
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::IncomingEnded { .. } => Some(*t),
            _ => None,
        })
        .collect()
}

/// What an intercepted datagram of a contact invitation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    /// A handshake frame (initiation, response, cookie reply).
    Handshake,
    /// Inviter → invitee: a fragment of the Invite.
    Invite,
    /// Inviter → invitee: an empty transport datagram (liveness probe).
    Probe,
    /// Inviter → invitee: Ack.
    Ack,
    /// Inviter → invitee: Cancel (empty text).
    Cancel,
    /// Invitee → inviter: Ringing.
    Ringing,
    /// Invitee → inviter: Sack.
    Sack,
    /// Invitee → inviter: Final (any code; empty reason).
    Final,
    /// Anything else.
    Other,
}

/// Transport overhead: the 16-byte header and the 16-byte tag.
const OVERHEAD: usize = 32;

/// Which message `c` is, `inviter` being the node that sent the Invite.
/// By direction and length: Ack 18, Cancel 19, Ringing 17, Sack 19 and
/// Final 23 bytes of plaintext with empty texts (invitation.md, Sizes).
#[must_use]
pub fn msg(c: &Captured, inviter: NodeId) -> Msg {
    if !c.is(FrameType::Transport) {
        return Msg::Handshake;
    }
    match (c.from == inviter, c.bytes.len().saturating_sub(OVERHEAD)) {
        (true, 0) => Msg::Probe,
        (true, 18) => Msg::Ack,
        (true, 19) => Msg::Cancel,
        (true, n) if n >= 42 => Msg::Invite,
        (false, 17) => Msg::Ringing,
        (false, 19) => Msg::Sack,
        (false, 23) => Msg::Final,
        _ => Msg::Other,
    }
}

/// The intercepted datagrams of kind `kind` in a [`pair`] (whose inviter is
/// A, node 0), with their send times (network time).
#[must_use]
pub fn sent_of(m: &Mitm, kind: Msg) -> Vec<Captured> {
    m.captured.iter().filter(|c| msg(c, 0) == kind).cloned().collect()
}
