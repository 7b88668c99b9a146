//! Agents on the virtual [`Network`]: the multi-agent test driver.
//!
//! An [`AgentNode`] wraps one [`Agent`] as a network node. Nodes reach each
//! other by socket address through a shared [`AddressBook`]; moving a node
//! to a new address (roaming, a NAT rebinding) is one call. The user at
//! each agent is a script: how it answers presented invitations
//! ([`AgentNode::reaction`]) and arbitrary commands at set times
//! ([`AgentNode::at`]), and anything else it does on seeing an event
//! ([`AgentNode::watch`]). Everything the agent reports is recorded with its
//! virtual time, so tests assert on what happened, in order. A node runs an
//! agent of any capacities; by default those of [`TestAgent`]. Each node
//! reads the network's time through its own [`Clock`] (a rate error in
//! parts per million), and can crash and restart with its identity
//! ([`AgentNode::restart`]); the simulator ([`crate::sim`]) uses both.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

use peercollab_core::agent::{
    Agent, AgentConfig, AgentError, ContactId, Dropped, Event, Handle, IncomingId,
    InvitationRequest, InviteOptions, Target, Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{Certificate, EndpointId, IdentitySecret, LocalIdentity};
use peercollab_core::invite::{Answer, AppId, Outcome};
use peercollab_core::noise::KeyPair;
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{Duration, Entropy, HashDrbg, Instant};

use crate::party::Reaction;
use crate::{Faults, Network, Node, NodeId};

/// The agent the driver runs: 16 contacts, 16 applications, 16 invitation
/// slots, 4 body buffers, 64 remembered ids.
pub type TestAgent = Agent<16, 16, 16, 4, 64>;

/// Where each node is, shared by all nodes of a network.
#[derive(Clone, Default)]
pub struct AddressBook(Rc<RefCell<Book>>);

#[derive(Default)]
struct Book {
    by_node: BTreeMap<NodeId, SocketAddr>,
    by_address: BTreeMap<SocketAddr, NodeId>,
}

impl AddressBook {
    /// The default address of node `id`: `10.0.x.y:7000`.
    #[must_use]
    pub fn default_address(id: NodeId) -> SocketAddr {
        let id = u16::try_from(id).expect("at most 65,536 nodes");
        let [hi, lo] = id.to_be_bytes();
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, hi, lo)), 7000)
    }

    /// Places `node` at `address` (its old address no longer reaches it).
    pub fn set(&self, node: NodeId, address: SocketAddr) {
        let mut b = self.0.borrow_mut();
        if let Some(old) = b.by_node.insert(node, address) {
            b.by_address.remove(&old);
        }
        b.by_address.insert(address, node);
    }

    /// Takes `node` off the network for good: its address reaches nobody.
    pub fn vanish(&self, node: NodeId) {
        let mut b = self.0.borrow_mut();
        if let Some(old) = b.by_node.remove(&node) {
            b.by_address.remove(&old);
        }
    }

    /// Where `node` is.
    #[must_use]
    pub fn address(&self, node: NodeId) -> SocketAddr {
        self.0.borrow().by_node.get(&node).copied().unwrap_or_else(|| Self::default_address(node))
    }

    /// Who is at `address`.
    #[must_use]
    pub fn node(&self, address: SocketAddr) -> Option<NodeId> {
        self.0.borrow().by_address.get(&address).copied()
    }
}

/// A node's clock: the network's (global) time seen through a rate error of
/// `ppm` parts per million, in integer arithmetic, so it is the same on
/// every machine. Local time is `global · (10⁶ + ppm) / 10⁶`, rounded down:
/// monotonic in global time, and the identity for `ppm == 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// The rate error, in parts per million (above −10⁶).
    pub ppm: i32,
}

impl Clock {
    const MILLION: i128 = 1_000_000;

    fn rate(self) -> i128 {
        (Self::MILLION + i128::from(self.ppm)).max(1)
    }

    /// The node's time at global time `global`.
    #[must_use]
    pub fn local(self, global: Instant) -> Instant {
        let t = i128::from(global.as_millis()) * self.rate() / Self::MILLION;
        Instant::from_millis(u64::try_from(t).unwrap_or(u64::MAX))
    }

    /// The earliest global time at which the node's time reaches `local`.
    #[must_use]
    pub fn global(self, local: Instant) -> Instant {
        if local == Instant::MAX {
            return Instant::MAX;
        }
        let l = i128::from(local.as_millis()) * Self::MILLION;
        let rate = self.rate();
        let t = (l + rate - 1) / rate;
        Instant::from_millis(u64::try_from(t).unwrap_or(u64::MAX))
    }
}

type Script<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize> =
    Box<dyn FnOnce(&mut AgentNode<C, A, I, B, R>, Instant)>;

type Watcher<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize> =
    Box<dyn FnMut(&mut AgentNode<C, A, I, B, R>, Instant, Event)>;

/// An owned copy of a presented invitation or its launch information.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The incoming invitation.
    pub incoming: IncomingId,
    /// The inviter's certificate.
    pub inviter: Certificate,
    /// Its contact, if it is one.
    pub contact: Option<ContactId>,
    /// Where it came from.
    pub address: SocketAddr,
    /// The application.
    pub app_id: AppId,
    /// The message.
    pub message: String,
    /// The data.
    pub data: Vec<u8>,
}

/// One agent as a network node, with a scripted user. The capacities are
/// the agent's (`Agent<C, A, I, B, R>`); by default those of [`TestAgent`].
pub struct AgentNode<
    const C: usize = 16,
    const A: usize = 16,
    const I: usize = 16,
    const B: usize = 4,
    const R: usize = 64,
> {
    /// The agent.
    pub agent: Box<Agent<C, A, I, B, R>>,
    /// This node's id in the network.
    pub id: NodeId,
    /// The shared address book.
    pub book: AddressBook,
    /// Every event, with the time it was polled.
    pub events: Vec<(Instant, Event)>,
    /// Every dropped datagram, with its time.
    pub dropped: Vec<(Instant, Dropped)>,
    /// Every datagram sent: time, destination, length.
    pub sent: Vec<(Instant, SocketAddr, usize)>,
    /// Datagrams addressed to nobody in the book.
    pub unroutable: usize,
    /// What the user does when an invitation is presented.
    pub reaction: Reaction,
    /// Invitations as presented, at [`Event::Invited`].
    pub presented: Vec<Seen>,
    /// Results of the user's answers.
    pub answers: Vec<(IncomingId, Result<(), AgentError>)>,
    /// How this node reads the network's time; events, drops, sends and
    /// scripts are in its local time.
    pub clock: Clock,
    scripts: BTreeMap<(Instant, u64), Script<C, A, I, B, R>>,
    script_seq: u64,
    watcher: Option<Watcher<C, A, I, B, R>>,
}

impl AgentNode {
    /// A [`TestAgent`] with an identity from `seed`, at node `id` (placed in
    /// `book` at its default address), accepting at once.
    #[must_use]
    pub fn new(seed: u64, id: NodeId, book: &AddressBook, config: AgentConfig) -> Self {
        let mut rng = HashDrbg::from_u64(seed);
        let local = LocalIdentity::generate(&mut rng, EndpointId(0));
        Self::with_identity(local, seed, id, book, config)
    }

    /// A [`TestAgent`] for `local`, its entropy seeded from `seed`.
    #[must_use]
    pub fn with_identity(
        local: LocalIdentity,
        seed: u64,
        id: NodeId,
        book: &AddressBook,
        config: AgentConfig,
    ) -> Self {
        let mut rng = HashDrbg::from_u64(seed ^ 0x6167_656e_7400);
        let mut agent_seed = [0u8; 32];
        rng.fill_bytes(&mut agent_seed);
        Self::with_agent_seed(local, agent_seed, id, book, config)
    }
}

impl<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>
    AgentNode<C, A, I, B, R>
{
    /// An agent of these capacities for `local`, seeded with `agent_seed`,
    /// at node `id` (placed in `book` at its default address unless someone
    /// is there), accepting at once.
    #[must_use]
    pub fn with_agent_seed(
        local: LocalIdentity,
        agent_seed: [u8; 32],
        id: NodeId,
        book: &AddressBook,
        config: AgentConfig,
    ) -> Self {
        if book.node(AddressBook::default_address(id)).is_none() {
            book.set(id, AddressBook::default_address(id));
        }
        AgentNode {
            agent: Box::new(Agent::new(local, config, agent_seed)),
            id,
            book: book.clone(),
            events: Vec::new(),
            dropped: Vec::new(),
            sent: Vec::new(),
            unroutable: 0,
            reaction: Reaction::Answer {
                after: Duration::ZERO,
                answer: Answer::Accept,
                reason: String::new(),
            },
            presented: Vec::new(),
            answers: Vec::new(),
            clock: Clock::default(),
            scripts: BTreeMap::new(),
            script_seq: 0,
            watcher: None,
        }
    }

    /// This node's current address.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.book.address(self.id)
    }

    /// This agent's card, naming its current address.
    #[must_use]
    pub fn card(&self) -> ContactCard {
        let name = format!("node {}", self.id);
        self.agent.my_card(&name, &[self.address()]).expect("card")
    }

    /// Runs `script` at virtual time `at` (or at once if `at` has passed,
    /// at the next step).
    pub fn at(&mut self, at: Instant, script: impl FnOnce(&mut Self, Instant) + 'static) {
        self.script_seq += 1;
        self.scripts.insert((at, self.script_seq), Box::new(script));
    }

    /// Calls `watcher` with every event, as it is polled, after the node
    /// recorded it and the [`reaction`](Self::reaction) answered it (it
    /// replaces any earlier watcher): a user whom a [`Reaction`] does not
    /// describe.
    pub fn watch(&mut self, watcher: impl FnMut(&mut Self, Instant, Event) + 'static) {
        self.watcher = Some(Box::new(watcher));
    }

    /// The outcome reported for `handle`'s invitation, if any.
    #[must_use]
    pub fn responded(&self, handle: Handle) -> Vec<Outcome> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Responded { handle: h, outcome } if *h == handle => Some(*outcome),
                _ => None,
            })
            .collect()
    }

    /// Outcomes of incoming invitations, in order.
    #[must_use]
    pub fn incoming_outcomes(&self) -> Vec<(IncomingId, Outcome)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::IncomingEnded { incoming, outcome } => Some((*incoming, *outcome)),
                _ => None,
            })
            .collect()
    }

    /// Events matching `f`.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| f(e)).count()
    }

    /// How many invitations were presented ([`Event::Invited`]).
    #[must_use]
    pub fn invited(&self) -> usize {
        self.count(|e| matches!(e, Event::Invited(_)))
    }

    /// Replaces the agent by a fresh one of the same identity and `config`,
    /// seeded `agent_seed`, as a crashed node that restarts: every contact,
    /// application, invitation and pending script is lost (the caller adds
    /// back what the node's configuration holds). What was recorded stays.
    pub fn restart(&mut self, agent_seed: [u8; 32], config: AgentConfig) {
        let local = self.agent.identity().clone();
        *self.agent = Agent::new(local, config, agent_seed);
        self.scripts.clear();
    }

    /// Records (and reacts to) the events the agent has pending, at global
    /// time `now`: for callers that gave the agent a command directly.
    pub fn drain(&mut self, now: Instant) {
        let now = self.clock.local(now);
        self.drain_events(now);
    }

    fn drain_events(&mut self, now: Instant) {
        while let Some(e) = self.agent.poll_event() {
            self.events.push((now, e));
            if let Event::Invited(incoming) = e {
                if let Ok(v) = self.agent.incoming(incoming) {
                    self.presented.push(Seen {
                        incoming,
                        inviter: *v.inviter,
                        contact: v.contact,
                        address: v.address,
                        app_id: v.app_id,
                        message: v.message.to_owned(),
                        data: v.data.to_vec(),
                    });
                }
                match self.reaction.clone() {
                    Reaction::Answer { after, answer, reason } if after == Duration::ZERO => {
                        let r = self.agent.respond(now, incoming, answer, &reason);
                        self.answers.push((incoming, r));
                    }
                    Reaction::Answer { after, answer, reason } => {
                        self.at(now + after, move |n, now| {
                            let r = n.agent.respond(now, incoming, answer, &reason);
                            n.answers.push((incoming, r));
                        });
                    }
                    Reaction::Ignore => {}
                }
            }
            if let Some(mut watcher) = self.watcher.take() {
                watcher(self, now, e);
                self.watcher.get_or_insert(watcher);
            }
        }
    }

    fn run_scripts(&mut self, now: Instant) {
        while let Some(entry) = self.scripts.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let script = entry.remove();
            script(self, now);
            self.drain_events(now);
        }
    }
}

impl<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize> Node
    for AgentNode<C, A, I, B, R>
{
    fn handle_datagram(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        let now = self.clock.local(now);
        let from = self.book.address(from);
        if let Err(d) = self.agent.handle_datagram(now, from, bytes) {
            self.dropped.push((now, d));
        }
        self.drain_events(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.local(now);
        if self.agent.poll_timeout().is_some_and(|t| t <= now) {
            self.agent.handle_timeout(now);
            let next = self.agent.poll_timeout();
            assert!(
                next.is_none_or(|t| t > now),
                "after handle_timeout({now:?}) poll_timeout is {next:?}"
            );
        }
        self.drain_events(now);
        self.run_scripts(now);
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8; MAX_DATAGRAM],
    ) -> Option<(NodeId, usize)> {
        let now = self.clock.local(now);
        while let Some(t) = self.agent.poll_transmit(now, buf) {
            self.sent.push((now, t.destination, t.len));
            match self.book.node(t.destination) {
                Some(to) => return Some((to, t.len)),
                None => self.unroutable += 1,
            }
        }
        // The agent's drain order: datagrams, then events, some of which
        // are raised while datagrams are written.
        self.drain_events(now);
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let scripts = self.scripts.keys().next().map(|k| k.0);
        [self.agent.poll_timeout(), scripts]
            .into_iter()
            .flatten()
            .min()
            .map(|t| self.clock.global(t))
    }
}

/// A network of clean 20 ms links whose random choices come from `seed`,
/// with `n` agents of the default config seeded `agent_seed`,
/// `agent_seed + 1`, …; returns it, its address book and the agents' ids.
#[must_use]
pub fn clean_network(seed: u64, n: usize, agent_seed: u64) -> (Network, AddressBook, Vec<NodeId>) {
    let book = AddressBook::default();
    let mut net = Network::new(seed, Faults::clean(20));
    let ids = add_agents(&mut net, &book, n, agent_seed, AgentConfig::default());
    (net, book, ids)
}

/// Adds `n` agent nodes to `net`, seeded `seed`, `seed + 1`, …, all with
/// `config`; returns their ids.
pub fn add_agents(
    net: &mut Network,
    book: &AddressBook,
    n: usize,
    seed: u64,
    config: AgentConfig,
) -> Vec<NodeId> {
    (0..n)
        .map(|i| {
            let id = net.nodes.len();
            net.add(Box::new(AgentNode::new(seed + i as u64, id, book, config)))
        })
        .collect()
}

/// Makes `b` a contact of `a` with `trust`; returns its id at `a`.
pub fn befriend(net: &mut Network, a: NodeId, b: NodeId, trust: Trust) -> ContactId {
    let card = net.node::<AgentNode>(b).card();
    net.node_mut::<AgentNode>(a).agent.add_contact(&card, trust).expect("add contact")
}

/// Registers `app` at node `at`, with the global policy.
pub fn register(net: &mut Network, at: NodeId, app: AppId) {
    net.node_mut::<AgentNode>(at)
        .agent
        .register_application(app, "test app", None)
        .expect("register");
}

/// `count` endpoints of one identity, each an agent node with its own static
/// key and endpoint id (0, 1, …) added to `net`; returns their ids and the
/// card naming them all.
pub fn one_identity_at(
    net: &mut Network,
    book: &AddressBook,
    count: u32,
    seed: u64,
) -> (Vec<NodeId>, ContactCard) {
    let mut rng = HashDrbg::from_u64(seed);
    let secret = IdentitySecret::generate(&mut rng);
    let mut ids = Vec::new();
    let mut certs = Vec::new();
    for e in 0..count {
        let local =
            LocalIdentity::new(secret.clone(), KeyPair::generate(&mut rng), EndpointId(e), 1);
        certs.push(*local.certificate());
        let id = net.nodes.len();
        ids.push(net.add(Box::new(AgentNode::with_identity(
            local,
            seed + u64::from(e) + 1,
            id,
            book,
            AgentConfig::default(),
        ))));
    }
    let addresses: Vec<_> = ids.iter().map(|&i| book.address(i)).collect();
    let card = ContactCard::issue(&secret, "several", &certs, &addresses).expect("card");
    (ids, card)
}

/// Where and as which endpoint `node` is invited.
#[must_use]
pub fn target_of(net: &Network, node: NodeId) -> Target {
    let n = net.node::<AgentNode>(node);
    Target { endpoint: n.agent.identity().certificate().endpoint(), address: n.address() }
}

/// The application most tests invite to.
pub const APP: AppId = AppId(*b"peercollab-test!");

/// The invitation most tests send: [`APP`], a message and data.
#[must_use]
pub fn request() -> InvitationRequest<'static> {
    InvitationRequest { app_id: APP, message: "join me", data: b"port=4000" }
}

/// Answers `answer` with `reason`, `secs` after the invitation is presented.
#[must_use]
pub fn answer_after(secs: u64, answer: Answer, reason: &str) -> Reaction {
    Reaction::Answer { after: Duration::from_secs(secs), answer, reason: reason.into() }
}

/// `from` invites whoever is at `to`'s address, now, keeping a handle.
pub fn invite_endpoint(
    net: &mut Network,
    from: NodeId,
    to: NodeId,
    invitation: &InvitationRequest<'_>,
    options: InviteOptions,
) -> Handle {
    let now = net.now;
    let address = net.node::<AgentNode>(to).address();
    net.node_mut::<AgentNode>(from)
        .agent
        .invite_endpoint(now, address, invitation, options)
        .expect("invite")
        .expect("handle")
}

/// `from` invites its contact `contact` at `targets`, now, keeping a
/// handle.
pub fn invite_contact(
    net: &mut Network,
    from: NodeId,
    contact: ContactId,
    targets: &[Target],
    invitation: &InvitationRequest<'_>,
    options: InviteOptions,
) -> Handle {
    let now = net.now;
    net.node_mut::<AgentNode>(from)
        .agent
        .invite_contact(now, contact, targets, invitation, options)
        .expect("invite")
        .expect("handle")
}

/// Runs `net` until nothing is left to do (at most `secs` of virtual time).
pub fn settle(net: &mut Network, secs: u64) {
    let deadline = net.now + Duration::from_secs(secs);
    net.run(1_000_000, deadline, |_| false).expect("no livelock");
}
