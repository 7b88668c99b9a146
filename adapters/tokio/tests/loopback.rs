//! peercollab-tokio over real UDP sockets on loopback: tokio ↔ tokio.
//! Long timers run on a shared `ManualClock`, advanced in steps while the
//! sockets carry the datagrams; every wait is bounded so a bug fails
//! instead of hanging.

mod common;

use std::time::Duration as StdDuration;

use common::{APP, BOUND, endpoint, next, request, run_clock, v4 as loopback};
use peercollab_tokio::{
    CancelReason, ContactId, Duration, Endpoint, EndpointId, Error, Incoming, InviteOptions,
    ManualClock, Outcome, SHUTDOWN_REASON, Status, generate_identity,
};

/// Alice and Bob, each the other's trusted contact; Bob has APP.
/// Returns Bob as Alice's contact.
async fn pair(clock: Option<&ManualClock>) -> (Endpoint, Endpoint, Incoming, ContactId) {
    let p = common::pair(clock).await;
    (p.alice, p.bob, p.bob_in, p.bob_contact)
}

#[tokio::test]
async fn a_contact_invitation_accepted_ends_accepted_at_both_ends_with_launch_info() {
    let (alice, bob, mut bob_in, contact) = pair(None).await;
    let invitee = tokio::spawn(async move {
        let mut inv = next(&mut bob_in).await;
        assert_eq!(inv.info().message, "join me");
        assert_eq!(inv.info().contact.as_ref().map(|c| c.1.as_str()), Some("alice"));
        inv.accept().unwrap();
        let outcome = tokio::time::timeout(BOUND, inv.ended()).await.unwrap().unwrap();
        (outcome, inv.launch_info().unwrap())
    });
    let answer = tokio::time::timeout(
        BOUND,
        alice.invite_contact(contact, request(), InviteOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(answer.outcome, Outcome::Accepted);
    assert_eq!(answer.identity(), Some(bob.identity()));
    let (outcome, launch) = invitee.await.unwrap();
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(&launch.data[..], b"port=4000");
    assert_eq!(launch.identity(), alice.identity());
}

#[tokio::test]
async fn declined_and_busy_answers_carry_their_reason_and_retry_after() {
    let (alice, _bob, mut bob_in, contact) = pair(None).await;
    let invitee = tokio::spawn(async move {
        next(&mut bob_in).await.decline("not now").unwrap();
        next(&mut bob_in).await.busy(Duration::from_secs(42)).unwrap();
        bob_in
    });
    let declined = alice.invite_contact(contact, request(), InviteOptions::default());
    let declined = tokio::time::timeout(BOUND, declined).await.unwrap().unwrap();
    assert_eq!((declined.outcome, declined.reason.as_str()), (Outcome::Declined, "not now"));
    let busy = alice.invite_contact(contact, request(), InviteOptions::default());
    let busy = tokio::time::timeout(BOUND, busy).await.unwrap().unwrap();
    assert_eq!(busy.outcome, Outcome::Busy { retry_after: Duration::from_secs(42) });
    invitee.await.unwrap();
}

#[tokio::test]
async fn an_endpoint_invitation_names_the_authenticated_answerer() {
    let (stranger, _) = endpoint(None).await;
    let (bob, mut bob_in) = endpoint(None).await;
    bob.register_application(APP, "test", None).unwrap();
    let address = bob.local_addrs()[0];
    tokio::spawn(async move { next(&mut bob_in).await.accept() });
    let answer = stranger.invite_endpoint(address, request(), InviteOptions::default());
    let answer = tokio::time::timeout(BOUND, answer).await.unwrap().unwrap();
    assert_eq!(answer.outcome, Outcome::Accepted);
    assert_eq!(answer.identity(), Some(bob.identity()));
    assert_eq!(answer.contact, None, "a stranger");
}

#[tokio::test]
async fn the_handle_rings_then_answers_and_polling_shows_each_step() {
    let (alice, _bob, mut bob_in, contact) = pair(None).await;
    let mut invitation =
        alice.start_invite_contact(contact, &[], &request(), InviteOptions::default()).unwrap();
    assert_eq!(invitation.status(), Status::Pending { ringing: false });
    let mut incoming = next(&mut bob_in).await;
    let rung = tokio::time::timeout(BOUND, invitation.changed()).await.unwrap().unwrap();
    assert_eq!(rung, Status::Pending { ringing: true });
    incoming.accept().unwrap();
    let answer = tokio::time::timeout(BOUND, invitation.outcome()).await.unwrap().unwrap();
    assert_eq!(answer.outcome, Outcome::Accepted);
    assert!(matches!(invitation.status(), Status::Answered(a) if a.outcome == Outcome::Accepted));
}

#[tokio::test]
async fn cancelling_a_ringing_invitation_ends_it_cancelled_at_both_ends() {
    let (alice, _bob, mut bob_in, contact) = pair(None).await;
    let mut invitation =
        alice.start_invite_contact(contact, &[], &request(), InviteOptions::default()).unwrap();
    let mut incoming = next(&mut bob_in).await;
    tokio::time::timeout(BOUND, invitation.changed()).await.unwrap().unwrap();
    invitation.cancel().unwrap();
    let answer = tokio::time::timeout(BOUND, invitation.outcome()).await.unwrap().unwrap();
    assert_eq!(answer.outcome, Outcome::Cancelled(CancelReason::ByUser));
    let ended = tokio::time::timeout(BOUND, incoming.ended()).await.unwrap().unwrap();
    assert_eq!(ended, Outcome::Cancelled(CancelReason::ByUser));
}

#[tokio::test]
async fn dropping_a_waiting_call_cancels_its_invitation() {
    let (alice, _bob, mut bob_in, contact) = pair(None).await;
    let waiting = alice.invite_contact(contact, request(), InviteOptions::default());
    let mut incoming = {
        tokio::pin!(waiting);
        tokio::select! {
            _ = &mut waiting => panic!("answered without an answer"),
            inv = next(&mut bob_in) => inv,
        }
        // `waiting` is dropped here, unanswered.
    };
    let ended = tokio::time::timeout(BOUND, incoming.ended()).await.unwrap().unwrap();
    assert_eq!(ended, Outcome::Cancelled(CancelReason::ByUser));
}

#[tokio::test]
async fn an_unanswered_invitation_expires_at_both_ends_on_the_manual_clock() {
    let clock = ManualClock::new();
    let (alice, _bob, mut bob_in, contact) = pair(Some(&clock)).await;
    let options = InviteOptions::default();
    let mut invitation = alice.start_invite_contact(contact, &[], &request(), options).unwrap();
    let mut incoming = next(&mut bob_in).await;
    run_clock(&clock, Duration::from_secs(2), Duration::from_secs(400), || {
        matches!(invitation.status(), Status::Answered(_))
    })
    .await;
    let answer = tokio::time::timeout(BOUND, invitation.outcome()).await.unwrap().unwrap();
    assert_eq!(answer.outcome, Outcome::Expired);
    let ended = tokio::time::timeout(BOUND, incoming.ended()).await.unwrap().unwrap();
    assert_eq!(ended, Outcome::Expired);
}

#[tokio::test]
async fn a_peer_that_never_answers_is_unreachable_on_the_manual_clock() {
    let clock = ManualClock::new();
    let (alice, _) = endpoint(Some(&clock)).await;
    // A bound socket nobody reads: datagrams vanish.
    let silent = std::net::UdpSocket::bind(loopback()).unwrap();
    let address = silent.local_addr().unwrap();
    let mut invitation =
        alice.start_invite_endpoint(address, &request(), InviteOptions::default()).unwrap();
    run_clock(&clock, Duration::from_secs(1), Duration::from_secs(120), || {
        matches!(invitation.status(), Status::Answered(_))
    })
    .await;
    let answer = tokio::time::timeout(BOUND, invitation.outcome()).await.unwrap().unwrap();
    assert_eq!(answer.outcome, Outcome::Unreachable);
}

#[tokio::test]
async fn a_port_already_in_use_is_a_bind_error_naming_it() {
    let taken = std::net::UdpSocket::bind(loopback()).unwrap();
    let address = taken.local_addr().unwrap();
    let result =
        Endpoint::builder(generate_identity(EndpointId(1)).unwrap()).bind(&[address]).await;
    match result {
        Err(Error::Bind { address: a, source }) => {
            assert_eq!(a, address);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
            assert!(Error::Bind { address: a, source }.to_string().contains(&address.to_string()));
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_declines_what_is_unanswered_and_waits_for_the_acknowledgement() {
    let (alice, bob, mut bob_in, contact) = pair(None).await;
    let waiting = tokio::spawn({
        let alice = alice.clone();
        async move { alice.invite_contact(contact, request(), InviteOptions::default()).await }
    });
    let _unanswered = next(&mut bob_in).await;
    let report = bob.shutdown(StdDuration::from_secs(5)).await;
    assert_eq!((report.declined, report.unacknowledged), (1, 0), "{report:?}");
    let answer = tokio::time::timeout(BOUND, waiting).await.unwrap().unwrap().unwrap();
    assert_eq!((answer.outcome, answer.reason.as_str()), (Outcome::Declined, SHUTDOWN_REASON));
    assert!(tokio::time::timeout(BOUND, bob_in.next()).await.unwrap().is_none(), "the stream ends");
    assert!(matches!(bob.set_policy(peercollab_tokio::Policy::Anyone), Err(Error::Closed)));
}
