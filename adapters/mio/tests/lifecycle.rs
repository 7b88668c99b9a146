//! The waiting call, timers on the manual clock, bind errors, shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use common::{APP, DEADLINE, Net, WAKER, lone, serve, v4};
use mio::net::UdpSocket as MioUdp;
use mio::{Events, Interest, Token};
use peercollab_mio::{
    AgentConfig, Duration, Endpoint, EndpointId, Error, InviteOptions, Notice, Outcome, Reply,
    Request, SHUTDOWN_REASON, SystemClock, Tokens, Trust, generate_identity,
};

#[test]
fn the_waiting_call_returns_the_answer_and_keeps_every_other_event() {
    let (mut alice, mut poll) = lone(&[v4()]);
    let (mut bob, bob_poll) = lone(&[v4()]);
    let alice_addr = alice.local_addrs()[0];
    bob.add_contact(&alice.my_card("alice").unwrap(), Trust::Trusted).unwrap();
    let bob_id = alice.add_contact(&bob.my_card("bob").unwrap(), Trust::Trusted).unwrap();

    // A source of the caller's own in the same Poll, with a datagram waiting.
    const MINE: Token = Token(500);
    let mut mine = MioUdp::bind(v4()).unwrap();
    poll.registry().register(&mut mine, MINE, Interest::READABLE).unwrap();
    std::net::UdpSocket::bind(v4()).unwrap().send_to(b"x", mine.local_addr().unwrap()).unwrap();

    // Bob invites alice back and answers only once his invitation rings at
    // alice: her Invited arrives while she waits.
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve(bob, bob_poll, Reply::Accept, Some(alice_addr), Arc::clone(&stop));
    let answer = alice
        .invite_contact_blocking(&mut poll, bob_id, &Request::new(APP), InviteOptions::default())
        .unwrap();
    assert_eq!(answer.outcome, Outcome::Accepted);
    assert_eq!(answer.contact, Some(bob_id));

    let foreign = alice.take_foreign_events();
    assert!(foreign.iter().any(|e| e.token() == MINE), "{foreign:?}");
    let notices: Vec<Notice> = std::iter::from_fn(|| alice.poll_event()).collect();
    let [Notice::Invited(invitation)] = &notices[..] else {
        panic!("the waiting call's own notices leak, or others are lost: {notices:?}")
    };
    assert_eq!(invitation.message, "and you?");
    alice.decline(invitation.id, "busy waiting").unwrap();

    // Serve alice until bob has heard her answer.
    let deadline = StdInstant::now() + DEADLINE;
    let mut events = Events::with_capacity(64);
    while !server.is_finished() && StdInstant::now() < deadline {
        poll.poll(&mut events, Some(StdDuration::from_millis(20))).unwrap();
        for e in &events {
            alice.handle_event(e);
        }
        alice.handle_timeout();
        if let Some(Notice::IncomingEnded { .. }) = alice.poll_event() {
            stop.store(true, Ordering::SeqCst);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let seen = server.join().unwrap();
    assert!(
        seen.iter().any(|n| matches!(n, Notice::Responded { answer, .. }
            if answer.outcome == Outcome::Declined && answer.reason == "busy waiting")),
        "{seen:?}"
    );
}

#[test]
fn the_waiting_endpoint_call_names_the_answerer_of_a_decline() {
    let (mut alice, mut poll) = lone(&[v4()]);
    let (bob, bob_poll) = lone(&[v4()]);
    let bob_addr = bob.local_addrs()[0];
    let bob_identity = bob.identity().identity();
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve(bob, bob_poll, Reply::Decline, None, Arc::clone(&stop));
    let answer = alice
        .invite_endpoint_blocking(&mut poll, bob_addr, &Request::new(APP), InviteOptions::default())
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(answer.outcome, Outcome::Declined);
    assert_eq!(answer.identity(), Some(bob_identity));
    assert_eq!(alice.poll_event(), None);
    server.join().unwrap();
}

#[test]
fn a_jump_of_the_manual_clock_wakes_a_poll_waiting_without_timeout() {
    let mut net = Net::manual(1, &[v4()]);
    let clock = net.manual.clone().unwrap();
    assert_eq!(net.eps[0].next_timeout(), None);
    clock.advance(Duration::from_secs(1));
    let mut events = Events::with_capacity(8);
    let started = StdInstant::now();
    net.poll.poll(&mut events, Some(StdDuration::from_secs(5))).unwrap();
    assert!(started.elapsed() < StdDuration::from_secs(1));
    let wake = events.iter().find(|e| e.token() == WAKER).expect("the waker's event");
    assert!(net.eps[0].handle_event(wake));
}

#[test]
fn an_unanswered_invitation_expires_after_five_minutes_on_the_manual_clock() {
    let mut net = Net::manual(2, &[v4()]);
    let bob = net.befriend(0, 1);
    // The default expiry: five minutes.
    let handle =
        net.eps[0].start_invite_contact(bob, &Request::new(APP), InviteOptions::default()).unwrap();
    let invitation = net.invited(1);
    assert_eq!(invitation.expires_in(net.eps[1].now()), Duration::from_secs(300));
    net.advance(Duration::from_secs(299), Duration::from_secs(13));
    assert!(
        net.notices[0].iter().all(|n| !matches!(n, Notice::Responded { .. })),
        "{:?}",
        net.notices[0]
    );
    net.advance(Duration::from_secs(2), Duration::from_secs(1));
    let answer = net.expect(0, "expiry", |n| match n {
        Notice::Responded { answer, .. } => Some(answer.clone()),
        _ => None,
    });
    assert_eq!(answer.outcome, Outcome::Expired);
    let ended = net.expect(1, "expiry", |n| match n {
        Notice::IncomingEnded { outcome, .. } => Some(*outcome),
        _ => None,
    });
    assert_eq!(ended, Outcome::Expired);
    net.eps[0].close(handle).unwrap();
}

#[test]
fn a_silent_peer_is_unreachable_on_the_manual_clock() {
    let mut net = Net::manual(1, &[v4()]);
    let silent = std::net::UdpSocket::bind(v4()).unwrap();
    let handle = net.eps[0]
        .start_invite_endpoint(
            silent.local_addr().unwrap(),
            &Request::new(APP),
            InviteOptions::default(),
        )
        .unwrap();
    net.advance(Duration::from_secs(40), Duration::from_secs(1));
    let answer = net.expect(0, "unreachable", |n| match n {
        Notice::Responded { answer, .. } => Some(answer.clone()),
        _ => None,
    });
    assert_eq!(answer.outcome, Outcome::Unreachable);
    assert_eq!(answer.answered_by, None);
    net.eps[0].close(handle).unwrap();
}

#[test]
fn a_port_in_use_is_a_bind_error_naming_the_address() {
    let taken = std::net::UdpSocket::bind(v4()).unwrap();
    let address = taken.local_addr().unwrap();
    let poll = mio::Poll::new().unwrap();
    let err = Endpoint::bind(
        &[v4(), address],
        generate_identity(EndpointId(1)).unwrap(),
        AgentConfig::default(),
        Arc::new(SystemClock::new()),
        poll.registry(),
        Tokens::new(Token(0)),
    )
    .unwrap_err();
    let Error::Bind { address: a, source } = &err else { panic!("{err:?}") };
    assert_eq!(*a, address);
    assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
    let message = err.to_string();
    assert!(message.starts_with(&format!("cannot bind UDP socket to {address}")), "{message}");

    let err = Endpoint::bind(
        &[],
        generate_identity(EndpointId(1)).unwrap(),
        AgentConfig::default(),
        Arc::new(SystemClock::new()),
        poll.registry(),
        Tokens::new(Token(0)),
    )
    .unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput));
}

#[test]
fn shutdown_declines_and_waits_until_the_inviter_acknowledged() {
    let (mut bob, mut bob_poll) = lone(&[v4()]);
    let (mut alice, mut alice_poll) = lone(&[v4()]);
    bob.add_contact(&alice.my_card("alice").unwrap(), Trust::Trusted).unwrap();
    let bob_id = alice.add_contact(&bob.my_card("bob").unwrap(), Trust::Trusted).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let alice_stop = Arc::clone(&stop);
    // Alice invites from her own thread and keeps serving until told.
    let inviter = std::thread::spawn(move || {
        let handle = alice
            .start_invite_contact(bob_id, &Request::new(APP), InviteOptions::default())
            .unwrap();
        let mut answer = None;
        let mut events = Events::with_capacity(64);
        let deadline = StdInstant::now() + DEADLINE;
        while !alice_stop.load(Ordering::SeqCst) && StdInstant::now() < deadline {
            alice_poll.poll(&mut events, Some(StdDuration::from_millis(20))).unwrap();
            for e in &events {
                alice.handle_event(e);
            }
            alice.handle_timeout();
            while let Some(n) = alice.poll_event() {
                if let Notice::Responded { handle: h, answer: a } = n {
                    assert_eq!(h, handle);
                    answer = Some(a);
                }
            }
        }
        answer
    });

    let mut events = Events::with_capacity(64);
    let deadline = StdInstant::now() + DEADLINE;
    let invitation = loop {
        assert!(StdInstant::now() < deadline, "no invitation");
        bob_poll.poll(&mut events, Some(StdDuration::from_millis(20))).unwrap();
        for e in &events {
            bob.handle_event(e);
        }
        bob.handle_timeout();
        if let Some(Notice::Invited(i)) = bob.poll_event() {
            break i;
        }
    };
    let report = bob.shutdown(&mut bob_poll, StdDuration::from_secs(5)).unwrap();
    assert_eq!(report.declined, 1);
    assert_eq!(report.cancelled, 0);
    assert!(report.unacknowledged.is_empty(), "{report:?}");
    assert_eq!(
        bob.poll_event(),
        Some(Notice::IncomingEnded { incoming: invitation.id, outcome: Outcome::Declined })
    );
    assert!(matches!(bob.set_policy(peercollab_mio::Policy::Anyone), Err(Error::Closed)));
    stop.store(true, Ordering::SeqCst);
    let answer = inviter.join().unwrap().expect("alice heard the answer");
    assert_eq!(answer.outcome, Outcome::Declined);
    assert_eq!(answer.reason, SHUTDOWN_REASON);
}

#[test]
fn shutdown_reports_answers_left_unacknowledged_and_cancels_what_is_pending() {
    let mut net = Net::new(2, &[v4()]);
    let bob = net.befriend(0, 1);
    let alice_addr = net.eps[0].local_addrs()[0];
    net.eps[0].start_invite_contact(bob, &Request::new(APP), InviteOptions::default()).unwrap();
    let invitation = net.invited(1);
    net.eps[1].accept(invitation.id).unwrap();
    // Bob also has an invitation of his own pending.
    net.eps[1]
        .start_invite_endpoint(alice_addr, &Request::new(APP), InviteOptions::default())
        .unwrap();

    // Alice does not run while bob shuts down: nobody acknowledges.
    let started = StdInstant::now();
    let report = net.eps[1].shutdown(&mut net.poll, StdDuration::from_millis(300)).unwrap();
    assert!(started.elapsed() < StdDuration::from_secs(2));
    assert_eq!(report.unacknowledged, vec![invitation.id]);
    assert_eq!(report.cancelled, 1);
    assert_eq!(report.declined, 0);
    assert!(report.slots_in_use >= 1);

    // Alice's socket events met meanwhile are handed back, and she still
    // gets bob's answer (and acknowledges it) from them.
    let foreign = net.eps[1].take_foreign_events();
    assert!(!foreign.is_empty());
    for e in &foreign {
        assert!(net.eps[0].handle_event(e));
    }
    net.drain();
    let answer = net.expect(0, "the answer", |n| match n {
        Notice::Responded { answer, .. } => Some(answer.clone()),
        _ => None,
    });
    assert_eq!(answer.outcome, Outcome::Accepted);
    let ended = net.expect(1, "acknowledged", |n| match n {
        Notice::IncomingEnded { outcome, .. } => Some(*outcome),
        _ => None,
    });
    assert_eq!(ended, Outcome::Accepted);
}
