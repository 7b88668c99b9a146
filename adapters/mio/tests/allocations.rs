//! Steady state allocates nothing: after a warm-up, whole invitations
//! between two endpoints in one `Poll` (start, accept the presented
//! invitation, release it once ended, close the answered handle) make no
//! heap allocation, counted by a global allocator. Message, data and the
//! contact's name are copied, so the recycled buffers are exercised. (One
//! test in this binary: the count is process-wide.)

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use mio::{Events, Poll, Token, Waker};
use peercollab_mio::{
    AgentConfig, AppId, Duration, Endpoint, EndpointId, InviteOptions, ManualClock, Notice,
    Outcome, Request, Tokens, Trust, generate_identity,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const APP: AppId = AppId(*b"mio-alloc-test!!");
const WAKER: Token = Token(100);

struct Peers {
    poll: Poll,
    events: Events,
    alice: Endpoint,
    bob: Endpoint,
}

impl Peers {
    /// One turn of the guide's loop; returns the answers alice got.
    fn turn(&mut self, max_wait: StdDuration) -> usize {
        let timeout = [self.alice.next_timeout(), self.bob.next_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map_or(max_wait, |t| t.min(max_wait));
        self.poll.poll(&mut self.events, Some(timeout)).unwrap();
        for event in &self.events {
            let _ = self.alice.handle_event(event) || self.bob.handle_event(event);
        }
        self.alice.handle_timeout();
        self.bob.handle_timeout();
        while let Some(notice) = self.bob.poll_event() {
            match notice {
                Notice::Invited(invitation) => {
                    assert_eq!(invitation.message, "join me");
                    assert_eq!(&invitation.data[..], b"port=4000");
                    assert_eq!(invitation.contact.as_ref().unwrap().1, "alice");
                    self.bob.accept(invitation.id).unwrap();
                }
                Notice::IncomingEnded { incoming, outcome: Outcome::Accepted } => {
                    self.bob.release(incoming).unwrap();
                }
                _ => {}
            }
        }
        let mut answered = 0;
        while let Some(notice) = self.alice.poll_event() {
            if let Notice::Responded { handle, answer } = notice {
                assert_eq!(answer.outcome, Outcome::Accepted);
                self.alice.close(handle).unwrap();
                answered += 1;
            }
        }
        answered
    }
}

#[test]
fn invitations_in_steady_state_allocate_nothing() {
    let poll = Poll::new().unwrap();
    let clock = ManualClock::new();
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
    let make = |first: usize| {
        Endpoint::bind(
            &["127.0.0.1:0".parse().unwrap()],
            generate_identity(EndpointId(1)).unwrap(),
            AgentConfig::default(),
            Arc::new(clock.clone()),
            poll.registry(),
            Tokens::new(Token(first)).shared_waker(Arc::clone(&waker), WAKER),
        )
        .unwrap()
    };
    let (mut alice, mut bob) = (make(0), make(10));
    bob.register_application(APP, "test", None).unwrap();
    bob.add_contact(&alice.my_card("alice").unwrap(), Trust::Trusted).unwrap();
    let contact = alice.add_contact(&bob.my_card("bob").unwrap(), Trust::Trusted).unwrap();
    let mut p = Peers { poll, events: Events::with_capacity(256), alice, bob };
    let request = Request::new(APP).message("join me").data(&b"port=4000"[..]);
    let mut counted = Vec::with_capacity(64);
    // Datagrams bob reads per invitation (learnt in the first round).
    let mut per_invitation = 0;
    for round in 0..80 {
        let region = Region::new(GLOBAL);
        let bob_reads = p.bob.stats().datagrams_in;
        for _ in 0..2 {
            p.alice.start_invite_contact(contact, &request, InviteOptions::default()).unwrap();
        }
        let (mut answered, deadline) = (0, StdInstant::now() + StdDuration::from_secs(10));
        // Until alice has both answers and bob has read both Acks.
        while answered < 2 || p.bob.stats().datagrams_in < bob_reads + 2 * per_invitation {
            assert!(StdInstant::now() < deadline, "a batch took too long");
            answered += p.turn(StdDuration::from_millis(100));
        }
        let allocations = region.change().allocations;
        if round >= 40 {
            counted.push(allocations);
        }
        // Untimed: both linger 32 s.
        for _ in 0..10 {
            clock.advance(Duration::from_secs(40));
            p.turn(StdDuration::from_millis(1));
            if p.alice.agent().invitations_in_use() + p.bob.agent().invitations_in_use() == 0 {
                break;
            }
        }
        if round == 0 {
            per_invitation = (p.bob.stats().datagrams_in - bob_reads) / 2;
            assert!(per_invitation >= 2, "bob reads {per_invitation} datagrams per invitation");
        }
    }
    assert!(counted.iter().all(|&n| n == 0), "allocations per batch of two: {counted:?}");
}
