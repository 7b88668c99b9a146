//! Races and lost answers (threat model rows 16 and 17), through the
//! man-in-the-middle harness: the inviter cancels while the invitee's Accept
//! is in flight, each message delivered first, late, twice or not at all;
//! the invitee's Final duplicated, replayed after its Ack, replayed into a
//! later invitation, and an old Final(Declined) replayed over an accepted
//! invitation; the Final and the Ack lost once, several times, all but the
//! last time, and every time.
//!
//! The rule for a Cancel that crosses a Final (invitation.md §7,
//! state-machine.md rows Cancelling/Final and Answering/Cancel): the
//! inviter's order of events decides. If it cancelled before it read the
//! Final, the invitation is Cancelled on both sides, whatever the Final
//! said; if it read the Final first, its cancel has no effect.

use peercollab_core::agent::{AgentError, Handle, IncomingId, InviteOptions};
use peercollab_core::invite::{
    Answer, CancelEffect, CancelReason, FINAL_TIMEOUT, LIVENESS_TIMEOUT, Outcome,
};
use peercollab_core::wire::FrameType;
use peercollab_core::{Duration, Instant};
use peercollab_tests::agents::answer_after;
use peercollab_tests::attack_support::{
    Msg, Skewed, agent, agent_mut, ended_at, invite, local_now, msg, pair, responded_at, run_to,
    run_until, sent_of, skewed_mut, until_presented,
};
use peercollab_tests::mitm::{Action, Captured, Mitm, set_u32};
use peercollab_tests::party::Reaction;

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn settle(m: &mut Mitm) {
    m.settle(600);
}

fn outcome_of(answer: Answer) -> Outcome {
    match answer {
        Answer::Accept => Outcome::Accepted,
        Answer::Decline => Outcome::Declined,
        Answer::Busy { retry_after } => Outcome::Busy { retry_after },
        other => panic!("no outcome for {other:?}"),
    }
}

/// Both agents are done: no invitation slot, no deadline.
fn assert_all_freed(m: &Mitm) {
    for id in [0, 1] {
        assert_eq!(agent(&m.net, id).agent.invitations_in_use(), 0, "node {id}");
        assert_eq!(agent(&m.net, id).agent.poll_timeout(), None, "node {id}");
    }
}

/// Runs until B reports the end of its incoming invitation; then checks
/// that its launch information exists exactly when it ended Accepted.
fn assert_launch_info_iff_accepted(m: &mut Mitm, b: usize, incoming: IncomingId, case: &str) {
    run_until(m, 600, |n| !n.node::<Skewed>(b).node.incoming_outcomes().is_empty());
    let nb = agent(&m.net, b);
    let outcome = nb.incoming_outcomes()[0].1;
    match nb.agent.launch_info(incoming) {
        Ok(info) => {
            assert_eq!(outcome, Outcome::Accepted, "{case}: launch info only if accepted");
            assert_eq!(info.data, b"port=4000", "{case}");
        }
        Err(e) => {
            assert_ne!(outcome, Outcome::Accepted, "{case}: accepted without launch info");
            // Lingering it has none; ended and closed at once, it is gone.
            assert!(
                matches!(e, AgentError::NoLaunchInfo | AgentError::UnknownIncoming),
                "{case}: {e:?}"
            );
        }
    }
}

/// A invites B, B rings (its user answers only when the test says), and
/// the network reaches `presented + 2 s`, a quiet moment.
fn ringing(seed: u64) -> (Mitm, usize, usize, Handle, IncomingId, Instant) {
    let (mut m, a, b) = pair(seed, [0, 0]);
    agent_mut(&mut m.net, b).reaction = Reaction::Ignore;
    let h = invite(&mut m, a, b, InviteOptions::default());
    let (incoming, presented) = until_presented(&mut m, b);
    let t = presented + secs(2);
    run_to(&mut m, t);
    (m, a, b, h, incoming, t)
}

fn cancel_now(m: &mut Mitm, a: usize, h: Handle) -> Result<CancelEffect, AgentError> {
    let now = local_now(&m.net, a);
    skewed_mut(&mut m.net, a).call(now, |ag, now| ag.cancel(now, h))
}

fn respond_now(m: &mut Mitm, b: usize, id: IncomingId, answer: Answer) -> Result<(), AgentError> {
    let now = local_now(&m.net, b);
    skewed_mut(&mut m.net, b).call(now, |ag, now| ag.respond(now, id, answer, ""))
}

/// A script that applies `on_final` to the first Final and `on_cancel` to
/// the first Cancel it sees, and forwards everything else.
fn first_final_and_cancel(
    inviter: usize,
    on_final: Vec<Action>,
    on_cancel: Vec<Action>,
) -> impl FnMut(&Captured) -> Vec<Action> {
    let (mut finals, mut cancels) = (0, 0);
    move |c| match msg(c, inviter) {
        Msg::Final => {
            finals += 1;
            if finals == 1 { on_final.clone() } else { vec![Action::Forward] }
        }
        Msg::Cancel => {
            cancels += 1;
            if cancels == 1 { on_cancel.clone() } else { vec![Action::Forward] }
        }
        _ => vec![Action::Forward],
    }
}

// ----- cancel/accept race ---------------------------------------------------

/// At the same instant A cancels and B's user accepts: A's Cancel and B's
/// Final(Accepted) cross in flight. Delivered at once, each one first
/// (the other delayed 1 s or 5 s), both late, duplicated, or one of them
/// lost: A cancelled before it read the Final, so both sides end
/// Cancelled(ByUser) — exactly one `Responded` at A, one `IncomingEnded`
/// at B, no launch information — although B's `respond` succeeded.
///
/// Defence: the transition table (`core/src/invite/table.rs` `INVITER`
/// Cancelling/Final → Stay, SendCancel: the Accept is never acknowledged;
/// `INVITEE` Answering/Cancel → Lingering, EndCancelled: a Cancel overrides
/// an unacknowledged Final), `Invitation::cancel`, `Agent::cancel`.
#[test]
fn cancel_accept_race_crossing_in_flight_in_either_order_ends_cancelled_on_both_sides() {
    use Action::{Delay, Forward};
    let variants: Vec<(&str, Vec<Action>, Vec<Action>)> = vec![
        ("crossing", vec![Forward], vec![Forward]),
        ("the Cancel first, the Final 1 s late", vec![Delay(secs(1))], vec![Forward]),
        ("the Final first, the Cancel 1 s late", vec![Forward], vec![Delay(secs(1))]),
        ("the Final 5 s late, twice, after A lingers", vec![Delay(secs(5)); 2], vec![Forward]),
        ("both 300 ms late", vec![Delay(ms(300))], vec![Delay(ms(300))]),
        ("both three times", vec![Forward; 3], vec![Forward; 3]),
        ("the Final lost", vec![], vec![Forward]),
        ("the Cancel lost, the Final twice", vec![Forward; 2], vec![]),
    ];
    for (seed, (case, on_final, on_cancel)) in (100..).zip(variants) {
        let (mut m, a, b, h, incoming, t) = ringing(seed);
        m.script(first_final_and_cancel(a, on_final, on_cancel));
        assert_eq!(cancel_now(&mut m, a, h), Ok(CancelEffect::Withdrawing), "{case}");
        assert_eq!(respond_now(&mut m, b, incoming, Answer::Accept), Ok(()), "{case}");
        assert_launch_info_iff_accepted(&mut m, b, incoming, case);
        let sent_at = |kind| sent_of(&m, kind).first().map(|c| c.at);
        assert_eq!((sent_at(Msg::Final), sent_at(Msg::Cancel)), (Some(t), Some(t)), "{case}");
        settle(&mut m);
        let cancelled = Outcome::Cancelled(CancelReason::ByUser);
        assert_eq!(agent(&m.net, a).responded(h), vec![cancelled], "{case}");
        assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, cancelled)], "{case}");
        assert_eq!(agent(&m.net, b).invited(), 1, "{case}");
        assert_all_freed(&m);
    }
}

/// B accepts at T; its Final reaches A at T + 20 ms. A cancel at T + 19 ms
/// crosses it and wins on both sides (Withdrawing, Cancelled); a cancel at
/// T + 20 ms, just after A read the Final, has no effect and both sides
/// end Accepted, B with its launch information.
///
/// Defence: `Agent::cancel` (`NoEffect` once the request is decided) and the
/// inviter's table (`core/src/invite/table.rs` `INVITER`: Ringing/Final →
/// Lingering; Lingering/Cancel → Ignore; Cancelling/Final → SendCancel).
#[test]
fn cancel_accept_race_the_inviters_order_decides_to_the_millisecond() {
    for (cancel_after, effect, outcome) in [
        (19, CancelEffect::Withdrawing, Outcome::Cancelled(CancelReason::ByUser)),
        (20, CancelEffect::NoEffect, Outcome::Accepted),
    ] {
        let case = format!("cancel {cancel_after} ms after the Accept");
        let (mut m, a, b, h, incoming, t) = ringing(110 + cancel_after);
        assert_eq!(respond_now(&mut m, b, incoming, Answer::Accept), Ok(()));
        run_to(&mut m, t + ms(cancel_after));
        assert_eq!(cancel_now(&mut m, a, h), Ok(effect), "{case}");
        assert_launch_info_iff_accepted(&mut m, b, incoming, &case);
        settle(&mut m);
        assert_eq!(agent(&m.net, a).responded(h), vec![outcome], "{case}");
        assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, outcome)], "{case}");
        if outcome == Outcome::Accepted {
            agent_mut(&mut m.net, b).agent.release(incoming).expect("release");
        }
        assert_all_freed(&m);
    }
}

// ----- duplicate finals -----------------------------------------------------

/// Every Final B sends is delivered eight times: five copies at once, one
/// 1 s, one 10 s and one 40 s late (after A's invitation closed). For an
/// Accept, a Decline and a Busy: each side reports the decision once, A
/// acknowledges once, and every copy is dropped — by the replay window while
/// A's session lives, as naming no session once it is gone.
///
/// Defence: the transport replay window (`core/src/replay.rs`,
/// `Session::handle_datagram`), routing by live index (`Agent::dispatch`),
/// the inviter's Lingering/Final row (`core/src/invite/table.rs`).
#[test]
fn duplicate_finals_many_copies_surface_the_decision_once_and_never_change_it() {
    use Action::{Delay, Forward};
    let busy = Answer::Busy { retry_after: secs(30) };
    for (seed, answer) in (120..).zip([Answer::Accept, Answer::Decline, busy]) {
        let case = format!("{answer:?}");
        let (mut m, a, b) = pair(seed, [0, 0]);
        agent_mut(&mut m.net, b).reaction = answer_after(1, answer, "");
        m.script(move |c| match msg(c, a) {
            Msg::Final => {
                let mut copies = vec![Forward; 5];
                copies.extend([Delay(secs(1)), Delay(secs(10)), Delay(secs(40))]);
                copies
            }
            _ => vec![Forward],
        });
        let h = invite(&mut m, a, b, InviteOptions::default());
        let (incoming, _) = until_presented(&mut m, b);
        assert_launch_info_iff_accepted(&mut m, b, incoming, &case);
        settle(&mut m);
        let expected = outcome_of(answer);
        assert_eq!(agent(&m.net, a).responded(h), vec![expected], "{case}");
        assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, expected)], "{case}");
        assert_eq!(sent_of(&m, Msg::Final).len(), 1, "{case}: no retransmission needed");
        assert_eq!(sent_of(&m, Msg::Ack).len(), 1, "{case}: one Ack");
        let drops: Vec<String> =
            agent(&m.net, a).dropped.iter().map(|d| format!("{:?}", d.1)).collect();
        let mut want = vec!["Session(Replayed)".to_string(); 6];
        want.push("UnknownIndex".into());
        assert_eq!(drops, want, "{case}");
        if expected == Outcome::Accepted {
            let info = agent(&m.net, b).agent.launch_info(incoming).expect("launch info");
            assert_eq!(info.outcome, Some(Outcome::Accepted));
        }
    }
}

/// A transport frame for A readdressed to A's session `a_index` (receiver
/// index, bytes 4..8), as recorded or with a fresh counter (bytes 8..16,
/// the AEAD nonce) that no window has seen: the three ways to offer a
/// recorded Final to another invitation.
fn replays(c: &Captured, a_index: u32) -> [Vec<u8>; 3] {
    let readdressed = set_u32(&c.bytes, 4, a_index);
    let fresh = set_u32(&readdressed, 12, 1_000_000);
    [c.bytes.clone(), readdressed, fresh]
}

fn drops_since(m: &Mitm, a: usize, from: usize) -> Vec<String> {
    agent(&m.net, a).dropped[from..].iter().map(|d| format!("{:?}", d.1)).collect()
}

/// A's session index in the `n`-th invitation (its initiation's sender
/// index).
fn a_index(m: &Mitm, a: usize, n: usize) -> u32 {
    let init = m.captured.iter().filter(|c| c.from == a && c.is(FrameType::Initiation)).nth(n);
    u32::from_be_bytes(init.expect("initiation").bytes[4..8].try_into().unwrap())
}

/// B's Final(Accepted) is replayed to A three times after A acknowledged it,
/// three times after both sides closed the invitation, and into a later
/// invitation while it rings (which B then declines): as recorded,
/// readdressed to the new session, and readdressed with a fresh counter.
/// Every replay is dropped; A acknowledges nothing more; the first
/// invitation stays Accepted (reported once, launch information intact),
/// the second ends Declined on both sides.
///
/// Defence: the transport replay window (`core/src/replay.rs`), routing by
/// the full live index (`Agent::dispatch`), per-session keys (AEAD,
/// `Session::handle_datagram`).
#[test]
fn duplicate_final_replayed_after_the_ack_the_end_and_into_a_later_invitation_changes_nothing() {
    let (mut m, a, b) = pair(130, [0, 0]);
    agent_mut(&mut m.net, b).reaction = answer_after(1, Answer::Accept, "");
    let h1 = invite(&mut m, a, b, InviteOptions::default());
    let (first, _) = until_presented(&mut m, b);
    run_until(&mut m, 60, |n| !n.node::<Skewed>(b).node.incoming_outcomes().is_empty());
    let fin = sent_of(&m, Msg::Final).remove(0);
    let drops = agent(&m.net, a).dropped.len();
    // After the Ack, both lingering.
    for _ in 0..3 {
        m.send(b, a, &fin.bytes);
    }
    m.settle(1);
    assert_eq!(drops_since(&m, a, drops), ["Session(Replayed)"; 3], "the replay window");
    // After the end.
    settle(&mut m);
    for _ in 0..3 {
        m.send(b, a, &fin.bytes);
    }
    settle(&mut m);
    assert_eq!(drops_since(&m, a, drops + 3), ["UnknownIndex"; 3], "no session any more");
    assert_eq!(sent_of(&m, Msg::Ack).len(), 1, "nothing more acknowledged");
    // A later invitation, declined after 5 s; the replays arrive while it rings.
    agent_mut(&mut m.net, b).reaction = answer_after(5, Answer::Decline, "");
    let h2 = invite(&mut m, a, b, InviteOptions::default());
    let (second, _) = until_presented(&mut m, b);
    let later = agent(&m.net, a).dropped.len();
    for bytes in replays(&fin, a_index(&m, a, 1)) {
        m.send(b, a, &bytes);
    }
    settle(&mut m);
    // The recorded Final names no live session; readdressed, its counter is
    // new to this session, and it fails the AEAD, as the fresh one does.
    let want = ["UnknownIndex", "Session(Decrypt)", "Session(Decrypt)"];
    assert_eq!(drops_since(&m, a, later), want);
    let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
    assert_eq!(na.dropped.len(), drops + 9, "every replay dropped");
    assert_eq!(na.responded(h1), vec![Outcome::Accepted]);
    assert_eq!(na.responded(h2), vec![Outcome::Declined]);
    assert_eq!(
        nb.incoming_outcomes(),
        vec![(first, Outcome::Accepted), (second, Outcome::Declined)]
    );
    assert_eq!(nb.agent.launch_info(first).map(|i| i.data.to_vec()), Ok(b"port=4000".to_vec()));
    assert_all_freed_but_launch_info(&m);
}

fn assert_all_freed_but_launch_info(m: &Mitm) {
    assert_eq!(agent(&m.net, 0).agent.invitations_in_use(), 0);
    assert_eq!(agent(&m.net, 0).agent.poll_timeout(), None);
    assert_eq!(agent(&m.net, 1).agent.poll_timeout(), None);
}

/// A first invitation is declined; the attacker keeps B's Final(Declined).
/// In a second one B accepts, and the attacker replays that old
/// Final(Declined) — as recorded, readdressed to the new session, and
/// readdressed with a fresh counter — at the worst moments: while A has not
/// yet read the Accept (the attacker holds it back 2 s), right after A
/// acknowledged it, and after the end.
/// Every replay is dropped: the second invitation ends Accepted on both
/// sides, reported once each, and the first stays Declined.
///
/// Defence: per-session keys (the AEAD of `Session::handle_datagram`,
/// `core/src/session.rs`) and routing by the full index (`Agent::dispatch`):
/// a Final of one invitation can never be read as another's.
#[test]
fn final_declined_replayed_over_an_accepted_invitation_changes_nothing() {
    use Action::{Delay, Forward};
    let (mut m, a, b) = pair(140, [0, 0]);
    agent_mut(&mut m.net, b).reaction = answer_after(0, Answer::Decline, "");
    let h1 = invite(&mut m, a, b, InviteOptions::default());
    settle(&mut m);
    let declined = sent_of(&m, Msg::Final).remove(0);
    agent_mut(&mut m.net, b).reaction = Reaction::Ignore;
    let h2 = invite(&mut m, a, b, InviteOptions::default());
    let (incoming, presented) = until_presented(&mut m, b);
    let index = a_index(&m, a, 1);
    let mut seen = 0;
    m.script(move |c| {
        if msg(c, a) == Msg::Final {
            seen += 1;
            if seen == 1 {
                return vec![Delay(secs(2))];
            }
        }
        vec![Forward]
    });
    let t = presented + secs(1);
    run_to(&mut m, t);
    assert_eq!(respond_now(&mut m, b, incoming, Answer::Accept), Ok(()));
    let drops = agent(&m.net, a).dropped.len();
    let replay = |m: &mut Mitm| {
        for bytes in replays(&declined, index) {
            m.send(b, a, &bytes);
        }
    };
    run_to(&mut m, t + ms(100));
    assert_eq!(agent(&m.net, a).responded(h2), vec![], "A has not read the Accept yet");
    replay(&mut m);
    run_to(&mut m, t + ms(300));
    assert_eq!(agent(&m.net, a).responded(h2), vec![], "the replays decided nothing");
    run_until(&mut m, 60, |n| !n.node::<Skewed>(b).node.incoming_outcomes().is_empty());
    replay(&mut m);
    settle(&mut m);
    replay(&mut m);
    settle(&mut m);
    let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
    // While the invitation lives: the recorded Final names no live session;
    // readdressed, its counter (B's first message of invitation 1) is one
    // the new session has seen; with a fresh counter it fails the AEAD.
    let live = ["UnknownIndex", "Session(Replayed)", "Session(Decrypt)"];
    let mut want = [live, live].concat();
    want.extend(["UnknownIndex"; 3]);
    assert_eq!(drops_since(&m, a, drops), want, "every replay, and nothing else, dropped");
    // The held Accept, 2 s late, only made the lingering A acknowledge again.
    assert_eq!(sent_of(&m, Msg::Ack).len(), 1 + 2, "inv 1's; inv 2's, and again for the held copy");
    assert_eq!(na.responded(h1), vec![Outcome::Declined]);
    assert_eq!(na.responded(h2), vec![Outcome::Accepted]);
    let outcomes: Vec<Outcome> = nb.incoming_outcomes().into_iter().map(|x| x.1).collect();
    assert_eq!(outcomes, vec![Outcome::Declined, Outcome::Accepted]);
}

// ----- lost final answer ----------------------------------------------------

/// B accepts 1 s after it presents (at T); the attacker drops every Final B
/// sends before T + `d`: one (d = 0.5 s), four (7.5 s), or every
/// transmission but the last (31.5 s: ten retransmissions and two answers
/// to A's liveness probes). The Final is retransmitted at 0.5, 1.5, 3.5,
/// 7.5, … 31.5 s until one arrives; A ends Accepted when it arrives, its
/// single Ack reaches B 20 ms later — inside `FINAL_TIMEOUT` — and B ends
/// Accepted with its launch information.
///
/// Defence: retransmission of the Final until the Ack
/// (`core/src/invite/table.rs` `INVITEE` Answering/RetransmitTimer →
/// SendFinal, BackOff; `InviteeAction::SendFinal`, `RETRANSMIT_INITIAL`
/// doubling to `RETRANSMIT_MAX`), and the invitee's answer to a probe while
/// answering (Answering/AckTimer → SendFinal).
#[test]
fn lost_final_answer_dropped_once_several_times_or_all_but_the_last_is_retransmitted_until_acked() {
    for (seed, d_ms, finals) in [(150, 500, 2), (151, 7_500, 5), (152, 31_500, 13)] {
        let case = format!("Finals before {d_ms} ms lost");
        let (mut m, a, b) = pair(seed, [0, 0]);
        agent_mut(&mut m.net, b).reaction = answer_after(1, Answer::Accept, "");
        let h = invite(&mut m, a, b, InviteOptions::default());
        let (incoming, presented) = until_presented(&mut m, b);
        let t = presented + secs(1);
        let lose_before = t + ms(d_ms);
        m.script(move |c| {
            if msg(c, a) == Msg::Final && c.at < lose_before {
                vec![]
            } else {
                vec![Action::Forward]
            }
        });
        assert_launch_info_iff_accepted(&mut m, b, incoming, &case);
        settle(&mut m);
        assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Accepted], "{case}");
        assert_eq!(responded_at(&m.net, a, h), vec![lose_before + ms(20)], "{case}");
        assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, Outcome::Accepted)]);
        assert_eq!(ended_at(&m.net, b), vec![lose_before + ms(40)], "{case}");
        assert_eq!(sent_of(&m, Msg::Final).len(), finals, "{case}");
        assert_eq!(sent_of(&m, Msg::Ack).len(), 1, "{case}");
        assert!(lose_before + ms(40) < t + FINAL_TIMEOUT);
    }
}

/// B accepts (at T) and A acknowledges at once, but the attacker drops A's
/// first Ack, or its first three. B's retransmitted Final is acknowledged
/// again (A lingers to do so) and the first Ack that arrives ends B
/// Accepted; A reported Accepted once, when the first Final arrived.
///
/// Defence: the invitee retransmits until acknowledged (`INVITEE`
/// Answering/RetransmitTimer) and the lingering inviter acknowledges every
/// repeated Final (`INVITER` Lingering/Final → AnswerLateFinal,
/// `core/src/invite/mod.rs` `InviterAction::AnswerLateFinal`).
#[test]
fn lost_final_answer_acks_lost_are_repaired_by_the_retransmitted_final_and_both_accept() {
    for (seed, lost, repaired_at) in [(160, 1, 500), (161, 3, 3_500)] {
        let case = format!("{lost} Acks lost");
        let (mut m, a, b) = pair(seed, [0, 0]);
        agent_mut(&mut m.net, b).reaction = answer_after(1, Answer::Accept, "");
        let mut acks = 0;
        m.script(move |c| {
            if msg(c, a) == Msg::Ack {
                acks += 1;
                if acks <= lost {
                    return vec![];
                }
            }
            vec![Action::Forward]
        });
        let h = invite(&mut m, a, b, InviteOptions::default());
        let (incoming, presented) = until_presented(&mut m, b);
        let t = presented + secs(1);
        assert_launch_info_iff_accepted(&mut m, b, incoming, &case);
        settle(&mut m);
        assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Accepted], "{case}");
        assert_eq!(responded_at(&m.net, a, h), vec![t + ms(20)], "{case}");
        assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, Outcome::Accepted)]);
        assert_eq!(ended_at(&m.net, b), vec![t + ms(repaired_at + 40)], "{case}");
        assert_eq!(sent_of(&m, Msg::Ack).len(), lost + 1, "{case}");
    }
}

/// Every Final B sends is lost, for an Accept and for a Decline. B gives up
/// `FINAL_TIMEOUT` after its answer and ends Unreachable; A, which never
/// read an answer, does not claim one: it ends Unreachable `LIVENESS_TIMEOUT`
/// after the last thing it heard (B's Ringing). Neither side ends Accepted
/// or Declined, and B has no launch information.
///
/// Defence: the invitee's outcome is settled by the Ack (`INVITEE`
/// Answering/GiveUpTimer → EndUnreachable, `FINAL_TIMEOUT`); the inviter
/// never guesses (`INVITER` Ringing/GiveUpTimer → EndUnreachable,
/// `arm_inviter_give_up`), `core/src/invite/table.rs`, timers.md §5.
#[test]
fn lost_final_answer_every_final_lost_ends_both_unreachable_and_nobody_claims_the_answer() {
    for (seed, answer) in [(170, Answer::Accept), (171, Answer::Decline)] {
        let case = format!("{answer:?}");
        let (mut m, a, b) = pair(seed, [0, 0]);
        agent_mut(&mut m.net, b).reaction = answer_after(1, answer, "");
        m.script(move |c| if msg(c, a) == Msg::Final { vec![] } else { vec![Action::Forward] });
        let h = invite(&mut m, a, b, InviteOptions::default());
        let (incoming, presented) = until_presented(&mut m, b);
        let t = presented + secs(1);
        assert_launch_info_iff_accepted(&mut m, b, incoming, &case);
        settle(&mut m);
        assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, Outcome::Unreachable)]);
        assert_eq!(ended_at(&m.net, b), vec![t + FINAL_TIMEOUT], "{case}");
        assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Unreachable], "{case}");
        let ringing_heard = presented + ms(20);
        assert_eq!(responded_at(&m.net, a, h), vec![ringing_heard + LIVENESS_TIMEOUT], "{case}");
        assert_eq!(sent_of(&m, Msg::Ack).len(), 0, "{case}");
        assert_eq!(sent_of(&m, Msg::Final).len(), 13, "{case}: 11 sends, 2 probe answers");
        assert_all_freed(&m);
    }
}

/// B accepts (at T); A reads the Final and ends Accepted, but every Ack it
/// sends is lost — the first and one for each of the ten retransmissions.
/// B never learns its Accept counted: it ends Unreachable at
/// `FINAL_TIMEOUT`, with no launch information. The documented distinct
/// outcome (invitation.md §5, §9): the inviter Accepted, the invitee
/// Unreachable, never the invitee Accepted alone.
///
/// Defence: the invitee ends Accepted only on the Ack (`INVITEE`
/// Answering/Ack → EndWithFinal; Answering/GiveUpTimer → EndUnreachable,
/// `core/src/invite/table.rs`).
#[test]
fn lost_final_answer_every_ack_lost_leaves_the_inviter_accepted_and_the_invitee_unreachable() {
    let (mut m, a, b) = pair(180, [0, 0]);
    agent_mut(&mut m.net, b).reaction = answer_after(1, Answer::Accept, "");
    m.script(move |c| if msg(c, a) == Msg::Ack { vec![] } else { vec![Action::Forward] });
    let h = invite(&mut m, a, b, InviteOptions::default());
    let (incoming, presented) = until_presented(&mut m, b);
    let t = presented + secs(1);
    assert_launch_info_iff_accepted(&mut m, b, incoming, "every Ack lost");
    settle(&mut m);
    assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Accepted]);
    assert_eq!(responded_at(&m.net, a, h), vec![t + ms(20)]);
    assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, Outcome::Unreachable)]);
    assert_eq!(ended_at(&m.net, b), vec![t + FINAL_TIMEOUT]);
    assert_eq!(sent_of(&m, Msg::Final).len(), 11);
    assert_eq!(sent_of(&m, Msg::Ack).len(), 11, "A acknowledged every copy");
    assert_all_freed(&m);
}
