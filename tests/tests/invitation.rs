//! The invitation protocol between parties over the virtual network: one
//! test per message and rule of `spec/invitation.md`.

use peercollab_core::HashDrbg;
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::message::{Cancel, Final, InviteFragment};
use peercollab_core::invite::{
    Admission, Answer, AppId, CancelEffect, CancelReason, DataPool, Dropped, EXPIRY_GRACE,
    FailureCause, InvitationEvent, InviteError, LINGER, LIVENESS_TIMEOUT, MAX_APP_DATA,
    POOL_BUSY_RETRY_AFTER, RINGING_INTERVAL, State,
};
use peercollab_core::invite::{FRAGMENT_CHUNK, FinalCode, InviteId, Message};
use peercollab_core::invite::{Outcome, table::InviterState};
use peercollab_core::session::{PinnedPeer, Session, StatementForm};
use peercollab_core::{Duration, Instant};
use peercollab_tests::party::{Command, OfferSpec, Party, Reaction};
use peercollab_tests::{Faults, Network, NodeId, SessionPeer, TraceEntry};

const APP: AppId = AppId([7; 16]);
const MINUTE: u64 = 60_000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Two parties that hold each other as contacts, each with `buffers` body
/// buffers.
fn pair(seed: u64, faults: Faults, buffers: usize) -> (Network, NodeId, NodeId) {
    let mut net = Network::new(seed, faults);
    let a = net.add(Box::new(Party::new(seed * 16 + 1, buffers)));
    let b = net.add(Box::new(Party::new(seed * 16 + 2, buffers)));
    let a_cert = *net.node::<Party>(a).local.certificate();
    let b_cert = *net.node::<Party>(b).local.certificate();
    net.node_mut::<Party>(a).add_contact(b_cert);
    net.node_mut::<Party>(b).add_contact(a_cert);
    (net, a, b)
}

fn invite(net: &mut Network, from: NodeId, to: NodeId, offer: &OfferSpec) -> usize {
    let now = net.now;
    let cert = *net.node::<Party>(to).local.certificate();
    net.node_mut::<Party>(from).invite_contact(now, to, cert, offer).expect("invite")
}

fn react(net: &mut Network, node: NodeId, reaction: Reaction) {
    net.node_mut::<Party>(node).reaction = reaction;
}

fn answer_after(after: Duration, answer: Answer, reason: &str) -> Reaction {
    Reaction::Answer { after, answer, reason: reason.into() }
}

/// Runs until nothing is left to do (every invitation closed).
fn settle(net: &mut Network) {
    net.run(1_000_000, at(60 * MINUTE), |_| false).expect("no livelock");
}

fn run_until(net: &mut Network, t: Instant) {
    net.flush();
    net.run(1_000_000, at(60 * MINUTE), |n| n.next_event_time().is_none_or(|e| e > t))
        .expect("no livelock");
    net.now = net.now.max(t);
}

fn slot(net: &Network, node: NodeId, i: usize) -> &peercollab_tests::party::Slot {
    &net.node::<Party>(node).slots[i]
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Both sides ended exactly once with `outcome`, and everything closed.
fn assert_both(net: &Network, a: NodeId, b: NodeId, outcome: Outcome) {
    let inviter = slot(net, a, 0);
    let invitee = slot(net, b, 0);
    assert_eq!(inviter.outcome(), Some(outcome), "inviter events {:?}", inviter.events);
    assert_eq!(
        invitee.outcome(),
        Some(outcome),
        "invitee events {:?}, dropped {:?}",
        invitee.events,
        invitee.dropped
    );
    assert_eq!((inviter.outcomes(), invitee.outcomes()), (1, 1));
    assert!(inviter.invitation.is_closed() && invitee.invitation.is_closed());
}

#[test]
fn an_accepted_contact_invitation_ends_accepted_on_both_sides() {
    let (mut net, a, b) = pair(1, Faults::clean(20), 2);
    react(&mut net, b, answer_after(secs(1), Answer::Accept, ""));
    let offer = OfferSpec { data: body(3000, 1), ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Accepted);
    let invitee = slot(&net, b, 0);
    assert_eq!(invitee.count(InvitationEvent::Invited), 1);
    assert_eq!(invitee.presented, Some((offer.message.clone(), offer.data.clone())));
    assert_eq!(invitee.invitation.app_id(), APP);
    assert_eq!(slot(&net, a, 0).count(InvitationEvent::Ringing), 1);
}

#[test]
fn an_accepted_endpoint_invitation_ends_accepted_on_both_sides() {
    let (mut net, a, b) = pair(2, Faults::clean(20), 2);
    let b_id = net.node::<Party>(b).local.identity();
    let offer = OfferSpec { data: body(100, 2), ..OfferSpec::simple(APP) };
    net.node_mut::<Party>(a).invite_endpoint(Instant::ZERO, b, Some(b_id), &offer).unwrap();
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Accepted);
    assert_eq!(slot(&net, b, 0).presented.as_ref().map(|p| &p.1), Some(&offer.data));
}

#[test]
fn an_endpoint_that_proves_another_identity_fails_with_identity_mismatch() {
    let (mut net, a, b) = pair(3, Faults::clean(20), 2);
    let someone_else = Party::new(999, 0).local.identity();
    let offer = OfferSpec::simple(APP);
    net.node_mut::<Party>(a).invite_endpoint(Instant::ZERO, b, Some(someone_else), &offer).unwrap();
    settle(&mut net);
    let inviter = slot(&net, a, 0);
    assert_eq!(inviter.outcome(), Some(Outcome::Failed(FailureCause::IdentityMismatch)));
    // The invitee never sees an invitation.
    assert!(net.node::<Party>(b).slots.iter().all(|s| s.count(InvitationEvent::Invited) == 0));
}

#[test]
fn ringing_repeats_every_25_seconds_while_ringing_and_stops_with_the_answer() {
    let (mut net, a, b) = pair(4, Faults::clean(10), 2);
    react(&mut net, b, answer_after(secs(80), Answer::Accept, ""));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Accepted);
    let invitee = slot(&net, b, 0);
    let presented = invitee.when(InvitationEvent::Invited).unwrap();
    let answered = presented + secs(80);
    // Everything the invitee sent while ringing is a Ringing: at
    // presentation and every RINGING_INTERVAL after.
    let ringing: Vec<u64> = invitee
        .sent
        .iter()
        .filter(|(t, _)| *t >= presented && *t < answered)
        .map(|(t, _)| t.saturating_duration_since(presented).as_millis())
        .collect();
    let interval = RINGING_INTERVAL.as_millis();
    assert_eq!(ringing, vec![0, interval, 2 * interval, 3 * interval]);
    // The inviter reports ringing once, however often it rings.
    assert_eq!(slot(&net, a, 0).count(InvitationEvent::Ringing), 1);
}

#[test]
fn busy_carries_its_retry_after_and_reason_to_the_inviter() {
    let (mut net, a, b) = pair(5, Faults::clean(10), 2);
    react(&mut net, b, answer_after(secs(2), Answer::Busy { retry_after: secs(90) }, "in a call"));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Busy { retry_after: secs(90) });
    assert_eq!(slot(&net, a, 0).invitation.peer_reason(), "in a call");
}

#[test]
fn a_decline_carries_its_reason_text_to_the_inviter() {
    let (mut net, a, b) = pair(6, Faults::clean(10), 2);
    react(&mut net, b, answer_after(secs(1), Answer::Decline, "not today, thanks ✓"));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Declined);
    assert_eq!(slot(&net, a, 0).invitation.peer_reason(), "not today, thanks ✓");
}

#[test]
fn a_reason_text_over_128_bytes_is_refused_and_changes_nothing() {
    let (mut net, a, b) = pair(7, Faults::clean(10), 2);
    react(&mut net, b, Reaction::Ignore);
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    run_until(&mut net, at(5_000));
    let party = net.node_mut::<Party>(b);
    let inv = &mut party.slots[0].invitation;
    let before = inv.state();
    assert_eq!(
        inv.respond(at(5_000), Answer::Decline, &"x".repeat(129)),
        Err(InviteError::ReasonTooLong)
    );
    assert_eq!(inv.state(), before);
}

#[test]
fn only_the_invitee_declares_expired_and_the_inviter_agrees() {
    let (mut net, a, b) = pair(8, Faults::clean(50), 2);
    react(&mut net, b, Reaction::Ignore);
    let offer = OfferSpec { expires_in: secs(20), ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Expired);
    let inviter = slot(&net, a, 0);
    let invitee = slot(&net, b, 0);
    // The inviter learned it from the invitee: after the invitee's own
    // expiry, and before its own give-up (expiry + grace).
    let invitee_expired = invitee.invitation.expires_at();
    let inviter_learned = inviter.when(InvitationEvent::Ended(Outcome::Expired)).unwrap();
    assert!(inviter_learned > invitee_expired);
    assert!(inviter_learned < inviter.invitation.expires_at() + EXPIRY_GRACE);
}

#[test]
fn an_inviter_that_hears_no_final_by_expiry_and_grace_ends_unreachable_never_expired() {
    let (mut net, a, b) = pair(9, Faults::clean(50), 2);
    react(&mut net, b, Reaction::Ignore);
    let offer = OfferSpec { expires_in: secs(20), ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    // Let it ring, then lose everything from the invitee.
    run_until(&mut net, at(2_000));
    assert_eq!(slot(&net, a, 0).count(InvitationEvent::Ringing), 1);
    net.cut.push((b, a));
    settle(&mut net);
    let inviter = slot(&net, a, 0);
    assert_eq!(inviter.outcome(), Some(Outcome::Unreachable));
    let gave_up = inviter.when(InvitationEvent::Ended(Outcome::Unreachable)).unwrap();
    assert_eq!(gave_up, inviter.invitation.expires_at() + EXPIRY_GRACE);
    // The invitee did expire; the inviter's withdrawal (Cancel, GaveUp)
    // reached it while its Final(Expired) went unacknowledged.
    let invitee = slot(&net, b, 0);
    assert_eq!(invitee.outcome(), Some(Outcome::Cancelled(CancelReason::GaveUp)));
}

#[test]
fn the_sender_expiry_is_clamped_by_the_invitee_maximum() {
    let (mut net, a, b) = pair(10, Faults::clean(10), 2);
    net.node_mut::<Party>(b).config.max_expiry = secs(30);
    react(&mut net, b, Reaction::Ignore);
    let offer = OfferSpec { expires_in: secs(600), ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Expired);
    let invitee = slot(&net, b, 0);
    let presented = invitee.when(InvitationEvent::Invited).unwrap();
    assert_eq!(invitee.invitation.expires_at(), presented + secs(30));
}

#[test]
fn a_retransmitted_invite_carries_the_time_remaining_now() {
    let (mut net, a, b) = pair(11, Faults::clean(40), 2);
    react(&mut net, b, Reaction::Ignore);
    let offer = OfferSpec { expires_in: secs(120), ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    // The handshake completes; then the Invite's first transmissions are lost.
    run_until(&mut net, at(100));
    assert!(slot(&net, a, 0).invitation.session().is_established());
    net.cut.push((a, b));
    run_until(&mut net, at(3_000));
    net.cut.clear();
    settle(&mut net);
    let inviter_expiry = slot(&net, a, 0).invitation.expires_at();
    let invitee_expiry = slot(&net, b, 0).invitation.expires_at();
    // The invitee's clock is the inviter's, one one-way delay (40 ms) later:
    // not reset by the retransmission.
    assert_eq!(invitee_expiry, inviter_expiry + Duration::from_millis(40));
    assert_both(&net, a, b, Outcome::Expired);
}

#[test]
fn a_cancel_before_delivery_abandons_silently_and_the_invitee_never_sees_it() {
    let (mut net, a, b) = pair(12, Faults::clean(30), 2);
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    // The initiation is on its way; the Invite is not.
    net.step();
    let now = net.now;
    let party = net.node_mut::<Party>(a);
    let effect = party.slots[0].invitation.cancel(now, CancelReason::ByUser, "", &mut *party.pool);
    assert_eq!(effect, Ok(CancelEffect::Abandoned));
    drain_events(&mut net, a);
    settle(&mut net);
    let inviter = slot(&net, a, 0);
    assert_eq!(inviter.outcome(), Some(Outcome::Cancelled(CancelReason::ByUser)));
    let invitee = net.node::<Party>(b);
    assert!(invitee.slots.iter().all(|s| s.count(InvitationEvent::Invited) == 0));
    // Nothing but the one initiation left the inviter.
    assert_eq!(inviter.sent.len(), 1);
}

/// Polls a party's events into its slots (commands given directly on an
/// invitation bypass the party's scheduler).
fn drain_events(net: &mut Network, node: NodeId) {
    let now = net.now;
    let party = net.node_mut::<Party>(node);
    for s in &mut party.slots {
        while let Some(e) = s.invitation.poll_event() {
            s.events.push((now, e));
        }
    }
}

#[test]
fn a_cancel_while_ringing_tells_the_invitee_which_can_no_longer_answer() {
    let (mut net, a, b) = pair(13, Faults::clean(30), 2);
    react(&mut net, b, answer_after(secs(60), Answer::Accept, ""));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    net.node_mut::<Party>(a)
        .schedule(at(10_000), Command::Cancel { slot: 0, reason: CancelReason::ByUser });
    settle(&mut net);
    assert_eq!(slot(&net, a, 0).command_results, vec![Ok(Some(CancelEffect::Withdrawing))]);
    assert_both(&net, a, b, Outcome::Cancelled(CancelReason::ByUser));
    let invitee = slot(&net, b, 0);
    assert_eq!(invitee.count(InvitationEvent::Invited), 1);
    // Its user's answer at 60 s comes too late.
    assert_eq!(invitee.command_results, vec![Err(InviteError::Ended)]);
}

#[test]
fn a_cancel_answered_elsewhere_reaches_the_invitee_with_its_reason() {
    let (mut net, a, b) = pair(14, Faults::clean(30), 2);
    react(&mut net, b, Reaction::Ignore);
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    net.node_mut::<Party>(a)
        .schedule(at(5_000), Command::Cancel { slot: 0, reason: CancelReason::AnsweredElsewhere });
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Cancelled(CancelReason::AnsweredElsewhere));
}

#[test]
fn a_cancel_after_the_answer_has_no_effect() {
    let (mut net, a, b) = pair(15, Faults::clean(30), 2);
    react(&mut net, b, answer_after(secs(1), Answer::Decline, ""));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    net.node_mut::<Party>(a)
        .schedule(at(10_000), Command::Cancel { slot: 0, reason: CancelReason::ByUser });
    settle(&mut net);
    assert_eq!(slot(&net, a, 0).command_results, vec![Ok(Some(CancelEffect::NoEffect))]);
    assert_both(&net, a, b, Outcome::Declined);
}

#[test]
fn a_cancel_that_crosses_an_accept_wins_on_both_sides() {
    // 200 ms each way: the invitee accepts at T, the inviter cancels at
    // T + 50 ms, before the Accept reaches it.
    let (mut net, a, b) = pair(16, Faults::clean(200), 2);
    react(&mut net, b, answer_after(secs(5), Answer::Accept, ""));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    settle_until_invited(&mut net, b);
    let accept_at = slot(&net, b, 0).when(InvitationEvent::Invited).unwrap() + secs(5);
    net.node_mut::<Party>(a).schedule(
        accept_at + Duration::from_millis(50),
        Command::Cancel { slot: 0, reason: CancelReason::ByUser },
    );
    settle(&mut net);
    assert_eq!(slot(&net, b, 0).command_results, vec![Ok(None)], "the invitee did accept");
    assert_eq!(slot(&net, a, 0).command_results, vec![Ok(Some(CancelEffect::Withdrawing))]);
    assert_both(&net, a, b, Outcome::Cancelled(CancelReason::ByUser));
}

fn settle_until_invited(net: &mut Network, b: NodeId) {
    net.run(1_000_000, at(60 * MINUTE), |n| {
        n.node::<Party>(b).slots.first().is_some_and(|s| s.count(InvitationEvent::Invited) > 0)
    })
    .unwrap();
}

#[test]
fn a_final_is_retransmitted_until_acknowledged_under_loss() {
    let (mut net, a, b) = pair(17, Faults::clean(20), 2);
    react(&mut net, b, answer_after(secs(3), Answer::Accept, ""));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    settle_until_invited(&mut net, b);
    let answer_at = slot(&net, b, 0).when(InvitationEvent::Invited).unwrap() + secs(3);
    // Everything from the invitee is lost for 6 s from its answer on.
    run_until(&mut net, at(answer_at.as_millis() - 1));
    net.cut.push((b, a));
    run_until(&mut net, answer_at + secs(6));
    let during: usize = slot(&net, b, 0).sent.iter().filter(|(t, _)| *t >= answer_at).count();
    // Sent at 0, 0.5, 1.5 and 3.5 s (RETRANSMIT_INITIAL doubling).
    assert_eq!(during, 4);
    assert_eq!(slot(&net, b, 0).invitation.outcome(), None, "no outcome before the Ack");
    net.cut.clear();
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Accepted);
    assert!(slot(&net, b, 0).invitation.stats().retransmissions >= 3);
}

#[test]
fn sixteen_kib_of_data_arrives_whole_in_fragments_under_loss_reordering_and_duplication() {
    let faults =
        Faults { latency_ms: 30, jitter_ms: 80, loss_permille: 200, duplicate_permille: 150 };
    let message: String = "✉".repeat(255);
    assert_eq!(message.len(), 765);
    for seed in 0..8 {
        let (mut net, a, b) = pair(100 + seed, faults, 2);
        let offer = OfferSpec {
            data: body(MAX_APP_DATA, seed as u8),
            message: message.clone(),
            ..OfferSpec::simple(APP)
        };
        invite(&mut net, a, b, &offer);
        settle(&mut net);
        assert_both(&net, a, b, Outcome::Accepted);
        let presented = slot(&net, b, 0).presented.clone().unwrap();
        assert_eq!(presented, (offer.message.clone(), offer.data.clone()), "seed {seed}");
        // Both pools are free again.
        assert_eq!(net.node::<Party>(a).pool.free(), 2);
        assert_eq!(net.node::<Party>(b).pool.free(), 2);
    }
}

#[test]
fn a_duplicate_invite_surfaces_once() {
    let faults =
        Faults { latency_ms: 20, jitter_ms: 40, loss_permille: 0, duplicate_permille: 500 };
    let (mut net, a, b) = pair(18, faults, 2);
    react(&mut net, b, answer_after(secs(10), Answer::Accept, ""));
    let offer = OfferSpec { data: body(5000, 3), ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    run_until(&mut net, at(5_000));
    // Replay every datagram the inviter sent so far, twice.
    let sent: Vec<Vec<u8>> = net
        .trace
        .iter()
        .filter_map(|e| match e {
            TraceEntry::Sent { from, bytes, .. } if *from == a => Some(bytes.clone()),
            _ => None,
        })
        .collect();
    for _ in 0..2 {
        for bytes in &sent {
            net.inject(a, b, bytes);
        }
    }
    settle(&mut net);
    let party = net.node::<Party>(b);
    let invited: usize = party.slots.iter().map(|s| s.count(InvitationEvent::Invited)).sum();
    assert_eq!(invited, 1);
    assert_both(&net, a, b, Outcome::Accepted);
    // The replays were refused by the session's replay window.
    assert!(
        slot(&net, b, 0)
            .dropped
            .iter()
            .any(|d| matches!(d, Dropped::Session(peercollab_core::session::Dropped::Replayed)))
    );
}

#[test]
fn a_full_pool_answers_busy_and_never_drops() {
    // Two inviters, one invitee with a single body buffer.
    let mut net = Network::new(19, Faults::clean(20));
    let b = net.add(Box::new(Party::new(1901, 1)));
    let a1 = net.add(Box::new(Party::new(1902, 1)));
    let a2 = net.add(Box::new(Party::new(1903, 1)));
    let b_cert = *net.node::<Party>(b).local.certificate();
    for a in [a1, a2] {
        let cert = *net.node::<Party>(a).local.certificate();
        net.node_mut::<Party>(b).add_contact(cert);
    }
    react(&mut net, b, Reaction::Ignore);
    let offer = OfferSpec { data: body(2000, 4), expires_in: secs(30), ..OfferSpec::simple(APP) };
    net.node_mut::<Party>(a1).invite_contact(Instant::ZERO, b, b_cert, &offer).unwrap();
    net.node_mut::<Party>(a2).invite_contact(Instant::ZERO, b, b_cert, &offer).unwrap();
    settle(&mut net);
    let outcomes: Vec<Option<Outcome>> =
        [a1, a2].iter().map(|&a| slot(&net, a, 0).outcome()).collect();
    let busy = Outcome::Busy { retry_after: POOL_BUSY_RETRY_AFTER };
    assert!(outcomes.contains(&Some(Outcome::Expired)), "{outcomes:?}");
    assert!(outcomes.contains(&Some(busy)), "{outcomes:?}");
    let invitee = net.node::<Party>(b);
    let invited: usize = invitee.slots.iter().map(|s| s.count(InvitationEvent::Invited)).sum();
    assert_eq!(invited, 1);
    assert!(invitee.slots.iter().all(|s| s.outcomes() == 1));
    assert_eq!(invitee.pool.free(), 1);
}

#[test]
fn an_empty_invitation_needs_no_buffer() {
    let (mut net, a, b) = pair(20, Faults::clean(20), 0);
    let offer = OfferSpec { message: String::new(), ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Accepted);
    assert_eq!(slot(&net, b, 0).presented, Some((String::new(), Vec::new())));
}

#[test]
fn an_inviter_with_no_free_buffer_is_refused_at_once() {
    let (mut net, a, b) = pair(21, Faults::clean(20), 0);
    let cert = *net.node::<Party>(b).local.certificate();
    let r =
        net.node_mut::<Party>(a).invite_contact(Instant::ZERO, b, cert, &OfferSpec::simple(APP));
    assert_eq!(r, Err(InviteError::PoolFull));
    assert!(net.node::<Party>(a).slots.is_empty());
}

#[test]
fn an_unregistered_application_and_an_unaccepted_peer_are_answered_without_presenting() {
    for (admission, outcome) in [
        (Admission::NotRegistered, Outcome::NotRegistered),
        (Admission::NotAccepted, Outcome::NotAccepted),
    ] {
        let (mut net, a, b) = pair(22, Faults::clean(20), 2);
        net.node_mut::<Party>(b).screen = Box::new(move |_, _| admission);
        let offer = OfferSpec { data: body(4000, 5), ..OfferSpec::simple(APP) };
        invite(&mut net, a, b, &offer);
        settle(&mut net);
        assert_both(&net, a, b, outcome);
        assert_eq!(slot(&net, b, 0).count(InvitationEvent::Invited), 0);
        assert_eq!(slot(&net, a, 0).count(InvitationEvent::Ringing), 0);
    }
}

/// The screen is asked twice (invitation.md §3): when the first fragment
/// arrives and when the body is complete. A screen that admits the first
/// fragment and refuses the complete body (its application unregistered,
/// its policy changed meanwhile) refuses the invitation with that verdict's
/// Final: nothing is presented, both sides end with that outcome, and the
/// invitee's buffer goes back to its pool.
#[test]
fn a_verdict_changed_before_the_body_is_complete_refuses_it_unpresented() {
    for (admission, outcome) in [
        (Admission::Present, Outcome::Accepted),
        (Admission::NotRegistered, Outcome::NotRegistered),
        (Admission::NotAccepted, Outcome::NotAccepted),
        (Admission::Busy { retry_after: secs(7) }, Outcome::Busy { retry_after: secs(7) }),
    ] {
        let (mut net, a, b) = pair(22, Faults::clean(20), 2);
        let mut calls = 0;
        net.node_mut::<Party>(b).screen = Box::new(move |_, _| {
            calls += 1;
            assert!(calls <= 2, "asked at most twice");
            if calls == 1 { Admission::Present } else { admission }
        });
        let offer = OfferSpec { data: body(4000, 5), ..OfferSpec::simple(APP) };
        invite(&mut net, a, b, &offer);
        settle(&mut net);
        assert_both(&net, a, b, outcome);
        let presented = usize::from(outcome == Outcome::Accepted);
        assert_eq!(slot(&net, b, 0).count(InvitationEvent::Invited), presented, "{admission:?}");
        if presented == 0 {
            assert_eq!(slot(&net, a, 0).count(InvitationEvent::Ringing), 0, "{admission:?}");
        }
        assert_eq!(net.node::<Party>(b).pool.free(), 2, "{admission:?}: the buffer is back");
    }
}

#[test]
fn an_invitee_that_falls_silent_leaves_the_inviter_unreachable_after_the_liveness_timeout() {
    let (mut net, a, b) = pair(23, Faults::clean(20), 2);
    react(&mut net, b, Reaction::Ignore);
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    run_until(&mut net, at(30_000));
    // The invitee's Ringing stops reaching the inviter.
    net.cut.push((b, a));
    settle(&mut net);
    let inviter = slot(&net, a, 0);
    let last_heard = net
        .trace
        .iter()
        .filter_map(|e| match e {
            TraceEntry::Delivered { at, from, .. } if *from == b => Some(*at),
            _ => None,
        })
        .max()
        .unwrap();
    assert_eq!(
        inviter.when(InvitationEvent::Ended(Outcome::Unreachable)),
        Some(last_heard + LIVENESS_TIMEOUT)
    );
    // Its Cancel (GaveUp) still reaches the invitee, which stops ringing.
    assert_eq!(slot(&net, b, 0).outcome(), Some(Outcome::Cancelled(CancelReason::GaveUp)));
}

#[test]
fn an_invitee_that_never_answers_the_handshake_leaves_the_inviter_unreachable() {
    let (mut net, a, b) = pair(24, Faults::clean(20), 2);
    net.cut.push((a, b));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    settle(&mut net);
    let inviter = slot(&net, a, 0);
    assert_eq!(inviter.outcome(), Some(Outcome::Unreachable));
    assert_eq!(inviter.when(InvitationEvent::Ended(Outcome::Unreachable)), Some(at(32_000)));
    assert!(inviter.invitation.is_closed());
}

#[test]
fn after_its_linger_an_invitation_sends_nothing_and_frees_everything() {
    let faults =
        Faults { latency_ms: 20, jitter_ms: 10, loss_permille: 100, duplicate_permille: 100 };
    let (mut net, a, b) = pair(25, faults, 1);
    let offer = OfferSpec { data: body(9000, 6), ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Accepted);
    for node in [a, b] {
        let s = slot(&net, node, 0);
        let ended =
            s.events.iter().find(|(_, e)| matches!(e, InvitationEvent::Ended(_))).unwrap().0;
        let closed = s.closed_at.unwrap();
        assert!(closed <= ended + LINGER, "closed {closed:?}, ended {ended:?}");
        assert!(s.sent.iter().all(|(t, _)| *t <= closed));
        assert_eq!(s.invitation.poll_timeout(), None);
        assert!(s.invitation.session().is_closed());
        assert_eq!(net.node::<Party>(node).pool.free(), 1);
    }
    // A late datagram to a closed invitation is dropped.
    let last = net
        .trace
        .iter()
        .rev()
        .find_map(|e| match e {
            TraceEntry::Sent { from, bytes, .. } if *from == a => Some(bytes.clone()),
            _ => None,
        })
        .unwrap();
    net.inject(a, b, &last);
    settle(&mut net);
    assert_eq!(slot(&net, b, 0).dropped.last(), Some(&Dropped::Closed));
}

#[test]
fn time_going_backwards_never_panics_and_deadlines_stay_ahead() {
    let (mut net, a, b) = pair(26, Faults::clean(20), 2);
    react(&mut net, b, Reaction::Ignore);
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    run_until(&mut net, at(10_000));
    let party = net.node_mut::<Party>(b);
    let inv = &mut party.slots[0].invitation;
    let mut rng = peercollab_core::HashDrbg::from_u64(1);
    let mut latest = at(10_000);
    for t in [9_000, 0, 5, 10_000, 3, 400_000, 1, u64::MAX / 2, 7] {
        latest = latest.max(at(t));
        inv.handle_timeout(at(t), &mut *party.pool, &mut rng);
        let mut buf = [0u8; peercollab_core::wire::MAX_DATAGRAM];
        while inv.poll_transmit(at(t), &*party.pool, &mut buf).is_some() {}
        let next = inv.poll_timeout();
        assert!(next.is_none_or(|d| d > latest), "at {t}: next {next:?}, latest {latest:?}");
    }
    // At 400 s it expired and sent Final(Expired); nobody acknowledged it,
    // and the jump far ahead ran out its give-up.
    assert!(inv.is_closed());
    assert_eq!(inv.outcome(), Some(Outcome::Unreachable));
}

#[test]
fn five_parties_invite_each_other_at_once_and_every_invitation_ends_once_in_agreement() {
    let faults =
        Faults { latency_ms: 25, jitter_ms: 60, loss_permille: 100, duplicate_permille: 50 };
    let mut net = Network::new(27, faults);
    let nodes: Vec<NodeId> = (0..5).map(|i| net.add(Box::new(Party::new(2700 + i, 4)))).collect();
    let certs: Vec<_> = nodes.iter().map(|&n| *net.node::<Party>(n).local.certificate()).collect();
    for &n in &nodes {
        for (m, cert) in nodes.iter().zip(&certs) {
            if *m != n {
                net.node_mut::<Party>(n).add_contact(*cert);
            }
        }
    }
    let answers = [Answer::Accept, Answer::Decline, Answer::Busy { retry_after: secs(5) }];
    for (i, &n) in nodes.iter().enumerate() {
        react(&mut net, n, answer_after(secs(i as u64 * 3), answers[i % 3], ""));
    }
    // Each party invites the next two, with 2 KiB of data.
    for (i, &n) in nodes.iter().enumerate() {
        for k in 1..=2 {
            let to = nodes[(i + k) % 5];
            let offer = OfferSpec { data: body(2048, i as u8), ..OfferSpec::simple(APP) };
            let cert = certs[(i + k) % 5];
            net.node_mut::<Party>(n).invite_contact(Instant::ZERO, to, cert, &offer).unwrap();
        }
    }
    settle(&mut net);
    let mut pairs = 0;
    for &n in &nodes {
        let party = net.node::<Party>(n);
        assert_eq!(party.slots.len(), 4, "two sent, two received");
        for s in &party.slots {
            assert_eq!(s.outcomes(), 1);
            assert!(s.invitation.is_closed());
        }
        // Each invitation this party sent agrees with its invitee's side.
        for s in party
            .slots
            .iter()
            .filter(|s| s.invitation.party() == peercollab_core::invite::Party::Inviter)
        {
            let theirs = net
                .node::<Party>(s.peer)
                .slots
                .iter()
                .find(|t| t.peer == n && t.invitation.id() == s.invitation.id())
                .expect("the invitee's side");
            assert_eq!(s.outcome(), theirs.outcome());
            let expected = match net.node::<Party>(s.peer).reaction {
                Reaction::Answer { answer: Answer::Accept, .. } => Outcome::Accepted,
                Reaction::Answer { answer: Answer::Decline, .. } => Outcome::Declined,
                _ => Outcome::Busy { retry_after: secs(5) },
            };
            assert_eq!(s.outcome(), Some(expected));
            pairs += 1;
        }
        assert_eq!(party.pool.free(), 4);
    }
    assert_eq!(pairs, 10);
}

#[test]
fn an_inviter_in_lingering_answers_a_late_final_with_its_cancel() {
    // The inviter cancels; the invitee's Accept crossed it and its Final is
    // delivered late, after the inviter already lingers.
    let (mut net, a, b) = pair(28, Faults::clean(10), 2);
    react(&mut net, b, answer_after(secs(5), Answer::Accept, ""));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    settle_until_invited(&mut net, b);
    let presented = slot(&net, b, 0).when(InvitationEvent::Invited).unwrap();
    net.node_mut::<Party>(a).schedule(
        presented + secs(5) + Duration::from_millis(1),
        Command::Cancel { slot: 0, reason: CancelReason::ByUser },
    );
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Cancelled(CancelReason::ByUser));
    let inviter = slot(&net, a, 0);
    assert!(matches!(inviter.invitation.state(), State::Inviter(InviterState::Closed)));
    let _ = DataPool::<0>::new();
}

/// Datagrams and bytes of one accepted invitation on a clean link, per
/// direction: the figures `spec/invitation.md` states.
fn wire_cost(mode_ik: bool, data_len: usize) -> [(usize, usize); 2] {
    let (mut net, a, b) = pair(40, Faults::clean(10), 2);
    react(&mut net, b, answer_after(secs(1), Answer::Accept, ""));
    let offer = OfferSpec { data: body(data_len, 9), ..OfferSpec::simple(APP) };
    if mode_ik {
        invite(&mut net, a, b, &offer);
    } else {
        net.node_mut::<Party>(a).invite_endpoint(Instant::ZERO, b, None, &offer).unwrap();
    }
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Accepted);
    let mut cost = [(0, 0); 2];
    for e in &net.trace {
        if let TraceEntry::Sent { from, bytes, .. } = e {
            let dir = usize::from(*from == b);
            cost[dir].0 += 1;
            cost[dir].1 += bytes.len();
        }
    }
    cost
}

#[test]
fn the_wire_cost_of_one_accepted_invitation_is_as_specified() {
    // (mode IK?, data bytes) → [(datagrams, bytes) inviter→invitee,
    // invitee→inviter], with the 7-byte message "join me", the inviter
    // stating its full certificate, on a clean link. spec/invitation.md
    // gives the same figures.
    let expected = [
        ((true, 0), [(3, 446), (3, 215)]),
        ((true, MAX_APP_DATA), [(18, 17_940), (3, 215)]),
        ((false, 0), [(4, 647), (3, 372)]),
        ((false, MAX_APP_DATA), [(19, 18_141), (3, 372)]),
    ];
    for ((ik, len), want) in expected {
        let got = wire_cost(ik, len);
        let [(da, ba), (db, bb)] = got;
        println!(
            "{} data {len:>5}: inviter {da} datagrams {ba} B, invitee {db} datagrams {bb} B, \
             total {} datagrams {} B",
            if ik { "IK" } else { "XX" },
            da + db,
            ba + bb
        );
        assert_eq!(got, want, "IK {ik}, {len} bytes of data");
    }
}

/// A hand-driven inviter (a bare session) sends `messages` to a party.
fn crafted_inviter(seed: u64, messages: &[Message<'_>]) -> (Network, NodeId, NodeId) {
    let mut net = Network::new(seed, Faults::clean(10));
    let b = net.add(Box::new(Party::new(seed * 16 + 2, 2)));
    let b_cert = *net.node::<Party>(b).local.certificate();
    let local = LocalIdentity::generate(&mut HashDrbg::from_u64(seed), EndpointId(9));
    let a_cert = *local.certificate();
    let mut a = SessionPeer::initiator(local, b, seed, |l, rng| {
        let pinned = PinnedPeer::new(l, b_cert).unwrap();
        Session::initiate_contact(l, &pinned, 5, StatementForm::Certificate, Instant::ZERO, rng)
            .unwrap()
    });
    for m in messages {
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf).unwrap();
        a.outbox.push(buf);
    }
    let a = net.add(Box::new(a));
    net.node_mut::<Party>(b).add_contact(a_cert);
    (net, a, b)
}

fn fragment<'a>(
    id: InviteId,
    message_len: u16,
    data_len: u16,
    index: u8,
    chunk: &'a [u8],
) -> Message<'a> {
    Message::Invite(InviteFragment {
        id,
        app_id: APP,
        remaining_ms: 60_000,
        message_len,
        data_len,
        index,
        chunk,
    })
}

#[test]
fn an_invitation_whose_message_is_not_text_is_refused_as_invalid() {
    let id = InviteId([3; 16]);
    let (mut net, a, b) = crafted_inviter(50, &[fragment(id, 2, 0, 0, &[0xff, 0xfe])]);
    net.run(1_000, at(MINUTE), |n| !n.node::<SessionPeer>(a).inbox.is_empty()).unwrap();
    let inbox = &net.node::<SessionPeer>(a).inbox;
    let Ok(Message::Final(f)) = Message::parse(&inbox[0]) else { panic!("{inbox:?}") };
    assert_eq!((f.id, f.code), (id, FinalCode::Invalid));
    // The crafted inviter acknowledges it.
    let ack = Message::Ack { id, code: FinalCode::Invalid };
    let mut buf = vec![0u8; ack.buffer_len()];
    ack.emit(&mut buf).unwrap();
    net.node_mut::<SessionPeer>(a).outbox.push(buf);
    settle(&mut net);
    let invitee = slot(&net, b, 0);
    assert_eq!(invitee.count(InvitationEvent::Invited), 0);
    assert_eq!(invitee.outcome(), Some(Outcome::Failed(FailureCause::InvalidInvitation)));
}

#[test]
fn fragments_that_disagree_about_the_invitation_are_refused_as_invalid() {
    let id = InviteId([4; 16]);
    let chunk = [0u8; FRAGMENT_CHUNK];
    let (mut net, _, b) =
        crafted_inviter(51, &[fragment(id, 0, 2000, 0, &chunk), fragment(id, 0, 3000, 1, &chunk)]);
    settle(&mut net);
    let invitee = slot(&net, b, 0);
    assert_eq!(invitee.count(InvitationEvent::Invited), 0);
    // Nobody acknowledges its Final(Invalid): it gives up.
    assert_eq!(invitee.outcome(), Some(Outcome::Unreachable));
    assert_eq!(net.node::<Party>(b).pool.free(), 2, "the refused body's buffer is released");
}

#[test]
fn messages_of_the_wrong_role_and_invitation_are_dropped_without_effect() {
    let id = InviteId([5; 16]);
    let (mut net, _, b) = crafted_inviter(
        52,
        &[
            fragment(id, 4, 0, 0, b"ping"),
            Message::Ringing { id },
            Message::Final(Final { id, code: FinalCode::Accepted, retry_after_ms: 0, reason: "" }),
            Message::Cancel(Cancel {
                id: InviteId([6; 16]),
                reason: CancelReason::ByUser,
                text: "",
            }),
            Message::Ack { id, code: FinalCode::Declined },
        ],
    );
    settle(&mut net);
    let invitee = slot(&net, b, 0);
    assert_eq!(
        invitee.dropped,
        vec![
            Dropped::WrongDirection,
            Dropped::WrongDirection,
            Dropped::WrongInvite,
            Dropped::Unexpected
        ]
    );
    assert_eq!(invitee.count(InvitationEvent::Invited), 1);
}

#[test]
fn an_invitation_cancelled_before_it_was_presented_gives_its_buffer_back_at_once() {
    let id = InviteId([7; 16]);
    let chunk = [0u8; FRAGMENT_CHUNK];
    let (mut net, _, b) = crafted_inviter(
        53,
        &[
            fragment(id, 0, 2000, 0, &chunk),
            Message::Cancel(Cancel { id, reason: CancelReason::ByUser, text: "never mind" }),
        ],
    );
    run_until(&mut net, at(1_000));
    let invitee = slot(&net, b, 0);
    assert_eq!(invitee.outcome(), Some(Outcome::Cancelled(CancelReason::ByUser)));
    assert_eq!(invitee.invitation.peer_reason(), "never mind");
    assert_eq!(invitee.count(InvitationEvent::Invited), 0);
    assert!(!invitee.invitation.is_closed(), "still lingering");
    assert_eq!(net.node::<Party>(b).pool.free(), 2, "but its buffer is free already");
}

#[test]
fn two_lost_ringings_cost_the_inviter_a_probe_not_the_invitation() {
    let (mut net, a, b) = pair(54, Faults::clean(10), 2);
    react(&mut net, b, answer_after(secs(70), Answer::Accept, ""));
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    run_until(&mut net, at(20_000));
    // The Ringings at 25 s and 50 s, and the answers to the first probes,
    // are lost.
    net.cut.push((b, a));
    run_until(&mut net, at(55_000));
    net.cut.clear();
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Accepted);
    // Probes are empty transport datagrams (32 bytes), sent after 30 s of
    // silence, then 1, 2, 4 s apart (capped at RETRANSMIT_MAX); the answer
    // to the ninth, after the cut, ends the silence.
    let last_heard = net
        .trace
        .iter()
        .filter_map(|e| match e {
            TraceEntry::Delivered { at, from, .. } if *from == b && at.as_millis() < 20_000 => {
                Some(*at)
            }
            _ => None,
        })
        .max()
        .unwrap();
    let probes: Vec<u64> = slot(&net, a, 0)
        .sent
        .iter()
        .filter(|(_, n)| *n == 32)
        .map(|(t, _)| t.saturating_duration_since(last_heard).as_millis())
        .collect();
    assert_eq!(probes, [30_000, 31_000, 33_000, 37_000, 41_000, 45_000, 49_000, 53_000, 57_000]);
}

#[test]
fn at_the_end_of_time_every_invitation_still_ends_and_closes() {
    // Regression (fuzz/regressions/invitation_machine): at Instant::MAX a
    // re-armed retransmission is due again at once; the give-up must still
    // win.
    let (mut net, a, b) = pair(55, Faults::clean(10), 2);
    react(&mut net, b, Reaction::Ignore);
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    run_until(&mut net, at(5_000));
    let mut rng = HashDrbg::from_u64(2);
    for node in [a, b] {
        let party = net.node_mut::<Party>(node);
        let inv = &mut party.slots[0].invitation;
        for _ in 0..4 {
            inv.handle_timeout(Instant::MAX, &mut *party.pool, &mut rng);
            let mut buf = [0u8; peercollab_core::wire::MAX_DATAGRAM];
            while inv.poll_transmit(Instant::MAX, &*party.pool, &mut buf).is_some() {}
        }
        assert!(inv.is_closed(), "{inv:?}");
        assert!(inv.outcome().is_some());
        assert_eq!(inv.poll_timeout(), None);
    }
}

#[test]
fn an_invitation_that_arrives_already_expired_is_never_presented() {
    let (mut net, a, b) = pair(56, Faults::clean(10), 2);
    let offer = OfferSpec { expires_in: Duration::ZERO, ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Expired);
    assert_eq!(slot(&net, b, 0).count(InvitationEvent::Invited), 0);
}

#[test]
fn an_answer_given_after_the_expiry_is_too_late_even_before_the_timer_ran() {
    let (mut net, a, b) = pair(57, Faults::clean(10), 2);
    react(&mut net, b, Reaction::Ignore);
    let offer = OfferSpec { expires_in: secs(10), ..OfferSpec::simple(APP) };
    invite(&mut net, a, b, &offer);
    run_until(&mut net, at(1_000));
    let party = net.node_mut::<Party>(b);
    let inv = &mut party.slots[0].invitation;
    let late = inv.expires_at() + Duration::from_millis(1);
    assert_eq!(inv.respond(late, Answer::Accept, ""), Err(InviteError::Ended));
    drain_events(&mut net, b);
    settle(&mut net);
    assert_both(&net, a, b, Outcome::Expired);
}

#[test]
fn a_refused_command_does_not_move_the_clock() {
    let (mut net, a, b) = pair(58, Faults::clean(10), 2);
    invite(&mut net, a, b, &OfferSpec::simple(APP));
    let party = net.node_mut::<Party>(a);
    let inv = &mut party.slots[0].invitation;
    let before = inv.poll_timeout();
    assert_eq!(inv.respond(Instant::MAX, Answer::Accept, ""), Err(InviteError::WrongRole));
    let mut rng = HashDrbg::from_u64(3);
    inv.handle_timeout(at(1), &mut *party.pool, &mut rng);
    assert_eq!(inv.poll_timeout(), before, "still on time, not at the end of it");
    assert_eq!(inv.outcome(), None);
}
