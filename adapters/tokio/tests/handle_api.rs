//! The handle API (Windows' `PeerCollabAsyncInvite*`,
//! `GetInvitationResponse`, `CancelInvitation`, `CloseHandle`) and the
//! waiting calls, tokio ↔ tokio over UDP on loopback.

mod common;

use common::{BOUND, next, pair, request, within};
use peercollab_tokio::{
    AgentError, CancelEffect, CancelReason, Error, InviteOptions, Outcome, Status,
};

#[tokio::test]
async fn changed_reports_ringing_then_the_answer_and_status_polls_each_step() {
    let mut p = pair(None).await;
    let mut invitation = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    assert!(invitation.handle().is_some());
    assert_eq!(invitation.status(), Status::Pending { ringing: false }, "polled before any reply");
    let mut incoming = next(&mut p.bob_in).await;
    let rung = within("ringing", invitation.changed()).await.unwrap();
    assert_eq!(rung, Status::Pending { ringing: true });
    assert_eq!(invitation.status(), Status::Pending { ringing: true }, "polled while ringing");
    incoming.decline("later").unwrap();
    let Status::Answered(answer) = within("the answer", invitation.changed()).await.unwrap() else {
        panic!("the second change is the answer")
    };
    assert_eq!((answer.outcome, answer.reason.as_str()), (Outcome::Declined, "later"));
    assert_eq!(invitation.status(), Status::Answered(answer.clone()), "polled once answered");
    assert_eq!(within("the outcome", invitation.outcome()).await.unwrap(), answer);
    assert_eq!(within("the end", incoming.ended()).await.unwrap(), Outcome::Declined);
}

#[tokio::test]
async fn closing_a_ringing_handle_by_dropping_it_cancels_it_at_the_invitee() {
    let mut p = pair(None).await;
    let mut invitation = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    let mut incoming = next(&mut p.bob_in).await;
    within("ringing", invitation.changed()).await.unwrap();
    drop(invitation);
    let ended = within("the invitee's end", incoming.ended()).await.unwrap();
    assert_eq!(ended, Outcome::Cancelled(CancelReason::ByUser));
    assert!(incoming.accept().is_err(), "a cancelled invitation can no longer be answered");
}

#[tokio::test]
async fn cancel_says_what_it_did_at_each_stage() {
    let mut p = pair(None).await;
    // Before the Invite went out (the handshake is not even answered):
    // abandoned, the invitee never sees it.
    let mut early = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    assert_eq!(early.cancel().unwrap(), CancelEffect::Abandoned);
    let answer = within("the outcome", early.outcome()).await.unwrap();
    assert_eq!(answer.outcome, Outcome::Cancelled(CancelReason::ByUser));
    drop(early);
    // Answered: no effect.
    let mut late = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    let mut incoming = next(&mut p.bob_in).await;
    incoming.accept().unwrap();
    let answer = within("the outcome", late.outcome()).await.unwrap();
    assert_eq!(answer.outcome, Outcome::Accepted);
    assert_eq!(late.cancel().unwrap(), CancelEffect::NoEffect);
    assert_eq!(within("the invitee's end", incoming.ended()).await.unwrap(), Outcome::Accepted);
    // The abandoned one never reached Bob: nothing else is queued.
    assert!(tokio::time::timeout(BOUND / 20, p.bob_in.next()).await.is_err());
}

#[tokio::test]
async fn a_discarded_handle_runs_to_its_end_unobserved() {
    let mut p = pair(None).await;
    let options = InviteOptions::default().discard_handle();
    let mut invitation =
        p.alice.start_invite_contact(p.bob_contact, &[], &request(), options).unwrap();
    assert_eq!(invitation.handle(), None);
    assert!(matches!(invitation.outcome().await, Err(Error::Agent(AgentError::UnknownHandle))));
    assert!(matches!(invitation.cancel(), Err(Error::Agent(AgentError::UnknownHandle))));
    drop(invitation); // closes nothing: the invitation goes on
    let mut incoming = next(&mut p.bob_in).await;
    incoming.accept().unwrap();
    assert_eq!(within("the invitee's end", incoming.ended()).await.unwrap(), Outcome::Accepted);
}

#[tokio::test]
async fn the_waiting_call_keeps_its_handle_even_when_told_to_discard_it() {
    let mut p = pair(None).await;
    tokio::spawn(async move {
        let mut incoming = next(&mut p.bob_in).await;
        incoming.accept().unwrap();
        let _ = incoming.ended().await;
    });
    let answer =
        p.alice.invite_contact(p.bob_contact, request(), InviteOptions::default().discard_handle());
    let answer = within("the answer", answer).await.unwrap();
    assert_eq!(answer.outcome, Outcome::Accepted);
    assert_eq!(answer.contact, Some(p.bob_contact));
}

#[tokio::test]
async fn dropping_a_waiting_endpoint_call_cancels_it_at_the_invitee() {
    let mut p = pair(None).await;
    let address = p.bob.local_addrs()[0];
    let waiting = p.alice.invite_endpoint(address, request(), InviteOptions::default());
    let mut incoming = {
        tokio::pin!(waiting);
        tokio::select! {
            _ = &mut waiting => panic!("answered without an answer"),
            inv = next(&mut p.bob_in) => inv,
        }
    };
    let ended = within("the invitee's end", incoming.ended()).await.unwrap();
    assert_eq!(ended, Outcome::Cancelled(CancelReason::ByUser));
}

#[tokio::test]
async fn an_endpoint_invitation_expecting_another_identity_fails_with_a_mismatch() {
    let mut p = pair(None).await;
    let address = p.bob.local_addrs()[0];
    let options = InviteOptions::default().expect(p.alice.identity());
    let answer =
        within("the answer", p.alice.invite_endpoint(address, request(), options)).await.unwrap();
    assert!(matches!(answer.outcome, Outcome::Failed(_)), "{answer:?}");
    assert!(tokio::time::timeout(BOUND / 20, p.bob_in.next()).await.is_err(), "never presented");
}

#[tokio::test]
async fn inviting_a_family_no_socket_carries_is_an_error_naming_it() {
    let p = pair(None).await;
    let v6 = "[2001:db8::1]:4000".parse().unwrap();
    match p.alice.start_invite_endpoint(v6, &request(), InviteOptions::default()) {
        Err(Error::Io(e)) => assert!(e.to_string().contains("IPv6"), "{e}"),
        other => panic!("expected a routing error, got {other:?}"),
    }
}
