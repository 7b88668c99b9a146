//! The deterministic simulator: many agents on one virtual network under
//! faults, their users, and a checker that holds every step to the
//! protocol's invariants (`tests/SIMULATION.md`).
//!
//! A run is a function of its [`SimConfig`]: identities, contacts,
//! applications, policies, users, faults and the agents' own entropy all
//! come from [`SimConfig::seed`] through [`SimRng`]; every table that decides
//! order is a `BTreeMap`; probabilities are integers (parts per million). The
//! scheduler is one queue of events keyed by (virtual time, sequence
//! number): datagram deliveries, node deadlines, user actions and faults.
//! A step pops the earliest, so time jumps straight to it, and touches only
//! the nodes involved — nothing scans all nodes. Each node is an
//! [`AgentNode`] of the multi-agent driver ([`crate::agents`]), reading
//! the time through its own [`Clock`]. [`Report::trace_hash`] is SHA-256
//! over every datagram and event in order: the same configuration gives the
//! same hash on any machine.

pub mod check;
pub mod core_rate;
pub mod report;
pub mod rng;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use peercollab_core::agent::{
    AgentConfig, ContactId, Event, Handle, IncomingId, InvitationRequest, InviteOptions, Policy,
    Status, Target, Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{EndpointId, IdentityKey, IdentitySecret, LocalIdentity};
use peercollab_core::invite::{Answer, AppId, MAX_APP_DATA, Outcome};
use peercollab_core::noise::KeyPair;
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{Duration, Instant};
use sha2::{Digest, Sha256};

use crate::agents::{AddressBook, AgentNode, Clock};
use crate::{Livelock, Node, NodeId};
pub use check::{Checker, Violation};
pub use report::Report;
pub use rng::{MILLION, SimRng};

/// Contacts per simulated agent.
pub const SIM_CONTACTS: usize = 8;
/// Registered applications per simulated agent.
pub const SIM_APPS: usize = 4;
/// Invitation slots (and handles) per simulated agent.
pub const SIM_INVITATIONS: usize = 12;
/// Body buffers per simulated agent.
pub const SIM_BUFFERS: usize = 2;
/// Remembered invitation ids per simulated agent.
pub const SIM_RECENT: usize = 32;

/// The node the simulator runs: an agent of the capacities above.
pub type SimNode = AgentNode<SIM_CONTACTS, SIM_APPS, SIM_INVITATIONS, SIM_BUFFERS, SIM_RECENT>;

/// The applications simulated agents register (each with its own chance).
pub const APPS: [AppId; 3] =
    [AppId(*b"sim-application0"), AppId(*b"sim-application1"), AppId(*b"sim-application2")];

/// An application no simulated agent registers.
pub const UNREGISTERED_APP: AppId = AppId(*b"sim-unregistered");

/// What the network and the nodes do wrong. Probabilities in parts per
/// million ([`MILLION`] = always).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultMix {
    /// One-way delay, milliseconds.
    pub latency_ms: u64,
    /// Extra uniform delay in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Independent loss per datagram.
    pub loss_ppm: u32,
    /// Gilbert-Elliott bursty loss on each node's uplink: chance per
    /// datagram of entering the bad state.
    pub burst_enter_ppm: u32,
    /// Chance per datagram of leaving the bad state.
    pub burst_leave_ppm: u32,
    /// Loss in the bad state.
    pub burst_loss_ppm: u32,
    /// A second copy is delivered.
    pub duplicate_ppm: u32,
    /// A copy is held back by up to four latencies plus 100 ms (reordering).
    pub reorder_ppm: u32,
    /// A copy has one bit flipped.
    pub corrupt_ppm: u32,
    /// The datagram is replayed 1 to 60 s later.
    pub replay_ppm: u32,
    /// Each node's clock runs off by up to this many parts per million.
    pub clock_ppm: u32,
    /// Partitions during the run: a fifth of the nodes is cut off from the
    /// rest, then healed.
    pub partitions: u32,
    /// How long a partition lasts at most, seconds.
    pub partition_secs: u64,
    /// Node crashes during the run (state lost, identity kept), each
    /// followed by a restart 1 to 60 s later.
    pub crashes: u32,
    /// Nodes whose endpoint vanishes for good during the run.
    pub vanish: u32,
    /// Network-wide blackholes: every datagram sent in `[from, until)` is
    /// lost.
    pub outages: Vec<(Instant, Instant)>,
}

impl FaultMix {
    /// Clean links with `latency_ms` of delay.
    #[must_use]
    pub fn clean(latency_ms: u64) -> Self {
        FaultMix { latency_ms, ..FaultMix::default() }
    }

    /// Every kind of fault at moderate rates, with `loss_ppm` of loss.
    #[must_use]
    pub fn everything(loss_ppm: u32) -> Self {
        FaultMix {
            latency_ms: 40,
            jitter_ms: 60,
            loss_ppm,
            burst_enter_ppm: 5_000,
            burst_leave_ppm: 200_000,
            burst_loss_ppm: 700_000,
            duplicate_ppm: 20_000,
            reorder_ppm: 20_000,
            corrupt_ppm: 10_000,
            replay_ppm: 5_000,
            clock_ppm: 500,
            partitions: 2,
            partition_secs: 40,
            crashes: 2,
            vanish: 1,
            outages: Vec::new(),
        }
    }
}

/// A bug planted on purpose, to show the checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// The first outcome an inviter reports is reported twice.
    OutcomeTwice,
    /// The first Accepted is reported as answered by the inviter's own
    /// identity.
    AcceptedByWrongParty,
    /// 100 s after its first outcome, the inviter sends the invitee a
    /// datagram on its own.
    TransmitAfterEnd,
}

/// How invitations and users are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Population {
    /// Identities (some with several endpoints), contacts, applications,
    /// policies, invitations and users all drawn from the seed.
    Random,
    /// Every node is every other's trusted contact (one endpoint each),
    /// registers [`APPS`]`[0]` and accepts invitations from anyone; node
    /// `k % n` invites node `(k + 1) % n` at `k · spacing`; every user
    /// accepts after `answer_after`. For boundary tests.
    Plain {
        /// Time between invitations.
        spacing: Duration,
        /// Time from presentation to Accept.
        answer_after: Duration,
    },
}

/// Everything a run depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// The one seed.
    pub seed: u64,
    /// Nodes (agents).
    pub peers: usize,
    /// Invitations started.
    pub invitations: u32,
    /// Invitations start uniformly over this window (random population).
    pub window: Duration,
    /// Faults.
    pub faults: FaultMix,
    /// How invitations and users are drawn.
    pub population: Population,
    /// More steps than this is a livelock.
    pub max_steps: u64,
    /// A planted bug, to test the checker.
    pub plant: Option<PlantedBug>,
}

impl SimConfig {
    /// A random population of `peers` agents starting `invitations`
    /// invitations under `faults`, over a window that keeps each agent's
    /// load light (100 s per invitation per agent, at least 60 s).
    #[must_use]
    pub fn new(seed: u64, peers: usize, invitations: u32, faults: FaultMix) -> Self {
        let per_peer = u64::from(invitations).saturating_mul(100) / (peers.max(1) as u64);
        SimConfig {
            seed,
            peers,
            invitations,
            window: Duration::from_secs(per_peer.max(60)),
            faults,
            population: Population::Random,
            max_steps: 2_000 * u64::from(invitations) + 1_000_000,
            plant: None,
        }
    }
}

/// Why a run stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// An invariant broke.
    Violation {
        /// The step at which it broke.
        step: u64,
        /// Virtual (global) time.
        at: Instant,
        /// What broke.
        violation: Violation,
        /// The last entries of the involved invitation's (or node's) trace.
        trace: Vec<String>,
    },
    /// More steps than the bound: a livelock.
    Livelock(Livelock),
}

/// The configuration could not be simulated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Fewer than two peers.
    TooFewPeers,
    /// More than 65,536 peers (the address plan's limit).
    TooManyPeers,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::TooFewPeers => f.write_str("at least 2 peers are needed"),
            ConfigError::TooManyPeers => f.write_str("at most 65536 peers are supported"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// How a simulated copy of a datagram was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Copy_ {
    Original,
    Corrupted,
}

/// The scheduled events. `Deliver`'s `sent` is the (global) time the
/// datagram left its sender.
enum Ev {
    Deliver { from: NodeId, to: NodeId, bytes: Vec<u8>, copy: Copy_, sent: Instant },
    Timer { node: NodeId, token: u64 },
    Invite(u32),
    Answer { node: NodeId, incarnation: u32, incoming: IncomingId, answer: Answer },
    Cancel { node: NodeId, incarnation: u32, handle: Handle },
    Crash { node: NodeId, down_for: Duration },
    Restart(NodeId),
    Vanish(NodeId),
    Partition { id: u32, nodes: Vec<NodeId>, heal_after: Duration },
    Heal { id: u32, nodes: Vec<NodeId> },
    Rogue { node: NodeId, to: SocketAddr },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Up,
    Down,
    Vanished,
}

struct Identity {
    secret: IdentitySecret,
    nodes: Vec<NodeId>,
    card: Option<ContactCard>,
}

struct Peer {
    ident: usize,
    config: AgentConfig,
    contacts: Vec<(usize, Trust)>,
    apps: Vec<(AppId, Option<Policy>)>,
    life: Life,
    incarnation: u32,
    timer: Option<(Instant, u64)>,
    event_cursor: usize,
    sent_cursor: usize,
    uplink_bad: bool,
    group: u32,
    delivered: BTreeSet<[u8; 16]>,
    sent_digests: BTreeSet<[u8; 16]>,
    contact_ids: BTreeMap<usize, ContactId>,
    handles: BTreeMap<Handle, u32>,
    incoming: BTreeMap<IncomingId, (u32, SocketAddr)>,
}

/// One started invitation, as the simulator remembers it.
#[derive(Clone, Debug)]
struct Started {
    started_at: Instant,
    data_len: usize,
    expires_in: Duration,
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams the agents sent.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Datagrams whose bytes the same node had sent before (handshake
    /// retransmissions from cache, duplicate answers).
    pub retransmissions: u64,
    /// Datagrams lost (loss, bursts, partitions, outages, down nodes).
    pub lost: u64,
    /// Datagrams to an address where nobody is.
    pub unroutable: u64,
    /// Extra copies delivered (duplicates and replays).
    pub duplicated: u64,
    /// Copies corrupted.
    pub corrupted: u64,
    /// Copies held back (reordered).
    pub reordered: u64,
    /// Datagrams delivered.
    pub delivered: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Endpoints vanished.
    pub vanished: u64,
    /// Partitions.
    pub partitions: u64,
    /// Invitees that showed Ringing, as seen by inviters.
    pub ringing: u64,
    /// Invitations presented to users.
    pub presented: u64,
}

/// Progress of a run, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Invitations started or refused so far.
    pub started: u32,
    /// Of `total`.
    pub total: u32,
    /// Virtual time.
    pub now: Instant,
    /// Steps.
    pub steps: u64,
}

/// A simulation run.
pub struct Sim {
    cfg: SimConfig,
    setup_rng: SimRng,
    net_rng: SimRng,
    user_rng: SimRng,
    book: AddressBook,
    nodes: Vec<SimNode>,
    peers: Vec<Peer>,
    idents: Vec<Identity>,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    now: Instant,
    steps: u64,
    hasher: Sha256,
    checker: Checker,
    counters: Counters,
    started: BTreeMap<u32, Started>,
    invited_so_far: u32,
    refused: BTreeMap<String, u64>,
    outcomes: BTreeMap<String, u64>,
    invitee_outcomes: BTreeMap<String, u64>,
    latencies: BTreeMap<String, Vec<u64>>,
    traces: BTreeMap<u32, Vec<String>>,
    planted_done: bool,
    /// Wall-clock time spent inside the agents (reporting only).
    core_time: std::time::Duration,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.cfg.seed)
            .field("peers", &self.nodes.len())
            .field("now", &self.now)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// The first 16 bytes of SHA-256 of `bytes`: a datagram's name in the
/// trace and in the duplicate checks.
fn digest16(bytes: &[u8]) -> [u8; 16] {
    let d = Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The application data of invitation `k`: its number, then a pattern.
#[must_use]
pub fn payload(k: u32, len: usize) -> Vec<u8> {
    let mut data = k.to_le_bytes().to_vec();
    data.extend((4..len).map(|i| (i as u8) ^ (k as u8)));
    data
}

/// The message of invitation `k`.
#[must_use]
pub fn message(k: u32) -> String {
    format!("sim #{k}")
}

/// A short name of an outcome, for tables.
#[must_use]
pub fn outcome_name(o: &Outcome) -> String {
    match o {
        Outcome::Busy { .. } => "Busy".into(),
        other => format!("{other:?}"),
    }
}

impl Sim {
    /// Builds the population of `cfg`: identities, agents, contacts,
    /// applications, policies, the invitations' start times and the faults'
    /// times.
    ///
    /// # Errors
    /// Fewer than 2 or more than 65,536 peers.
    pub fn new(cfg: SimConfig) -> Result<Self, ConfigError> {
        if cfg.peers < 2 {
            return Err(ConfigError::TooFewPeers);
        }
        if cfg.peers > 65_536 {
            return Err(ConfigError::TooManyPeers);
        }
        let mut sim = Sim {
            setup_rng: SimRng::stream(cfg.seed, 1),
            net_rng: SimRng::stream(cfg.seed, 2),
            user_rng: SimRng::stream(cfg.seed, 3),
            cfg,
            book: AddressBook::default(),
            nodes: Vec::new(),
            peers: Vec::new(),
            idents: Vec::new(),
            queue: BTreeMap::new(),
            seq: 0,
            now: Instant::ZERO,
            steps: 0,
            hasher: Sha256::new(),
            checker: Checker::new(),
            counters: Counters::default(),
            started: BTreeMap::new(),
            invited_so_far: 0,
            refused: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            invitee_outcomes: BTreeMap::new(),
            latencies: BTreeMap::new(),
            traces: BTreeMap::new(),
            planted_done: false,
            core_time: std::time::Duration::ZERO,
        };
        sim.populate();
        sim.schedule_plan();
        Ok(sim)
    }

    fn push(&mut self, at: Instant, ev: Ev) -> u64 {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), ev);
        self.seq
    }

    fn populate(&mut self) {
        let n = self.cfg.peers;
        let plain = matches!(self.cfg.population, Population::Plain { .. });
        // Identities: one endpoint each, a tenth with two or three.
        while self.peers.len() < n {
            let left = n - self.peers.len();
            let endpoints = if !plain && self.setup_rng.chance(100_000) {
                (2 + self.setup_rng.index(2)).min(left)
            } else {
                1
            };
            let secret = IdentitySecret::generate(&mut self.setup_rng);
            let ident = self.idents.len();
            let mut nodes = Vec::new();
            for e in 0..endpoints {
                let id = self.peers.len();
                let keys = KeyPair::generate(&mut self.setup_rng);
                let local = LocalIdentity::new(secret.clone(), keys, EndpointId(e as u32), 1);
                let policy = if plain { Policy::Anyone } else { self.draw_policy(750_000) };
                let config = AgentConfig::with_policy(policy);
                let mut node = SimNode::with_agent_seed(
                    local,
                    self.setup_rng.seed32(),
                    id,
                    &self.book,
                    config,
                );
                node.reaction = crate::party::Reaction::Ignore;
                if self.cfg.faults.clock_ppm > 0 {
                    let span = u64::from(self.cfg.faults.clock_ppm) * 2 + 1;
                    let ppm = self.setup_rng.below_u64(span) as i64
                        - i64::from(self.cfg.faults.clock_ppm);
                    node.clock = Clock { ppm: i32::try_from(ppm).unwrap_or(0) };
                }
                self.nodes.push(node);
                self.peers.push(Peer {
                    ident,
                    config,
                    contacts: Vec::new(),
                    apps: Vec::new(),
                    life: Life::Up,
                    incarnation: 0,
                    timer: None,
                    event_cursor: 0,
                    sent_cursor: 0,
                    uplink_bad: false,
                    group: 0,
                    delivered: BTreeSet::new(),
                    sent_digests: BTreeSet::new(),
                    contact_ids: BTreeMap::new(),
                    handles: BTreeMap::new(),
                    incoming: BTreeMap::new(),
                });
                nodes.push(id);
            }
            self.idents.push(Identity { secret, nodes, card: None });
        }
        // Cards name every endpoint of an identity (at most four).
        for ident in &mut self.idents {
            let certs: Vec<_> = ident
                .nodes
                .iter()
                .map(|&i| *self.nodes[i].agent.identity().certificate())
                .collect();
            let addrs: Vec<_> = ident.nodes.iter().map(|&i| self.book.address(i)).collect();
            ident.card = ContactCard::issue(&ident.secret, "sim peer", &certs, &addrs).ok();
        }
        // Contacts, applications.
        let idents = self.idents.len();
        for i in 0..n {
            let own = self.peers[i].ident;
            let mut contacts = Vec::new();
            if plain {
                contacts = (0..idents).filter(|&j| j != own).map(|j| (j, Trust::Trusted)).collect();
                contacts.truncate(SIM_CONTACTS);
                self.peers[i].apps = vec![(APPS[0], None)];
            } else {
                let want = 1 + self.setup_rng.index(SIM_CONTACTS);
                let mut chosen = BTreeSet::new();
                for _ in 0..want * 2 {
                    let j = self.setup_rng.index(idents);
                    if j != own && chosen.len() < want && chosen.insert(j) {
                        let trust = if self.setup_rng.chance(600_000) {
                            Trust::Trusted
                        } else {
                            Trust::Known
                        };
                        contacts.push((j, trust));
                    }
                }
                let mut apps = Vec::new();
                for app in APPS {
                    if self.setup_rng.chance(850_000) {
                        let own_policy =
                            self.setup_rng.chance(100_000).then(|| self.draw_policy(500_000));
                        apps.push((app, own_policy));
                    }
                }
                self.peers[i].apps = apps;
            }
            self.peers[i].contacts = contacts;
            self.apply_config(i);
        }
    }

    fn draw_policy(&mut self, anyone_ppm: u32) -> Policy {
        if self.setup_rng.chance(anyone_ppm) {
            Policy::Anyone
        } else if self.setup_rng.chance(800_000) {
            Policy::TrustedOnly
        } else {
            Policy::Nobody
        }
    }

    /// Gives node `i`'s agent its contacts and applications (at the start,
    /// and after a restart).
    fn apply_config(&mut self, i: NodeId) {
        let peer = &mut self.peers[i];
        peer.contact_ids.clear();
        let node = &mut self.nodes[i];
        for &(j, trust) in &peer.contacts {
            if let Some(card) = &self.idents[j].card
                && let Ok(id) = node.agent.add_contact(card, trust)
            {
                peer.contact_ids.insert(j, id);
            }
        }
        for &(app, policy) in &peer.apps {
            // The names are fixed and short, the table has room: cannot fail.
            let _ = node.agent.register_application(app, "sim application", policy);
        }
    }

    fn schedule_plan(&mut self) {
        let total = self.cfg.invitations;
        match self.cfg.population {
            Population::Random => {
                let window = self.cfg.window.as_millis().max(1);
                let mut times: Vec<u64> =
                    (0..total).map(|_| self.setup_rng.below_u64(window)).collect();
                times.sort_unstable();
                for (k, t) in times.into_iter().enumerate() {
                    self.push(Instant::from_millis(t), Ev::Invite(k as u32));
                }
            }
            Population::Plain { spacing, .. } => {
                for k in 0..total {
                    let at = Instant::ZERO + spacing.saturating_mul(u64::from(k));
                    self.push(at, Ev::Invite(k));
                }
            }
        }
        let span = self.cfg.window.as_millis().max(1);
        let n = self.nodes.len();
        let f = self.cfg.faults.clone();
        for _ in 0..f.crashes {
            let at = Instant::from_millis(self.setup_rng.below_u64(span));
            let node = self.setup_rng.index(n);
            let down_for = Duration::from_millis(1_000 + self.setup_rng.below_u64(59_000));
            self.push(at, Ev::Crash { node, down_for });
        }
        for _ in 0..f.vanish {
            let at = Instant::from_millis(self.setup_rng.below_u64(span));
            let node = self.setup_rng.index(n);
            self.push(at, Ev::Vanish(node));
        }
        for id in 0..f.partitions {
            let at = Instant::from_millis(self.setup_rng.below_u64(span));
            let nodes: Vec<NodeId> = (0..n).filter(|_| self.setup_rng.chance(200_000)).collect();
            let heal_after = Duration::from_millis(
                1_000 + self.setup_rng.below_u64(f.partition_secs.max(1) * 1_000),
            );
            self.push(at, Ev::Partition { id: id + 1, nodes, heal_after });
        }
    }

    fn trace(&mut self, k: u32, line: String) {
        let t = self.now.as_millis();
        self.traces.entry(k).or_default().push(format!("t={t}ms {line}"));
    }

    fn hash_event(&mut self, node: NodeId, at: Instant, what: &str) {
        self.hasher.update(b"E");
        self.hasher.update(self.now.as_millis().to_le_bytes());
        self.hasher.update((node as u64).to_le_bytes());
        self.hasher.update(at.as_millis().to_le_bytes());
        self.hasher.update(what.as_bytes());
    }

    fn stop(&self, violation: Violation) -> Stop {
        let trace = match violation.invitation {
            Some(k) => self.traces.get(&k).cloned().unwrap_or_default(),
            None => Vec::new(),
        };
        let keep = trace.len().saturating_sub(20);
        Stop::Violation { step: self.steps, at: self.now, violation, trace: trace[keep..].to_vec() }
    }

    /// Runs to the end (nothing left to do), calling `progress` now and
    /// then.
    ///
    /// # Errors
    /// The first violation, or a livelock.
    pub fn run(&mut self, mut progress: impl FnMut(Progress)) -> Result<(), Stop> {
        loop {
            if self.steps >= self.cfg.max_steps {
                return Err(Stop::Livelock(Livelock { steps: self.steps, at: self.now }));
            }
            let Some(((at, _), ev)) = self.queue.pop_first() else { break };
            if let Ev::Timer { node, token } = &ev
                && self.peers[*node].timer.map(|(_, t)| t) != Some(*token)
            {
                continue;
            }
            self.now = self.now.max(at);
            self.steps += 1;
            self.handle(ev).map_err(|v| self.stop(v))?;
            self.checker.tick(self.now).map_err(|v| self.stop(v))?;
            if self.steps.is_multiple_of(4096) {
                progress(self.progress());
            }
        }
        progress(self.progress());
        if self.checker.open_sides() > 0 {
            let v = Violation {
                invitation: None,
                node: 0,
                what: format!(
                    "{} invitation sides still open with nothing left to do",
                    self.checker.open_sides()
                ),
            };
            return Err(self.stop(v));
        }
        Ok(())
    }

    fn progress(&self) -> Progress {
        Progress {
            started: self.invited_so_far,
            total: self.cfg.invitations,
            now: self.now,
            steps: self.steps,
        }
    }

    fn handle(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::Deliver { from, to, bytes, copy, sent } => {
                self.deliver(from, to, &bytes, copy, self.now.saturating_duration_since(sent))
            }
            Ev::Timer { node, .. } => {
                self.peers[node].timer = None;
                if self.peers[node].life != Life::Up {
                    return Ok(());
                }
                let clock = std::time::Instant::now();
                self.nodes[node].handle_timeout(self.now);
                self.core_time += clock.elapsed();
                self.after_touch(node, None)
            }
            Ev::Invite(k) => self.invite(k),
            Ev::Answer { node, incarnation, incoming, answer } => {
                if self.peers[node].life != Life::Up || self.peers[node].incarnation != incarnation
                {
                    return Ok(());
                }
                let local = self.nodes[node].clock.local(self.now);
                let clock = std::time::Instant::now();
                let r = self.nodes[node].agent.respond(local, incoming, answer, "");
                self.core_time += clock.elapsed();
                if let Some(&(k, _)) = self.peers[node].incoming.get(&incoming) {
                    self.trace(k, format!("node {node} answers {answer:?}: {r:?}"));
                }
                if r.is_ok() && answer == Answer::Accept {
                    self.checker.user_accepted(node, incarnation, incoming);
                }
                self.hash_event(node, local, &format!("respond {answer:?} {r:?}"));
                self.nodes[node].drain(self.now);
                self.after_touch(node, None)
            }
            Ev::Cancel { node, incarnation, handle } => {
                if self.peers[node].life != Life::Up || self.peers[node].incarnation != incarnation
                {
                    return Ok(());
                }
                let local = self.nodes[node].clock.local(self.now);
                let clock = std::time::Instant::now();
                let r = self.nodes[node].agent.cancel(local, handle);
                self.core_time += clock.elapsed();
                if let Some(&k) = self.peers[node].handles.get(&handle) {
                    self.trace(k, format!("node {node} cancels: {r:?}"));
                }
                self.hash_event(node, local, &format!("cancel {r:?}"));
                self.nodes[node].drain(self.now);
                self.after_touch(node, None)
            }
            Ev::Crash { node, down_for } => {
                if self.peers[node].life != Life::Up {
                    return Ok(());
                }
                self.counters.crashes += 1;
                self.crash(node, Life::Down);
                self.push(self.now + down_for, Ev::Restart(node));
                Ok(())
            }
            Ev::Restart(node) => {
                if self.peers[node].life != Life::Down {
                    return Ok(());
                }
                let p = &mut self.peers[node];
                p.life = Life::Up;
                p.incarnation += 1;
                let seed = SimRng::stream(
                    self.cfg.seed,
                    0x1_0000_0000 + ((node as u64) << 20) + u64::from(p.incarnation),
                )
                .seed32();
                let config = p.config;
                let n = &mut self.nodes[node];
                n.restart(seed, config);
                p.event_cursor = n.events.len();
                p.sent_cursor = n.sent.len();
                self.apply_config(node);
                self.hash_event(node, Instant::ZERO, "restart");
                self.after_touch(node, None)
            }
            Ev::Vanish(node) => {
                if self.peers[node].life == Life::Vanished {
                    return Ok(());
                }
                self.counters.vanished += 1;
                self.crash(node, Life::Vanished);
                self.book.vanish(node);
                Ok(())
            }
            Ev::Partition { id, nodes, heal_after } => {
                self.counters.partitions += 1;
                for &n in &nodes {
                    self.peers[n].group = id;
                }
                self.hash_event(0, Instant::ZERO, &format!("partition {id} {nodes:?}"));
                self.push(self.now + heal_after, Ev::Heal { id, nodes });
                Ok(())
            }
            Ev::Heal { id, nodes } => {
                for &n in &nodes {
                    if self.peers[n].group == id {
                        self.peers[n].group = 0;
                    }
                }
                self.hash_event(0, Instant::ZERO, &format!("heal {id}"));
                Ok(())
            }
            Ev::Rogue { node, to } => {
                let local = self.nodes[node].clock.local(self.now);
                self.checker.transmitted(node, to, local, true)
            }
        }
    }

    fn crash(&mut self, node: NodeId, life: Life) {
        self.hash_event(node, Instant::ZERO, &format!("{life:?}"));
        let p = &mut self.peers[node];
        p.life = life;
        p.timer = None;
        p.delivered.clear();
        p.handles.clear();
        p.incoming.clear();
        self.checker.crashed(node);
    }

    fn deliver(
        &mut self,
        from: NodeId,
        to: NodeId,
        bytes: &[u8],
        copy: Copy_,
        transit: Duration,
    ) -> Result<(), Violation> {
        if self.peers[to].life != Life::Up {
            self.counters.lost += 1;
            return Ok(());
        }
        self.counters.delivered += 1;
        let digest = digest16(bytes);
        let suspicious = match copy {
            Copy_::Corrupted => Some("corrupted"),
            Copy_::Original if self.peers[to].delivered.contains(&digest) => {
                Some("duplicated or replayed")
            }
            Copy_::Original => None,
        };
        self.hasher.update(b"D");
        self.hasher.update(self.now.as_millis().to_le_bytes());
        self.hasher.update((to as u64).to_le_bytes());
        self.hasher.update(digest);
        let before = self.nodes[to].events.len();
        let dropped_before = self.nodes[to].dropped.len();
        let clock = std::time::Instant::now();
        self.nodes[to].handle_datagram(self.now, from, bytes);
        self.core_time += clock.elapsed();
        // A datagram counts as taken in once the agent did not drop it: a
        // copy of one that was dropped (say, reordered ahead of the
        // handshake) may still be the first to take effect.
        if copy == Copy_::Original && self.nodes[to].dropped.len() == dropped_before {
            self.peers[to].delivered.insert(digest);
        }
        let from_addr = self.book.address(from);
        let local = self.nodes[to].clock.local(self.now);
        self.checker.heard(to, from_addr, local, transit);
        self.after_touch(to, Some(from_addr))?;
        // Everything the node reported while taking it in (and draining
        // what it caused) came from this datagram.
        let produced = self.nodes[to].events.len() - before;
        if let Some(what) = suspicious {
            let events: Vec<String> =
                self.nodes[to].events[before..].iter().map(|(_, e)| format!("{e:?}")).collect();
            let what = format!(
                "{what} (type byte {:?}, from node {from}) [{}]",
                bytes.first(),
                events.join(", ")
            );
            self.checker.suspicious_delivery(to, &what, produced)?;
        }
        Ok(())
    }

    fn invite(&mut self, k: u32) -> Result<(), Violation> {
        self.invited_so_far += 1;
        let (inviter, targets_nodes, contact) = match self.cfg.population {
            Population::Plain { .. } => {
                let n = self.nodes.len();
                let i = k as usize % n;
                let j = (i + 1) % n;
                let contact = self.peers[i].contact_ids.get(&self.peers[j].ident).copied();
                (i, vec![j], contact.map(|c| (c, self.peers[j].ident)))
            }
            Population::Random => self.draw_invitation(),
        };
        if self.peers[inviter].life != Life::Up {
            *self.refused.entry("inviter down".into()).or_default() += 1;
            return Ok(());
        }
        let (app, data_len, expires_in, expect) = match self.cfg.population {
            Population::Plain { .. } => (APPS[0], 16, Duration::from_secs(300), false),
            Population::Random => {
                let r = &mut self.user_rng;
                let app =
                    if r.chance(50_000) { UNREGISTERED_APP } else { APPS[r.index(APPS.len())] };
                let data_len = if r.chance(850_000) {
                    4 + r.index(40)
                } else if r.chance(660_000) {
                    1_000 + r.index(2_000)
                } else {
                    6_000 + r.index(MAX_APP_DATA - 6_000)
                };
                let expires_in = Duration::from_secs([30, 60, 120, 300][r.index(4)]);
                (app, data_len, expires_in, r.chance(500_000))
            }
        };
        let data = payload(k, data_len);
        let msg = message(k);
        let request = InvitationRequest { app_id: app, message: &msg, data: &data };
        let local = self.nodes[inviter].clock.local(self.now);
        let mut options = InviteOptions::default().expires_in(expires_in);
        let targets: Vec<(NodeId, SocketAddr)> =
            targets_nodes.iter().map(|&t| (t, AddressBook::default_address(t))).collect();
        let answerer: IdentityKey;
        let clock = std::time::Instant::now();
        let result = match contact {
            Some((cid, ident)) => {
                answerer = self.idents[ident].secret.public();
                let ts: Vec<Target> = targets
                    .iter()
                    .map(|&(t, address)| Target {
                        endpoint: self.nodes[t].agent.identity().certificate().endpoint(),
                        address,
                    })
                    .collect();
                self.nodes[inviter].agent.invite_contact(local, cid, &ts, &request, options)
            }
            None => {
                let target = targets[0].0;
                answerer = self.nodes[target].agent.identity().identity();
                if expect {
                    options = options.expect(answerer);
                }
                self.nodes[inviter].agent.invite_endpoint(local, targets[0].1, &request, options)
            }
        };
        self.core_time += clock.elapsed();
        self.hash_event(inviter, local, &format!("invite #{k} {result:?}"));
        match result {
            Ok(Some(handle)) => {
                let kind = if contact.is_some() { "contact" } else { "endpoint" };
                self.trace(k, format!("node {inviter} invites {targets_nodes:?} ({kind}, {app:?}, {data_len} bytes, expires in {expires_in:?})"));
                let incarnation = self.peers[inviter].incarnation;
                let from = self.book.address(inviter);
                self.checker.started(
                    k,
                    inviter,
                    self.nodes[inviter].clock,
                    local,
                    targets,
                    from,
                    answerer,
                    expires_in,
                );
                self.peers[inviter].handles.insert(handle, k);
                self.started.insert(k, Started { started_at: self.now, data_len, expires_in });
                if matches!(self.cfg.population, Population::Random) && self.user_rng.chance(50_000)
                {
                    let after = Duration::from_millis(self.user_rng.below_u64(40_000));
                    self.push(self.now + after, Ev::Cancel { node: inviter, incarnation, handle });
                }
            }
            Ok(None) => {}
            Err(e) => *self.refused.entry(format!("{e:?}")).or_default() += 1,
        }
        self.nodes[inviter].drain(self.now);
        self.after_touch(inviter, None)
    }

    /// An inviter, its targets and, for a contact invitation, the contact.
    fn draw_invitation(&mut self) -> (NodeId, Vec<NodeId>, Option<(ContactId, usize)>) {
        let n = self.nodes.len();
        let r = &mut self.user_rng;
        let inviter = r.index(n);
        let p = &self.peers[inviter];
        if !p.contact_ids.is_empty() && r.chance(600_000) {
            let pick = r.index(p.contact_ids.len());
            if let Some((&ident, &cid)) = p.contact_ids.iter().nth(pick) {
                let nodes = &self.idents[ident].nodes;
                let targets = if nodes.len() > 1 && r.chance(500_000) {
                    nodes.clone()
                } else {
                    vec![nodes[r.index(nodes.len())]]
                };
                return (inviter, targets, Some((cid, ident)));
            }
        }
        let mut to = r.index(n - 1);
        if to >= inviter {
            to += 1;
        }
        (inviter, vec![to], None)
    }

    /// After node `i` took an input or a command: its events (and its
    /// user's reactions), its datagrams, its deadline, its capacities.
    /// `reactive_to` is the address whose datagram it just took in.
    fn after_touch(&mut self, i: NodeId, reactive_to: Option<SocketAddr>) -> Result<(), Violation> {
        // The agent's drain order: datagrams, then events (which may be
        // raised while datagrams are written); a user's reaction may cause
        // more of both.
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            let mut moved = false;
            loop {
                let clock = std::time::Instant::now();
                let out = self.nodes[i].poll_transmit(self.now, &mut buf);
                self.core_time += clock.elapsed();
                // Everything it sent, routable or not, is in `sent`.
                while self.peers[i].sent_cursor < self.nodes[i].sent.len() {
                    let (at, dest, _) = self.nodes[i].sent[self.peers[i].sent_cursor];
                    self.peers[i].sent_cursor += 1;
                    self.checker.transmitted(i, dest, at, reactive_to != Some(dest))?;
                }
                let Some((to, len)) = out else { break };
                moved = true;
                self.enqueue(i, to, &buf[..len]);
            }
            self.nodes[i].drain(self.now);
            if self.peers[i].event_cursor == self.nodes[i].events.len() && !moved {
                break;
            }
            self.process_events(i)?;
        }
        let node = &self.nodes[i];
        let next = node.poll_timeout();
        let current = self.peers[i].timer.map(|(t, _)| t);
        if next != current {
            match next {
                Some(t) => {
                    // The entry's token is its own sequence number.
                    let token = self.seq + 1;
                    self.push(t, Ev::Timer { node: i, token });
                    self.peers[i].timer = Some((t, token));
                }
                None => self.peers[i].timer = None,
            }
        }
        let a = &self.nodes[i].agent;
        if a.invitations_in_use() > SIM_INVITATIONS
            || a.handles_in_use() > SIM_INVITATIONS
            || a.buffers_free() > SIM_BUFFERS
        {
            return Err(Violation {
                invitation: None,
                node: i,
                what: format!(
                    "capacity exceeded: {} slots, {} handles, {} buffers free",
                    a.invitations_in_use(),
                    a.handles_in_use(),
                    a.buffers_free()
                ),
            });
        }
        Ok(())
    }

    fn process_events(&mut self, i: NodeId) -> Result<(), Violation> {
        while self.peers[i].event_cursor < self.nodes[i].events.len() {
            let (at, e) = self.nodes[i].events[self.peers[i].event_cursor];
            self.peers[i].event_cursor += 1;
            self.hash_event(i, at, &format!("{e:?}"));
            match e {
                Event::Responded { handle, outcome } => self.responded(i, at, handle, outcome)?,
                Event::Invited(incoming) => self.presented(i, at, incoming)?,
                Event::IncomingEnded { incoming, outcome } => {
                    let Some((k, from)) = self.peers[i].incoming.remove(&incoming) else {
                        return Err(Violation {
                            invitation: None,
                            node: i,
                            what: format!("{outcome:?} for an incoming invitation never presented"),
                        });
                    };
                    self.trace(k, format!("node {i} ends {outcome:?}"));
                    *self.invitee_outcomes.entry(outcome_name(&outcome)).or_default() += 1;
                    let incarnation = self.peers[i].incarnation;
                    self.checker.incoming_ended(i, incarnation, incoming, at, from, outcome)?;
                    if outcome == Outcome::Accepted {
                        let clock = std::time::Instant::now();
                        let _ = self.nodes[i].agent.release(incoming);
                        self.core_time += clock.elapsed();
                    }
                }
                Event::Ringing(handle) => {
                    self.counters.ringing += 1;
                    if let Some(&k) = self.peers[i].handles.get(&handle) {
                        self.trace(k, format!("node {i} hears Ringing"));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn responded(
        &mut self,
        i: NodeId,
        at: Instant,
        handle: Handle,
        outcome: Outcome,
    ) -> Result<(), Violation> {
        let Some(k) = self.peers[i].handles.remove(&handle) else {
            return Err(Violation {
                invitation: None,
                node: i,
                what: format!("{outcome:?} for an unknown handle"),
            });
        };
        let mut answered_by = match self.nodes[i].agent.response(handle) {
            Ok(Status::Answered(r)) => r.answered_by.map(|c| *c.identity()),
            _ => None,
        };
        self.trace(k, format!("node {i} outcome {outcome:?} (answered by {answered_by:?})"));
        *self.outcomes.entry(outcome_name(&outcome)).or_default() += 1;
        if let Some(s) = self.started.get(&k) {
            let latency = self.now.saturating_duration_since(s.started_at).as_millis();
            self.latencies.entry(outcome_name(&outcome)).or_default().push(latency);
        }
        let plant = if self.planted_done { None } else { self.cfg.plant };
        if plant == Some(PlantedBug::AcceptedByWrongParty) && outcome == Outcome::Accepted {
            self.planted_done = true;
            answered_by = Some(self.nodes[i].agent.identity().identity());
        }
        self.checker.responded(k, at, outcome, answered_by)?;
        match plant {
            Some(PlantedBug::OutcomeTwice) => {
                self.planted_done = true;
                self.checker.responded(k, at, outcome, answered_by)?;
            }
            Some(PlantedBug::TransmitAfterEnd) => {
                self.planted_done = true;
                let to = AddressBook::default_address((i + 1) % self.nodes.len());
                self.push(self.now + Duration::from_secs(100), Ev::Rogue { node: i, to });
            }
            _ => {}
        }
        let local = self.nodes[i].clock.local(self.now);
        let clock = std::time::Instant::now();
        let _ = self.nodes[i].agent.close(local, handle);
        self.core_time += clock.elapsed();
        self.nodes[i].drain(self.now);
        Ok(())
    }

    fn presented(&mut self, i: NodeId, at: Instant, incoming: IncomingId) -> Result<(), Violation> {
        self.counters.presented += 1;
        let Some(seen) = self.nodes[i].presented.iter().rev().find(|s| s.incoming == incoming)
        else {
            return Err(Violation {
                invitation: None,
                node: i,
                what: "Invited without a readable invitation".into(),
            });
        };
        let k = seen.data.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let from = seen.address;
        let Some(k) = k else {
            return Err(Violation {
                invitation: None,
                node: i,
                what: "presented data nobody sent".into(),
            });
        };
        let intact = self
            .started
            .get(&k)
            .is_some_and(|s| seen.data == payload(k, s.data_len) && seen.message == message(k));
        if !intact {
            return Err(Violation {
                invitation: Some(k),
                node: i,
                what: "presented a message or data other than the one sent".into(),
            });
        }
        let expires_in = self.started.get(&k).map_or(Duration::ZERO, |s| s.expires_in);
        self.trace(k, format!("node {i} presents it (from {from})"));
        let incarnation = self.peers[i].incarnation;
        let max_expiry = self.peers[i].config.max_expiry;
        self.checker.invited(
            k,
            i,
            incarnation,
            self.nodes[i].clock,
            at,
            incoming,
            from,
            max_expiry,
        )?;
        self.peers[i].incoming.insert(incoming, (k, from));
        // The user.
        let (answer, after) = match self.cfg.population {
            Population::Plain { answer_after, .. } => (Some(Answer::Accept), answer_after),
            Population::Random => {
                let r = &mut self.user_rng;
                let roll = r.below_u64(u64::from(MILLION));
                let quick = Duration::from_millis(r.below_u64(20_000));
                match roll {
                    0..450_000 => (Some(Answer::Accept), quick),
                    450_000..600_000 => (Some(Answer::Decline), quick),
                    600_000..700_000 => (
                        Some(Answer::Busy {
                            retry_after: Duration::from_secs(1 + r.below_u64(60)),
                        }),
                        quick,
                    ),
                    700_000..800_000 => (None, Duration::ZERO),
                    _ => {
                        let late = expires_in.as_millis() * 6 / 5;
                        (Some(Answer::Accept), Duration::from_millis(r.below_u64(late.max(1))))
                    }
                }
            }
        };
        if let Some(answer) = answer {
            self.push(self.now + after, Ev::Answer { node: i, incarnation, incoming, answer });
        } else {
            self.trace(k, format!("node {i}'s user ignores it"));
        }
        Ok(())
    }

    fn enqueue(&mut self, from: NodeId, to: NodeId, bytes: &[u8]) {
        let digest = digest16(bytes);
        self.counters.datagrams += 1;
        self.counters.bytes += bytes.len() as u64;
        if !self.peers[from].sent_digests.insert(digest) {
            self.counters.retransmissions += 1;
        }
        self.hasher.update(b"S");
        self.hasher.update(self.now.as_millis().to_le_bytes());
        self.hasher.update((from as u64).to_le_bytes());
        self.hasher.update((to as u64).to_le_bytes());
        self.hasher.update(digest);
        let f = &self.cfg.faults;
        let blackout = f.outages.iter().any(|&(a, b)| a <= self.now && self.now < b);
        let partitioned = self.peers[from].group != self.peers[to].group;
        let r = &mut self.net_rng;
        let p = &mut self.peers[from];
        if p.uplink_bad {
            if r.chance(f.burst_leave_ppm) {
                p.uplink_bad = false;
            }
        } else if r.chance(f.burst_enter_ppm) {
            p.uplink_bad = true;
        }
        let burst_loss = p.uplink_bad && r.chance(f.burst_loss_ppm);
        if blackout || partitioned || burst_loss || r.chance(f.loss_ppm) {
            self.counters.lost += 1;
            self.hasher.update(b"L");
            return;
        }
        let copies = if r.chance(f.duplicate_ppm) { 2 } else { 1 };
        let mut deliveries = Vec::with_capacity(copies + 1);
        for _ in 0..copies {
            let mut delay = f.latency_ms + r.below_u64(f.jitter_ms + 1);
            if r.chance(f.reorder_ppm) {
                delay += r.below_u64(4 * f.latency_ms + 100);
                self.counters.reordered += 1;
            }
            let mut copy = bytes.to_vec();
            let mut kind = Copy_::Original;
            if !copy.is_empty() && r.chance(f.corrupt_ppm) {
                let at = r.index(copy.len());
                copy[at] ^= 1 << r.below_u64(8);
                kind = Copy_::Corrupted;
                self.counters.corrupted += 1;
            }
            deliveries.push((Duration::from_millis(delay), copy, kind));
        }
        if r.chance(f.replay_ppm) {
            let later = Duration::from_millis(1_000 + r.below_u64(59_000));
            deliveries.push((later, bytes.to_vec(), Copy_::Original));
        }
        self.counters.duplicated += deliveries.len() as u64 - 1;
        for (delay, copy, kind) in deliveries {
            let sent = self.now;
            self.push(self.now + delay, Ev::Deliver { from, to, bytes: copy, copy: kind, sent });
        }
    }

    /// The report of the run so far (`wall_seconds` is the caller's).
    #[must_use]
    pub fn report(&self, stop: Option<&Stop>, wall_seconds: f64) -> Report {
        Report::build(self, stop, wall_seconds)
    }
}

/// Runs `cfg` to the end and reports; `wall_seconds` is measured here.
///
/// # Errors
/// A configuration that cannot be simulated.
pub fn run(cfg: SimConfig, progress: impl FnMut(Progress)) -> Result<Report, ConfigError> {
    let start = std::time::Instant::now();
    let mut sim = Sim::new(cfg)?;
    let stop = sim.run(progress).err();
    Ok(sim.report(stop.as_ref(), start.elapsed().as_secs_f64()))
}
