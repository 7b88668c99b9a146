//! Whole accepted contact invitations over loopback UDP through each
//! adapter, both peers in one thread (tokio: a current-thread runtime; mio:
//! one `Poll`), so the comparison with the core-only rate is per core.
//!
//! Finished invitations linger 32 s to re-acknowledge a lost Final and keep
//! their slots meanwhile, and an invitee with a third unconfirmed handshake
//! (or 64 initiations in a second) is under load and asks for cookies: so
//! the endpoints run on a manual clock, invitations go in batches of
//! [`IN_FLIGHT`], and between batches the clock is moved past the linger,
//! outside the timed part. Sockets, handshakes and timers due are real.
//!
//! A batch is timed from the first start until the inviter has every
//! answer (its handles closed) and the invitee has read every datagram of
//! the batch (the last Ack included): the same work as the core's
//! `contact_invites_per_s` but the lingering. Each adapter runs the way its
//! documentation recommends in steady state — tokio: the handle API awaited
//! in place and incoming invitations accepted then dropped; mio: the loop of
//! its guide — so the heap allocations counted over the timed batches are
//! the adapters' own.
//!
//! The rates are measured in rounds in which the core's own contact
//! invitation (both agents in memory), tokio and mio take turns, a burst
//! of [`IN_FLIGHT`] each, every burst after the same short pause; the ratio
//! is taken within each round, then the median of the ratios
//! (`PEERCOLLAB_BENCH_ROUNDS=1` prints each round on stderr).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use stats_alloc::Region;

use crate::GLOBAL;

/// Invitations in flight at once.
const IN_FLIGHT: usize = 2;
/// A bound on any one batch, so a bug fails instead of hanging.
const BATCH_LIMIT: StdDuration = StdDuration::from_secs(10);
/// The untimed pause before each timed batch or burst.
const PAUSE: StdDuration = StdDuration::from_millis(1);
/// How far the manual clock moves between batches: past the linger.
const SETTLE_STEP: peercollab_core::Duration = peercollab_core::Duration::from_secs(40);

const APP: peercollab_core::invite::AppId = peercollab_core::invite::AppId(*b"peercollab-bench");

type BoxError = Box<dyn std::error::Error>;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn percentile_us(sorted: &[StdDuration], p: usize) -> f64 {
    let k = (sorted.len().saturating_sub(1) * p).div_ceil(100);
    sorted.get(k).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// What one timed batch took.
#[derive(Clone, Copy, Debug)]
struct Batch {
    /// Until the inviter had the last answer.
    answered: StdDuration,
    /// Until both peers had done the batch's work.
    done: StdDuration,
    /// Heap allocations meanwhile.
    allocations: usize,
}

/// One adapter with two peers on loopback, ready to run batches.
trait Bench {
    /// `n` (at most [`IN_FLIGHT`]) invitations at once, all accepted.
    fn batch(&mut self, n: usize) -> Result<Batch, BoxError>;
    /// Moves the clock past the linger until both endpoints are idle
    /// (untimed).
    fn settle(&mut self) -> Result<(), BoxError>;
}

/// Invitations run, their busy time and the heap allocations during it.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    invitations: usize,
    busy: StdDuration,
    allocations: usize,
}

impl Sample {
    fn per_s(&self) -> f64 {
        self.invitations as f64 / self.busy.as_secs_f64()
    }

    fn add(&mut self, other: Sample) {
        self.invitations += other.invitations;
        self.busy += other.busy;
        self.allocations += other.allocations;
    }
}

/// A pause of a millisecond (untimed), then one timed batch of
/// [`IN_FLIGHT`], then the settling (untimed).
fn one_batch(bench: &mut dyn Bench) -> Result<Sample, BoxError> {
    std::thread::sleep(PAUSE);
    let batch = bench.batch(IN_FLIGHT)?;
    bench.settle()?;
    Ok(Sample { invitations: IN_FLIGHT, busy: batch.done, allocations: batch.allocations })
}

/// Timed batches of [`IN_FLIGHT`] until `invitations` have run.
fn run_count(bench: &mut dyn Bench, invitations: usize) -> Result<Sample, BoxError> {
    let mut sample = Sample::default();
    while sample.invitations < invitations {
        let batch = bench.batch(IN_FLIGHT)?;
        sample.allocations += batch.allocations;
        sample.busy += batch.done;
        sample.invitations += IN_FLIGHT;
        bench.settle()?;
    }
    Ok(sample)
}

/// The latency of `n` invitations, each alone (to the inviter's answer).
fn latencies(bench: &mut dyn Bench, n: usize) -> Result<Vec<StdDuration>, BoxError> {
    let mut latencies = Vec::with_capacity(n);
    for k in 0..n {
        latencies.push(bench.batch(1)?.answered);
        if k % IN_FLIGHT == IN_FLIGHT - 1 {
            bench.settle()?;
        }
    }
    bench.settle()?;
    latencies.sort();
    Ok(latencies)
}

/// Which adapter, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    Tokio,
    Mio,
}

/// `--only tokio|mio --iterations N`: warms up, then runs `N` invitations
/// (in batches of [`IN_FLIGHT`]) and reports their allocations and rate on
/// stderr (stdout stays empty, for callgrind).
pub(crate) fn only(which: Which, iterations: usize) -> Result<(), BoxError> {
    let mut bench: Box<dyn Bench> = match which {
        Which::Tokio => Box::new(TokioBench::new()?),
        Which::Mio => Box::new(MioBench::new()?),
    };
    warm_up(&mut *bench)?;
    let sample = run_count(&mut *bench, iterations)?;
    eprintln!(
        "{which:?}: {} invitations, {:.0}/s, {:.2} allocations per invitation",
        sample.invitations,
        sample.per_s(),
        sample.allocations as f64 / sample.invitations.max(1) as f64,
    );
    Ok(())
}

/// Batches to fill every pool and queue (steady state after; tokio's
/// queue of incoming invitations takes blocks of 32 and recycles them from
/// the third on).
fn warm_up(bench: &mut dyn Bench) -> Result<(), BoxError> {
    for _ in 0..40 {
        bench.batch(IN_FLIGHT)?;
        bench.settle()?;
        bench.batch(1)?;
        bench.settle()?;
    }
    Ok(())
}

/// The core's contact invitation (`one`, both agents in memory) timed the
/// way the adapters are: a pause of a millisecond, then a timed burst of
/// [`IN_FLIGHT`] invitations. (Timing a continuous loop instead would
/// favour the adapters on a shared machine: a thread that has just slept
/// is less likely to be preempted in the burst that follows.)
fn core_burst(one: &mut impl FnMut()) -> Sample {
    std::thread::sleep(PAUSE);
    let t0 = StdInstant::now();
    for _ in 0..IN_FLIGHT {
        one();
    }
    Sample { invitations: IN_FLIGHT, busy: t0.elapsed(), allocations: 0 }
}

/// Every adapter figure: `rounds` rounds; in each, bursts of the core's
/// contact invitation (`core_one` runs one, both agents in memory), tokio
/// batches and mio batches take turns, one each, until every contender
/// was busy `round`; so load on a shared machine falls on all three
/// alike. The ratio is taken per round; then `latency_n` lone invitations
/// through each adapter.
pub(crate) fn figures(
    figures: &mut crate::Figures,
    rounds: usize,
    round: StdDuration,
    latency_n: usize,
    mut core_one: impl FnMut(),
) -> Result<(), BoxError> {
    let mut tokio = TokioBench::new()?;
    let mut mio = MioBench::new()?;
    warm_up(&mut tokio)?;
    warm_up(&mut mio)?;
    let (mut t_all, mut m_all) = (Sample::default(), Sample::default());
    let (mut t_rates, mut m_rates, mut c_rates, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (mut c, mut t, mut m) = (Sample::default(), Sample::default(), Sample::default());
        while c.busy.min(t.busy).min(m.busy) < round {
            c.add(core_burst(&mut core_one));
            t.add(one_batch(&mut tokio)?);
            m.add(one_batch(&mut mio)?);
        }
        let c = c.per_s();
        ratios.push(t.per_s().min(m.per_s()) / c);
        if std::env::var_os("PEERCOLLAB_BENCH_ROUNDS").is_some() {
            eprintln!("round: core {c:.0}/s, tokio {:.0}/s, mio {:.0}/s", t.per_s(), m.per_s());
        }
        c_rates.push(c);
        t_rates.push(t.per_s());
        m_rates.push(m.per_s());
        t_all.add(t);
        m_all.add(m);
    }
    use peercollab_tests::bench::median;
    figures.insert("tokio_invites_per_s", median(t_rates));
    figures.insert("mio_invites_per_s", median(m_rates));
    figures.insert("adapter_core_invites_per_s", median(c_rates));
    figures.insert("adapter_ratio", median(ratios));
    figures.insert(
        "allocations_per_invite_tokio",
        t_all.allocations as f64 / t_all.invitations as f64,
    );
    figures
        .insert("allocations_per_invite_mio", m_all.allocations as f64 / m_all.invitations as f64);
    let t = latencies(&mut tokio, latency_n)?;
    figures.insert("tokio_p50_us", percentile_us(&t, 50));
    figures.insert("tokio_p99_us", percentile_us(&t, 99));
    let m = latencies(&mut mio, latency_n)?;
    figures.insert("mio_p50_us", percentile_us(&m, 50));
    figures.insert("mio_p99_us", percentile_us(&m, 99));
    Ok(())
}

// ----- tokio -----------------------------------------------------------------

struct TokioBench {
    rt: tokio::runtime::Runtime,
    clock: peercollab_tokio::ManualClock,
    alice: peercollab_tokio::Endpoint,
    bob: peercollab_tokio::Endpoint,
    incoming: peercollab_tokio::Incoming,
    contact: peercollab_tokio::ContactId,
}

impl TokioBench {
    fn new() -> Result<Self, BoxError> {
        use peercollab_tokio::{
            Clock, Endpoint, EndpointId, ManualClock, Trust, generate_identity,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let clock = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let (alice, bob, incoming, contact) = rt.block_on(async {
            let addrs = [loopback()];
            let builder =
                |identity| Endpoint::builder(identity).clock(Arc::clone(&shared)).bind(&addrs);
            let (alice, _) = builder(generate_identity(EndpointId(1))?).await?;
            let (bob, incoming) = builder(generate_identity(EndpointId(1))?).await?;
            bob.register_application(APP, "bench", None)?;
            bob.add_contact(&alice.my_card("alice", &[])?, Trust::Trusted)?;
            let contact = alice.add_contact(&bob.my_card("bob", &[])?, Trust::Trusted)?;
            Ok::<_, BoxError>((alice, bob, incoming, contact))
        })?;
        Ok(TokioBench { rt, clock, alice, bob, incoming, contact })
    }
}

impl Bench for TokioBench {
    /// Alice starts `n` invitations; bob takes each from his stream and
    /// accepts it; alice awaits the answers and drops her handles; bob
    /// awaits each end (the Ack read) and drops his, which releases the
    /// launch information. One task, no spawn.
    fn batch(&mut self, n: usize) -> Result<Batch, BoxError> {
        use peercollab_tokio::{IncomingInvitation, Invitation, InviteOptions, Outcome, Request};
        let TokioBench { rt, alice, incoming, contact, .. } = self;
        rt.block_on(async {
            // The runtime's list of yielded tasks is made anew by each
            // `block_on` (an application has one): made before counting.
            tokio::task::yield_now().await;
            let region = Region::new(GLOBAL);
            let t0 = StdInstant::now();
            let limit = tokio::time::Instant::now() + BATCH_LIMIT;
            let request = Request::new(APP);
            let mut mine: [Option<Invitation>; IN_FLIGHT] = std::array::from_fn(|_| None);
            let mut theirs: [Option<IncomingInvitation>; IN_FLIGHT] = std::array::from_fn(|_| None);
            for slot in mine.iter_mut().take(n) {
                let options = InviteOptions::default();
                *slot = Some(alice.start_invite_contact(*contact, &[], &request, options)?);
            }
            for slot in theirs.iter_mut().take(n) {
                let next = tokio::time::timeout_at(limit, incoming.next()).await?;
                let mut invitation = next.ok_or("the stream ended")?;
                invitation.accept()?;
                *slot = Some(invitation);
            }
            for invitation in mine.iter_mut().flatten() {
                let answer = tokio::time::timeout_at(limit, invitation.outcome()).await??;
                if answer.outcome != Outcome::Accepted {
                    return Err(format!("not accepted: {:?}", answer.outcome).into());
                }
            }
            let answered = t0.elapsed();
            drop(mine);
            for invitation in theirs.iter_mut().flatten() {
                let outcome = tokio::time::timeout_at(limit, invitation.ended()).await??;
                if outcome != Outcome::Accepted {
                    return Err(format!("ended {outcome:?}").into());
                }
            }
            drop(theirs);
            let done = t0.elapsed();
            Ok(Batch { answered, done, allocations: region.change().allocations })
        })
    }

    fn settle(&mut self) -> Result<(), BoxError> {
        let TokioBench { rt, clock, alice, bob, .. } = self;
        rt.block_on(async {
            for _ in 0..100 {
                clock.advance(SETTLE_STEP);
                for _ in 0..50 {
                    tokio::task::yield_now().await;
                    let in_use: usize = [&*alice, &*bob]
                        .iter()
                        .map(|e| e.with_agent(|a, _| a.invitations_in_use()))
                        .sum();
                    if in_use == 0 {
                        return Ok(());
                    }
                }
            }
            Err("invitations did not finish lingering".into())
        })
    }
}

// ----- mio ---------------------------------------------------------------------

struct MioBench {
    poll: mio::Poll,
    events: mio::Events,
    clock: peercollab_mio::ManualClock,
    alice: peercollab_mio::Endpoint,
    bob: peercollab_mio::Endpoint,
    contact: peercollab_mio::ContactId,
    bob_reads: u64,
}

impl MioBench {
    fn new() -> Result<Self, BoxError> {
        use peercollab_mio::{AgentConfig, Endpoint, EndpointId, ManualClock, Tokens, Trust};
        const WAKER: mio::Token = mio::Token(100);
        let poll = mio::Poll::new()?;
        let clock = ManualClock::new();
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let make = |first: usize| {
            Endpoint::bind(
                &[loopback()],
                peercollab_mio::generate_identity(EndpointId(1))?,
                AgentConfig::default(),
                Arc::new(clock.clone()),
                poll.registry(),
                Tokens::new(mio::Token(first)).shared_waker(Arc::clone(&waker), WAKER),
            )
        };
        let mut alice = make(0)?;
        let mut bob = make(10)?;
        bob.register_application(APP, "bench", None)?;
        bob.add_contact(&alice.my_card("alice")?, Trust::Trusted)?;
        let contact = alice.add_contact(&bob.my_card("bob")?, Trust::Trusted)?;
        let events = mio::Events::with_capacity(256);
        let mut bench = MioBench { poll, events, clock, alice, bob, contact, bob_reads: 0 };
        let before = bench.bob.stats().datagrams_in;
        bench.batch(1)?;
        bench.settle()?;
        bench.bob_reads = bench.bob.stats().datagrams_in - before;
        Ok(bench)
    }

    /// One turn of the loop of the crate's guide; counts the answers.
    fn turn(&mut self, max_wait: StdDuration) -> Result<usize, BoxError> {
        use peercollab_mio::{Notice, Outcome};
        let timeout = [self.alice.next_timeout(), self.bob.next_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map_or(max_wait, |t| t.min(max_wait));
        self.poll.poll(&mut self.events, Some(timeout))?;
        for event in &self.events {
            let _ = self.alice.handle_event(event) || self.bob.handle_event(event);
        }
        self.alice.handle_timeout();
        self.bob.handle_timeout();
        while let Some(notice) = self.bob.poll_event() {
            match notice {
                Notice::Invited(invitation) => self.bob.accept(invitation.id)?,
                Notice::IncomingEnded { incoming, outcome: Outcome::Accepted } => {
                    self.bob.release(incoming)?;
                }
                _ => {}
            }
        }
        let mut answered = 0;
        while let Some(notice) = self.alice.poll_event() {
            if let Notice::Responded { handle, answer } = notice {
                if answer.outcome != Outcome::Accepted {
                    return Err(format!("not accepted: {:?}", answer.outcome).into());
                }
                self.alice.close(handle)?;
                answered += 1;
            }
        }
        Ok(answered)
    }
}

impl Bench for MioBench {
    fn batch(&mut self, n: usize) -> Result<Batch, BoxError> {
        let region = Region::new(GLOBAL);
        let t0 = StdInstant::now();
        let limit = t0 + BATCH_LIMIT;
        let bob_target = self.bob.stats().datagrams_in + self.bob_reads * n as u64;
        let request = peercollab_mio::Request::new(APP);
        for _ in 0..n {
            let options = peercollab_mio::InviteOptions::default();
            self.alice.start_invite_contact(self.contact, &request, options)?;
        }
        let mut answered = 0;
        let mut answered_at = None;
        while answered < n || self.bob.stats().datagrams_in < bob_target {
            if StdInstant::now() > limit {
                return Err("a batch took too long".into());
            }
            answered += self.turn(StdDuration::from_millis(100))?;
            if answered == n && answered_at.is_none() {
                answered_at = Some(t0.elapsed());
            }
        }
        let done = t0.elapsed();
        let allocations = region.change().allocations;
        Ok(Batch { answered: answered_at.unwrap_or(done), done, allocations })
    }

    fn settle(&mut self) -> Result<(), BoxError> {
        for _ in 0..10 {
            self.clock.advance(SETTLE_STEP);
            for _ in 0..4 {
                self.turn(StdDuration::from_millis(1))?;
            }
            if self.alice.agent().invitations_in_use() + self.bob.agent().invitations_in_use() == 0
            {
                return Ok(());
            }
        }
        Err("invitations did not finish lingering".into())
    }
}
