//! The invariant checker: fed every invitation, user answer, outcome,
//! transmission and suspicious delivery as the run produces them, it stops
//! the run at the first step that breaks an invariant. What it asserts, and
//! why each bound is what it is: `tests/SIMULATION.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use peercollab_core::agent::IncomingId;
use peercollab_core::identity::IdentityKey;
use peercollab_core::invite::{CANCEL_TIMEOUT, EXPIRY_GRACE, FINAL_TIMEOUT, Outcome};
use peercollab_core::{Duration, Instant};

use crate::NodeId;
use crate::agents::Clock;

/// Slack for the transmit rule: the largest handshake jitter and one
/// retransmission delay, so a timer that fires just at its bound is not a
/// violation.
pub const TRANSMIT_SLACK: Duration = Duration::from_secs(1);

/// Which side of an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The inviter.
    Inviter,
    /// An invitee: this node's incoming invitation (in this incarnation).
    Invitee(NodeId, u32),
}

/// An invariant that broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The simulated invitation involved, if one is.
    pub invitation: Option<u32>,
    /// The node involved.
    pub node: NodeId,
    /// What broke.
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.invitation {
            Some(k) => write!(f, "invitation #{k}, node {}: {}", self.node, self.what),
            None => write!(f, "node {}: {}", self.node, self.what),
        }
    }
}

/// What the checker knows about one simulated invitation.
#[derive(Clone, Debug)]
struct Tracked {
    inviter: NodeId,
    targets: Vec<(NodeId, SocketAddr)>,
    /// The identity that may answer: the contact's, the one `expect`ed, or
    /// (endpoint invitations without `expect`) the target's.
    answerer: IdentityKey,
    expires_in: Duration,
    /// The inviter's outcome; `None` while open.
    outcome: Option<Outcome>,
    /// The inviter crashed before its outcome: nothing to hold it to.
    inviter_lost: bool,
    /// Invitee outcomes by (node, incarnation).
    invitee_outcomes: BTreeMap<(NodeId, u32), Outcome>,
    /// Invitees whose user answered Accept successfully.
    accepted_by: BTreeSet<(NodeId, u32)>,
}

/// The checker. Every method is one observation; an `Err` is the first
/// violation, and the run stops there.
#[derive(Debug, Default)]
pub struct Checker {
    invitations: BTreeMap<u32, Tracked>,
    /// Presented incoming invitations: (node, incarnation, incoming key) →
    /// the invitation.
    incoming: BTreeMap<(NodeId, u32, IncomingId), u32>,
    /// Open invitations' lifetime bounds, in global time.
    deadlines: BTreeSet<(Instant, u32, Side)>,
    /// Per node and peer address: open invitations, last terminal local
    /// time, last datagram heard (local time).
    pairs: BTreeMap<(NodeId, SocketAddr), Pair>,
    /// Where each open invitation's deadline entry is, to remove it.
    open: BTreeMap<(u32, Side), Instant>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Pair {
    open: u32,
    last_end: Option<Instant>,
    last_heard: Option<Instant>,
    /// The invitee side of an invitation sent by this peer may answer it
    /// before presenting it (a refusal, or Expired while it is still
    /// arriving) and retransmit that Final until this time, plus
    /// `max_transit`.
    unpresented_until: Option<Instant>,
    /// The longest any datagram from this peer took to arrive. An invitee
    /// counts an invitation's expiry from a fragment's arrival and the time
    /// remaining it carries, as of its sending: a fragment that took long
    /// (held back, or a late copy of one that was lost) makes its expiry
    /// later than the inviter's by as much.
    max_transit: Duration,
}

fn short(o: &Outcome) -> String {
    format!("{o:?}")
}

impl Checker {
    /// A checker that has seen nothing.
    #[must_use]
    pub fn new() -> Self {
        Checker::default()
    }

    fn violation(k: Option<u32>, node: NodeId, what: String) -> Result<(), Violation> {
        Err(Violation { invitation: k, node, what })
    }

    fn pair(&mut self, node: NodeId, addr: SocketAddr) -> &mut Pair {
        self.pairs.entry((node, addr)).or_default()
    }

    /// `inviter` (whose clock is `clock`) started
    /// invitation `k` at its local time `at` to `targets`; only `answerer`
    /// may accept it.
    #[allow(clippy::too_many_arguments)]
    pub fn started(
        &mut self,
        k: u32,
        inviter: NodeId,
        clock: Clock,
        at: Instant,
        targets: Vec<(NodeId, SocketAddr)>,
        from: SocketAddr,
        answerer: IdentityKey,
        expires_in: Duration,
    ) {
        for &(_, addr) in &targets {
            self.pair(inviter, addr).open += 1;
        }
        // Each target may answer before presenting — at the latest with
        // Expired at the expiry — and retransmit its Final until
        // FINAL_TIMEOUT later (clocks differ a little: EXPIRY_GRACE).
        let until = at + expires_in + FINAL_TIMEOUT + EXPIRY_GRACE;
        for &(node, _) in &targets {
            let p = self.pair(node, from);
            p.unpresented_until = p.unpresented_until.max(Some(until));
        }
        // The inviter gives up at its expiry plus grace at the latest.
        let bound = clock.global(at + expires_in + EXPIRY_GRACE);
        self.deadlines.insert((bound, k, Side::Inviter));
        self.open.insert((k, Side::Inviter), bound);
        self.invitations.insert(
            k,
            Tracked {
                inviter,
                targets,
                answerer,
                expires_in,
                outcome: None,
                inviter_lost: false,
                invitee_outcomes: BTreeMap::new(),
                accepted_by: BTreeSet::new(),
            },
        );
    }

    fn close_deadline(&mut self, k: u32, side: Side) {
        if let Some(at) = self.open.remove(&(k, side)) {
            self.deadlines.remove(&(at, k, side));
        }
    }

    /// The inviter of `k` reported `outcome` at local time `at`, the
    /// deciding answer authenticated as `answered_by`.
    pub fn responded(
        &mut self,
        k: u32,
        at: Instant,
        outcome: Outcome,
        answered_by: Option<IdentityKey>,
    ) -> Result<(), Violation> {
        let Some(t) = self.invitations.get(&k) else {
            return Self::violation(
                Some(k),
                0,
                "an outcome for an invitation never started".into(),
            );
        };
        let inviter = t.inviter;
        if let Some(first) = t.outcome {
            return Self::violation(
                Some(k),
                inviter,
                format!(
                    "the inviter reported a second outcome {} after {}",
                    short(&outcome),
                    short(&first)
                ),
            );
        }
        if outcome == Outcome::Accepted {
            if answered_by != Some(t.answerer) {
                return Self::violation(
                    Some(k),
                    inviter,
                    format!(
                        "Accepted, answered by {answered_by:?}, not the intended {:?}",
                        t.answerer
                    ),
                );
            }
            if t.accepted_by.is_empty() {
                return Self::violation(
                    Some(k),
                    inviter,
                    "Accepted, but no invitee's user accepted".into(),
                );
            }
        }
        let single = t.targets.len() == 1;
        for (&(node, _), theirs) in &t.invitee_outcomes {
            if *theirs == Outcome::Accepted && outcome != Outcome::Accepted {
                return Self::violation(
                    Some(k),
                    node,
                    format!("the invitee ended Accepted but the inviter {}", short(&outcome)),
                );
            }
            if single && !agree(&outcome, theirs) {
                return Self::violation(
                    Some(k),
                    node,
                    format!(
                        "the sides disagree: inviter {}, invitee {}",
                        short(&outcome),
                        short(theirs)
                    ),
                );
            }
        }
        let targets: Vec<SocketAddr> = t.targets.iter().map(|&(_, a)| a).collect();
        if let Some(t) = self.invitations.get_mut(&k) {
            t.outcome = Some(outcome);
        }
        for addr in targets {
            let p = self.pair(inviter, addr);
            p.open = p.open.saturating_sub(1);
            p.last_end = Some(at);
        }
        self.close_deadline(k, Side::Inviter);
        Ok(())
    }

    /// `node` (in `incarnation`, clock `clock`) presented incoming
    /// invitation `incoming` at local time `at`:
    /// it is invitation `k`, from `from`; it ends by `max_expiry`
    /// (clamped) plus the Final's give-up.
    #[allow(clippy::too_many_arguments)]
    pub fn invited(
        &mut self,
        k: u32,
        node: NodeId,
        incarnation: u32,
        clock: Clock,
        at: Instant,
        incoming: IncomingId,
        from: SocketAddr,
        max_expiry: Duration,
    ) -> Result<(), Violation> {
        let Some(t) = self.invitations.get(&k) else {
            return Self::violation(Some(k), node, "presented an invitation nobody sent".into());
        };
        if !t.targets.iter().any(|&(n, _)| n == node) {
            return Self::violation(Some(k), node, "presented at a node it was not sent to".into());
        }
        let side = Side::Invitee(node, incarnation);
        if self.open.contains_key(&(k, side))
            || t.invitee_outcomes.contains_key(&(node, incarnation))
        {
            return Self::violation(Some(k), node, "presented twice".into());
        }
        let lifetime = t.expires_in.min(max_expiry);
        if self.incoming.insert((node, incarnation, incoming), k).is_some() {
            return Self::violation(Some(k), node, "an incoming id names two invitations".into());
        }
        self.pair(node, from).open += 1;
        let bound = clock.global(at + lifetime + FINAL_TIMEOUT);
        self.deadlines.insert((bound, k, side));
        self.open.insert((k, side), bound);
        Ok(())
    }

    /// The user at `node` answered Accept to `incoming`, and the agent took
    /// it.
    pub fn user_accepted(&mut self, node: NodeId, incarnation: u32, incoming: IncomingId) {
        if let Some(&k) = self.incoming.get(&(node, incarnation, incoming))
            && let Some(t) = self.invitations.get_mut(&k)
        {
            t.accepted_by.insert((node, incarnation));
        }
    }

    /// `node`'s presented `incoming` ended with `outcome` at local time
    /// `at`; `from` is the inviter's address.
    pub fn incoming_ended(
        &mut self,
        node: NodeId,
        incarnation: u32,
        incoming: IncomingId,
        at: Instant,
        from: SocketAddr,
        outcome: Outcome,
    ) -> Result<(), Violation> {
        let Some(&k) = self.incoming.get(&(node, incarnation, incoming)) else {
            return Self::violation(
                None,
                node,
                format!("{} for an invitation never presented", short(&outcome)),
            );
        };
        let Some(t) = self.invitations.get(&k) else {
            return Self::violation(Some(k), node, "ended an invitation never started".into());
        };
        if let Some(first) = t.invitee_outcomes.get(&(node, incarnation)) {
            return Self::violation(
                Some(k),
                node,
                format!(
                    "the invitee reported a second outcome {} after {}",
                    short(&outcome),
                    short(first)
                ),
            );
        }
        if outcome == Outcome::Accepted {
            if !t.accepted_by.contains(&(node, incarnation)) {
                return Self::violation(
                    Some(k),
                    node,
                    "ended Accepted but its user did not accept".into(),
                );
            }
            if t.outcome != Some(Outcome::Accepted) && !t.inviter_lost {
                return Self::violation(
                    Some(k),
                    node,
                    format!(
                        "ended Accepted before or without the inviter (inviter: {:?})",
                        t.outcome
                    ),
                );
            }
            if t.invitee_outcomes.values().any(|o| *o == Outcome::Accepted) {
                return Self::violation(Some(k), node, "a second endpoint ended Accepted".into());
            }
        }
        if t.targets.len() == 1
            && let Some(theirs) = t.outcome
            && !agree(&theirs, &outcome)
        {
            return Self::violation(
                Some(k),
                node,
                format!(
                    "the sides disagree: inviter {}, invitee {}",
                    short(&theirs),
                    short(&outcome)
                ),
            );
        }
        if let Some(t) = self.invitations.get_mut(&k) {
            t.invitee_outcomes.insert((node, incarnation), outcome);
        }
        let p = self.pair(node, from);
        p.open = p.open.saturating_sub(1);
        p.last_end = Some(at);
        self.close_deadline(k, Side::Invitee(node, incarnation));
        Ok(())
    }

    /// `node` took in a datagram from `from` at local time `at`, `transit`
    /// after it was sent.
    pub fn heard(&mut self, node: NodeId, from: SocketAddr, at: Instant, transit: Duration) {
        let p = self.pair(node, from);
        p.last_heard = Some(at);
        p.max_transit = p.max_transit.max(transit);
    }

    /// `node` transmitted to `to` at local time `at`, on its own timer
    /// (`proactive`) or in answer to a datagram from `to`. A node sends on
    /// its own only for an open invitation with `to`, within
    /// `CANCEL_TIMEOUT` of one's end (a Cancel is retransmitted after the
    /// inviter's outcome), within `FINAL_TIMEOUT` of hearing from `to`
    /// (an invitation refused before it was presented retransmits its
    /// Final), or — for an invitation `to` sent it that it never presented
    /// — until that invitation's expiry plus `FINAL_TIMEOUT` (one still
    /// arriving at its expiry ends with a Final(Expired), retransmitted).
    pub fn transmitted(
        &mut self,
        node: NodeId,
        to: SocketAddr,
        at: Instant,
        proactive: bool,
    ) -> Result<(), Violation> {
        if !proactive {
            return Ok(());
        }
        let p = self.pairs.get(&(node, to)).copied().unwrap_or_default();
        let within =
            |t: Option<Instant>, d: Duration| t.is_some_and(|t| at <= t + d + TRANSMIT_SLACK);
        if p.open > 0
            || within(p.last_end, CANCEL_TIMEOUT)
            || within(p.last_heard, FINAL_TIMEOUT)
            || p.unpresented_until.is_some_and(|t| at <= t + p.max_transit)
        {
            return Ok(());
        }
        Self::violation(
            None,
            node,
            format!(
                "transmitted to {to} on its own at {at:?} with no open invitation there \
                 (last ended {:?}, last heard {:?})",
                p.last_end, p.last_heard
            ),
        )
    }

    /// `node` produced `events` events while taking in a datagram that was
    /// corrupted, or a copy of bytes it had already taken in.
    pub fn suspicious_delivery(
        &mut self,
        node: NodeId,
        what: &str,
        events: usize,
    ) -> Result<(), Violation> {
        if events == 0 {
            return Ok(());
        }
        Self::violation(None, node, format!("{events} event(s) from a {what} datagram"))
    }

    /// `node` crashed: its open invitations end without an outcome, and its
    /// per-peer state is gone.
    pub fn crashed(&mut self, node: NodeId) {
        let lost: Vec<(u32, Side)> = self
            .open
            .keys()
            .filter(|(k, side)| match side {
                Side::Invitee(n, _) => *n == node,
                Side::Inviter => self.invitations.get(k).is_some_and(|t| t.inviter == node),
            })
            .copied()
            .collect();
        for (k, side) in lost {
            self.close_deadline(k, side);
            if side == Side::Inviter
                && let Some(t) = self.invitations.get_mut(&k)
            {
                t.inviter_lost = true;
            }
        }
        let keys: Vec<_> = self
            .pairs
            .range((node, min_addr())..)
            .take_while(|((n, _), _)| *n == node)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.pairs.remove(&key);
        }
    }

    /// At global time `now`: an open invitation whose bound has passed has
    /// outlived its expiry plus grace.
    pub fn tick(&self, now: Instant) -> Result<(), Violation> {
        match self.deadlines.first() {
            Some(&(bound, k, side)) if bound < now => {
                let node = match side {
                    Side::Inviter => self.invitations.get(&k).map_or(0, |t| t.inviter),
                    Side::Invitee(n, _) => n,
                };
                Self::violation(
                    Some(k),
                    node,
                    format!(
                        "the {side:?} side is still open at {now:?}, past its bound {bound:?} (global time)"
                    ),
                )
            }
            _ => Ok(()),
        }
    }

    /// How many invitations are open on some side.
    #[must_use]
    pub fn open_sides(&self) -> usize {
        self.open.len()
    }
}

fn min_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// Whether an inviter's and an invitee's outcome agree: the same, unless
/// one side could not reach the other (Unreachable), which the protocol
/// allows whatever the other says — but never Accepted on the invitee
/// alone, checked separately.
fn agree(inviter: &Outcome, invitee: &Outcome) -> bool {
    inviter == invitee || *inviter == Outcome::Unreachable || *invitee == Outcome::Unreachable
}
