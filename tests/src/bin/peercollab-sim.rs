//! `peercollab-sim`: many agents on one deterministic virtual network under
//! faults, every step checked (see `tests/SIMULATION.md`).
//!
//! ```sh
//! cargo run --release --bin peercollab-sim -- --seed 1 --peers 1000 --invitations 20000 --loss 0.1 --json
//! ```
//!
//! The same arguments and seed give the same `trace_hash` on any machine.
//! `SIM_SEED` is the seed when `--seed` is not given. Exit status: 0 clean,
//! 1 a violation or livelock, 2 bad arguments.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use peercollab_tests::sim::{self, FaultMix, Progress, SimConfig, core_rate};

/// Preset fault mixes; the flags below override their parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mix {
    /// Clean links (only latency and jitter).
    Clean,
    /// Every fault at moderate rates: bursts, duplication, reordering,
    /// corruption, replays, clock rates, partitions, crashes, a vanishing
    /// endpoint.
    Everything,
}

/// Deterministic simulation of many peercollab agents under faults.
#[derive(Parser, Debug)]
#[command(name = "peercollab-sim", version, about)]
struct Args {
    /// The seed (default: $SIM_SEED, else 1).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of agents (2 to 65536).
    #[arg(long, default_value_t = 100)]
    peers: usize,
    /// Invitations to start.
    #[arg(long, default_value_t = 1000)]
    invitations: u32,
    /// The fault mix the other fault flags adjust.
    #[arg(long, value_enum, default_value_t = Mix::Everything)]
    mix: Mix,
    /// Independent loss per datagram, a fraction (0.1 = 10 %).
    #[arg(long, value_parser = parse_fraction)]
    loss: Option<u32>,
    /// One-way latency, milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Extra uniform delay up to this many milliseconds.
    #[arg(long)]
    jitter_ms: Option<u64>,
    /// Duplication per datagram, a fraction.
    #[arg(long, value_parser = parse_fraction)]
    duplicate: Option<u32>,
    /// Reordering (a held-back copy) per datagram, a fraction.
    #[arg(long, value_parser = parse_fraction)]
    reorder: Option<u32>,
    /// Corruption (one flipped bit) per datagram, a fraction.
    #[arg(long, value_parser = parse_fraction)]
    corrupt: Option<u32>,
    /// Replay 1 to 60 s later, per datagram, a fraction.
    #[arg(long, value_parser = parse_fraction)]
    replay: Option<u32>,
    /// Largest clock rate error of a node, parts per million.
    #[arg(long)]
    clock_ppm: Option<u32>,
    /// Partitions (a fifth of the nodes cut off, then healed).
    #[arg(long)]
    partitions: Option<u32>,
    /// Node crashes (each restarts 1 to 60 s later, identity kept).
    #[arg(long)]
    crashes: Option<u32>,
    /// Endpoints that vanish for good.
    #[arg(long)]
    vanish: Option<u32>,
    /// Invitations start over this many virtual seconds (default: 100 per
    /// invitation per peer, at least 60).
    #[arg(long)]
    window_secs: Option<u64>,
    /// Step bound; more is reported as a livelock.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Accepted invitations between two agents, datagrams handed straight
    /// across, to measure alongside (0: skip). The core-only rate of the
    /// simulated invitations themselves is always reported.
    #[arg(long, default_value_t = 500)]
    core_only: u32,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// A fraction `0`, `1`, `0.25`, `.5` (at most six decimals) in parts per
/// million, parsed without floating point.
fn parse_fraction(s: &str) -> Result<u32, String> {
    let bad =
        || format!("{s:?} is not a fraction between 0 and 1 with at most six decimals (e.g. 0.1)");
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if frac.len() > 6
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (whole.is_empty() && frac.is_empty())
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let frac_ppm: u64 =
        if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().map_err(|_| bad())? };
    let ppm = whole.checked_mul(1_000_000).and_then(|w| w.checked_add(frac_ppm)).ok_or_else(bad)?;
    if ppm > 1_000_000 {
        return Err(bad());
    }
    u32::try_from(ppm).map_err(|_| bad())
}

fn seed_from_env() -> Result<Option<u64>, String> {
    match std::env::var("SIM_SEED") {
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("SIM_SEED={v:?} is not an unsigned integer")),
        Err(_) => Ok(None),
    }
}

fn config(args: &Args, seed: u64) -> SimConfig {
    let mut f = match args.mix {
        Mix::Clean => FaultMix { jitter_ms: 20, ..FaultMix::clean(40) },
        Mix::Everything => FaultMix::everything(0),
    };
    let set = |slot: &mut u32, v: Option<u32>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut f.loss_ppm, args.loss);
    set(&mut f.duplicate_ppm, args.duplicate);
    set(&mut f.reorder_ppm, args.reorder);
    set(&mut f.corrupt_ppm, args.corrupt);
    set(&mut f.replay_ppm, args.replay);
    set(&mut f.clock_ppm, args.clock_ppm);
    set(&mut f.partitions, args.partitions);
    set(&mut f.crashes, args.crashes);
    set(&mut f.vanish, args.vanish);
    f.latency_ms = args.latency_ms.unwrap_or(f.latency_ms);
    f.jitter_ms = args.jitter_ms.unwrap_or(f.jitter_ms);
    let mut cfg = SimConfig::new(seed, args.peers, args.invitations, f);
    if let Some(w) = args.window_secs {
        cfg.window = peercollab_core::Duration::from_secs(w.max(1));
    }
    if let Some(m) = args.max_steps {
        cfg.max_steps = m;
    }
    cfg
}

fn bar(p: Progress) {
    let width = 30u64;
    let done = if p.total == 0 { width } else { u64::from(p.started) * width / u64::from(p.total) };
    let filled = "#".repeat(done as usize);
    let empty = " ".repeat((width - done.min(width)) as usize);
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r[{filled}{empty}] {}/{} invitations started, virtual {} s, {} steps",
        p.started,
        p.total,
        p.now.as_millis() / 1000,
        p.steps
    );
    let _ = err.flush();
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = match (args.seed, seed_from_env()) {
        (Some(s), _) => s,
        (None, Ok(s)) => s.unwrap_or(1),
        (None, Err(e)) => {
            eprintln!("peercollab-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = config(&args, seed);
    let show = !args.quiet && std::io::stderr().is_terminal();
    let report = match sim::run(cfg, |p| {
        if show {
            bar(p);
        }
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peercollab-sim: {e}");
            return ExitCode::from(2);
        }
    };
    if show {
        eprintln!();
    }
    let (core_done, core_secs) =
        if args.core_only > 0 { core_rate::measure(args.core_only, seed) } else { (0, 0.0) };
    let pair_rate = if core_secs > 0.0 { f64::from(core_done) / core_secs } else { 0.0 };
    if args.json {
        let mut v = report.to_json();
        if let Some(o) = v.as_object_mut() {
            o.insert("pair_accepted_invitations".into(), core_done.into());
            o.insert("pair_accepted_per_second".into(), pair_rate.into());
        }
        println!("{v}");
    } else {
        print!("{}", report.to_text());
        if core_done > 0 {
            println!(
                "two agents alone: {core_done} accepted invitations at {pair_rate:.0} per second"
            );
        }
    }
    if report.violations > 0 || report.livelock { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

#[cfg(test)]
mod tests {
    use super::parse_fraction;

    #[test]
    fn fractions_parse_to_parts_per_million_without_floating_point() {
        assert_eq!(parse_fraction("0.1"), Ok(100_000));
        assert_eq!(parse_fraction(".5"), Ok(500_000));
        assert_eq!(parse_fraction("1"), Ok(1_000_000));
        assert_eq!(parse_fraction("0.000001"), Ok(1));
        assert_eq!(parse_fraction("0"), Ok(0));
        for bad in ["", ".", "1.5", "-0.1", "0.1234567", "abc", "1e-3", "99999999999999999999"] {
            assert!(parse_fraction(bad).is_err(), "{bad:?}");
        }
    }
}
