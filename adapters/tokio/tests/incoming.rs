//! The receiving side: the stream of presented invitations, answers,
//! ends and launch information, tokio ↔ tokio over UDP on loopback.

mod common;

use common::{APP, BOUND, next, pair, request, within};
use peercollab_tokio::{
    AgentError, BUSY_RETRY_AFTER, ContactUpdate, Error, InviteOptions, Outcome, Policy, Request,
    Trust,
};

#[tokio::test]
async fn accepted_invitations_keep_their_launch_info_until_released() {
    let mut p = pair(None).await;
    let waiting = tokio::spawn({
        let alice = p.alice.clone();
        let contact = p.bob_contact;
        async move { alice.invite_contact(contact, request(), InviteOptions::default()).await }
    });
    let mut incoming = next(&mut p.bob_in).await;
    let info = incoming.info().clone();
    assert_eq!(
        (info.app_id, info.message.as_str(), &info.data[..]),
        (APP, "join me", &b"port=4000"[..])
    );
    assert_eq!(info.identity(), p.alice.identity());
    assert_eq!(info.contact.as_ref().map(|c| (c.1.as_str(), c.2)), Some(("alice", Trust::Trusted)));
    assert!(incoming.expires_in() > peercollab_tokio::Duration::from_secs(250));
    assert!(
        matches!(incoming.launch_info(), Err(Error::Agent(AgentError::NoLaunchInfo))),
        "no launch information before it is accepted"
    );
    incoming.accept().unwrap();
    assert_eq!(within("the end", incoming.ended()).await.unwrap(), Outcome::Accepted);
    let answer = within("the answer", waiting).await.unwrap().unwrap();
    assert_eq!(answer.outcome, Outcome::Accepted);
    let launch = incoming.launch_info().unwrap();
    assert_eq!(launch, info, "the launch information is what was presented");
    let id = info.id;
    incoming.release().unwrap();
    let gone = p.bob.with_agent(|a, _| a.launch_info(id).map(|_| ()));
    assert_eq!(gone, Err(AgentError::UnknownIncoming), "released");
}

#[tokio::test]
async fn dropping_an_accepted_invitation_releases_its_launch_info() {
    let mut p = pair(None).await;
    let alice = p.alice.clone();
    let contact = p.bob_contact;
    let waiting = tokio::spawn(async move {
        alice.invite_contact(contact, request(), InviteOptions::default()).await
    });
    let mut incoming = next(&mut p.bob_in).await;
    let id = incoming.info().id;
    incoming.accept().unwrap();
    within("the end", incoming.ended()).await.unwrap();
    within("the answer", waiting).await.unwrap().unwrap();
    assert!(p.bob.with_agent(|a, _| a.launch_info(id).is_ok()));
    drop(incoming);
    assert!(p.bob.with_agent(|a, _| a.launch_info(id).is_err()));
}

#[tokio::test]
async fn several_invitations_arrive_in_turn_and_each_gets_its_own_answer() {
    let mut p = pair(None).await;
    let mut waiting = Vec::new();
    for k in 0..3 {
        let alice = p.alice.clone();
        let contact = p.bob_contact;
        let request = Request::new(APP).message(format!("number {k}"));
        waiting.push(tokio::spawn(async move {
            alice.invite_contact(contact, request, InviteOptions::default()).await
        }));
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut incoming = next(&mut p.bob_in).await;
        let message = incoming.info().message.clone();
        match message.as_str() {
            "number 0" => incoming.accept().unwrap(),
            "number 1" => incoming.decline("no").unwrap(),
            _ => incoming.busy(peercollab_tokio::Duration::from_secs(7)).unwrap(),
        }
        seen.push((message, incoming));
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let mut outcomes = Vec::new();
    for w in waiting {
        outcomes.push(within("an answer", w).await.unwrap().unwrap().outcome);
    }
    assert_eq!(
        outcomes,
        [
            Outcome::Accepted,
            Outcome::Declined,
            Outcome::Busy { retry_after: peercollab_tokio::Duration::from_secs(7) }
        ]
    );
    for (_, mut incoming) in seen {
        within("an end", incoming.ended()).await.unwrap();
    }
}

#[tokio::test]
async fn without_anyone_reading_incoming_invitations_are_answered_busy() {
    let p = pair(None).await;
    drop(p.bob_in);
    let answer = p.alice.invite_contact(p.bob_contact, request(), InviteOptions::default());
    let answer = within("the answer", answer).await.unwrap();
    assert_eq!(answer.outcome, Outcome::Busy { retry_after: BUSY_RETRY_AFTER });
}

#[tokio::test]
async fn an_unregistered_application_and_the_policy_refuse_before_presenting() {
    let mut p = pair(None).await;
    let other = Request::new(peercollab_tokio::AppId(*b"not-registered!!"));
    let answer = p.alice.invite_contact(p.bob_contact, other, InviteOptions::default());
    assert_eq!(within("the answer", answer).await.unwrap().outcome, Outcome::NotRegistered);
    // Alice known but no longer trusted, with Bob accepting trusted
    // contacts only: a clear refusal.
    p.bob.set_policy(Policy::TrustedOnly).unwrap();
    let alice = p.bob.contact_by_identity(&p.alice.identity()).unwrap();
    p.bob.update_contact(alice, ContactUpdate::default().trust(Trust::Known)).unwrap();
    let answer = p.alice.invite_contact(p.bob_contact, request(), InviteOptions::default());
    assert_eq!(within("the answer", answer).await.unwrap().outcome, Outcome::NotAccepted);
    assert!(tokio::time::timeout(BOUND / 20, p.bob_in.next()).await.is_err(), "never presented");
}

#[tokio::test]
async fn the_stream_can_be_polled_by_hand_and_everything_crosses_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<peercollab_tokio::Endpoint>();
    send_sync::<peercollab_tokio::Incoming>();
    send_sync::<peercollab_tokio::Invitation>();
    send_sync::<peercollab_tokio::IncomingInvitation>();
    let mut p = pair(None).await;
    let mut invitation = p
        .alice
        .start_invite_contact(p.bob_contact, &[], &request(), InviteOptions::default())
        .unwrap();
    let incoming = within("an invitation", std::future::poll_fn(|cx| p.bob_in.poll_next(cx))).await;
    let mut incoming = incoming.expect("the stream is open");
    incoming.decline("").unwrap();
    assert_eq!(
        within("the answer", invitation.outcome()).await.unwrap().outcome,
        Outcome::Declined
    );
}
