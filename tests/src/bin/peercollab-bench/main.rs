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
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// peercollab's benchmarks: invitations per second against snow doing the
/// same handshakes and messages, allocations, sizes and bytes on the wire.
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
}

/// Figures by key, in key order.
type Figures = BTreeMap<&'static str, f64>;

fn main() {
    let args = Args::parse();
    let rounds = args.rounds.unwrap_or(if args.quick { 3 } else { 7 }) as usize;
    let round = Duration::from_millis(args.round_ms.unwrap_or(if args.quick { 150 } else { 400 }));
    let mut figures = Figures::new();
    core_figures(&mut figures, rounds, round);
    let (transport, junk) = scaling::scaling(rounds, round);
    figures.insert("scaling_ratio_transport_4096_vs_16", transport);
    figures.insert("scaling_ratio_junk_4096_vs_16", junk);
    figures.insert("scaling_ratio_4096_vs_16", transport.max(junk));
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> =
            figures.iter().map(|(k, v)| ((*k).to_owned(), serde_json::json!(v))).collect();
        println!("{}", serde_json::Value::Object(object));
    } else {
        println!("peercollab-bench: {rounds} rounds x {round:?} per contender, medians");
        for (k, v) in &figures {
            println!("  {k:<32} {v:>14.3}");
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

fn core_figures(figures: &mut Figures, rounds: usize, round: Duration) {
    let mut pair = Pair::<16>::new(1);
    let contact_trace = trace(|seen| pair.contact_invite(seen));
    let endpoint_trace = trace(|seen| pair.endpoint_invite(seen));
    let certificates = vec![
        pair.a.identity().certificate_bytes().to_owned(),
        pair.b.identity().certificate_bytes().to_owned(),
    ];
    let snow_ik = SnowReplay::new("IK", &contact_trace, Vec::new());
    let snow_xx = SnowReplay::new("XX", &endpoint_trace, certificates);
    snow_ik.run();
    snow_xx.run();
    let before = ops::snapshot();
    pair.contact_invite(|_, _| {});
    let mut bound = CryptoBound::new(ops::snapshot().since(before));

    let (mut ours_ik, mut theirs_ik, mut ratio_ik) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours_xx, mut theirs_xx, mut ratio_xx) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bounds, mut ratio_bound) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let a = rate(round, || {
            pair.contact_invite(|_, _| {});
        });
        let b = rate(round, || snow_ik.run());
        let c = rate(round, || {
            pair.endpoint_invite(|_, _| {});
        });
        let d = rate(round, || snow_xx.run());
        let e = rate(round, || bound.run());
        bounds.push(e);
        ratio_bound.push(a / e);
        ours_ik.push(a);
        theirs_ik.push(b);
        ratio_ik.push(a / b);
        ours_xx.push(c);
        theirs_xx.push(d);
        ratio_xx.push(c / d);
    }
    figures.insert("contact_invites_per_s", median(ours_ik));
    figures.insert("snow_ik_per_s", median(theirs_ik));
    figures.insert("ratio_vs_snow_ik", median(ratio_ik));
    figures.insert("endpoint_invites_per_s", median(ours_xx));
    figures.insert("snow_xx_per_s", median(theirs_xx));
    figures.insert("ratio_vs_snow_xx", median(ratio_xx));
    figures.insert("crypto_bound_contact_per_s", median(bounds));
    figures.insert("ratio_vs_crypto_bound", median(ratio_bound));

    let region = Region::new(GLOBAL);
    const COUNTED: usize = 64;
    for _ in 0..COUNTED {
        pair.contact_invite(|_, _| {});
        pair.endpoint_invite(|_, _| {});
    }
    let allocations = region.change().allocations;
    figures.insert("allocations_per_invite_core", allocations as f64 / (2 * COUNTED) as f64);

    let bytes = |t: &[Step]| t.iter().map(|(_, n)| *n).sum::<usize>() as f64;
    figures.insert("wire_bytes_contact_invite", bytes(&contact_trace));
    figures.insert("datagrams_contact_invite", contact_trace.len() as f64);
    figures.insert("wire_bytes_endpoint_invite", bytes(&endpoint_trace));
    figures.insert("datagrams_endpoint_invite", endpoint_trace.len() as f64);
    figures.insert("agent_bytes", size_of::<Agent>() as f64);
    figures.insert("session_bytes", size_of::<Session>() as f64);
    figures.insert("contact_bytes", size_of::<Contact>() as f64);
}
