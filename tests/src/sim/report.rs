//! What a run reports: outcome tables, virtual-time latency percentiles,
//! traffic, violations and the trace hash, as text for people and as one
//! JSON object for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};
use sha2::Digest;

use super::{Counters, SIM_BUFFERS, SIM_INVITATIONS, Sim, SimNode, Stop};
use crate::hex;

/// Latency percentiles of one outcome, in virtual milliseconds from the
/// invite call to the inviter's outcome (nearest rank).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// How many.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// Of `values` (sorted here).
    #[must_use]
    pub fn of(values: &[u64]) -> Self {
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |p: usize| {
            if v.is_empty() { 0 } else { v[(v.len() * p).div_ceil(100).clamp(1, v.len()) - 1] }
        };
        Percentiles {
            count: v.len() as u64,
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: v.last().copied().unwrap_or(0),
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub peers: usize,
    /// Invitations asked for.
    pub invitations: u32,
    /// Invitations the agents started (the rest were refused locally or
    /// their inviter was down).
    pub started: u64,
    /// Invitations not started, by reason.
    pub refused: BTreeMap<String, u64>,
    /// Inviters' outcomes.
    pub outcomes: BTreeMap<String, u64>,
    /// Presented invitations' outcomes at the invitees.
    pub invitee_outcomes: BTreeMap<String, u64>,
    /// Inviters' latency per outcome.
    pub latency: BTreeMap<String, Percentiles>,
    /// Traffic and faults.
    pub counters: Counters,
    /// Violations: 0 or 1 (a run stops at the first).
    pub violations: u64,
    /// The violation, with its step and trace, as text.
    pub violation: Option<String>,
    /// The run livelocked.
    pub livelock: bool,
    /// Steps taken.
    pub steps: u64,
    /// Virtual time reached, milliseconds.
    pub virtual_ms: u64,
    /// SHA-256 over every datagram and event, in order (hex).
    pub trace_hash: String,
    /// Wall-clock seconds (reporting only; never decides anything).
    pub wall_seconds: f64,
    /// Of those, the seconds spent inside the agents: the core-only cost of
    /// these same invitations.
    pub core_seconds: f64,
    /// Bytes of one simulated node (agent and driver state, not counting
    /// its records).
    pub agent_bytes: usize,
}

impl Report {
    pub(super) fn build(sim: &Sim, stop: Option<&Stop>, wall_seconds: f64) -> Report {
        let mut counters = sim.counters.clone();
        counters.unroutable = sim.nodes.iter().map(|n| n.unroutable as u64).sum();
        let violation = match stop {
            Some(Stop::Violation { step, at, violation, trace }) => {
                let mut s = format!(
                    "VIOLATION at step {step}, virtual time {} ms, seed {}: {violation}\n\
                     replay: SIM_SEED={} (or --seed {}) with the same arguments",
                    at.as_millis(),
                    sim.cfg.seed,
                    sim.cfg.seed,
                    sim.cfg.seed
                );
                if !trace.is_empty() {
                    s.push_str("\ntrace of the invitation:");
                    for line in trace {
                        let _ = write!(s, "\n  {line}");
                    }
                }
                Some(s)
            }
            _ => None,
        };
        Report {
            seed: sim.cfg.seed,
            peers: sim.nodes.len(),
            invitations: sim.cfg.invitations,
            started: sim.started.len() as u64,
            refused: sim.refused.clone(),
            outcomes: sim.outcomes.clone(),
            invitee_outcomes: sim.invitee_outcomes.clone(),
            latency: sim.latencies.iter().map(|(k, v)| (k.clone(), Percentiles::of(v))).collect(),
            counters,
            violations: u64::from(violation.is_some()),
            violation,
            livelock: matches!(stop, Some(Stop::Livelock(_))),
            steps: sim.steps,
            virtual_ms: sim.now.as_millis(),
            trace_hash: hex(&sim.hasher.clone().finalize()),
            wall_seconds,
            core_seconds: sim.core_time.as_secs_f64(),
            agent_bytes: std::mem::size_of::<SimNode>()
                + std::mem::size_of::<
                    peercollab_core::agent::Agent<
                        { super::SIM_CONTACTS },
                        { super::SIM_APPS },
                        { SIM_INVITATIONS },
                        { SIM_BUFFERS },
                        { super::SIM_RECENT },
                    >,
                >(),
        }
    }

    /// Simulated invitations per wall-clock second.
    #[must_use]
    pub fn invitations_per_second(&self) -> f64 {
        if self.wall_seconds > 0.0 { self.started as f64 / self.wall_seconds } else { 0.0 }
    }

    /// The core-only rate of the same invitations: started invitations per
    /// second spent inside the agents.
    #[must_use]
    pub fn core_invitations_per_second(&self) -> f64 {
        if self.core_seconds > 0.0 { self.started as f64 / self.core_seconds } else { 0.0 }
    }

    /// The simulated rate as a fraction of the core-only rate (the share of
    /// the wall-clock time spent inside the agents).
    #[must_use]
    pub fn fraction_of_core_rate(&self) -> f64 {
        let core = self.core_invitations_per_second();
        if core > 0.0 { self.invitations_per_second() / core } else { 0.0 }
    }

    /// The deterministic part, as JSON: everything but wall-clock figures.
    /// Golden files hold this.
    #[must_use]
    pub fn deterministic_json(&self) -> Value {
        let latency: BTreeMap<&String, Value> = self
            .latency
            .iter()
            .map(|(k, p)| {
                (k, json!({"count": p.count, "p50_ms": p.p50, "p90_ms": p.p90, "p99_ms": p.p99, "max_ms": p.max}))
            })
            .collect();
        let c = &self.counters;
        json!({
            "seed": self.seed,
            "peers": self.peers,
            "invitations": self.invitations,
            "started": self.started,
            "refused": self.refused,
            "outcomes": self.outcomes,
            "invitee_outcomes": self.invitee_outcomes,
            "latency": latency,
            "datagrams": c.datagrams,
            "bytes": c.bytes,
            "retransmissions": c.retransmissions,
            "lost": c.lost,
            "unroutable": c.unroutable,
            "duplicated": c.duplicated,
            "corrupted": c.corrupted,
            "reordered": c.reordered,
            "delivered": c.delivered,
            "crashes": c.crashes,
            "vanished": c.vanished,
            "partitions": c.partitions,
            "ringing": c.ringing,
            "presented": c.presented,
            "violations": self.violations,
            "violation": self.violation,
            "livelock": self.livelock,
            "steps": self.steps,
            "virtual_seconds": self.virtual_ms / 1000,
            "trace_hash": self.trace_hash,
            "agent_bytes": self.agent_bytes,
        })
    }

    /// Everything, as JSON, with the wall-clock figures.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut v = self.deterministic_json();
        if let Some(o) = v.as_object_mut() {
            o.insert("wall_seconds".into(), json!(self.wall_seconds));
            o.insert("invitations_per_second".into(), json!(self.invitations_per_second()));
            o.insert("core_seconds".into(), json!(self.core_seconds));
            o.insert(
                "core_only_invitations_per_second".into(),
                json!(self.core_invitations_per_second()),
            );
            o.insert("fraction_of_core_rate".into(), json!(self.fraction_of_core_rate()));
        }
        v
    }

    /// A table for people.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let c = &self.counters;
        let _ = writeln!(
            s,
            "seed {}  peers {}  invitations {} (started {})  virtual time {:.1} s  steps {}",
            self.seed,
            self.peers,
            self.invitations,
            self.started,
            self.virtual_ms as f64 / 1000.0,
            self.steps
        );
        let _ = writeln!(
            s,
            "\n{:<34} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "inviter outcome", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for (name, count) in &self.outcomes {
            let p = self.latency.get(name).copied().unwrap_or_default();
            let _ = writeln!(
                s,
                "{name:<34} {count:>8} {:>9} {:>9} {:>9} {:>9}",
                p.p50, p.p90, p.p99, p.max
            );
        }
        if !self.invitee_outcomes.is_empty() {
            let _ = writeln!(s, "\n{:<34} {:>8}", "invitee outcome (presented)", "count");
            for (name, count) in &self.invitee_outcomes {
                let _ = writeln!(s, "{name:<34} {count:>8}");
            }
        }
        if !self.refused.is_empty() {
            let _ = writeln!(s, "\n{:<34} {:>8}", "not started", "count");
            for (name, count) in &self.refused {
                let _ = writeln!(s, "{name:<34} {count:>8}");
            }
        }
        let _ = writeln!(
            s,
            "\ndatagrams {}  bytes {}  retransmissions (identical bytes) {}\n\
             lost {}  unroutable {}  duplicated/replayed {}  corrupted {}  reordered {}\n\
             crashes {}  vanished {}  partitions {}",
            c.datagrams,
            c.bytes,
            c.retransmissions,
            c.lost,
            c.unroutable,
            c.duplicated,
            c.corrupted,
            c.reordered,
            c.crashes,
            c.vanished,
            c.partitions
        );
        let _ = writeln!(
            s,
            "violations {}{}",
            self.violations,
            if self.livelock { "  LIVELOCK" } else { "" }
        );
        if let Some(v) = &self.violation {
            let _ = writeln!(s, "{v}");
        }
        let _ = writeln!(
            s,
            "wall {:.2} s  simulated invitations per second {:.0}  bytes per agent {}\n\
             core only (time inside the agents, same invitations): {:.2} s, {:.0} per second; \
             the simulation runs at {:.1} % of it\ntrace hash {}",
            self.wall_seconds,
            self.invitations_per_second(),
            self.agent_bytes,
            self.core_seconds,
            self.core_invitations_per_second(),
            self.fraction_of_core_rate() * 100.0,
            self.trace_hash
        );
        s
    }
}
