//! Accepted contact invitations over loopback between two endpoints in one
//! `Poll` on one thread (so one core does both sides' work): invitations
//! per second with several in flight, and the latency of one invitation
//! alone (start to `Responded`), p50 and p99.
//!
//! The clock: finished invitations linger 32 s to re-acknowledge a lost Final and keep
//! their slots meanwhile (an agent has 16): the endpoints run on a manual
//! clock, advanced past the linger between batches, outside the timed
//! part. Everything else — sockets, handshakes, timers due — is real.
//!
//! `cargo run --release -p peercollab-mio --example loopback_bench [invitations]`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use mio::{Events, Poll, Token, Waker};
use peercollab_mio::{
    AgentConfig, AppId, Duration, Endpoint, EndpointId, Handle, InviteOptions, ManualClock, Notice,
    Outcome, Request, Tokens, Trust, generate_identity,
};

const APP: AppId = AppId(*b"loopback-bench!!");
const WAKER: Token = Token(100);

struct Bench {
    poll: Poll,
    events: Events,
    clock: ManualClock,
    alice: Endpoint,
    bob: Endpoint,
}

impl Bench {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let poll = Poll::new()?;
        let clock = ManualClock::new();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let addr = [SocketAddr::from(([127, 0, 0, 1], 0))];
        let make = |first: usize| {
            Endpoint::bind(
                &addr,
                generate_identity(EndpointId(1))?,
                AgentConfig::default(),
                Arc::new(clock.clone()),
                poll.registry(),
                Tokens::new(Token(first)).shared_waker(Arc::clone(&waker), WAKER),
            )
        };
        let alice = make(0)?;
        let bob = make(10)?;
        Ok(Bench { poll, events: Events::with_capacity(256), clock, alice, bob })
    }

    /// One turn; returns the handles answered (all must be Accepted).
    fn turn(
        &mut self,
        answered: &mut Vec<(Handle, StdInstant)>,
        max_wait: StdDuration,
    ) -> std::io::Result<()> {
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
                Notice::Invited(invitation) => {
                    self.bob.accept(invitation.id).map_err(std::io::Error::other)?;
                }
                Notice::IncomingEnded { incoming, outcome: Outcome::Accepted } => {
                    self.bob.release(incoming).map_err(std::io::Error::other)?;
                }
                _ => {}
            }
        }
        while let Some(notice) = self.alice.poll_event() {
            if let Notice::Responded { handle, answer } = notice {
                assert_eq!(answer.outcome, Outcome::Accepted);
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
        let request = Request::new(APP); // no body: no body buffer (4 per agent)
        let mut started = Vec::with_capacity(n);
        for _ in 0..n {
            let h = self.alice.start_invite_contact(bob, &request, InviteOptions::default())?;
            started.push((h, StdInstant::now()));
        }
        let mut answered = Vec::with_capacity(n);
        let deadline = StdInstant::now() + StdDuration::from_secs(10);
        while answered.len() < n {
            if StdInstant::now() > deadline {
                return Err(format!(
                    "a batch took over 10 s: {} of {n} answered; alice {:?} {:?}, bob {:?} {:?}",
                    answered.len(),
                    self.alice.agent(),
                    self.alice.stats(),
                    self.bob.agent(),
                    self.bob.stats()
                )
                .into());
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
            self.clock.advance(Duration::from_secs(40));
            for _ in 0..4 {
                self.turn(&mut none, StdDuration::from_millis(1))?;
            }
            if self.alice.agent().invitations_in_use() + self.bob.agent().invitations_in_use() == 0
            {
                return Ok(());
            }
        }
        Err(format!(
            "invitations did not finish: alice {:?}, bob {:?}",
            self.alice.agent(),
            self.bob.agent()
        )
        .into())
    }
}

fn percentile(sorted: &[StdDuration], p: f64) -> StdDuration {
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(k).copied().unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let mut b = Bench::new()?;
    b.bob.register_application(APP, "bench", None)?;
    b.bob.add_contact(&b.alice.my_card("alice")?, Trust::Trusted)?;
    let bob = b.alice.add_contact(&b.bob.my_card("bob")?, Trust::Trusted)?;

    // Throughput: batches of 2 in flight. A third half-open handshake puts
    // the invitee "under load" (an eighth of its 16 slots half open, or 64
    // Diffie-Hellman per second), where initiations must first fetch a
    // cookie and retry on their retransmission timer, which a manual clock
    // only runs between batches.
    const IN_FLIGHT: usize = 2;
    let mut busy = StdDuration::ZERO;
    let mut done = 0;
    while done < total {
        let n = IN_FLIGHT.min(total - done);
        let t0 = StdInstant::now();
        b.batch(bob, n)?;
        busy += t0.elapsed();
        done += n;
        b.settle()?;
    }
    let rate = done as f64 / busy.as_secs_f64();

    // Latency: one at a time.
    let mut latencies = Vec::with_capacity(total);
    for k in 0..total {
        latencies.extend(b.batch(bob, 1)?);
        if k % IN_FLIGHT == IN_FLIGHT - 1 {
            b.settle()?;
        }
    }
    latencies.sort();
    println!(
        "peercollab-mio, loopback, one thread for both peers: {done} accepted contact invitations, \
         {rate:.0} invitations/s with {IN_FLIGHT} in flight; one alone: p50 {:?}, p99 {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
    Ok(())
}
