//! The responder's defences against unauthenticated senders (agent.md §4.1,
//! `core/src/agent/guard.rs`): the replay cache, cookies under load, the
//! per-source rate limit and the eviction of unconfirmed handshakes. Each
//! test drives an agent with hand-made initiators (bare sessions) and reads
//! the agent's answers and counters.

use std::net::SocketAddr;

use peercollab_core::agent::guard::{HALF_OPEN_PER_CONTACT, RATE_BURST, RATE_PER_SECOND};
use peercollab_core::agent::{Agent, AgentConfig, Dropped, Event, half_open_places};
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::{Answer, AppId, Outcome};
use peercollab_core::session::{PinnedPeer, Session, StatementForm};
use peercollab_core::wire::{COOKIE_REPLY_LEN, MAX_DATAGRAM};
use peercollab_core::{Duration, HashDrbg, Instant};
use peercollab_tests::bench::pair::{Dir, Pair};

const APP: AppId = AppId(*b"defences-test-ap");

fn identity(seed: u64) -> LocalIdentity {
    LocalIdentity::generate(&mut HashDrbg::from_u64(seed), EndpointId(1))
}

fn addr(k: u32) -> SocketAddr {
    SocketAddr::from(([10, (k >> 16) as u8, (k >> 8) as u8, k as u8], 4000))
}

/// An initiator that never finishes its handshake (it never hears the
/// response): its first message, from `from`.
struct Initiator {
    session: Session,
    from: SocketAddr,
    rng: HashDrbg,
}

impl Initiator {
    /// A stranger's XX initiation.
    fn stranger(k: u32, now: Instant) -> Self {
        let mut rng = HashDrbg::from_u64(1000 + u64::from(k));
        let me = identity(100 + u64::from(k));
        let session = Session::initiate_endpoint(&me, None, k, now, &mut rng).unwrap();
        Initiator { session, from: addr(k), rng }
    }

    /// Sends its initiation to `agent`. A cookie reply is delivered back and
    /// the initiation retransmitted with the cookie, as a real initiator
    /// does. Returns what the agent made of the last transmission.
    fn open<const C: usize, const A: usize, const I: usize, const B: usize, const R: usize>(
        &mut self,
        agent: &mut Agent<C, A, I, B, R>,
        now: Instant,
    ) -> Result<(), Dropped> {
        let (mut buf, mut out) = ([0u8; MAX_DATAGRAM], [0u8; MAX_DATAGRAM]);
        let mut at = now;
        for _ in 0..8 {
            let Some(n) = self.session.poll_transmit(at, &mut buf) else {
                at = self.session.poll_timeout().expect("a retransmission is due");
                self.session.handle_timeout(at, &mut self.rng);
                continue;
            };
            let result = agent.handle_datagram(at.max(now), self.from, &buf[..n]);
            if result != Err(Dropped::CookieRequired) {
                return result;
            }
            let t = agent.poll_transmit(now, &mut out).expect("a cookie reply");
            assert_eq!((t.destination, t.len), (self.from, COOKIE_REPLY_LEN));
            assert!(t.len < n, "a cookie reply is smaller than its trigger");
            let mut payload = [0u8; MAX_DATAGRAM];
            let _ = self
                .session
                .handle_datagram(at, &out[..t.len], &mut payload, &mut self.rng)
                .unwrap();
        }
        panic!("no answer but cookie replies")
    }

    /// Its (first) initiation, as bytes.
    fn first_message(&mut self, now: Instant) -> Vec<u8> {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = self.session.poll_transmit(now, &mut buf).expect("an initiation");
        buf[..n].to_vec()
    }
}

type Big = Agent<4, 4, 64, 1, 128>;

fn big_responder() -> Box<Big> {
    let mut b = Box::new(Big::new(identity(1), AgentConfig::default(), [9; 32]));
    b.register_application(APP, "test", None).unwrap();
    b
}

#[test]
fn a_source_may_start_a_burst_of_initiations_then_twenty_a_second() {
    // A large agent, so that a burst does not put it under load.
    let mut b = big_responder();
    let now = Instant::from_millis(1_000);
    let same_source = |k: u32, now: Instant| {
        let mut i = Initiator::stranger(k, now);
        i.from = addr(7);
        i
    };
    for k in 0..RATE_BURST {
        assert_eq!(same_source(k, now).open(&mut b, now), Ok(()), "initiation {k} of the burst");
    }
    assert_eq!(same_source(50, now).open(&mut b, now), Err(Dropped::RateLimited));
    assert_eq!(b.stats().rate_limited, 1);
    assert_eq!(b.invitations_in_use(), RATE_BURST as usize, "a refused initiation leaves no state");
    // A token comes back every 1/20 s; another address has its own bucket.
    let later = now + Duration::from_millis(1000 / u64::from(RATE_PER_SECOND));
    assert_eq!(same_source(51, later).open(&mut b, later), Ok(()));
    assert_eq!(Initiator::stranger(52, later).open(&mut b, later), Ok(()));
}

#[test]
fn under_load_an_initiation_is_answered_with_a_cookie_and_accepted_with_it() {
    let mut b: Box<Agent> = Box::new(Agent::new(identity(1), AgentConfig::default(), [9; 32]));
    let now = Instant::from_millis(1_000);
    // 16 slots: two unconfirmed handshakes are 1/8 of them.
    for k in 0..2 {
        assert_eq!(Initiator::stranger(k, now).open(&mut b, now), Ok(()));
    }
    assert_eq!(b.stats().cookie_replies, 0, "no cookie before the load");
    let mut third = Initiator::stranger(2, now);
    let first = third.first_message(now);
    assert_eq!(b.handle_datagram(now, third.from, &first), Err(Dropped::CookieRequired));
    assert_eq!(b.invitations_in_use(), 2, "a cookie reply keeps no state");
    // Replayed from another address, the same initiation gets another
    // cookie, never a response.
    assert_eq!(b.handle_datagram(now, addr(77), &first), Err(Dropped::CookieRequired));
    assert_eq!(b.stats().cookie_replies, 2);
    let mut buf = [0u8; MAX_DATAGRAM];
    while b.poll_transmit(now, &mut buf).is_some() {}
    // The initiator that receives at its address retransmits with the
    // cookie and is let in.
    let mut third = Initiator::stranger(2, now);
    assert_eq!(third.open(&mut b, now), Ok(()));
    assert_eq!(b.invitations_in_use(), 3);
}

#[test]
fn a_cookie_holds_only_for_the_address_it_was_sent_to() {
    let mut b: Box<Agent> = Box::new(Agent::new(identity(1), AgentConfig::default(), [9; 32]));
    let now = Instant::from_millis(1_000);
    for k in 0..2 {
        assert_eq!(Initiator::stranger(k, now).open(&mut b, now), Ok(()));
    }
    // The initiator learns a cookie at its address, then its initiation
    // with the cookie's mac2 arrives from another (spoofed) one.
    let mut i = Initiator::stranger(3, now);
    let (mut buf, mut out) = ([0u8; MAX_DATAGRAM], [0u8; MAX_DATAGRAM]);
    let n = i.session.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(b.handle_datagram(now, i.from, &buf[..n]), Err(Dropped::CookieRequired));
    let t = b.poll_transmit(now, &mut out).unwrap();
    let _ =
        i.session.handle_datagram(now, &out[..t.len], &mut [0; MAX_DATAGRAM], &mut i.rng).unwrap();
    let at = i.session.poll_timeout().unwrap();
    i.session.handle_timeout(at, &mut i.rng);
    let n = i.session.poll_transmit(at, &mut buf).unwrap();
    assert_eq!(b.handle_datagram(at, addr(200), &buf[..n]), Err(Dropped::CookieRequired));
    assert_eq!(b.handle_datagram(at, i.from, &buf[..n]), Ok(()));
}

#[test]
fn the_oldest_unconfirmed_handshake_is_evicted_never_an_established_invitation() {
    let mut pair = Pair::<16, 128>::new(5);
    // An invitation from a contact, established and ringing at b.
    let ringing = pair.ring_unanswered(|_, _| {}).expect("presented");
    assert_eq!(pair.b.invitations_in_use(), 1);
    let now = pair.now;
    let places = half_open_places(16);
    let mut strangers: Vec<Initiator> =
        (0..places as u32 + 1).map(|k| Initiator::stranger(k, now)).collect();
    for (k, s) in strangers.iter_mut().enumerate().take(places) {
        let at = now + Duration::from_millis(k as u64);
        assert_eq!(s.open(&mut pair.b, at), Ok(()), "stranger {k}");
    }
    assert_eq!(pair.b.invitations_in_use(), 1 + places);
    assert_eq!(pair.b.stats().evicted_half_open, 0);
    // One more: the oldest stranger's handshake makes room.
    let at = now + Duration::from_millis(places as u64);
    assert_eq!(strangers[places].open(&mut pair.b, at), Ok(()));
    assert_eq!(pair.b.stats().evicted_half_open, 1);
    assert_eq!(pair.b.invitations_in_use(), 1 + places);
    // The established invitation is still there: answered, it completes.
    pair.b.respond(pair.now, ringing, Answer::Accept, "").unwrap();
    let mut outcome = None;
    for _ in 0..20 {
        let (at_a, _) = pair.exchange(&mut |_, _| {});
        outcome = outcome.or(at_a.into_iter().find_map(|e| match e {
            Event::Responded { outcome, .. } => Some(outcome),
            _ => None,
        }));
        if outcome.is_some() {
            break;
        }
        pair.advance();
    }
    assert_eq!(outcome, Some(Outcome::Accepted));
}

#[test]
fn a_contacts_own_unconfirmed_handshakes_make_room_for_its_new_one_and_nobody_elses() {
    let mut pair = Pair::<16, 128>::new(6);
    let now = pair.now;
    // A stranger's unconfirmed handshake.
    assert_eq!(Initiator::stranger(1, now).open(&mut pair.b, now), Ok(()));
    // The contact `a` starts initiations whose responses it never hears
    // (as a replay flood of its old first messages would).
    let pinned = PinnedPeer::new(pair.a.identity(), *pair.b.identity().certificate()).unwrap();
    let extra = 2;
    for k in 0..(HALF_OPEN_PER_CONTACT + extra) as u32 {
        let at = now + Duration::from_millis(u64::from(k));
        let mut rng = HashDrbg::from_u64(77 + u64::from(k));
        let session = Session::initiate_contact(
            pair.a.identity(),
            &pinned,
            500 + k,
            StatementForm::Certificate,
            at,
            &mut rng,
        )
        .unwrap();
        let mut contact = Initiator { session, from: pair.a_addr, rng };
        assert_eq!(contact.open(&mut pair.b, at), Ok(()), "initiation {k}");
    }
    // Each initiation beyond the contact's two evicted its oldest; the
    // stranger kept its place.
    assert_eq!(pair.b.stats().evicted_half_open, extra as u64);
    assert_eq!(pair.b.invitations_in_use(), 1 + HALF_OPEN_PER_CONTACT);
}

#[test]
fn a_replayed_initiation_is_dropped_before_any_work_long_after_its_invitation_ended() {
    let mut pair = Pair::<16, 128>::new(8);
    let mut first = None;
    let outcome = pair.contact_invite(|dir, d| {
        if dir == Dir::Out && first.is_none() {
            first = Some(d.to_vec());
        }
    });
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(pair.b.invitations_in_use(), 0, "the invitation ended and lingered out");
    let first = first.unwrap();
    let later = pair.now + Duration::from_secs(3600);
    assert_eq!(
        pair.b.handle_datagram(later, pair.a_addr, &first),
        Err(Dropped::ReplayedInitiation)
    );
    assert_eq!(pair.b.stats().replayed_initiations, 1);
    assert_eq!(pair.b.invitations_in_use(), 0);
    let mut buf = [0u8; MAX_DATAGRAM];
    assert!(pair.b.poll_transmit(later, &mut buf).is_none(), "no answer to a replay");
}

/// Found by the `agent_ops` fuzz target: an initiation that is dropped
/// after the room decision (here an XX initiation whose ephemeral key is a
/// low-order point: it passes XX's public mac1, carries a valid cookie, and
/// fails only when the response is written) must not evict anyone.
#[test]
fn a_dropped_initiation_evicts_no_unconfirmed_handshake() {
    use peercollab_core::mac::MacKey;
    use peercollab_core::wire::{Frame, MAC_LEN};
    use peercollab_tests::mitm::forge;

    let mut b: Box<Agent> = Box::new(Agent::new(identity(1), AgentConfig::default(), [9; 32]));
    let now = Instant::from_millis(1_000);
    let places = half_open_places(16);
    for k in 0..places as u32 {
        let at = now + Duration::from_millis(u64::from(k));
        assert_eq!(Initiator::stranger(k, at).open(&mut b, at), Ok(()), "stranger {k}");
    }
    let at = now + Duration::from_millis(places as u64);
    let from = addr(999);
    let low_order = forge::LOW_ORDER_POINTS[1];
    let mut bad = forge::xx_initiation(&low_order, forge::XX_PADDING, 7);
    // Under load: fetch the cookie of this address, as a real initiator
    // would, and seal the initiation's mac2 with it.
    assert_eq!(b.handle_datagram(at, from, &bad), Err(Dropped::CookieRequired));
    let mut out = [0u8; MAX_DATAGRAM];
    let t = b.poll_transmit(at, &mut out).expect("a cookie reply");
    let Ok(Frame::CookieReply(reply)) = Frame::parse(&out[..t.len]) else {
        panic!("a cookie reply")
    };
    let len = bad.len();
    let mac1: [u8; MAC_LEN] = bad[len - 2 * MAC_LEN..len - MAC_LEN].try_into().unwrap();
    let cookie =
        MacKey::cookie(&low_order).open_cookie(&reply.nonce, &reply.sealed_cookie, &mac1).unwrap();
    let mac2 = MacKey::from_cookie(&cookie).mac(&bad[..len - MAC_LEN]);
    bad[len - MAC_LEN..].copy_from_slice(&mac2);
    let result = b.handle_datagram(at, from, &bad);
    assert!(matches!(result, Err(Dropped::Unanswerable(_))), "{result:?}");
    assert_eq!(b.stats().evicted_half_open, 0, "a dropped initiation evicted a handshake");
    assert_eq!(b.invitations_in_use(), places);
}
