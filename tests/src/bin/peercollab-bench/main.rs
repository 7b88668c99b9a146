//! `peercollab-bench`: peercollab's figures, each measured side by side with
//! its baseline in the same run, because absolute times on shared machines
//! drift.
//!
//! ```text
//! cargo run --release --bin peercollab-bench            # full run
//! cargo run --release --bin peercollab-bench -- --quick # under a minute
//! cargo run --release --bin peercollab-bench -- --json  # one JSON object
//! ```
//!
//! Every rate is the median of several rounds; in each round every
//! contender runs for the same wall time, interleaved, and each ratio is
//! taken within the round, then the median of the ratios is reported.

mod adapters;
mod crypto_bound;
mod scaling;
mod snow_side;

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use peercollab_core::agent::{Agent, Contact};
use peercollab_core::invite::Outcome;
use peercollab_core::ops;
use peercollab_core::session::Session;
use peercollab_tests::bench::{median, rate};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

use crypto_bound::CryptoBound;
use peercollab_tests::bench::pair::{Dir, Pair};
use snow_side::{SnowReplay, Step};

#[global_allocator]
pub(crate) static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// peercollab's benchmarks: invitations per second against snow doing the
/// same handshakes and messages and against the crypto bound, allocations,
/// scaling, sizes and bytes on the wire.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Fewer and shorter rounds: finishes in well under a minute.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object with every figure instead of a table.
    #[arg(long)]
    json: bool,
    /// Rounds per figure (the median is reported).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=101))]
    rounds: Option<u32>,
    /// Wall time per contender per round, in milliseconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    round_ms: Option<u64>,
    /// Run only this contender `--iterations` times and print nothing (for
    /// instruction counts under callgrind: see `tests/callgrind.sh`).
    #[arg(long, value_enum)]
    only: Option<Contender>,
    /// Iterations of `--only`.
    #[arg(long, default_value_t = 1, requires = "only",
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    iterations: u32,
}

/// What runs in the core comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Contender {
    /// Our whole contact invitation (IK), two agents in memory.
    OursIk,
    /// Our whole endpoint invitation (XX).
    OursXx,
    /// snow IK replaying the contact invitation's datagrams.
    SnowIk,
    /// snow XX replaying the endpoint invitation's datagrams, with the same
    /// certificate checks.
    SnowXx,
    /// The primitive operations of one contact invitation.
    CryptoBound,
    /// Accepted contact invitations through peercollab-tokio over loopback
    /// (after a warm-up; allocations and rate on stderr).
    Tokio,
    /// The same through peercollab-mio.
    Mio,
}

/// Figures by key, in key order.
type Figures = BTreeMap<&'static str, f64>;

fn main() {
    let args = Args::parse();
    let mut contenders = Contenders::new();
    if let Some(only) = args.only {
        let adapter = match only {
            Contender::Tokio => Some(adapters::Which::Tokio),
            Contender::Mio => Some(adapters::Which::Mio),
            _ => None,
        };
        if let Some(which) = adapter {
            if let Err(e) = adapters::only(which, args.iterations as usize) {
                eprintln!("peercollab-bench: {which:?} failed: {e}");
                std::process::exit(1);
            }
            return;
        }
        for _ in 0..args.iterations {
            contenders.run(only);
        }
        return;
    }
    let rounds = args.rounds.unwrap_or(if args.quick { 3 } else { 7 }) as usize;
    let round = Duration::from_millis(args.round_ms.unwrap_or(if args.quick { 150 } else { 400 }));
    let mut figures = Figures::new();
    contenders.figures(&mut figures, rounds, round);
    let (transport, junk) = scaling::scaling(rounds, round);
    figures.insert("scaling_ratio_transport_4096_vs_16", transport);
    figures.insert("scaling_ratio_junk_4096_vs_16", junk);
    figures.insert("scaling_ratio_4096_vs_16", transport.max(junk));
    let latency_n = if args.quick { 100 } else { 1000 };
    let core = || contenders.run(Contender::OursIk);
    if let Err(e) = adapters::figures(&mut figures, rounds, round, latency_n, core) {
        eprintln!("peercollab-bench: an adapter benchmark failed: {e}");
        std::process::exit(1);
    }
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> =
            figures.iter().map(|(k, v)| ((*k).to_owned(), serde_json::json!(v))).collect();
        println!("{}", serde_json::Value::Object(object));
    } else {
        println!("peercollab-bench: {rounds} rounds x {round:?} per contender, medians");
        for (k, v) in &figures {
            println!("  {k:<36} {v:>14.3}");
        }
    }
}

/// The datagrams of one invitation.
fn trace(f: impl FnOnce(&mut dyn FnMut(Dir, &[u8])) -> Outcome) -> Vec<Step> {
    let mut steps = Vec::new();
    let outcome = f(&mut |dir, d| steps.push((dir, d.len())));
    assert_eq!(outcome, Outcome::Accepted, "the benchmark invitation must be accepted");
    steps
}

/// The core comparisons: ours, snow and the bound, ready to run.
struct Contenders {
    pair: Pair,
    contact_trace: Vec<Step>,
    endpoint_trace: Vec<Step>,
    snow_ik: SnowReplay,
    snow_xx: SnowReplay,
    bound: CryptoBound,
}

impl Contenders {
    fn new() -> Self {
        let mut pair = Pair::new(1);
        let contact_trace = trace(|seen| pair.contact_invite(seen));
        let endpoint_trace = trace(|seen| pair.endpoint_invite(seen));
        let certificates = vec![
            pair.a.identity().certificate_bytes().to_owned(),
            pair.b.identity().certificate_bytes().to_owned(),
        ];
        let snow_ik = SnowReplay::new("IK", &contact_trace, Vec::new());
        let snow_xx = SnowReplay::new("XX", &endpoint_trace, certificates);
        let before = ops::snapshot();
        pair.contact_invite(|_, _| {});
        let bound = CryptoBound::new(ops::snapshot().since(before));
        Contenders { pair, contact_trace, endpoint_trace, snow_ik, snow_xx, bound }
    }

    fn run(&mut self, which: Contender) {
        match which {
            Contender::OursIk => {
                self.pair.contact_invite(|_, _| {});
            }
            Contender::OursXx => {
                self.pair.endpoint_invite(|_, _| {});
            }
            Contender::SnowIk => self.snow_ik.run(),
            Contender::SnowXx => self.snow_xx.run(),
            Contender::CryptoBound => self.bound.run(),
            // Run by `adapters::only`.
            Contender::Tokio | Contender::Mio => {}
        }
    }

    fn figures(&mut self, figures: &mut Figures, rounds: usize, round: Duration) {
        use Contender::*;
        let all = [OursIk, SnowIk, OursXx, SnowXx, CryptoBound];
        let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let (mut ratio_ik, mut ratio_xx, mut ratio_bound) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let r = all.map(|c| rate(round, || self.run(c)));
            ratio_ik.push(r[0] / r[1]);
            ratio_xx.push(r[2] / r[3]);
            ratio_bound.push(r[0] / r[4]);
            let keys = [
                "contact_invites_per_s",
                "snow_ik_per_s",
                "endpoint_invites_per_s",
                "snow_xx_per_s",
                "crypto_bound_contact_per_s",
            ];
            for (k, x) in keys.into_iter().zip(r) {
                rates.entry(k).or_default().push(x);
            }
        }
        for (k, v) in rates {
            figures.insert(k, median(v));
        }
        figures.insert("ratio_vs_snow_ik", median(ratio_ik));
        figures.insert("ratio_vs_snow_xx", median(ratio_xx));
        figures.insert("ratio_vs_crypto_bound", median(ratio_bound));

        let region = Region::new(GLOBAL);
        const COUNTED: usize = 64;
        for _ in 0..COUNTED {
            self.run(OursIk);
            self.run(OursXx);
        }
        let allocations = region.change().allocations;
        figures.insert("allocations_per_invite_core", allocations as f64 / (2 * COUNTED) as f64);

        let bytes = |t: &[Step]| t.iter().map(|(_, n)| *n).sum::<usize>() as f64;
        figures.insert("wire_bytes_contact_invite", bytes(&self.contact_trace));
        figures.insert("datagrams_contact_invite", self.contact_trace.len() as f64);
        figures.insert("wire_bytes_endpoint_invite", bytes(&self.endpoint_trace));
        figures.insert("datagrams_endpoint_invite", self.endpoint_trace.len() as f64);
        figures.insert("agent_bytes", size_of::<Agent>() as f64);
        figures.insert("session_bytes", size_of::<Session>() as f64);
        figures.insert("contact_bytes", size_of::<Contact>() as f64);
    }
}
