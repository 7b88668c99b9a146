//! Two agents in memory exchanging datagrams directly: whole invitations
//! with nothing but the core in the loop (the benchmarks' and the
//! operation-count tests' invitation).

use std::net::SocketAddr;

use peercollab_core::agent::{
    Agent, AgentConfig, ContactId, Event, Handle, IncomingId, InvitationRequest, InviteOptions,
    Target, Trust,
};
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::{Answer, AppId, LINGER, Outcome};
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{Duration, HashDrbg, Instant};

/// The application every benchmark invitation is for.
pub const APP: AppId = AppId(*b"peercollab-bench");

/// Which way a datagram went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Inviter to invitee.
    Out,
    /// Invitee to inviter.
    Back,
}

/// Two agents, `a` inviting `b`, each knowing the other as a trusted
/// contact; `b` has [`APP`] registered.
pub struct Pair<const I: usize = 16, const R: usize = 128> {
    /// The inviter.
    pub a: Box<Agent<32, 64, I, 4, R>>,
    /// The invitee.
    pub b: Box<Agent<32, 64, I, 4, R>>,
    /// The inviter's address.
    pub a_addr: SocketAddr,
    /// The invitee's address.
    pub b_addr: SocketAddr,
    /// The invitee, as the inviter's contact.
    pub bob: ContactId,
    /// The invitee's endpoint.
    pub target: Target,
    /// Virtual time.
    pub now: Instant,
    buf: Box<[u8; MAX_DATAGRAM]>,
}

impl<const I: usize, const R: usize> Pair<I, R> {
    /// Two fresh agents, identities drawn from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut rng = HashDrbg::from_u64(seed);
        let alice = LocalIdentity::generate(&mut rng, EndpointId(1));
        let bob = LocalIdentity::generate(&mut rng, EndpointId(1));
        let a_addr: SocketAddr = "10.0.0.1:4000".parse().expect("literal");
        let b_addr: SocketAddr = "10.0.0.2:4000".parse().expect("literal");
        let mut a = Box::new(Agent::new(alice, AgentConfig::default(), [1; 32]));
        let mut b = Box::new(Agent::new(bob, AgentConfig::default(), [2; 32]));
        let a_card = a.my_card("alice", &[a_addr]).expect("valid card");
        let b_card = b.my_card("bob", &[b_addr]).expect("valid card");
        let bob = a.add_contact(&b_card, Trust::Trusted).expect("room");
        b.add_contact(&a_card, Trust::Trusted).expect("room");
        b.register_application(APP, "bench", None).expect("room");
        let target = Target { endpoint: b.identity().certificate().endpoint(), address: b_addr };
        Pair {
            a,
            b,
            a_addr,
            b_addr,
            bob,
            target,
            now: Instant::ZERO,
            buf: Box::new([0; MAX_DATAGRAM]),
        }
    }

    /// One whole accepted contact invitation (IK, Invite, Ringing,
    /// Final(Accepted), Ack), then the lingering ends so every slot is free
    /// again. `seen` is told every datagram. Returns the inviter's outcome.
    pub fn contact_invite(&mut self, mut seen: impl FnMut(Dir, &[u8])) -> Outcome {
        let request = InvitationRequest { app_id: APP, message: "", data: &[] };
        let handle = self
            .a
            .invite_contact(self.now, self.bob, &[self.target], &request, InviteOptions::default())
            .expect("room for an invitation")
            .expect("a handle");
        self.run(handle, &mut seen)
    }

    /// The same as an endpoint invitation (XX) to `b`'s address.
    pub fn endpoint_invite(&mut self, mut seen: impl FnMut(Dir, &[u8])) -> Outcome {
        let request = InvitationRequest { app_id: APP, message: "", data: &[] };
        let handle = self
            .a
            .invite_endpoint(self.now, self.b_addr, &request, InviteOptions::default())
            .expect("room for an invitation")
            .expect("a handle");
        self.run(handle, &mut seen)
    }

    /// Starts a contact invitation that `b` leaves ringing, unanswered, and
    /// delivers datagrams until both agents are quiet (no time passes).
    /// `seen` is told every datagram. Returns the invitation as `b` names
    /// it, once presented.
    pub fn ring_unanswered(&mut self, mut seen: impl FnMut(Dir, &[u8])) -> Option<IncomingId> {
        let request = InvitationRequest { app_id: APP, message: "", data: &[] };
        self.a
            .invite_contact(self.now, self.bob, &[self.target], &request, InviteOptions::default())
            .expect("room for an invitation");
        let (_, at_b) = self.exchange(&mut seen);
        at_b.into_iter().find_map(|e| match e {
            Event::Invited(id) => Some(id),
            _ => None,
        })
    }

    /// Delivers datagrams both ways until both agents are quiet (no time
    /// passes); returns the events of `a` and of `b`.
    pub fn exchange(&mut self, seen: &mut impl FnMut(Dir, &[u8])) -> (Vec<Event>, Vec<Event>) {
        let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
        let mut moved = true;
        while moved {
            moved = false;
            while let Some(t) = self.a.poll_transmit(self.now, &mut self.buf) {
                moved = true;
                seen(Dir::Out, &self.buf[..t.len]);
                let _ = self.b.handle_datagram(self.now, self.a_addr, &self.buf[..t.len]);
            }
            while let Some(t) = self.b.poll_transmit(self.now, &mut self.buf) {
                moved = true;
                seen(Dir::Back, &self.buf[..t.len]);
                let _ = self.a.handle_datagram(self.now, self.b_addr, &self.buf[..t.len]);
            }
            at_a.extend(std::iter::from_fn(|| self.a.poll_event()));
            at_b.extend(std::iter::from_fn(|| self.b.poll_event()));
        }
        (at_a, at_b)
    }

    /// Jumps to the next deadline of either agent and runs it.
    pub fn advance(&mut self) {
        self.next_deadline();
    }

    fn run(&mut self, handle: Handle, seen: &mut impl FnMut(Dir, &[u8])) -> Outcome {
        let mut outcome = None;
        let mut ended: Option<IncomingId> = None;
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit(self.now, &mut self.buf) {
                moved = true;
                let d = &self.buf[..t.len];
                seen(Dir::Out, d);
                let _ = self.b.handle_datagram(self.now, self.a_addr, d);
            }
            while let Some(e) = self.b.poll_event() {
                match e {
                    Event::Invited(id) => {
                        self.b.respond(self.now, id, Answer::Accept, "").expect("presented");
                    }
                    Event::IncomingEnded { incoming, .. } => ended = Some(incoming),
                    _ => {}
                }
            }
            while let Some(t) = self.b.poll_transmit(self.now, &mut self.buf) {
                moved = true;
                let d = &self.buf[..t.len];
                seen(Dir::Back, d);
                let _ = self.a.handle_datagram(self.now, self.b_addr, d);
            }
            while let Some(e) = self.a.poll_event() {
                if let Event::Responded { outcome: o, .. } = e {
                    outcome = Some(o);
                }
            }
            if let (Some(o), Some(id)) = (outcome, ended) {
                self.a.close(self.now, handle).expect("open handle");
                self.b.release(id).expect("accepted");
                self.finish_lingering();
                return o;
            }
            if !moved {
                self.next_deadline();
            }
        }
    }

    /// Jumps to the next deadline of either agent and runs it.
    fn next_deadline(&mut self) {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
        self.now = next.expect("an invitation in flight has a deadline").max(self.now);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    /// Runs time past the lingering of finished invitations, delivering
    /// whatever is still sent (late acks), until both agents are idle.
    fn finish_lingering(&mut self) {
        let until = self.now + LINGER + Duration::from_secs(1);
        while self.a.invitations_in_use() + self.b.invitations_in_use() > 0 {
            while let Some(t) = self.a.poll_transmit(self.now, &mut self.buf) {
                let _ = self.b.handle_datagram(self.now, self.a_addr, &self.buf[..t.len]);
            }
            while let Some(t) = self.b.poll_transmit(self.now, &mut self.buf) {
                let _ = self.a.handle_datagram(self.now, self.b_addr, &self.buf[..t.len]);
            }
            while self.a.poll_event().is_some() || self.b.poll_event().is_some() {}
            self.next_deadline();
            assert!(self.now <= until + LINGER, "invitations outlived their lingering");
        }
    }
}
