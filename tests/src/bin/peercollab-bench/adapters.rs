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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use stats_alloc::Region;

use crate::GLOBAL;

/// Invitations in flight at once.
const IN_FLIGHT: usize = 2;
/// A bound on any one batch, so a bug fails instead of hanging.
const BATCH_LIMIT: StdDuration = StdDuration::from_secs(10);
/// How far the manual clock moves between batches: past the linger.
const SETTLE_STEP: peercollab_core::Duration = peercollab_core::Duration::from_secs(40);

/// What one adapter measured.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Figures {
    pub(crate) per_s: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) allocations_per_invite: f64,
}

fn percentile_us(sorted: &[StdDuration], p: usize) -> f64 {
    let k = (sorted.len().saturating_sub(1) * p).div_ceil(100);
    sorted.get(k).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

const APP: peercollab_core::invite::AppId = peercollab_core::invite::AppId(*b"peercollab-bench");

type BoxError = Box<dyn std::error::Error>;

/// `n` invitations from `alice` to `contact` at once, all accepted.
async fn tokio_batch(
    alice: &peercollab_tokio::Endpoint,
    contact: peercollab_tokio::ContactId,
    n: usize,
) -> Result<(), BoxError> {
    use peercollab_tokio::{InviteOptions, Outcome, Request};
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let alice = alice.clone();
        set.spawn(async move {
            alice.invite_contact(contact, Request::new(APP), InviteOptions::default()).await
        });
    }
    let answers = tokio::time::timeout(BATCH_LIMIT, set.join_all()).await?;
    for answer in answers {
        if answer?.outcome != Outcome::Accepted {
            return Err("not accepted".into());
        }
    }
    Ok(())
}

/// Moves the clock past the linger until both endpoints are idle (untimed).
async fn tokio_settle(
    clock: &peercollab_tokio::ManualClock,
    endpoints: [&peercollab_tokio::Endpoint; 2],
) -> Result<(), BoxError> {
    for _ in 0..100 {
        clock.advance(SETTLE_STEP);
        tokio::time::sleep(StdDuration::from_millis(1)).await;
        let in_use: usize =
            endpoints.iter().map(|e| e.with_agent(|a, _| a.invitations_in_use())).sum();
        if in_use == 0 {
            return Ok(());
        }
    }
    Err("invitations did not finish lingering".into())
}

/// Throughput with [`IN_FLIGHT`] in flight over `invitations`, then the
/// latency of `invitations` alone; allocations counted over the timed
/// throughput batches (steady state: after a warm-up batch).
pub(crate) fn tokio_figures(invitations: usize) -> Result<Figures, BoxError> {
    use peercollab_tokio::{Clock, Endpoint, EndpointId, ManualClock, Trust, generate_identity};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let clock = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let addrs = [loopback()];
        let builder =
            |identity| Endpoint::builder(identity).clock(Arc::clone(&shared)).bind(&addrs);
        let (alice, _) = builder(generate_identity(EndpointId(1))?).await?;
        let (bob, mut incoming) = builder(generate_identity(EndpointId(1))?).await?;
        bob.register_application(APP, "bench", None)?;
        bob.add_contact(&alice.my_card("alice", &[])?, Trust::Trusted)?;
        let contact = alice.add_contact(&bob.my_card("bob", &[])?, Trust::Trusted)?;
        tokio::spawn(async move {
            while let Some(mut invitation) = incoming.next().await {
                if invitation.accept().is_ok() {
                    tokio::spawn(async move {
                        // Dropped once ended: releases the launch information.
                        let _ = invitation.ended().await;
                    });
                }
            }
        });
        tokio_batch(&alice, contact, IN_FLIGHT).await?;
        tokio_settle(&clock, [&alice, &bob]).await?;
        let (mut busy, mut done, mut allocations) = (StdDuration::ZERO, 0, 0);
        while done < invitations {
            let region = Region::new(GLOBAL);
            let t0 = StdInstant::now();
            tokio_batch(&alice, contact, IN_FLIGHT).await?;
            busy += t0.elapsed();
            allocations += region.change().allocations;
            done += IN_FLIGHT;
            tokio_settle(&clock, [&alice, &bob]).await?;
        }
        let mut latencies = Vec::with_capacity(invitations);
        for k in 0..invitations {
            let t0 = StdInstant::now();
            tokio_batch(&alice, contact, 1).await?;
            latencies.push(t0.elapsed());
            if k % IN_FLIGHT == IN_FLIGHT - 1 {
                tokio_settle(&clock, [&alice, &bob]).await?;
            }
        }
        latencies.sort();
        Ok(Figures {
            per_s: done as f64 / busy.as_secs_f64(),
            p50_us: percentile_us(&latencies, 50),
            p99_us: percentile_us(&latencies, 99),
            allocations_per_invite: allocations as f64 / done as f64,
        })
    })
}

/// The same through `peercollab-mio`: both endpoints in one `Poll`.
pub(crate) fn mio_figures(invitations: usize) -> Result<Figures, BoxError> {
    let mut b = MioBench::new()?;
    b.bob.register_application(APP, "bench", None)?;
    b.bob.add_contact(&b.alice.my_card("alice")?, peercollab_mio::Trust::Trusted)?;
    let bob = b.alice.add_contact(&b.bob.my_card("bob")?, peercollab_mio::Trust::Trusted)?;
    b.batch(bob, IN_FLIGHT)?;
    b.settle()?;
    let (mut busy, mut done, mut allocations) = (StdDuration::ZERO, 0, 0);
    while done < invitations {
        let region = Region::new(GLOBAL);
        let t0 = StdInstant::now();
        b.batch(bob, IN_FLIGHT)?;
        busy += t0.elapsed();
        allocations += region.change().allocations;
        done += IN_FLIGHT;
        b.settle()?;
    }
    let mut latencies = Vec::with_capacity(invitations);
    for k in 0..invitations {
        latencies.extend(b.batch(bob, 1)?);
        if k % IN_FLIGHT == IN_FLIGHT - 1 {
            b.settle()?;
        }
    }
    latencies.sort();
    Ok(Figures {
        per_s: done as f64 / busy.as_secs_f64(),
        p50_us: percentile_us(&latencies, 50),
        p99_us: percentile_us(&latencies, 99),
        allocations_per_invite: allocations as f64 / done as f64,
    })
}

struct MioBench {
    poll: mio::Poll,
    events: mio::Events,
    clock: peercollab_mio::ManualClock,
    alice: peercollab_mio::Endpoint,
    bob: peercollab_mio::Endpoint,
}

impl MioBench {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        use peercollab_mio::{AgentConfig, Endpoint, EndpointId, ManualClock, Tokens};
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
        let alice = make(0)?;
        let bob = make(10)?;
        Ok(MioBench { poll, events: mio::Events::with_capacity(256), clock, alice, bob })
    }

    /// One turn of the loop; collects the handles answered.
    fn turn(
        &mut self,
        answered: &mut Vec<(peercollab_mio::Handle, StdInstant)>,
        max_wait: StdDuration,
    ) -> Result<(), Box<dyn std::error::Error>> {
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
        while let Some(notice) = self.alice.poll_event() {
            if let Notice::Responded { handle, answer } = notice {
                if answer.outcome != Outcome::Accepted {
                    return Err(format!("not accepted: {:?}", answer.outcome).into());
                }
                answered.push((handle, StdInstant::now()));
            }
        }
        Ok(())
    }

    /// Runs `n` invitations at once; returns their latencies.
    fn batch(
        &mut self,
        bob: peercollab_mio::ContactId,
        n: usize,
    ) -> Result<Vec<StdDuration>, Box<dyn std::error::Error>> {
        let request = peercollab_mio::Request::new(APP);
        let mut started = Vec::with_capacity(n);
        for _ in 0..n {
            let options = peercollab_mio::InviteOptions::default();
            let h = self.alice.start_invite_contact(bob, &request, options)?;
            started.push((h, StdInstant::now()));
        }
        let mut answered = Vec::with_capacity(n);
        let deadline = StdInstant::now() + BATCH_LIMIT;
        while answered.len() < n {
            if StdInstant::now() > deadline {
                return Err("a batch took too long".into());
            }
            self.turn(&mut answered, StdDuration::from_millis(100))?;
        }
        let mut latencies = Vec::with_capacity(n);
        for (h, at) in answered {
            let (_, t0) = started.iter().find(|(s, _)| *s == h).ok_or("unknown handle")?;
            latencies.push(at - *t0);
            self.alice.close(h)?;
        }
        Ok(latencies)
    }

    /// Lets every invitation finish lingering (untimed).
    fn settle(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let mut none = Vec::new();
        for _ in 0..10 {
            self.clock.advance(SETTLE_STEP);
            for _ in 0..4 {
                self.turn(&mut none, StdDuration::from_millis(1))?;
            }
            if self.alice.agent().invitations_in_use() + self.bob.agent().invitations_in_use() == 0
            {
                return Ok(());
            }
        }
        Err("invitations did not finish lingering".into())
    }
}
