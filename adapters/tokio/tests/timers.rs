//! Long timers on a shared `ManualClock`, moved in steps while real UDP
//! sockets on loopback carry the datagrams: five-minute expiries and
//! give-ups run in well under a second of real time.

mod common;

use std::time::{Duration as StdDuration, Instant as StdInstant};

use common::{endpoint, next, pair, request, run_clock, within};
use peercollab_tokio::{Duration, InviteOptions, ManualClock, Outcome, Status};

#[tokio::test]
async fn a_five_minute_expiry_passes_in_virtual_time_and_ends_expired_at_both_ends() {
    let clock = ManualClock::new();
    let mut p = pair(Some(&clock)).await;
    let real = StdInstant::now();
    let mut invitation = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    let mut incoming = next(&mut p.bob_in).await;
    assert_eq!(incoming.expires_in(), Duration::from_secs(300), "the default expiry");
    let start = p.alice.now();
    run_clock(&clock, Duration::from_secs(5), Duration::from_secs(400), || {
        matches!(invitation.status(), Status::Answered(_))
    })
    .await;
    let answer = within("the outcome", invitation.outcome()).await.unwrap();
    assert_eq!(answer.outcome, Outcome::Expired);
    let took = p.alice.now().saturating_duration_since(start);
    assert!(
        (Duration::from_secs(300)..=Duration::from_secs(310)).contains(&took),
        "expired after {took:?} of virtual time"
    );
    assert_eq!(within("the invitee's end", incoming.ended()).await.unwrap(), Outcome::Expired);
    assert!(incoming.accept().is_err(), "too late to answer");
    assert!(real.elapsed() < StdDuration::from_secs(5), "no real waiting: {:?}", real.elapsed());
}

#[tokio::test]
async fn a_longer_expiry_is_clamped_to_the_invitees_maximum() {
    let clock = ManualClock::new();
    let mut p = pair(Some(&clock)).await;
    let options = InviteOptions::default().expires_in(Duration::from_secs(3_600));
    let mut invitation =
        p.alice.start_invite_contact(p.bob_contact, &[], &request(), options).unwrap();
    let mut incoming = next(&mut p.bob_in).await;
    assert_eq!(incoming.expires_in(), Duration::from_secs(300));
    let start = p.alice.now();
    run_clock(&clock, Duration::from_secs(5), Duration::from_secs(400), || {
        matches!(invitation.status(), Status::Answered(_))
    })
    .await;
    assert_eq!(
        within("the outcome", invitation.outcome()).await.unwrap().outcome,
        Outcome::Expired
    );
    assert!(p.alice.now().saturating_duration_since(start) <= Duration::from_secs(310));
    assert_eq!(within("the invitee's end", incoming.ended()).await.unwrap(), Outcome::Expired);
}

#[tokio::test]
async fn an_answer_just_before_the_expiry_still_counts() {
    let clock = ManualClock::new();
    let mut p = pair(Some(&clock)).await;
    let mut invitation = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    let mut incoming = next(&mut p.bob_in).await;
    // Four minutes and fifty seconds of ringing, in steps.
    run_clock(&clock, Duration::from_secs(5), Duration::from_secs(290), || false).await;
    assert_eq!(invitation.status(), Status::Pending { ringing: true }, "still ringing");
    incoming.accept().unwrap();
    assert_eq!(
        within("the outcome", invitation.outcome()).await.unwrap().outcome,
        Outcome::Accepted
    );
    assert_eq!(within("the invitee's end", incoming.ended()).await.unwrap(), Outcome::Accepted);
}

#[tokio::test]
async fn nothing_listening_gives_unreachable_after_the_handshake_timeout() {
    let clock = ManualClock::new();
    let (alice, _) = endpoint(Some(&clock)).await;
    // A port with nothing bound: datagrams are refused or vanish.
    let address = {
        let probe = std::net::UdpSocket::bind(common::v4()).unwrap();
        probe.local_addr().unwrap()
    };
    let start = alice.now();
    let mut invitation =
        alice.start_invite_endpoint(address, &request(), InviteOptions::default()).unwrap();
    run_clock(&clock, Duration::from_secs(1), Duration::from_secs(120), || {
        matches!(invitation.status(), Status::Answered(_))
    })
    .await;
    let answer = within("the outcome", invitation.outcome()).await.unwrap();
    assert_eq!(answer.outcome, Outcome::Unreachable);
    assert_eq!(answer.identity(), None, "nobody answered");
    let took = alice.now().saturating_duration_since(start);
    assert!(took >= Duration::from_secs(32) && took <= Duration::from_secs(40), "{took:?}");
}
