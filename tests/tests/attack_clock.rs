//! Clock manipulation (threat model row 14): an attacker who controls or
//! disturbs an agent's clock — a suspended laptop that resumes hours later,
//! a wrong NTP step, a clock at the end of time, a clock set back, a peer
//! whose clock is far from ours — in every phase of a contact invitation:
//! before the handshake completes, while the invitee rings, and after the
//! invitee accepted while its Final is retransmitted.
//!
//! Each agent reads its own clock ([`Skewed`]: the network's time plus an
//! offset of its own); a jump changes the offset, so every later datagram,
//! timeout and command of that agent carries the jumped `now`. Times below
//! are in the agent's own clock unless said otherwise. After every timeout
//! the harness checks that the agent's next deadline is `None` or later
//! than the latest `now` it was given (agent.md §2.4).

use peercollab_core::agent::{
    AgentConfig, AgentError, Dropped, Handle, IncomingId, InviteOptions, Target,
};
use peercollab_core::invite::{
    Answer, CancelEffect, CancelReason, DELIVERY_TIMEOUT, EXPIRY_GRACE, FINAL_TIMEOUT, InviteError,
    LIVENESS_TIMEOUT, MAX_EXPIRY_ON_WIRE, Outcome,
};
use peercollab_core::{Duration, Instant, session};
use peercollab_tests::NodeId;
use peercollab_tests::TraceEntry;
use peercollab_tests::agents::{answer_after, request};
use peercollab_tests::attack_support::{
    BASE, HOUR_MS, Msg, Skewed, agent, agent_mut, ended_at, invite, local_now, msg, pair,
    responded_at, run_to, run_until, sent_of, skewed, skewed_mut, until_presented,
};
use peercollab_tests::mitm::{Action, Mitm};
use peercollab_tests::party::Reaction;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn expires_in(s: u64) -> InviteOptions {
    InviteOptions::default().expires_in(secs(s))
}

fn settle(m: &mut Mitm) {
    m.settle(3_600);
}

/// B's user releases the launch information of an accepted invitation.
fn release(m: &mut Mitm, b: usize, incoming: IncomingId) {
    let info = agent(&m.net, b).agent.launch_info(incoming).expect("launch info");
    assert_eq!(info.data, b"port=4000");
    agent_mut(&mut m.net, b).agent.release(incoming).expect("release");
}

/// Nothing is left at either agent: no invitation slot, no deadline.
fn assert_all_freed(m: &Mitm) {
    for id in [0, 1] {
        let n = agent(&m.net, id);
        assert_eq!(n.agent.invitations_in_use(), 0, "node {id}");
        assert_eq!(n.agent.poll_timeout(), None, "node {id}");
    }
}

/// The jumps forward the tests make: three hours (a suspended laptop), and
/// to an hour before the end of time.
#[derive(Clone, Copy, Debug)]
enum Jump {
    ThreeHours,
    ToNearTheEndOfTime,
}

const JUMPS: [Jump; 2] = [Jump::ThreeHours, Jump::ToNearTheEndOfTime];

impl Jump {
    /// The offset change that makes a clock reading `now` jump.
    fn from(self, now: Instant) -> i128 {
        match self {
            Jump::ThreeHours => 3 * HOUR_MS,
            Jump::ToNearTheEndOfTime => {
                i128::from(far_future().as_millis()) - i128::from(now.as_millis())
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::from_millis(u64::MAX - 3_600_000)
}

/// A pair (network seeded `seed`, clocks agreeing) where B accepts 1 s
/// after it presents and the first Final is lost: A's handle, B's incoming
/// id and when B presented.
fn accepted_after_a_second_first_final_lost(
    seed: u64,
) -> (Mitm, NodeId, NodeId, Handle, IncomingId, Instant) {
    let (mut m, a, b) = pair(seed, [0, 0]);
    agent_mut(&mut m.net, b).reaction = answer_after(1, Answer::Accept, "");
    let mut finals = 0;
    m.script(move |c| {
        if msg(c, a) == Msg::Final {
            finals += 1;
            if finals == 1 {
                return vec![];
            }
        }
        vec![Action::Forward]
    });
    let h = invite(&mut m, a, b, InviteOptions::default());
    let (incoming, presented) = until_presented(&mut m, b);
    (m, a, b, h, incoming, presented)
}

// ----- before the handshake -----------------------------------------------

/// A invites, and before the handshake completes one clock jumps 3 h ahead
/// or to an hour before `Instant::MAX`. The handshake's give-ups are counted
/// from its start, so the jumped agent's first timeout ends it. A jumped:
/// it reports Unreachable at once (at the jumped time). B jumped, its
/// response on the way: its unconfirmed session gives up before the Invite
/// arrives, and A, whose Invite is never acknowledged, ends Unreachable
/// `DELIVERY_TIMEOUT` after its handshake completed. Either way B presents
/// nothing and reports nothing.
///
/// Defence: the handshake's relative give-up (`core/src/session.rs`
/// `Session::handle_timeout`, `HANDSHAKE_TIMEOUT` from the session's start;
/// the responder's `Unconfirmed`) and the inviter's delivery give-up
/// (`core/src/invite/mod.rs` `arm_inviter_give_up`, `DELIVERY_TIMEOUT`).
#[test]
fn clock_jump_forward_before_the_handshake_completes_ends_it_unreachable_and_presents_nothing() {
    for (seed, (jumper, jump)) in
        (1..).zip([(0, JUMPS[0]), (0, JUMPS[1]), (1, JUMPS[0]), (1, JUMPS[1])])
    {
        let case = format!("node {jumper} jumps {jump:?}");
        let (mut m, a, b) = pair(seed, [0, 0]);
        let t0 = local_now(&m.net, a);
        let h = invite(&mut m, a, b, InviteOptions::default());
        if jumper == b {
            // The initiation reaches B; B's response is on its way.
            m.step();
            assert_eq!(m.captured.len(), 2, "{case}: initiation and response");
        }
        let by = jump.from(local_now(&m.net, jumper));
        skewed_mut(&mut m.net, jumper).jump(by);
        let jumped = local_now(&m.net, jumper);
        settle(&mut m);
        let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
        assert_eq!(na.responded(h), vec![Outcome::Unreachable], "{case}");
        let gave_up = if jumper == a { jumped } else { t0 + MS(40) + DELIVERY_TIMEOUT };
        assert_eq!(responded_at(&m.net, a, h), vec![gave_up], "{case}");
        assert_eq!(nb.invited(), 0, "{case}");
        assert!(nb.events.is_empty(), "{case}: {:?}", nb.events);
        assert_all_freed(&m);
    }
}

/// A invites with a 10 s expiry; the initiation is out when A's clock jumps
/// 20 s ahead — past the expiry, within the handshake's 32 s. The
/// handshake completes and the Invite goes out carrying the time remaining
/// *now*, zero: B expires it on arrival without presenting it, and its
/// Final(Expired) ends A Expired.
///
/// Defence: the expiry travels as time remaining when the fragment is sealed
/// (`core/src/invite/mod.rs` `Invitation::poll_transmit`, `remaining_ms =
/// expires_at − now`, saturating), and an invitee never presents a body
/// completed at or after its expiry (`Invitation::receive`, "complete, but
/// too late to present").
#[test]
fn clock_jump_forward_past_the_expiry_before_the_invite_is_sent_expires_it_unpresented() {
    let (mut m, a, b) = pair(2, [0, 0]);
    let h = invite(&mut m, a, b, expires_in(10));
    // The initiation reaches B; B's response is on its way.
    m.step();
    let initiations = m.captured.iter().filter(|c| c.from == a).count();
    assert_eq!(initiations, 1, "the initiation is out");
    assert!(agent(&m.net, a).responded(h).is_empty());
    skewed_mut(&mut m.net, a).jump(20_000);
    settle(&mut m);
    let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
    assert_eq!(na.responded(h), vec![Outcome::Expired]);
    assert_eq!(nb.invited(), 0);
    assert!(nb.events.is_empty(), "{:?}", nb.events);
    assert_eq!(sent_of(&m, Msg::Final).len(), 1, "one Final(Expired)");
    assert_eq!(sent_of(&m, Msg::Ack).len(), 1);
    assert_all_freed(&m);
}

// ----- while ringing --------------------------------------------------------

/// B rings (60 s expiry); 10 s in, B's clock jumps 3 h ahead, or to an hour
/// before the end of time, and its user answers Accept at the jumped time:
/// too late. The answer is refused (`Ended`), B sends Final(Expired) and
/// both sides end Expired — A before its own expiry, on B's word — and B
/// has no launch information. An Accept given afterwards with the old,
/// earlier time is refused too: the expired invitation stays expired.
///
/// Defence: `Invitation::respond` (an answer at or after `expires_at` is
/// too late, even before the timer ran) on the agent's monotonic clock
/// (`Agent::respond`: `now.max(last_now)`), and only the invitee declares
/// Expired (`InviteeAction::DeclareExpired`, `core/src/invite/table.rs`).
#[test]
fn clock_jump_of_the_invitee_past_the_expiry_while_ringing_expires_both_sides_never_accepts() {
    for (seed, jump) in (10..).zip(JUMPS) {
        let name = format!("{jump:?}");
        let (mut m, a, b) = pair(seed, [0, 0]);
        agent_mut(&mut m.net, b).reaction = Reaction::Ignore;
        let t0 = local_now(&m.net, a);
        let h = invite(&mut m, a, b, expires_in(60));
        let (incoming, presented) = until_presented(&mut m, b);
        run_to(&mut m, presented + secs(10));
        let before = local_now(&m.net, b);
        skewed_mut(&mut m.net, b).jump(jump.from(before));
        let jumped = local_now(&m.net, b);
        let late = skewed_mut(&mut m.net, b)
            .call(jumped, |ag, now| ag.respond(now, incoming, Answer::Accept, ""));
        assert_eq!(late, Err(AgentError::Invitation(InviteError::Ended)), "{name}");
        let earlier = skewed_mut(&mut m.net, b)
            .call(before, |ag, now| ag.respond(now, incoming, Answer::Accept, ""));
        assert_eq!(earlier, Err(AgentError::Invitation(InviteError::AlreadyAnswered)), "{name}");
        settle(&mut m);
        let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
        assert_eq!(na.responded(h), vec![Outcome::Expired], "{name}");
        assert!(responded_at(&m.net, a, h)[0] < t0 + secs(60), "{name}: A learnt it from B");
        assert_eq!(nb.incoming_outcomes(), vec![(incoming, Outcome::Expired)], "{name}");
        assert_eq!(ended_at(&m.net, b), vec![jumped + MS(40)], "{name}: acked 40 ms later");
        assert_eq!(nb.agent.launch_info(incoming).err(), Some(AgentError::UnknownIncoming));
        assert_all_freed(&m);
    }
}

/// B rings (60 s expiry); 10 s in, A's clock jumps 3 h ahead, past its
/// expiry plus grace, at the very moment B's user accepts. A's first
/// timeout after the jump gives up — Unreachable, never a guess of Expired
/// or Accepted — and withdraws the invitation with Cancel(GaveUp); the
/// Accept that crossed it is answered with that Cancel, so B ends
/// Cancelled(GaveUp) with no launch information.
///
/// Defence: the inviter's give-up at `expires_at + EXPIRY_GRACE`
/// (`core/src/invite/mod.rs` `arm_inviter_give_up`), the GiveUpTimer row
/// (Ringing → Cancelling, EndUnreachable) and the Cancelling/Final row
/// (SendCancel, never an Ack) of `core/src/invite/table.rs` `INVITER`.
#[test]
fn clock_jump_of_the_inviter_past_expiry_and_grace_while_ringing_gives_up_and_cancels_the_accept() {
    let (mut m, a, b) = pair(4, [0, 0]);
    agent_mut(&mut m.net, b).reaction = Reaction::Ignore;
    let h = invite(&mut m, a, b, expires_in(60));
    let (incoming, presented) = until_presented(&mut m, b);
    run_to(&mut m, presented + secs(10));
    skewed_mut(&mut m.net, a).jump(3 * HOUR_MS);
    let jumped = local_now(&m.net, a);
    let now_b = local_now(&m.net, b);
    let accepted = skewed_mut(&mut m.net, b)
        .call(now_b, |ag, now| ag.respond(now, incoming, Answer::Accept, ""));
    assert_eq!(accepted, Ok(()));
    settle(&mut m);
    let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
    assert_eq!(na.responded(h), vec![Outcome::Unreachable]);
    assert_eq!(responded_at(&m.net, a, h), vec![jumped]);
    assert_eq!(nb.incoming_outcomes(), vec![(incoming, Outcome::Cancelled(CancelReason::GaveUp))]);
    assert_all_freed(&m);
}

// ----- after the answer, while the Final is retransmitted ------------------

/// B accepts; its first Final is lost; before the retransmission B's clock
/// jumps 3 h ahead, or to an hour before the end of time. The Final's
/// give-up is counted from the answer, so B's next timeout ends it
/// Unreachable at the jumped time, with nothing more sent — never Accepted,
/// since A never acknowledged — and A, hearing nothing more, ends
/// Unreachable exactly `LIVENESS_TIMEOUT` after B's Ringing reached it.
///
/// Defence: the invitee's outcome is settled by the inviter's Ack
/// (`core/src/invite/table.rs` `INVITEE`: Answering/GiveUpTimer →
/// EndUnreachable; only Answering/Ack → EndWithFinal), `FINAL_TIMEOUT`
/// counted from entering Answering (`Invitation::enter_invitee`).
#[test]
fn clock_jump_of_the_invitee_while_its_accept_is_unacknowledged_ends_it_unreachable() {
    for (seed, jump) in (20..).zip(JUMPS) {
        let name = format!("{jump:?}");
        let (mut m, a, b) = pair(seed, [0, 0]);
        agent_mut(&mut m.net, b).reaction = answer_after(1, Answer::Accept, "");
        m.script(move |c| if msg(c, a) == Msg::Final { vec![] } else { vec![Action::Forward] });
        let h = invite(&mut m, a, b, InviteOptions::default());
        let (incoming, presented) = until_presented(&mut m, b);
        run_to(&mut m, presented + secs(1) + MS(100));
        assert_eq!(sent_of(&m, Msg::Final).len(), 1, "the Accept is out, and lost");
        let before = local_now(&m.net, b);
        skewed_mut(&mut m.net, b).jump(jump.from(before));
        let jumped = local_now(&m.net, b);
        m.script(|_| vec![Action::Forward]);
        settle(&mut m);
        let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
        assert_eq!(nb.incoming_outcomes(), vec![(incoming, Outcome::Unreachable)], "{name}");
        assert_eq!(ended_at(&m.net, b), vec![jumped], "{name}");
        assert_eq!(sent_of(&m, Msg::Final).len(), 1, "{name}: nothing sent after the jump");
        assert_eq!(na.responded(h), vec![Outcome::Unreachable], "{name}");
        let ringing_heard = presented + MS(20);
        assert_eq!(responded_at(&m.net, a, h), vec![ringing_heard + LIVENESS_TIMEOUT], "{name}");
        assert_all_freed(&m);
    }
}

/// B accepts and A acknowledges, but B's clock jumps 3 h ahead while the Ack
/// is in flight: B's first timeout after the jump ends its unacknowledged
/// Final Unreachable, and the Ack that arrives next finds it ended. The
/// documented one-sided outcome (invitation.md §9): A Accepted, B
/// Unreachable — B never claims Accepted without the Ack, and has no
/// launch information.
///
/// Defence: as above — `FINAL_TIMEOUT` counted from the answer, the
/// invitee ends Accepted only on the Ack (`core/src/invite/table.rs`
/// `INVITEE`, Answering rows).
#[test]
fn clock_jump_of_the_invitee_before_the_ack_arrives_leaves_the_inviter_accepted_and_it_unreachable()
{
    let (mut m, a, b) = pair(6, [0, 0]);
    agent_mut(&mut m.net, b).reaction = answer_after(1, Answer::Accept, "");
    let h = invite(&mut m, a, b, InviteOptions::default());
    let (incoming, presented) = until_presented(&mut m, b);
    // The Final reaches A at +20 ms, A's Ack would reach B at +40 ms.
    run_to(&mut m, presented + secs(1) + MS(30));
    assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Accepted]);
    skewed_mut(&mut m.net, b).jump(3 * HOUR_MS);
    let jumped = local_now(&m.net, b);
    settle(&mut m);
    let nb = agent(&m.net, b);
    assert_eq!(nb.incoming_outcomes(), vec![(incoming, Outcome::Unreachable)]);
    assert_eq!(ended_at(&m.net, b), vec![jumped]);
    assert_eq!(nb.agent.launch_info(incoming).err(), Some(AgentError::UnknownIncoming));
    assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Accepted]);
    assert_all_freed(&m);
}

/// B accepts; its first Final is lost; A's clock jumps 3 h ahead before the
/// retransmission arrives. A's first timeout after the jump gives up
/// (Unreachable) and withdraws with Cancel(GaveUp), which reaches B while
/// its Accept is unacknowledged: B ends Cancelled(GaveUp). Neither side
/// ends Accepted, and A never acknowledges the retransmitted Accept.
///
/// Defence: the inviter's give-up (`arm_inviter_give_up`: expiry + grace,
/// and the liveness limit), the Cancelling/Final row (SendCancel) and the
/// invitee's Answering/Cancel row (EndCancelled: a Cancel overrides an
/// unacknowledged Final), `core/src/invite/table.rs`.
#[test]
fn clock_jump_of_the_inviter_while_the_accept_is_retransmitted_ends_both_without_accepting() {
    let (mut m, a, b, h, incoming, presented) = accepted_after_a_second_first_final_lost(7);
    run_to(&mut m, presented + secs(1) + MS(100));
    skewed_mut(&mut m.net, a).jump(3 * HOUR_MS);
    let jumped = local_now(&m.net, a);
    settle(&mut m);
    let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
    assert_eq!(na.responded(h), vec![Outcome::Unreachable]);
    assert_eq!(responded_at(&m.net, a, h), vec![jumped]);
    assert_eq!(nb.incoming_outcomes(), vec![(incoming, Outcome::Cancelled(CancelReason::GaveUp))]);
    assert_eq!(sent_of(&m, Msg::Ack).len(), 1, "A acknowledged only the Cancel's Final");
    assert_all_freed(&m);
}

// ----- time going backwards ----------------------------------------------

/// B rings (60 s expiry). 30 s in, each agent is fed earlier times —
/// `Instant::ZERO`, B's presentation time, an hour back — in timeouts,
/// polls, and a replay of the other side's first transport datagram. An
/// earlier `now` counts as the latest: nothing runs again or is sent, no
/// deadline falls behind, the replays are dropped by the replay window, the
/// expiry stays where it was, and the invitation still expires exactly on
/// time: B's Final(Expired) leaves at its `expires_at`, and both sides end
/// Expired.
///
/// Defence: an earlier `now` counts as the latest — `core/src/agent/mod.rs`
/// `Agent::clock`, and behind it `core/src/invite/mod.rs`
/// `Invitation::clock` and `core/src/session.rs` `Session::clock`; the
/// expiry is set once, from the first fragment (`InviteeAction::Adopt`);
/// the transport replay window (`core/src/replay.rs`).
#[test]
fn clock_going_backwards_while_ringing_counts_as_the_latest_and_it_still_expires_on_time() {
    let (mut m, a, b) = pair(8, [0, 0]);
    agent_mut(&mut m.net, b).reaction = Reaction::Ignore;
    let h = invite(&mut m, a, b, expires_in(60));
    let (incoming, presented) = until_presented(&mut m, b);
    let expires_at = agent(&m.net, b).agent.incoming(incoming).unwrap().expires_at;
    assert_eq!(expires_at, presented + MS(59_960), "60 s less the handshake's 40 ms");
    run_to(&mut m, presented + secs(30));
    let invite_bytes = sent_of(&m, Msg::Invite)[0].bytes.clone();
    let ringing_bytes = sent_of(&m, Msg::Ringing)[0].bytes.clone();
    let (addr_a, addr_b) = (agent(&m.net, a).address(), agent(&m.net, b).address());
    let now = local_now(&m.net, b);
    let back = [Instant::ZERO, presented, Instant::from_millis(now.as_millis() - 3_600_000)];
    let (sent_a, sent_b) = (agent(&m.net, a).sent.len(), agent(&m.net, b).sent.len());
    for t in back {
        skewed_mut(&mut m.net, b).timeout_at(t);
        skewed_mut(&mut m.net, a).timeout_at(t);
        let replayed = Err(Dropped::Session(session::Dropped::Replayed));
        let r = skewed_mut(&mut m.net, b)
            .call(t, |ag, now| ag.handle_datagram(now, addr_a, &invite_bytes));
        assert_eq!(r, replayed, "a replayed Invite at {t:?}");
        let r = skewed_mut(&mut m.net, a)
            .call(t, |ag, now| ag.handle_datagram(now, addr_b, &ringing_bytes));
        assert_eq!(r, replayed, "a replayed Ringing at {t:?}");
        for id in [a, b] {
            let mut buf = [0u8; peercollab_core::wire::MAX_DATAGRAM];
            let sent =
                skewed_mut(&mut m.net, id).call(t, |ag, now| ag.poll_transmit(now, &mut buf));
            assert_eq!(sent, None, "nothing runs again at {t:?}");
            skewed(&m.net, id).assert_deadline_ahead(t);
        }
        assert_eq!(agent(&m.net, b).agent.incoming(incoming).unwrap().expires_at, expires_at);
    }
    assert_eq!((agent(&m.net, a).sent.len(), agent(&m.net, b).sent.len()), (sent_a, sent_b));
    settle(&mut m);
    let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
    let finals = sent_of(&m, Msg::Final);
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].at, expires_at, "Final(Expired) at the expiry, not later");
    assert_eq!(na.responded(h), vec![Outcome::Expired]);
    assert_eq!(responded_at(&m.net, a, h), vec![expires_at + MS(20)]);
    assert_eq!(nb.incoming_outcomes(), vec![(incoming, Outcome::Expired)]);
    assert_all_freed(&m);
}

/// B rings (60 s expiry); 20 s in, its clock is set back an hour and stays
/// there. Its earlier times count as the latest it saw, so nothing runs
/// again and its timers wait for its clock to catch up: it rings no more,
/// and the invitation is not extended — A, hearing nothing, gives up
/// exactly `LIVENESS_TIMEOUT` after B's one Ringing (before its expiry plus
/// grace) and withdraws it with Cancel(GaveUp), which B takes at once. B's
/// user's Accept, with the backward time, is refused; when B's clock is put
/// right nothing revives.
///
/// Defence: an earlier `now` counts as the latest (`Agent::clock`,
/// `Invitation::clock`), and the inviter's give-up counted on its own clock
/// (`core/src/invite/mod.rs` `arm_inviter_give_up`: `LIVENESS_TIMEOUT` of
/// silence, at most `expires_at + EXPIRY_GRACE`).
#[test]
fn clock_set_back_an_hour_while_ringing_never_extends_the_invitation_nor_revives_it() {
    let (mut m, a, b) = pair(9, [0, 0]);
    agent_mut(&mut m.net, b).reaction = Reaction::Ignore;
    let t0 = local_now(&m.net, a);
    let h = invite(&mut m, a, b, expires_in(60));
    let (incoming, presented) = until_presented(&mut m, b);
    run_to(&mut m, presented + secs(20));
    skewed_mut(&mut m.net, b).jump(-HOUR_MS);
    let events_b = agent(&m.net, b).events.len();
    // Until A gives up (at most its expiry plus grace, in network time).
    run_to(&mut m, t0 + secs(60) + EXPIRY_GRACE + secs(1));
    assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Unreachable]);
    let gave_up = presented + MS(20) + LIVENESS_TIMEOUT;
    assert_eq!(responded_at(&m.net, a, h), vec![gave_up]);
    assert!(gave_up <= t0 + secs(60) + EXPIRY_GRACE);
    assert_eq!(sent_of(&m, Msg::Ringing).len(), 1, "B rang once, before the jump");
    assert_eq!(
        agent(&m.net, b).incoming_outcomes(),
        vec![(incoming, Outcome::Cancelled(CancelReason::GaveUp))]
    );
    assert_eq!(agent(&m.net, b).events.len(), events_b + 1, "one IncomingEnded, nothing else");
    let now_b = local_now(&m.net, b);
    let late = skewed_mut(&mut m.net, b)
        .call(now_b, |ag, now| ag.respond(now, incoming, Answer::Accept, ""));
    assert_eq!(late, Err(AgentError::Invitation(InviteError::Ended)));
    skewed_mut(&mut m.net, b).jump(HOUR_MS);
    settle(&mut m);
    let (na, nb) = (agent(&m.net, a), agent(&m.net, b));
    assert_eq!(na.responded(h), vec![Outcome::Unreachable]);
    assert_eq!(nb.incoming_outcomes().len(), 1);
    assert_eq!(nb.invited(), 1);
    assert_all_freed(&m);
}

/// B accepts 1 s after it presents (at T) and its first Final is lost.
/// While it waits to retransmit, both agents are fed earlier times —
/// `Instant::ZERO` and an hour back — in timeouts and polls, and B's user
/// answers again at zero. Nothing runs again: no extra Final, the second
/// answer refused, no deadline behind the latest time; the retransmission
/// leaves exactly 500 ms after the answer, A ends Accepted 20 ms later and
/// B when the Ack arrives, 40 ms later.
///
/// Defence: an earlier `now` counts as the latest (`Agent::clock`,
/// `Invitation::clock`), `Agent::respond` (the Answering/Respond row of
/// `core/src/invite/table.rs` `INVITEE` is Misuse), the Final's
/// retransmission timer (`RETRANSMIT_INITIAL`, `Invitation::back_off`).
#[test]
fn clock_going_backwards_while_the_accept_is_retransmitted_neither_repeats_nor_delays_it() {
    let (mut m, a, b, h, incoming, presented) = accepted_after_a_second_first_final_lost(12);
    let t = presented + secs(1);
    run_to(&mut m, t + MS(100));
    assert_eq!(sent_of(&m, Msg::Final).len(), 1, "the Accept is out, and lost");
    for back in [Instant::ZERO, Instant::from_millis(t.as_millis() - 3_600_000)] {
        for id in [a, b] {
            skewed_mut(&mut m.net, id).timeout_at(back);
            let mut buf = [0u8; peercollab_core::wire::MAX_DATAGRAM];
            let sent =
                skewed_mut(&mut m.net, id).call(back, |ag, now| ag.poll_transmit(now, &mut buf));
            assert_eq!(sent, None, "nothing runs again at {back:?}");
        }
        let again = skewed_mut(&mut m.net, b)
            .call(back, |ag, now| ag.respond(now, incoming, Answer::Decline, ""));
        assert_eq!(again, Err(AgentError::Invitation(InviteError::AlreadyAnswered)));
        skewed(&m.net, b).assert_deadline_ahead(back);
    }
    settle(&mut m);
    let finals = sent_of(&m, Msg::Final);
    assert_eq!(finals.iter().map(|c| c.at).collect::<Vec<_>>(), vec![t, t + MS(500)]);
    assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Accepted]);
    assert_eq!(responded_at(&m.net, a, h), vec![t + MS(520)]);
    assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, Outcome::Accepted)]);
    assert_eq!(ended_at(&m.net, b), vec![t + MS(540)]);
    release(&mut m, b, incoming);
    assert_all_freed(&m);
}

/// Both sides ended Expired; while B lingers, earlier times arrive with
/// commands and datagrams: an Accept at the presentation time, a cancel at
/// `Instant::ZERO`, the recorded Final replayed at zero, timeouts at zero.
/// The ended invitation stays ended: refused commands, dropped datagrams,
/// no event, no deadline behind the latest time.
///
/// Defence: `Agent::clock`, `Agent::respond` (`now.max(last_now)`), the
/// Lingering rows of `core/src/invite/table.rs` (Respond: Misuse) and the
/// transport replay window (`core/src/replay.rs`).
#[test]
fn clock_going_backwards_after_the_expiry_never_revives_the_ended_invitation() {
    let (mut m, a, b) = pair(10, [0, 0]);
    agent_mut(&mut m.net, b).reaction = Reaction::Ignore;
    let h = invite(&mut m, a, b, expires_in(20));
    let (incoming, presented) = until_presented(&mut m, b);
    run_until(&mut m, 120, |n| !n.node::<Skewed>(b).node.incoming_outcomes().is_empty());
    assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Expired]);
    assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, Outcome::Expired)]);
    let final_bytes = sent_of(&m, Msg::Final)[0].bytes.clone();
    let ack_bytes = sent_of(&m, Msg::Ack)[0].bytes.clone();
    let (addr_a, addr_b) = (agent(&m.net, a).address(), agent(&m.net, b).address());
    let events = (agent(&m.net, a).events.clone(), agent(&m.net, b).events.clone());
    let sent = (agent(&m.net, a).sent.len(), agent(&m.net, b).sent.len());
    let answer = skewed_mut(&mut m.net, b)
        .call(presented + secs(1), |ag, now| ag.respond(now, incoming, Answer::Accept, ""));
    assert_eq!(answer, Err(AgentError::Invitation(InviteError::Ended)));
    let cancel = skewed_mut(&mut m.net, a).call(Instant::ZERO, |ag, now| ag.cancel(now, h));
    assert_eq!(cancel, Ok(CancelEffect::NoEffect));
    for t in [Instant::ZERO, presented] {
        let r = skewed_mut(&mut m.net, a)
            .call(t, |ag, now| ag.handle_datagram(now, addr_b, &final_bytes));
        assert!(r.is_err(), "the replayed Final is dropped");
        let r = skewed_mut(&mut m.net, b)
            .call(t, |ag, now| ag.handle_datagram(now, addr_a, &ack_bytes));
        assert!(r.is_err(), "the replayed Ack is dropped");
        skewed_mut(&mut m.net, a).timeout_at(t);
        skewed_mut(&mut m.net, b).timeout_at(t);
    }
    assert_eq!((agent(&m.net, a).events.clone(), agent(&m.net, b).events.clone()), events);
    m.net.flush();
    assert_eq!((agent(&m.net, a).sent.len(), agent(&m.net, b).sent.len()), sent);
    settle(&mut m);
    assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Expired]);
    assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, Outcome::Expired)]);
    assert_all_freed(&m);
}

/// A's clock reads an hour back once — when its user invites — and then
/// right again. The invitation counts from the latest time A saw, so it
/// keeps its whole 60 s: B sees 60 s less the handshake, and an Accept
/// 50 s after presentation is Accepted on both sides. The same glitch at
/// B, when A's initiation arrives, changes nothing either.
///
/// Defence: `core/src/agent/mod.rs` `Agent::clock`, applied by
/// `invite_contact` before the session and invitation are started and by
/// `handle_datagram` before a new invitee is.
#[test]
fn clock_going_backwards_at_the_invite_counts_as_the_latest_so_it_keeps_its_whole_expiry() {
    let (mut m, a, b) = pair(11, [0, 0]);
    agent_mut(&mut m.net, b).reaction = answer_after(50, Answer::Accept, "");
    let back = Instant::from_millis(local_now(&m.net, a).as_millis() - 3_600_000);
    let a_card = agent(&m.net, b).card();
    let contact = agent(&m.net, a).agent.contact_by_identity(a_card.identity()).unwrap();
    let endpoint = agent(&m.net, b).agent.identity().certificate().endpoint();
    let target = Target { endpoint, address: agent(&m.net, b).address() };
    // A saw the network's time (its card, the pair's setup) at BASE.
    let now_a = local_now(&m.net, a);
    skewed_mut(&mut m.net, a).timeout_at(now_a);
    let h = skewed_mut(&mut m.net, a)
        .call(back, |ag, now| {
            ag.invite_contact(now, contact, &[target], &request(), expires_in(60))
        })
        .unwrap()
        .unwrap();
    // B reads its clock an hour back when the initiation arrives: the
    // attacker takes it off the link and hands it to B at that time.
    m.script(move |c| if c.index == 0 && c.from == a { vec![] } else { vec![Action::Forward] });
    m.net.flush();
    let init = m
        .net
        .trace
        .iter()
        .find_map(|e| match e {
            TraceEntry::Sent { from, bytes, .. } if *from == a => Some(bytes.clone()),
            _ => None,
        })
        .expect("the initiation");
    let addr_a = agent(&m.net, a).address();
    let now_b = local_now(&m.net, b);
    skewed_mut(&mut m.net, b).timeout_at(now_b);
    let b_back = Instant::from_millis(now_b.as_millis() - 3_600_000);
    let r =
        skewed_mut(&mut m.net, b).call(b_back, |ag, now| ag.handle_datagram(now, addr_a, &init));
    assert_eq!(r, Ok(()));
    let (incoming, presented) = until_presented(&mut m, b);
    assert_eq!(presented, BASE + MS(40), "initiation at once, response and Invite 20 ms each");
    let expires_at = agent(&m.net, b).agent.incoming(incoming).unwrap().expires_at;
    assert_eq!(expires_at, BASE + secs(60) + MS(20), "A's 60 s from BASE, 20 ms later at B");
    settle(&mut m);
    assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Accepted]);
    assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, Outcome::Accepted)]);
    release(&mut m, b, incoming);
    assert_all_freed(&m);
}

// ----- clocks far apart ------------------------------------------------------

/// A and B each read a clock of their own, far apart: equal, A an hour before
/// the end of time and B a day behind the network, the reverse, A a day
/// behind. The expiry travels as time remaining, so B's expiry is 60 s from
/// A's invite on B's own clock (60 s less the 40 ms handshake after it
/// presents), whatever A's clock says: an Accept a millisecond before it is
/// Accepted on both sides, one exactly at it is too late and both sides
/// end Expired.
///
/// Defence: the time remaining on the wire (`Invitation::poll_transmit`
/// `remaining_ms`) and the invitee's relative expiry (`InviteeAction::Adopt`:
/// `expires_at = now + remaining`), `Invitation::respond` (at or after the
/// expiry is too late).
#[test]
fn clock_of_a_peer_far_ahead_or_behind_still_completes_an_invitation_within_its_expiry() {
    let end = i128::from(far_future().as_millis()) - i128::from(BASE.as_millis());
    let day = 24 * HOUR_MS;
    let clocks = [(0, 0), (end, -day), (-day, end), (-day, 0)];
    for (seed, (off_a, off_b)) in (20..).zip(clocks) {
        for (after_ms, expected) in [(59_959, Outcome::Accepted), (59_960, Outcome::Expired)] {
            let (mut m, a, b) = pair(seed, [off_a, off_b]);
            agent_mut(&mut m.net, b).reaction = Reaction::Answer {
                after: MS(after_ms),
                answer: Answer::Accept,
                reason: String::new(),
            };
            let h = invite(&mut m, a, b, expires_in(60));
            let (incoming, presented) = until_presented(&mut m, b);
            let expires_at = agent(&m.net, b).agent.incoming(incoming).unwrap().expires_at;
            let case = format!("clocks {off_a} / {off_b}, answer after {after_ms} ms");
            assert_eq!(expires_at, presented + MS(59_960), "{case}");
            settle(&mut m);
            assert_eq!(agent(&m.net, a).responded(h), vec![expected], "{case}");
            assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, expected)], "{case}");
            let answered = &agent(&m.net, b).answers;
            // At the expiry itself the timer runs first: the invitation has
            // already answered Expired when the user's Accept comes.
            let refused = Err(AgentError::Invitation(InviteError::AlreadyAnswered));
            let want = if expected == Outcome::Accepted { Ok(()) } else { refused };
            assert_eq!(answered, &vec![(incoming, want)], "{case}");
            if expected == Outcome::Accepted {
                release(&mut m, b, incoming);
            }
            assert_all_freed(&m);
        }
    }
}

/// A's clock is an hour before the end of time and it announces the longest
/// expiry the wire carries (about 49 days); B clamps it to its own maximum
/// (300 s by default) on its own clock and both sides end Expired on B's
/// word, long before A's announced expiry.
///
/// Defence: the invitee's clamp (`core/src/invite/mod.rs`
/// `InviteeAction::Adopt`: `remaining.min(max_expiry)`; `AgentConfig::
/// max_expiry`).
#[test]
fn clock_independent_expiry_is_clamped_to_the_invitees_maximum_whatever_the_inviters_clock() {
    let end = i128::from(far_future().as_millis()) - i128::from(BASE.as_millis());
    let (mut m, a, b) = pair(30, [end, 0]);
    agent_mut(&mut m.net, b).reaction = Reaction::Ignore;
    let options = InviteOptions::default().expires_in(MAX_EXPIRY_ON_WIRE);
    let h = invite(&mut m, a, b, options);
    let (incoming, presented) = until_presented(&mut m, b);
    let expires_at = agent(&m.net, b).agent.incoming(incoming).unwrap().expires_at;
    assert_eq!(expires_at, presented + AgentConfig::default().max_expiry);
    settle(&mut m);
    assert_eq!(agent(&m.net, a).responded(h), vec![Outcome::Expired]);
    assert_eq!(agent(&m.net, b).incoming_outcomes(), vec![(incoming, Outcome::Expired)]);
    assert_eq!(sent_of(&m, Msg::Final)[0].at, expires_at);
    let _ = FINAL_TIMEOUT;
    assert_all_freed(&m);
}
