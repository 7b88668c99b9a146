//! Endpoints on loopback in one `Poll`, stepped by the test; every wait is
//! bounded by a real-time deadline so a bug fails instead of hanging.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use mio::{Events, Poll, Token, Waker};
use peercollab_mio::{
    AgentConfig, AppId, Clock, ContactId, Endpoint, EndpointId, Invitation, ManualClock, Notice,
    Reply, SystemClock, Tokens, Trust, generate_identity,
};

pub const APP: AppId = AppId(*b"mio-adapter-test");
pub const DEADLINE: StdDuration = StdDuration::from_secs(10);
pub const WAKER: Token = Token(1_000);

/// The token of endpoint `k`'s first socket.
pub fn socket_token(k: usize) -> Token {
    Token(k * 10)
}

pub fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().expect("an address")
}

pub fn v6() -> SocketAddr {
    "[::1]:0".parse().expect("an address")
}

/// Whether IPv6 loopback works here.
pub fn v6_available() -> bool {
    std::net::UdpSocket::bind(v6()).is_ok()
}

pub struct Net {
    pub poll: Poll,
    events: Events,
    pub eps: Vec<Endpoint>,
    pub notices: Vec<Vec<Notice>>,
    pub manual: Option<ManualClock>,
    waker: Option<Arc<Waker>>,
}

impl Net {
    /// `n` endpoints, each on `addrs`, on the system clock.
    pub fn new(n: usize, addrs: &[SocketAddr]) -> Net {
        Self::build(n, addrs, false)
    }

    /// `n` endpoints on one manual clock, sharing one waker.
    pub fn manual(n: usize, addrs: &[SocketAddr]) -> Net {
        Self::build(n, addrs, true)
    }

    fn build(n: usize, addrs: &[SocketAddr], manual: bool) -> Net {
        let poll = Poll::new().expect("a poll");
        let manual = manual.then(ManualClock::new);
        let waker =
            manual.as_ref().map(|_| Arc::new(Waker::new(poll.registry(), WAKER).expect("a waker")));
        let mut net = Net {
            poll,
            events: Events::with_capacity(64),
            eps: Vec::new(),
            notices: Vec::new(),
            manual,
            waker,
        };
        for _ in 0..n {
            net.add(addrs);
        }
        net
    }

    /// Adds an endpoint on `addrs`; returns its index.
    pub fn add(&mut self, addrs: &[SocketAddr]) -> usize {
        let k = self.eps.len();
        let clock: Arc<dyn Clock> = match &self.manual {
            Some(m) => Arc::new(m.clone()),
            None => Arc::new(SystemClock::new()),
        };
        let mut tokens = Tokens::new(socket_token(k));
        if let Some(w) = &self.waker {
            tokens = tokens.shared_waker(Arc::clone(w), WAKER);
        }
        let identity = generate_identity(EndpointId(1)).expect("an identity");
        let mut ep = Endpoint::bind(
            addrs,
            identity,
            AgentConfig::default(),
            clock,
            self.poll.registry(),
            tokens,
        )
        .expect("bind");
        ep.register_application(APP, "test", None).expect("register");
        self.eps.push(ep);
        self.notices.push(Vec::new());
        k
    }

    /// `a` and `b` as each other's trusted contacts; returns `b` in `a`'s
    /// book.
    pub fn befriend(&mut self, a: usize, b: usize) -> ContactId {
        let card_a = self.eps[a].my_card("alice").expect("card");
        let card_b = self.eps[b].my_card("bob").expect("card");
        self.eps[b].add_contact(&card_a, Trust::Trusted).expect("add");
        self.eps[a].add_contact(&card_b, Trust::Trusted).expect("add")
    }

    /// One turn: poll (at most `max_wait`), every event to every endpoint,
    /// timers, notices collected.
    pub fn step(&mut self, max_wait: StdDuration) {
        let timeout = self
            .eps
            .iter()
            .filter_map(Endpoint::next_timeout)
            .min()
            .map_or(max_wait, |t| t.min(max_wait));
        self.poll.poll(&mut self.events, Some(timeout)).expect("poll");
        for event in self.events.iter() {
            let mine =
                self.eps.iter_mut().map(|ep| ep.handle_event(event)).fold(false, |a, b| a | b);
            assert!(mine, "an event of no endpoint: {event:?}");
        }
        self.drain();
    }

    /// Timers and notices, without polling.
    pub fn drain(&mut self) {
        for (ep, notices) in self.eps.iter_mut().zip(&mut self.notices) {
            ep.handle_timeout();
            notices.extend(std::iter::from_fn(|| ep.poll_event()));
        }
    }

    /// Steps until `cond` holds; panics after [`DEADLINE`].
    pub fn until(&mut self, what: &str, mut cond: impl FnMut(&mut Net) -> bool) {
        let deadline = StdInstant::now() + DEADLINE;
        while !cond(self) {
            assert!(StdInstant::now() < deadline, "timed out waiting for {what}");
            self.step(StdDuration::from_millis(50));
        }
    }

    /// Steps until endpoint `k` has a notice `pick` takes; removes and
    /// returns what it makes of it.
    pub fn expect<T>(
        &mut self,
        k: usize,
        what: &str,
        mut pick: impl FnMut(&Notice) -> Option<T>,
    ) -> T {
        let mut found = None;
        self.until(what, |net| {
            if let Some(at) = net.notices[k].iter().position(|n| pick(n).is_some()) {
                let notice = net.notices[k].remove(at);
                found = pick(&notice);
            }
            found.is_some()
        });
        found.expect("found")
    }

    /// Steps until endpoint `k` is invited; returns the invitation.
    pub fn invited(&mut self, k: usize) -> Invitation {
        self.expect(k, "an invitation", |n| match n {
            Notice::Invited(i) => Some(i.clone()),
            _ => None,
        })
    }

    /// Advances the manual clock by `by` in steps of `step`, running the
    /// loop after each.
    pub fn advance(&mut self, by: peercollab_mio::Duration, step: peercollab_mio::Duration) {
        let clock = self.manual.clone().expect("a manual clock");
        let mut done = 0;
        while done < by.as_millis() {
            clock.advance(step);
            done += step.as_millis();
            self.step(StdDuration::from_millis(1));
            // Let datagrams sent on that step arrive and be answered.
            for _ in 0..3 {
                self.step(StdDuration::from_millis(2));
            }
        }
    }
}

/// An invitee on its own thread with its own `Poll`: answers every
/// invitation with `reply` — at once, or, with `invite_back`, only once its
/// own invitation of that address rings there. Runs until `stop` or the
/// deadline; returns every notice it saw.
pub fn serve(
    mut ep: Endpoint,
    mut poll: Poll,
    reply: Reply,
    invite_back: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Notice>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut waiting = Vec::new();
        let mut events = Events::with_capacity(64);
        let deadline = StdInstant::now() + DEADLINE;
        while !stop.load(Ordering::SeqCst) && StdInstant::now() < deadline {
            let cap = StdDuration::from_millis(20);
            let timeout = ep.next_timeout().map_or(cap, |t| t.min(cap));
            poll.poll(&mut events, Some(timeout)).expect("poll");
            for event in &events {
                ep.handle_event(event);
            }
            ep.handle_timeout();
            while let Some(notice) = ep.poll_event() {
                match (&notice, invite_back) {
                    (Notice::Invited(invitation), Some(back)) => {
                        let request = peercollab_mio::Request::new(APP).message("and you?");
                        ep.start_invite_endpoint(back, &request, Default::default())
                            .expect("invite back");
                        waiting.push(invitation.id);
                    }
                    (Notice::Invited(invitation), None) => {
                        ep.respond(invitation.id, reply, "").expect("respond");
                    }
                    (Notice::Ringing(_), _) => {
                        for id in waiting.drain(..) {
                            ep.respond(id, reply, "").expect("respond");
                        }
                    }
                    _ => {}
                }
                seen.push(notice);
            }
        }
        seen
    })
}

/// An endpoint on its own `Poll`, to move to a thread.
pub fn lone(addrs: &[SocketAddr]) -> (Endpoint, Poll) {
    let poll = Poll::new().expect("a poll");
    let identity = generate_identity(EndpointId(1)).expect("an identity");
    let mut ep = Endpoint::bind(
        addrs,
        identity,
        AgentConfig::default(),
        Arc::new(SystemClock::new()),
        poll.registry(),
        Tokens::new(Token(0)),
    )
    .expect("bind");
    ep.register_application(APP, "test", None).expect("register");
    (ep, poll)
}
