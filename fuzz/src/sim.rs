//! The simulator (`peercollab_tests::sim`) with a seed and fault parameters
//! the fuzzer chooses: a handful of agents, a few invitations, every kind of
//! fault. The simulator's checker holds every step to the protocol's
//! invariants (`tests/SIMULATION.md`); a violation or a livelock is a crash.
//!
//! Framing (little endian, zero past the end of the input): the seed
//! (`u64`), peers (`u8`, 2 + value % 4), invitations (`u8`, 1 + value % 6),
//! latency and jitter in milliseconds (`u16` each, % 1000), then `u32`
//! rates in parts per million (each % 500 001): loss, bursts entered,
//! bursts left, loss in a burst, duplication, reordering, corruption,
//! replay; the clock rate error (`u16`, ppm, % 5001); partitions, crashes
//! and vanishing endpoints (`u8` each, % 3); an outage's start and length in
//! seconds (`u8` each; no outage if the length is 0).

use arbitrary::Unstructured;
use peercollab_core::{Duration, Instant};
use peercollab_tests::sim::{self, FaultMix, SimConfig};

use crate::framing::{put_u16, put_u32, put_u64, read_u8, read_u16, read_u32, read_u64};

/// What one input asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The seed.
    pub seed: u64,
    /// Peers, 2 to 5.
    pub peers: usize,
    /// Invitations, 1 to 6.
    pub invitations: u32,
    /// The faults.
    pub faults: FaultMix,
}

fn rate(u: &mut Unstructured<'_>) -> u32 {
    read_u32(u) % 500_001
}

/// Reads an input.
pub fn decode(data: &[u8]) -> Input {
    let mut u = Unstructured::new(data);
    let seed = read_u64(&mut u);
    let peers = 2 + usize::from(read_u8(&mut u) % 4);
    let invitations = 1 + u32::from(read_u8(&mut u) % 6);
    let latency_ms = u64::from(read_u16(&mut u) % 1000);
    let jitter_ms = u64::from(read_u16(&mut u) % 1000);
    let mut faults = FaultMix {
        latency_ms,
        jitter_ms,
        loss_ppm: rate(&mut u),
        burst_enter_ppm: rate(&mut u),
        burst_leave_ppm: rate(&mut u),
        burst_loss_ppm: rate(&mut u),
        duplicate_ppm: rate(&mut u),
        reorder_ppm: rate(&mut u),
        corrupt_ppm: rate(&mut u),
        replay_ppm: rate(&mut u),
        clock_ppm: u32::from(read_u16(&mut u) % 5001),
        partitions: u32::from(read_u8(&mut u) % 3),
        partition_secs: 60,
        crashes: u32::from(read_u8(&mut u) % 3),
        vanish: u32::from(read_u8(&mut u) % 3),
        outages: Vec::new(),
    };
    let (start, length) = (u64::from(read_u8(&mut u)), u64::from(read_u8(&mut u)));
    if length > 0 {
        let from = Instant::ZERO + Duration::from_secs(start);
        faults.outages.push((from, from + Duration::from_secs(length)));
    }
    Input { seed, peers, invitations, faults }
}

/// Writes what [`decode`] reads (the seed-corpus generator).
#[must_use]
pub fn encode(input: &Input, outage: Option<(u8, u8)>) -> Vec<u8> {
    let f = &input.faults;
    let mut out = Vec::new();
    put_u64(&mut out, input.seed);
    out.push(u8::try_from(input.peers.saturating_sub(2)).unwrap_or(0));
    out.push(u8::try_from(input.invitations.saturating_sub(1)).unwrap_or(0));
    put_u16(&mut out, u16::try_from(f.latency_ms).unwrap_or(0));
    put_u16(&mut out, u16::try_from(f.jitter_ms).unwrap_or(0));
    for r in [
        f.loss_ppm,
        f.burst_enter_ppm,
        f.burst_leave_ppm,
        f.burst_loss_ppm,
        f.duplicate_ppm,
        f.reorder_ppm,
        f.corrupt_ppm,
        f.replay_ppm,
    ] {
        put_u32(&mut out, r);
    }
    put_u16(&mut out, u16::try_from(f.clock_ppm).unwrap_or(0));
    for c in [f.partitions, f.crashes, f.vanish] {
        out.push(u8::try_from(c).unwrap_or(0));
    }
    let (start, length) = outage.unwrap_or((0, 0));
    out.extend([start, length]);
    out
}

/// The harness body: runs the simulation; a violation or a livelock
/// panics with the simulator's report (seed, step, the invitation's trace).
pub fn run(data: &[u8]) {
    let input = decode(data);
    let cfg = SimConfig::new(input.seed, input.peers, input.invitations, input.faults);
    let Ok(report) = sim::run(cfg, |_| {}) else {
        panic!("the decoder produced a configuration the simulator refuses");
    };
    assert!(
        report.violations == 0 && !report.livelock,
        "{}",
        report.violation.as_deref().unwrap_or("livelock")
    );
}
