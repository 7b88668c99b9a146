//! Test support for peercollab: a deterministic virtual network that runs
//! sans-IO core objects against each other over virtual time.
//!
//! [`Network`] holds any number of [`Node`]s (two for the session tests;
//! the invitation, simulation and adversarial suites add more). Datagrams go
//! through a [`Faults`] model (latency, jitter, loss, duplication,
//! reordering) driven by one seeded generator, and the clock jumps straight
//! to the next delivery or deadline, so hours of protocol time take
//! microseconds and every run is reproducible from its seed. A step bound
//! turns a livelock into an error instead of a hang.

// Test support: nodes are trait objects without meaningful Debug output.
#![allow(missing_debug_implementations)]

use std::collections::BTreeMap;

/// The README's examples compile (`cargo test` runs them as doctests).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

pub mod agents;
pub mod attack_support;
pub mod bench;
pub mod mitm;
pub mod party;
pub mod sim;
pub mod vectors;

use peercollab_core::identity::LocalIdentity;
use peercollab_core::session::{
    Dropped, Incoming, PinnedPeer, Received, Session, SessionError, SessionEvent,
};
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{Entropy, HashDrbg, Instant};

/// Lowercase hex of `bytes` (test data and diagnostics).
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string. Test data only: panics on malformed input.
#[must_use]
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Index of a node in a [`Network`].
pub type NodeId = usize;

/// Anything that consumes datagrams and deadlines and produces datagrams:
/// the shape every sans-IO object of the core has.
pub trait Node: AsAny {
    /// A datagram from `from` arrives at `now`.
    fn handle_datagram(&mut self, now: Instant, from: NodeId, bytes: &[u8]);
    /// The deadline from `poll_timeout` has come.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send and its destination.
    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8; MAX_DATAGRAM],
    ) -> Option<(NodeId, usize)>;
    /// The next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// What the network does to datagrams. Probabilities are in parts per
/// thousand, so behaviour never depends on floating point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// One-way delay in milliseconds.
    pub latency_ms: u64,
    /// Extra uniform random delay in `0..=jitter_ms` (reorders datagrams).
    pub jitter_ms: u64,
    /// Chance a datagram is lost, per mille.
    pub loss_permille: u64,
    /// Chance a datagram is delivered twice, per mille.
    pub duplicate_permille: u64,
}

impl Faults {
    /// A perfect link with `latency_ms` of delay.
    #[must_use]
    pub fn clean(latency_ms: u64) -> Self {
        Faults { latency_ms, ..Faults::default() }
    }
}

/// One entry of a run's trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEntry {
    /// A datagram was sent.
    Sent { at: Instant, from: NodeId, to: NodeId, bytes: Vec<u8> },
    /// A datagram was delivered.
    Delivered { at: Instant, from: NodeId, to: NodeId, len: usize },
    /// A datagram was lost.
    Lost { at: Instant, from: NodeId, to: NodeId },
}

/// The run did not settle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Livelock {
    /// Steps taken before giving up.
    pub steps: u64,
    /// Virtual time reached.
    pub at: Instant,
}

struct InFlight {
    from: NodeId,
    to: NodeId,
    bytes: Vec<u8>,
}

/// A virtual network of nodes.
pub struct Network {
    /// The nodes, addressed by index.
    pub nodes: Vec<Box<dyn Node>>,
    /// Faults applied to every datagram.
    pub faults: Faults,
    /// Virtual time.
    pub now: Instant,
    /// Everything that happened, in order.
    pub trace: Vec<TraceEntry>,
    /// Links that lose everything, as (from, to): partitions and one-way
    /// outages.
    pub cut: Vec<(NodeId, NodeId)>,
    rng: HashDrbg,
    /// Keyed by (delivery time, sequence number): delivery order is
    /// deterministic, ties broken by send order.
    in_flight: BTreeMap<(Instant, u64), InFlight>,
    seq: u64,
}

impl Network {
    /// A network whose every random choice comes from `seed`.
    #[must_use]
    pub fn new(seed: u64, faults: Faults) -> Self {
        Network {
            nodes: Vec::new(),
            faults,
            now: Instant::ZERO,
            trace: Vec::new(),
            cut: Vec::new(),
            rng: HashDrbg::from_u64(seed ^ 0x6e65_7477_6f72_6b00),
            in_flight: BTreeMap::new(),
            seq: 0,
        }
    }

    /// Adds a node; returns its id.
    pub fn add(&mut self, node: Box<dyn Node>) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn chance(&mut self, permille: u64) -> bool {
        permille > 0 && self.rng.below(1000) < permille
    }

    fn enqueue(&mut self, from: NodeId, to: NodeId, bytes: &[u8]) {
        let at = self.now;
        self.trace.push(TraceEntry::Sent { at, from, to, bytes: bytes.to_vec() });
        if self.cut.contains(&(from, to)) || self.chance(self.faults.loss_permille) {
            self.trace.push(TraceEntry::Lost { at, from, to });
            return;
        }
        let copies = if self.chance(self.faults.duplicate_permille) { 2 } else { 1 };
        for _ in 0..copies {
            let jitter = self.rng.below(self.faults.jitter_ms + 1);
            let deliver =
                at + peercollab_core::Duration::from_millis(self.faults.latency_ms + jitter);
            self.seq += 1;
            self.in_flight
                .insert((deliver, self.seq), InFlight { from, to, bytes: bytes.to_vec() });
        }
    }

    /// Injects a datagram as if `from` had sent it now (attack and replay tests).
    pub fn inject(&mut self, from: NodeId, to: NodeId, bytes: &[u8]) {
        self.enqueue(from, to, bytes);
    }

    /// Drains every node's transmits into the network.
    pub fn flush(&mut self) {
        let mut buf = [0u8; MAX_DATAGRAM];
        for id in 0..self.nodes.len() {
            while let Some((to, n)) = self.nodes[id].poll_transmit(self.now, &mut buf) {
                self.enqueue(id, to, &buf[..n]);
            }
        }
    }

    /// The earliest pending delivery or node deadline.
    #[must_use]
    pub fn next_event_time(&self) -> Option<Instant> {
        let delivery = self.in_flight.keys().next().map(|k| k.0);
        let deadline = self.nodes.iter().filter_map(|n| n.poll_timeout()).min();
        [delivery, deadline].into_iter().flatten().min()
    }

    /// Advances to the next delivery or deadline and handles it. Returns
    /// `false` when nothing is left to do.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(t) = self.next_event_time() else {
            return false;
        };
        if t > self.now {
            self.now = t;
        }
        let due: Vec<(Instant, u64)> =
            self.in_flight.range(..=(self.now, u64::MAX)).map(|(k, _)| *k).collect();
        for k in due {
            if let Some(d) = self.in_flight.remove(&k) {
                self.trace.push(TraceEntry::Delivered {
                    at: self.now,
                    from: d.from,
                    to: d.to,
                    len: d.bytes.len(),
                });
                self.nodes[d.to].handle_datagram(self.now, d.from, &d.bytes);
            }
        }
        for id in 0..self.nodes.len() {
            if self.nodes[id].poll_timeout().is_some_and(|t| t <= self.now) {
                self.nodes[id].handle_timeout(self.now);
            }
        }
        self.flush();
        true
    }

    /// Steps until nothing is left to do, or `until` returns true, or virtual
    /// time passes `deadline`; more than `max_steps` steps is a livelock.
    pub fn run(
        &mut self,
        max_steps: u64,
        deadline: Instant,
        mut until: impl FnMut(&Network) -> bool,
    ) -> Result<u64, Livelock> {
        for steps in 0..max_steps {
            if until(self) || self.now > deadline || !self.step() {
                return Ok(steps);
            }
        }
        Err(Livelock { steps: max_steps, at: self.now })
    }

    /// A node as its concrete type.
    #[must_use]
    pub fn node<T: 'static>(&self, id: NodeId) -> &T {
        let node: &dyn Node = &*self.nodes[id];
        let any = node.as_any();
        any.downcast_ref::<T>().expect("node type")
    }

    /// A node as its concrete type, mutably.
    pub fn node_mut<T: 'static>(&mut self, id: NodeId) -> &mut T {
        let node: &mut dyn Node = &mut *self.nodes[id];
        let any = node.as_any_mut();
        any.downcast_mut::<T>().expect("node type")
    }
}

/// Downcasting support for nodes (blanket-implemented).
pub trait AsAny {
    /// `self` as `Any`.
    fn as_any(&self) -> &dyn std::any::Any;
    /// `self` as `Any`, mutably.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

impl<T: 'static> AsAny for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// One side of a secure session as a network node. An initiator is built
/// with its session; a responder starts empty and accepts the first
/// initiation that reads correctly (and answers later duplicates through the
/// session). After the handshake the node sends each payload of `outbox`
/// once, and records what it receives.
pub struct SessionPeer {
    /// The endpoint's identity.
    pub local: LocalIdentity,
    /// Contacts the responder looks initiators up in.
    pub directory: Vec<PinnedPeer>,
    /// The session, once there is one.
    pub session: Option<Session>,
    /// The other node.
    pub peer: NodeId,
    /// Payloads to send once the session can send.
    pub outbox: Vec<Vec<u8>>,
    /// Payloads received, in order.
    pub inbox: Vec<Vec<u8>>,
    /// Keepalives received.
    pub keepalives: u32,
    /// Events, with the time they were polled.
    pub events: Vec<(Instant, SessionEvent)>,
    /// Datagrams dropped, with the reason.
    pub dropped: Vec<Dropped>,
    /// Initiations that read correctly but could not be answered.
    pub refused: Vec<SessionError>,
    /// Every datagram this node sent, with its time.
    pub sent: Vec<(Instant, Vec<u8>)>,
    /// The index a responder gives its session.
    pub responder_index: u32,
    rng: HashDrbg,
}

impl SessionPeer {
    /// A responder waiting for an initiation from `peer`.
    #[must_use]
    pub fn responder(
        local: LocalIdentity,
        directory: Vec<PinnedPeer>,
        peer: NodeId,
        seed: u64,
    ) -> Self {
        let mut rng = HashDrbg::from_u64(seed);
        let responder_index = rng.next_u32();
        SessionPeer {
            local,
            directory,
            session: None,
            peer,
            outbox: Vec::new(),
            inbox: Vec::new(),
            keepalives: 0,
            events: Vec::new(),
            dropped: Vec::new(),
            refused: Vec::new(),
            sent: Vec::new(),
            responder_index,
            rng,
        }
    }

    /// An initiator whose session `start` builds from the identity and a
    /// generator seeded with `seed`.
    pub fn initiator(
        local: LocalIdentity,
        peer: NodeId,
        seed: u64,
        start: impl FnOnce(&LocalIdentity, &mut HashDrbg) -> Session,
    ) -> Self {
        let mut p = SessionPeer::responder(local, Vec::new(), peer, seed);
        let session = start(&p.local, &mut p.rng);
        p.session = Some(session);
        p
    }

    fn drain_events(&mut self, now: Instant) {
        if let Some(s) = self.session.as_mut() {
            while let Some(e) = s.poll_event() {
                self.events.push((now, e));
            }
        }
    }

    /// Whether an `Established` event was seen.
    #[must_use]
    pub fn established(&self) -> bool {
        self.events.iter().any(|(_, e)| *e == SessionEvent::Established)
    }
}

impl Node for SessionPeer {
    fn handle_datagram(&mut self, now: Instant, _from: NodeId, bytes: &[u8]) {
        let mut payload = [0u8; MAX_DATAGRAM];
        match self.session.as_mut() {
            Some(s) => match s.handle_datagram(now, bytes, &mut payload, &mut self.rng) {
                Ok(Received::Payload(n)) => self.inbox.push(payload[..n].to_vec()),
                Ok(Received::Keepalive) => self.keepalives += 1,
                Ok(Received::Handshake) => {}
                Err(d) => self.dropped.push(d),
            },
            None => match Incoming::read(&self.local, self.directory.as_slice(), bytes) {
                Ok(incoming) => {
                    match incoming.accept(&self.local, self.responder_index, now, &mut self.rng) {
                        Ok(s) => self.session = Some(s),
                        Err(e) => self.refused.push(e),
                    }
                }
                Err(d) => self.dropped.push(d),
            },
        }
        self.drain_events(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(s) = self.session.as_mut() {
            s.handle_timeout(now, &mut self.rng);
        }
        self.drain_events(now);
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8; MAX_DATAGRAM],
    ) -> Option<(NodeId, usize)> {
        let s = self.session.as_mut()?;
        let n = match s.poll_transmit(now, buf) {
            Some(n) => n,
            None if s.can_send() && !self.outbox.is_empty() => {
                let p = self.outbox.remove(0);
                s.send(now, &p, buf).expect("send")
            }
            None => return None,
        };
        self.sent.push((now, buf[..n].to_vec()));
        Some((self.peer, n))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.session.as_ref().and_then(Session::poll_timeout)
    }
}
