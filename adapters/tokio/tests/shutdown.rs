//! Graceful shutdown with invitations in flight, each case of the crate
//! documentation, over real UDP sockets on loopback.

mod common;

use std::time::{Duration as StdDuration, Instant as StdInstant};

use common::{BOUND, next, pair, request, within};
use peercollab_tokio::{
    CancelReason, ContactCard, Error, InviteOptions, Outcome, Policy, SHUTDOWN_REASON, Status,
    Trust,
};

#[tokio::test]
async fn shutdown_declines_an_unanswered_invitation_and_waits_for_its_acknowledgement() {
    let mut p = pair(None).await;
    let waiting = tokio::spawn({
        let alice = p.alice.clone();
        let contact = p.bob_contact;
        async move { alice.invite_contact(contact, request(), InviteOptions::default()).await }
    });
    let mut unanswered = next(&mut p.bob_in).await;
    let report = within("the shutdown", p.bob.shutdown(BOUND)).await;
    assert_eq!(
        (report.declined, report.unacknowledged, report.timed_out),
        (1, 0, false),
        "{report:?}"
    );
    let answer = within("the answer", waiting).await.unwrap().unwrap();
    assert_eq!((answer.outcome, answer.reason.as_str()), (Outcome::Declined, SHUTDOWN_REASON));
    assert_eq!(within("its end", unanswered.ended()).await.unwrap(), Outcome::Declined);
    assert!(within("the stream's end", p.bob_in.next()).await.is_none());
}

#[tokio::test]
async fn shutdown_cancels_a_pending_outgoing_invitation_at_both_ends() {
    let mut p = pair(None).await;
    let mut invitation = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    let mut incoming = next(&mut p.bob_in).await;
    within("ringing", invitation.changed()).await.unwrap();
    let report = within("the shutdown", p.alice.shutdown(BOUND)).await;
    assert_eq!((report.cancelled, report.timed_out), (1, false), "{report:?}");
    let answer = within("the outcome", invitation.outcome()).await.unwrap();
    assert_eq!(answer.outcome, Outcome::Cancelled(CancelReason::ByUser));
    assert_eq!(
        within("the invitee's end", incoming.ended()).await.unwrap(),
        Outcome::Cancelled(CancelReason::ByUser),
        "the cancel reached the invitee before the endpoint stopped"
    );
}

#[tokio::test]
async fn an_accept_given_just_before_shutdown_is_acknowledged_and_counts_at_both_ends() {
    let mut p = pair(None).await;
    let waiting = tokio::spawn({
        let alice = p.alice.clone();
        let contact = p.bob_contact;
        async move { alice.invite_contact(contact, request(), InviteOptions::default()).await }
    });
    let mut incoming = next(&mut p.bob_in).await;
    incoming.accept().unwrap();
    let report = within("the shutdown", p.bob.shutdown(BOUND)).await;
    assert_eq!(
        (report.declined, report.unacknowledged, report.timed_out),
        (0, 0, false),
        "{report:?}"
    );
    assert_eq!(within("the answer", waiting).await.unwrap().unwrap().outcome, Outcome::Accepted);
    assert_eq!(within("its end", incoming.ended()).await.unwrap(), Outcome::Accepted);
    assert!(incoming.launch_info().is_ok(), "launch information outlives the shutdown");
}

/// An inviter on a runtime of its own, on a thread: it invites `bob`,
/// runs until told `freeze`, then stops being driven — its sockets stay
/// open but nothing reads them, as if the machine hung.
fn frozen_inviter(
    bob: ContactCard,
    freeze: tokio::sync::oneshot::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let held = runtime.block_on(async move {
            let (alice, incoming) = common::endpoint(None).await;
            let contact = alice.add_contact(&bob, Trust::Trusted).unwrap();
            let invitation =
                alice.start_invite_contact(contact, &[], &request(), InviteOptions::default());
            let _ = freeze.await;
            (alice, incoming, invitation)
        });
        // Not driven any more: frozen. Held until the thread ends.
        std::thread::sleep(StdDuration::from_millis(500));
        drop(held);
    })
}

#[tokio::test]
async fn an_answer_nobody_acknowledges_is_reported_when_the_time_runs_out() {
    let (bob, mut bob_in) = common::endpoint(None).await;
    bob.register_application(common::APP, "test", None).unwrap();
    let (freeze, frozen) = tokio::sync::oneshot::channel();
    let inviter = frozen_inviter(bob.my_card("bob", &[]).unwrap(), frozen);
    let mut incoming = next(&mut bob_in).await;
    freeze.send(()).unwrap();
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    incoming.accept().unwrap();
    let started = StdInstant::now();
    let report = bob.shutdown(StdDuration::from_millis(300)).await;
    assert!(started.elapsed() < StdDuration::from_secs(2), "bounded by the time given");
    assert_eq!((report.unacknowledged, report.timed_out), (1, true), "{report:?}");
    assert!(matches!(within("its end", incoming.ended()).await, Err(Error::Closed)));
    tokio::task::spawn_blocking(move || inviter.join()).await.unwrap().unwrap();
}

#[tokio::test]
async fn after_shutdown_the_ports_are_free_and_what_would_send_is_refused() {
    let mut p = pair(None).await;
    let address = p.bob.local_addrs()[0];
    let report = within("the shutdown", p.bob.shutdown(BOUND)).await;
    assert_eq!(report, Default::default(), "nothing was in flight");
    assert!(p.bob.is_shut_down());
    assert!(std::net::UdpSocket::bind(address).is_ok(), "the socket is closed");
    assert!(within("the stream's end", p.bob_in.next()).await.is_none());
    assert!(matches!(p.bob.set_policy(Policy::Anyone), Err(Error::Closed)));
    let invite =
        p.bob.start_invite_endpoint(p.alice.local_addrs()[0], &request(), InviteOptions::default());
    assert!(matches!(invite, Err(Error::Closed)));
    assert_eq!(p.bob.with_agent(|a, _| a.policy()), Policy::Nobody, "getters still work");
    // A second shutdown is harmless.
    assert_eq!(within("again", p.bob.shutdown(BOUND)).await, Default::default());
    // Alice's invitation to the closed endpoint is never answered.
    let invitation = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    assert_eq!(invitation.status(), Status::Pending { ringing: false });
}

#[tokio::test]
async fn waiting_calls_and_handles_started_before_shutdown_all_resolve() {
    let p = pair(None).await;
    // Bob never reads his stream: Alice's invitations ring unanswered.
    let mut handle = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    let waiting = tokio::spawn({
        let alice = p.alice.clone();
        let contact = p.bob_contact;
        async move { alice.invite_contact(contact, request(), InviteOptions::default()).await }
    });
    within("ringing", handle.changed()).await.unwrap();
    let report = within("the shutdown", p.alice.shutdown(BOUND)).await;
    assert_eq!(report.cancelled, 2, "{report:?}");
    let cancelled = Outcome::Cancelled(CancelReason::ByUser);
    assert_eq!(within("the handle", handle.outcome()).await.unwrap().outcome, cancelled);
    assert_eq!(within("the waiting call", waiting).await.unwrap().unwrap().outcome, cancelled);
    drop(p.bob_in);
}
