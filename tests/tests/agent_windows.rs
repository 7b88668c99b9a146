//! The Windows Peer Collaboration invitation behaviours
//! (`/work/shared/anchors/windows-peercollab.md`, §4), one test each,
//! between agents on the virtual network. Where a behaviour cannot apply
//! literally to a sans-IO library, the test shows peercollab's replacement.
//!
//! | § 4 | test | what it shows |
//! |---|---|---|
//! | 1 | `four_send_variants_contact_or_endpoint_awaited_or_polled` | contact (IK) and endpoint (XX) invitations, each awaited on its `Responded` event ("sync") and polled with `response(handle)` ("async"): four distinct handles, all Accepted, all presented at the invitee as the inviter's; misuse (no endpoint: `NoTargets` = `E_NOTIMPL`; 256-character message) fails at once and starts nothing |
//! | 2 | `contact_invite_reaches_only_the_named_contact_endpoint_invite_whoever_answers` | a contact invitation sent to another peer's address cannot be read there (dropped `BadMac`, no reply, never presented; inviter ends Unreachable); an endpoint invitation is accepted by whoever answers and `answered_by` names that peer; with `expect` a wrong answerer gives `Failed(IdentityMismatch)` before it sees the invitation, the right one is Accepted and named as the contact |
//! | 3 | `invitation_is_app_id_data_to_16_kib_message_to_255_chars_and_the_response_an_outcome` | a 16 KiB data + 255-character (1,020-byte) message invitation arrives byte for byte; one character or byte more is refused locally (`TextTooLong`, `DataTooLarge`); the response is an outcome for each Windows action: Accepted, Declined (+ reason text), NotRegistered (automatic decline), Expired, Unreachable (ERROR), naming the answering endpoint (none when nobody answered) |
//! | 4 | `unanswered_invitation_ends_expired_at_both_ends_within_five_minutes_and_grace` | default expiry 300 s: pending (ringing) at 299 s, then Expired at the invitee and at the inviter between 300 s and 300 s + `EXPIRY_GRACE`; an inviter asking for an hour is clamped to 5 minutes by the invitee; with the invitee's replies lost from 290 s the inviter still ends by 300 s + grace (Unreachable, the `PEER_E_TIMEOUT` analogue) and the invitee ends Cancelled(GaveUp) |
//! | 5 | `async_invitations_poll_pending_until_answered_and_share_one_event_queue` | three outstanding invitations polled with `response(handle)` after every step: `Pending { ringing: false }` (`PEER_E_INVITE_RESPONSE_NOT_AVAILABLE`), then `ringing: true`, then each its own outcome (Accepted, Declined, Expired), never changing after; one event queue carries exactly one `Ringing` and one `Responded` per handle, at the instant polling first sees the change, in answer order |
//! | 6 | `handle_is_optional_stays_valid_after_cancel_and_is_invalid_once_closed` | `discard_handle` returns no handle, the invitation still runs to its end (invitee Accepted), the inviter gets no event and holds nothing; a kept handle stays readable after cancel (and a second cancel is `NoEffect`) and after its outcome (an hour later) until `close`, then `response`/`cancel`/`close` are `UnknownHandle` (`E_HANDLE`) |
//! | 7 | `cancel_abandons_before_delivery_withdraws_while_ringing_and_is_a_no_op_once_answered` | cancel's three cases: before anything is sent, and during the handshake, `Abandoned` (nothing sent / nothing presented or reported at the invitee); while ringing `Withdrawing` (invitee ends Cancelled(ByUser), its later answer fails `Ended`); after Accepted `NoEffect` (nothing sent, both ends stay Accepted); `response` reads Cancelled(ByUser) (`PEER_E_INVITE_CANCELLED`) |
//! | 8 | `invitation_to_an_unregistered_application_is_refused_without_being_shown` | an invitation to an application the invitee has not registered ends NotRegistered and is never presented; registering makes it ring, unregistering refuses it again; under TrustedOnly a known contact hears NotAccepted for registered and unregistered applications alike (registrations stay hidden), a trusted one NotRegistered |
//! | 9 | `recipient_policy_anyone_trusted_only_nobody_defaults_to_anyone` | default policy Anyone; TrustedOnly rings trusted contacts only (known contacts and XX strangers get NotAccepted, IK strangers silence); Nobody gives contacts NotAccepted and strangers silence (Unreachable, invitee sends nothing); trust comes with the card and `update_contact`/`set_policy` change the next verdict |
//! | 10 | `no_sign_in_needed_and_scope_is_policy_per_application` | no sign-in: a fresh agent with no contacts or applications invites by address at once; the sign-in "scope" is policy per application: under a global TrustedOnly an application registered with Anyone takes a stranger's invitation (People-Near-Me-like) while the others refuse it and still ring for a trusted contact |
//! | 11 | `host_ux_is_events_invited_is_the_prompt_respond_answers_acceptance_launches` | the application is the host: one `Invited` event is the toast, `incoming` the dialog (inviter, contact, address, app and its registered name, message, data, expiry), `respond` the click; launch information exists only after `IncomingEnded { Accepted }` (not while ringing, not right after answering, not after a decline); a second answer is refused |
//! | 12 | `launch_info_names_inviter_endpoint_contact_if_any_and_data_verbatim_else_not_found` | launch info names the inviter's certificate (identity, endpoint), address, contact (`None` for a stranger), application, empty message and data byte for byte (NULs, non-UTF-8); a declined invitation has none (`NoLaunchInfo` = `PEER_E_NOT_FOUND`) though the invitation stays readable |
//! | 13 | `application_registry_holds_64_latest_registration_wins_unknown_is_not_found` | the default agent holds 64 applications (the 65th is `ApplicationsFull`); registering an id again replaces name and policy in place (one entry; between agents the newest policy decides: Nobody → NotAccepted, none → Accepted, TrustedOnly → NotAccepted); bad names refused without change; unregistering an unknown id is `UnknownApplication` (`PEER_E_NOT_FOUND`) |
//! | 14 | `getters_borrow_from_the_agent_and_launch_info_stays_readable_until_release` | no PeerFreeData: views borrow from the agent; launch info reads the same repeatedly an hour later, holding one body buffer and one slot until `release`, which returns both (released while lingering: buffer at once, slot after the linger); `close` frees handles; enumerations are iterators |
//! | 15 | `agents_need_no_global_startup_and_two_in_one_process_are_independent` | no Startup/Shutdown: agents work from `new`; agents in one process keep their own policy, applications, contacts and handles (one silent under Nobody while another accepts, even two with the same identity); the same scenario run twice is identical datagram for datagram; the version is per datagram: another version is dropped `UnknownVersion` without reply |
//! | 16 | `fan_out_to_several_endpoints_combines_accept_first_then_declined_expired_error` | one handle fans out to every endpoint of a contact: the first Accept wins at once and the others end Cancelled(AnsweredElsewhere), a late answer failing `Ended`; otherwise the outcome waits for every endpoint: Declined over Expired, Expired over NotRegistered and Unreachable, NotRegistered over Unreachable, Unreachable (no answerer) if nobody answers; one `Responded` event each |
//! | 17 | `invitation_travels_only_inside_an_authenticated_encrypted_session` | a passive observer of every datagram (IK and XX, over IPv6) never sees 8 bytes of the message, data or application id; before the invitee's handshake reply the inviter sends only initiations; a replayed transport datagram (`Replayed`) and a forged one (`Decrypt`) are dropped and change nothing (still Accepted) |
//! | 18 | `timeouts_are_bounded_on_virtual_time_and_leave_no_timers_behind` | no sign-in delay: the first datagram leaves at the instant of the invite; nobody at the address gives Unreachable after `HANDSHAKE_TIMEOUT` (32 s, within 1 s); an invitee falling silent while ringing gives Unreachable within `LIVENESS_TIMEOUT` of the last datagram heard; afterwards no timer and no slot remains at either agent |

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use peercollab_core::agent::{
    Agent, AgentConfig, AgentError, ContactUpdate, Dropped, Event, Handle, IncomingId,
    InvitationRequest, InviteOptions, Policy, Status, Target, Trust,
};
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::{
    Answer, AppId, CancelEffect, CancelReason, DEFAULT_EXPIRY, DEFAULT_MAX_EXPIRY, EXPIRY_GRACE,
    FailureCause, InviteError, LIVENESS_TIMEOUT, MAX_APP_DATA, MAX_MESSAGE_CHARS, MessageError,
    Outcome,
};
use peercollab_core::session::{self, HANDSHAKE_TIMEOUT};
use peercollab_core::wire::{FrameType, MAX_DATAGRAM, VERSION, WireError, peek_type};
use peercollab_core::{Duration, HashDrbg, Instant};
use peercollab_tests::agents::{
    APP, AddressBook, AgentNode, add_agents, answer_after, befriend, clean_network, invite_contact,
    invite_endpoint, one_identity_at, register, request, settle, target_of,
};
use peercollab_tests::party::Reaction;
use peercollab_tests::{Faults, Network, NodeId, TraceEntry};

// ----- helpers ---------------------------------------------------------------

/// A second application, for tests that need two.
const APP2: AppId = AppId(*b"peercollab-app-2");

/// A network with 20 ms links and `n` agents with the default config.
fn network(n: usize, seed: u64) -> (Network, AddressBook, Vec<NodeId>) {
    clean_network(seed, n, seed * 100)
}

fn nd(net: &Network, id: NodeId) -> &AgentNode {
    net.node::<AgentNode>(id)
}

fn nd_mut(net: &mut Network, id: NodeId) -> &mut AgentNode {
    net.node_mut::<AgentNode>(id)
}

/// The outcome `response(handle)` reads, `None` while pending.
fn polled(net: &Network, node: NodeId, handle: Handle) -> Option<Outcome> {
    match nd(net, node).agent.response(handle).expect("open handle") {
        Status::Answered(r) => Some(r.outcome),
        _ => None,
    }
}

/// The `Responded` events of `handle`, with their times.
fn responded_at(net: &Network, node: NodeId, handle: Handle) -> Vec<(Instant, Outcome)> {
    nd(net, node)
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Responded { handle: h, outcome } if *h == handle => Some((*t, *outcome)),
            _ => None,
        })
        .collect()
}

/// Outcomes of the incoming invitations at `node`, in order.
fn ended(net: &Network, node: NodeId) -> Vec<Outcome> {
    nd(net, node).incoming_outcomes().into_iter().map(|(_, o)| o).collect()
}

fn invited(net: &Network, node: NodeId) -> usize {
    nd(net, node).invited()
}

/// Windows' synchronous call as a sans-IO caller writes it: drive the
/// network until the agent reports the handle's outcome.
fn await_outcome(net: &mut Network, node: NodeId, handle: Handle) -> Outcome {
    let deadline = net.now + Duration::from_secs(600);
    net.run(1_000_000, deadline, |n| !responded_at(n, node, handle).is_empty())
        .expect("no livelock");
    let events = responded_at(net, node, handle);
    assert_eq!(events.len(), 1, "one Responded event");
    events[0].1
}

/// Windows' asynchronous call without an event: poll the handle after every
/// step until it is answered. Returns the outcome and how many polls read
/// Pending first.
fn poll_until_answered(net: &mut Network, node: NodeId, handle: Handle) -> (Outcome, usize) {
    for pending in 0..1_000_000 {
        if let Some(outcome) = polled(net, node, handle) {
            return (outcome, pending);
        }
        assert!(net.step(), "the network went idle with the invitation pending");
    }
    panic!("never answered");
}

/// Runs until `node` reports one more `IncomingEnded` (at most 600 s);
/// returns its incoming invitation.
fn run_until_incoming_ended(net: &mut Network, node: NodeId) -> IncomingId {
    let before = nd(net, node).incoming_outcomes().len();
    let deadline = net.now + Duration::from_secs(600);
    net.run(1_000_000, deadline, |n| nd(n, node).incoming_outcomes().len() > before)
        .expect("no livelock");
    assert!(nd(net, node).incoming_outcomes().len() > before, "no incoming invitation ended");
    nd(net, node).incoming_outcomes().last().expect("an incoming invitation ended").0
}

/// Runs the network up to exactly `at` (a no-op script on `node` makes `at`
/// a step, so the run cannot jump past it), then stops.
fn run_to(net: &mut Network, node: NodeId, at: Instant) {
    nd_mut(net, node).at(at, |_, _| {});
    net.run(1_000_000, at, |n| n.now >= at).expect("no livelock");
    assert_eq!(net.now, at);
}

const fn secs(s: u64) -> Instant {
    Instant::from_millis(s * 1_000)
}

// ----- 1. four send variants -------------------------------------------------

#[test]
fn four_send_variants_contact_or_endpoint_awaited_or_polled() {
    let (mut net, _book, ids) = network(2, 1);
    let (a, b) = (ids[0], ids[1]);
    let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
    let a_at_b = befriend(&mut net, b, a, Trust::Trusted);
    register(&mut net, b, APP);
    let target = target_of(&net, b);

    // Misuse fails at once and starts nothing (Windows: E_NOTIMPL for a
    // NULL endpoint, E_INVALIDARG for a bad invitation).
    {
        let agent = &mut nd_mut(&mut net, a).agent;
        let opts = InviteOptions::default();
        assert_eq!(
            agent.invite_contact(Instant::ZERO, b_at_a, &[], &request(), opts),
            Err(AgentError::NoTargets)
        );
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        let bad = InvitationRequest { message: &long, ..request() };
        assert!(matches!(
            agent.invite_endpoint(Instant::ZERO, target.address, &bad, opts),
            Err(AgentError::Invitation(InviteError::BadMessage(_)))
        ));
        assert_eq!(agent.invitations_in_use(), 0);
        assert_eq!(agent.handles_in_use(), 0);
    }

    let opts = InviteOptions::default();
    // Contact-bound, "synchronous": wait for the handle's Responded event.
    let h = invite_contact(&mut net, a, b_at_a, &[target], &request(), opts);
    assert_eq!(await_outcome(&mut net, a, h), Outcome::Accepted);
    assert_eq!(polled(&net, a, h), Some(Outcome::Accepted));
    let mut handles = vec![h];

    // Contact-bound, asynchronous: poll the handle, never reading events.
    let h = invite_contact(&mut net, a, b_at_a, &[target], &request(), opts);
    let (outcome, pending_polls) = poll_until_answered(&mut net, a, h);
    assert_eq!(outcome, Outcome::Accepted);
    assert!(pending_polls > 0, "the first poll came before the answer");
    handles.push(h);

    // Endpoint, "synchronous".
    let h = invite_endpoint(&mut net, a, b, &request(), opts);
    assert_eq!(await_outcome(&mut net, a, h), Outcome::Accepted);
    handles.push(h);

    // Endpoint, asynchronous.
    let h = invite_endpoint(&mut net, a, b, &request(), opts);
    let (outcome, pending_polls) = poll_until_answered(&mut net, a, h);
    assert_eq!(outcome, Outcome::Accepted);
    assert!(pending_polls > 0);
    handles.push(h);
    settle(&mut net, 120);

    // All four handles are distinct and each has its own response.
    let na = nd(&net, a);
    let b_identity = nd(&net, b).agent.identity().identity();
    for (i, &h) in handles.iter().enumerate() {
        assert!(handles[..i].iter().all(|&o| o != h), "handle {i} is distinct");
        assert_eq!(responded_at(&net, a, h).len(), 1, "handle {i}");
        let Ok(Status::Answered(r)) = na.agent.response(h) else { panic!("handle {i} pending") };
        assert_eq!(r.outcome, Outcome::Accepted);
        assert_eq!(r.answered_by.map(|c| *c.identity()), Some(b_identity));
        assert_eq!(r.contact, Some(b_at_a), "handle {i} names the contact");
    }
    // Each variant reached B as A's invitation, for APP.
    let a_identity = na.agent.identity().identity();
    let nb = nd(&net, b);
    assert_eq!(nb.presented.len(), 4);
    for seen in &nb.presented {
        assert_eq!(*seen.inviter.identity(), a_identity);
        assert_eq!(seen.contact, Some(a_at_b));
        assert_eq!(seen.app_id, APP);
        assert_eq!((seen.message.as_str(), seen.data.as_slice()), ("join me", &b"port=4000"[..]));
    }
    assert_eq!(ended(&net, b), vec![Outcome::Accepted; 4]);
}

// ----- 2. contact-bound vs endpoint ------------------------------------------

#[test]
fn contact_invite_reaches_only_the_named_contact_endpoint_invite_whoever_answers() {
    let (mut net, _book, ids) = network(3, 2);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
    register(&mut net, b, APP);
    register(&mut net, c, APP);
    let b_identity = nd(&net, b).agent.identity().identity();
    let c_identity = nd(&net, c).agent.identity().identity();
    let opts = InviteOptions::default();

    // A contact invitation for B sent to C's address: C cannot read it
    // (it is addressed to B's key) and answers nothing; A gives up.
    let wrong = Target { address: nd(&net, c).address(), ..target_of(&net, b) };
    let h = invite_contact(&mut net, a, b_at_a, &[wrong], &request(), opts);
    settle(&mut net, 120);
    assert_eq!(
        responded_at(&net, a, h).iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![Outcome::Unreachable]
    );
    let nc = nd(&net, c);
    assert_eq!(invited(&net, c), 0);
    assert!(nc.sent.is_empty(), "C answers nothing");
    assert!(!nc.dropped.is_empty());
    assert!(
        nc.dropped.iter().all(|(_, d)| *d == Dropped::Session(session::Dropped::BadMac)),
        "{:?}",
        nc.dropped
    );
    assert_eq!(invited(&net, b), 0);

    // An endpoint invitation that must reach B, sent to C: C proves its own
    // identity in the handshake and the invitation fails before C sees it.
    let h = invite_endpoint(&mut net, a, c, &request(), opts.expect(b_identity));
    settle(&mut net, 120);
    assert_eq!(polled(&net, a, h), Some(Outcome::Failed(FailureCause::IdentityMismatch)));
    assert_eq!(invited(&net, c), 0, "C never saw the invitation");

    // A plain endpoint invitation goes to whoever answers, and the response
    // names who that was: C, not a contact of A.
    let h = invite_endpoint(&mut net, a, c, &request(), opts);
    settle(&mut net, 120);
    let Ok(Status::Answered(r)) = nd(&net, a).agent.response(h) else { panic!("pending") };
    assert_eq!(r.outcome, Outcome::Accepted);
    assert_eq!(r.answered_by.map(|c| *c.identity()), Some(c_identity));
    assert_eq!(r.contact, None);
    assert_eq!(invited(&net, c), 1);

    // The same invitation to B's address, expecting B, reaches B and names
    // the contact.
    let h = invite_endpoint(&mut net, a, b, &request(), opts.expect(b_identity));
    settle(&mut net, 120);
    let Ok(Status::Answered(r)) = nd(&net, a).agent.response(h) else { panic!("pending") };
    assert_eq!(r.outcome, Outcome::Accepted);
    assert_eq!(r.answered_by.map(|c| *c.identity()), Some(b_identity));
    assert_eq!(r.contact, Some(b_at_a));
    assert_eq!(invited(&net, b), 1);
}

// ----- 3. invitation and response shape --------------------------------------

#[test]
fn invitation_is_app_id_data_to_16_kib_message_to_255_chars_and_the_response_an_outcome() {
    let (mut net, _book, ids) = network(5, 3);
    let a = ids[0];
    let (b1, b2, b3, b4) = (ids[1], ids[2], ids[3], ids[4]);
    for &b in &[b1, b2, b3] {
        register(&mut net, b, APP);
    }
    register(&mut net, b4, APP2);

    // The largest invitation: 255 four-byte characters and 16 KiB of data.
    let message = "\u{1D11E}".repeat(MAX_MESSAGE_CHARS);
    assert_eq!(message.len(), 4 * MAX_MESSAGE_CHARS);
    let data: Vec<u8> = (0..MAX_APP_DATA).map(|i| (i * 31 % 251) as u8).collect();
    let largest = InvitationRequest { app_id: APP, message: &message, data: &data };
    let opts = InviteOptions::default();

    // One character or one byte more is refused at once.
    {
        let agent = &mut nd_mut(&mut net, a).agent;
        let to = AddressBook::default_address(b1);
        let longer = format!("{message}x");
        let bad = InvitationRequest { message: &longer, ..largest };
        assert_eq!(
            agent.invite_endpoint(Instant::ZERO, to, &bad, opts),
            Err(AgentError::Invitation(InviteError::BadMessage(MessageError::TextTooLong)))
        );
        let more = vec![0u8; MAX_APP_DATA + 1];
        let bad = InvitationRequest { data: &more, ..largest };
        assert_eq!(
            agent.invite_endpoint(Instant::ZERO, to, &bad, opts),
            Err(AgentError::Invitation(InviteError::DataTooLarge))
        );
        assert_eq!(agent.invitations_in_use(), 0);
    }

    let h = invite_endpoint(&mut net, a, b1, &largest, opts);
    settle(&mut net, 120);
    assert_eq!(polled(&net, a, h), Some(Outcome::Accepted));
    let seen = &nd(&net, b1).presented;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].app_id, APP);
    assert_eq!(seen[0].message, message);
    assert_eq!(seen[0].data, data);
    let (incoming, _) = nd(&net, b1).incoming_outcomes()[0];
    let launch = nd(&net, b1).agent.launch_info(incoming).expect("launch info");
    assert_eq!((launch.message, launch.data), (message.as_str(), data.as_slice()));

    // The response is an outcome, for each of Windows' four actions:
    // ACCEPTED (above); DECLINED, with a reason Windows cannot carry, and
    // the automatic decline of an application not installed
    // (NotRegistered); EXPIRED; ERROR (here nobody answers: Unreachable).
    // Every answer names the endpoint that gave it.
    nd_mut(&mut net, b2).reaction = answer_after(1, Answer::Decline, "not today");
    nd_mut(&mut net, b3).reaction = Reaction::Ignore;
    let hd = invite_endpoint(&mut net, a, b2, &request(), opts);
    let he = invite_endpoint(&mut net, a, b3, &request(), opts.expires_in(Duration::from_secs(20)));
    let hn = invite_endpoint(&mut net, a, b4, &request(), opts);
    let now = net.now;
    let nobody: SocketAddr = "10.9.9.9:7000".parse().unwrap();
    let hu = nd_mut(&mut net, a)
        .agent
        .invite_endpoint(now, nobody, &request(), opts)
        .unwrap()
        .expect("handle");
    settle(&mut net, 120);
    for (h, b, outcome, reason) in [
        (hd, b2, Outcome::Declined, "not today"),
        (he, b3, Outcome::Expired, ""),
        (hn, b4, Outcome::NotRegistered, ""),
    ] {
        let identity = nd(&net, b).agent.identity().identity();
        let Ok(Status::Answered(r)) = nd(&net, a).agent.response(h) else { panic!("pending") };
        assert_eq!((r.outcome, r.reason), (outcome, reason));
        assert_eq!(r.answered_by.map(|c| *c.identity()), Some(identity), "{outcome:?}");
    }
    let Ok(Status::Answered(r)) = nd(&net, a).agent.response(hu) else { panic!("pending") };
    assert_eq!((r.outcome, r.answered_by, r.contact), (Outcome::Unreachable, None, None));
    assert_eq!(ended(&net, b2), vec![Outcome::Declined]);
    assert_eq!(ended(&net, b3), vec![Outcome::Expired]);
    assert_eq!(invited(&net, b4), 0);
}

// ----- 4. the 5-minute window -------------------------------------------------

/// An unanswered invitation from a fresh A to a fresh B with `options`;
/// B's replies are lost from `cut_replies_at` on. Returns when B's
/// incoming invitation ended (and how), when A's outcome came (and what),
/// and B's view of the expiry.
fn unanswered(
    seed: u64,
    options: InviteOptions,
    cut_replies_at: Option<Instant>,
) -> (Option<(Instant, Outcome)>, (Instant, Outcome), Instant) {
    let (mut net, _book, ids) = network(2, seed);
    let (a, b) = (ids[0], ids[1]);
    register(&mut net, b, APP);
    nd_mut(&mut net, b).reaction = Reaction::Ignore;
    let h = invite_endpoint(&mut net, a, b, &request(), options);
    run_to(&mut net, a, secs(10));
    let incoming = nd(&net, b).presented[0].incoming;
    let expires_at = nd(&net, b).agent.incoming(incoming).unwrap().expires_at;
    if let Some(at) = cut_replies_at {
        run_to(&mut net, a, at);
        net.cut.push((b, a));
    }
    // Still pending a second before five minutes.
    run_to(&mut net, a, secs(299));
    assert_eq!(
        nd(&net, a).agent.response(h).unwrap(),
        Status::Pending { ringing: true },
        "pending at {:?}",
        net.now
    );
    settle(&mut net, 600);
    let invitee = nd(&net, b).events.iter().find_map(|(t, e)| match e {
        Event::IncomingEnded { outcome, .. } => Some((*t, *outcome)),
        _ => None,
    });
    let inviter = responded_at(&net, a, h);
    assert_eq!(inviter.len(), 1);
    (invitee, inviter[0], expires_at)
}

#[test]
fn unanswered_invitation_ends_expired_at_both_ends_within_five_minutes_and_grace() {
    assert_eq!(DEFAULT_EXPIRY, Duration::from_secs(300));
    assert_eq!(InviteOptions::default().expires_in, DEFAULT_EXPIRY);
    let five_minutes = Instant::ZERO + DEFAULT_EXPIRY;
    let latest = five_minutes + EXPIRY_GRACE;

    // The default expiry: both ends decide Expired after five minutes, and
    // no later than the grace.
    let (invitee, inviter, expires_at) = unanswered(40, InviteOptions::default(), None);
    assert!(expires_at >= five_minutes && expires_at <= secs(301), "{expires_at:?}");
    let (t, outcome) = invitee.expect("the invitee ended");
    assert_eq!(outcome, Outcome::Expired);
    assert!(t >= five_minutes && t <= latest, "invitee ended at {t:?}");
    assert_eq!(inviter.1, Outcome::Expired);
    assert!(inviter.0 >= five_minutes && inviter.0 <= latest, "inviter at {:?}", inviter.0);

    // An inviter asking for an hour still gets five minutes: the invitee
    // clamps the expiry to its own maximum.
    assert_eq!(DEFAULT_MAX_EXPIRY, DEFAULT_EXPIRY);
    let hour = InviteOptions::default().expires_in(Duration::from_secs(3_600));
    let (invitee, inviter, expires_at) = unanswered(41, hour, None);
    assert!(expires_at <= secs(301), "clamped: {expires_at:?}");
    assert_eq!(invitee.map(|x| x.1), Some(Outcome::Expired));
    assert_eq!(inviter.1, Outcome::Expired);
    assert!(inviter.0 <= latest, "inviter at {:?}", inviter.0);

    // The invitee's replies are lost from 290 s: the inviter still ends,
    // no later than five minutes and the grace (Windows' PEER_E_TIMEOUT).
    let (invitee, inviter, _) = unanswered(42, InviteOptions::default(), Some(secs(290)));
    assert_eq!(inviter.1, Outcome::Unreachable);
    // Its give-up reaches the invitee, which ends too.
    assert_eq!(invitee.map(|x| x.1), Some(Outcome::Cancelled(CancelReason::GaveUp)));
    assert!(inviter.0 >= five_minutes && inviter.0 <= latest, "inviter at {:?}", inviter.0);
}

// ----- 5. several outstanding invitations, polled -----------------------------

#[test]
fn async_invitations_poll_pending_until_answered_and_share_one_event_queue() {
    let (mut net, _book, ids) = network(4, 5);
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    for &x in &[b, c, d] {
        register(&mut net, x, APP);
    }
    nd_mut(&mut net, b).reaction = answer_after(2, Answer::Accept, "");
    nd_mut(&mut net, c).reaction = answer_after(4, Answer::Decline, "");
    nd_mut(&mut net, d).reaction = Reaction::Ignore;
    let opts = InviteOptions::default();
    let handles = [
        invite_endpoint(&mut net, a, b, &request(), opts),
        invite_endpoint(&mut net, a, c, &request(), opts),
        invite_endpoint(&mut net, a, d, &request(), opts.expires_in(Duration::from_secs(10))),
    ];
    let expected = [Outcome::Accepted, Outcome::Declined, Outcome::Expired];
    // Before anything was sent: pending, not ringing (Windows'
    // PEER_E_INVITE_RESPONSE_NOT_AVAILABLE).
    for &h in &handles {
        assert_eq!(nd(&net, a).agent.response(h), Ok(Status::Pending { ringing: false }));
    }
    // Poll every handle after every step, as the Windows sample re-polls
    // every handle on each signal.
    let mut first_ringing: [Option<Instant>; 3] = [None; 3];
    let mut first_answered: [Option<(Instant, Outcome)>; 3] = [None; 3];
    for _ in 0..1_000_000 {
        if first_answered.iter().all(Option::is_some) {
            break;
        }
        assert!(net.step(), "idle before every invitation was answered");
        for (i, &h) in handles.iter().enumerate() {
            match nd(&net, a).agent.response(h).unwrap() {
                Status::Pending { ringing } => {
                    assert!(first_answered[i].is_none(), "handle {i} went back to pending");
                    if ringing && first_ringing[i].is_none() {
                        first_ringing[i] = Some(net.now);
                    }
                    if !ringing {
                        assert!(first_ringing[i].is_none(), "handle {i} stopped ringing");
                    }
                }
                Status::Answered(r) => match first_answered[i] {
                    None => first_answered[i] = Some((net.now, r.outcome)),
                    Some((_, o)) => assert_eq!(o, r.outcome, "handle {i} changed outcome"),
                },
                _ => panic!("unknown status"),
            }
        }
    }
    settle(&mut net, 120);
    let na = nd(&net, a);
    for (i, &h) in handles.iter().enumerate() {
        let (answered_at, outcome) = first_answered[i].expect("answered");
        assert_eq!(outcome, expected[i], "handle {i}");
        assert_eq!(polled(&net, a, h), Some(expected[i]), "still readable");
        // One edge per handle, at the instant the poll first saw it.
        assert_eq!(responded_at(&net, a, h), vec![(answered_at, outcome)], "handle {i}");
        let ringing: Vec<Instant> =
            na.events.iter().filter_map(|(t, e)| (*e == Event::Ringing(h)).then_some(*t)).collect();
        assert_eq!(ringing, vec![first_ringing[i].expect("rang")], "handle {i}");
        assert!(ringing[0] < answered_at);
    }
    // One queue, in the order the answers came: B (2 s), C (4 s), D (10 s).
    let order: Vec<Handle> = na
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Responded { handle, .. } => Some(*handle),
            _ => None,
        })
        .collect();
    assert_eq!(order, handles.to_vec());
    let d_at = first_answered[2].unwrap().0;
    assert!(d_at >= secs(10), "D expired at {d_at:?}");
}

// ----- 6. handle lifecycle -----------------------------------------------------

#[test]
fn handle_is_optional_stays_valid_after_cancel_and_is_invalid_once_closed() {
    let (mut net, _book, ids) = network(2, 6);
    let (a, b) = (ids[0], ids[1]);
    register(&mut net, b, APP);

    // No handle (phInvitation == NULL): the invitation runs to its end, its
    // outcome is discarded, nothing is left behind.
    let to = nd(&net, b).address();
    let none = nd_mut(&mut net, a)
        .agent
        .invite_endpoint(Instant::ZERO, to, &request(), InviteOptions::default().discard_handle())
        .unwrap();
    assert_eq!(none, None);
    settle(&mut net, 600);
    assert_eq!(ended(&net, b), vec![Outcome::Accepted], "it ran to its end");
    let na = nd(&net, a);
    assert!(na.events.is_empty(), "no event for a discarded handle");
    assert_eq!((na.agent.handles_in_use(), na.agent.invitations_in_use()), (0, 0));

    // A kept handle stays valid after cancel, until close.
    nd_mut(&mut net, b).reaction = Reaction::Ignore;
    let h = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let t = net.now + Duration::from_secs(5);
    nd_mut(&mut net, a).at(t, move |n, now| {
        assert_eq!(n.agent.cancel(now, h), Ok(CancelEffect::Withdrawing));
    });
    let t = t + Duration::from_secs(100);
    nd_mut(&mut net, a).at(t, move |n, now| {
        // Long after the cancel: still readable, cancelling again does
        // nothing, the slot is still held.
        let Ok(Status::Answered(r)) = n.agent.response(h) else { panic!("pending") };
        assert_eq!(r.outcome, Outcome::Cancelled(CancelReason::ByUser));
        assert_eq!(n.agent.cancel(now, h), Ok(CancelEffect::NoEffect));
        assert_eq!(n.agent.handles_in_use(), 1);
        n.agent.close(now, h).unwrap();
        assert_eq!(n.agent.handles_in_use(), 0);
        // Closed: E_HANDLE for everything.
        assert_eq!(n.agent.response(h), Err(AgentError::UnknownHandle));
        assert_eq!(n.agent.cancel(now, h), Err(AgentError::UnknownHandle));
        assert_eq!(n.agent.close(now, h), Err(AgentError::UnknownHandle));
    });
    settle(&mut net, 600);
    assert_eq!(responded_at(&net, a, h).len(), 1);
    assert_eq!(nd(&net, a).agent.handles_in_use(), 0);
    assert_eq!(nd(&net, a).agent.response(h), Err(AgentError::UnknownHandle));

    // An answered handle is kept (an hour later, still readable) until
    // closed.
    nd_mut(&mut net, b).reaction = answer_after(0, Answer::Accept, "");
    let h = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    settle(&mut net, 3_600);
    assert_eq!(polled(&net, a, h), Some(Outcome::Accepted));
    assert_eq!(nd(&net, a).agent.handles_in_use(), 1);
    assert_eq!(nd(&net, a).agent.invitations_in_use(), 0, "the endpoint's slot is free");
    let now = net.now;
    nd_mut(&mut net, a).agent.close(now, h).unwrap();
    assert_eq!(nd(&net, a).agent.handles_in_use(), 0);
    assert_eq!(nd(&net, a).agent.response(h), Err(AgentError::UnknownHandle));
}

// ----- 7. cancel's three cases ------------------------------------------------

#[test]
fn cancel_abandons_before_delivery_withdraws_while_ringing_and_is_a_no_op_once_answered() {
    let (mut net, _book, ids) = network(2, 7);
    let (a, b) = (ids[0], ids[1]);
    register(&mut net, b, APP);
    let effects: Rc<RefCell<Vec<CancelEffect>>> = Rc::default();

    // 1. Not yet connected. Cancelled before anything left: Abandoned, and
    //    nothing is ever sent.
    let h0 = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    assert_eq!(nd_mut(&mut net, a).agent.cancel(Instant::ZERO, h0), Ok(CancelEffect::Abandoned));
    assert_eq!(polled(&net, a, h0), Some(Outcome::Cancelled(CancelReason::ByUser)));
    settle(&mut net, 600);
    assert!(nd(&net, a).sent.is_empty(), "nothing was sent");
    assert!(nd(&net, b).dropped.is_empty() && nd(&net, b).sent.is_empty());
    //    Cancelled while the handshake's first message is in flight (20 ms
    //    links, cancel at 10 ms): Abandoned too; B answers the handshake but
    //    never presents or reports anything.
    let start = net.now;
    let h1 = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let e = effects.clone();
    nd_mut(&mut net, a).at(start + Duration::from_millis(10), move |n, now| {
        e.borrow_mut().push(n.agent.cancel(now, h1).unwrap());
    });
    settle(&mut net, 600);
    assert_eq!(effects.borrow()[0], CancelEffect::Abandoned);
    assert_eq!(polled(&net, a, h1), Some(Outcome::Cancelled(CancelReason::ByUser)));
    assert_eq!(responded_at(&net, a, h0).len(), 1);
    assert_eq!(responded_at(&net, a, h1).len(), 1);
    assert!(!nd(&net, b).sent.is_empty(), "B did answer the handshake");
    assert_eq!(invited(&net, b), 0);
    assert!(ended(&net, b).is_empty(), "B reports nothing");
    assert_eq!(nd(&net, b).agent.invitations_in_use(), 0);

    // 2. Delivered and ringing: Withdrawing. B ends Cancelled and can no
    //    longer answer; a later response reads Cancelled
    //    (PEER_E_INVITE_CANCELLED).
    nd_mut(&mut net, b).reaction = Reaction::Ignore;
    let h2 = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let start = net.now;
    let e = effects.clone();
    nd_mut(&mut net, a).at(start + Duration::from_secs(5), move |n, now| {
        assert_eq!(n.agent.response(h2), Ok(Status::Pending { ringing: true }));
        e.borrow_mut().push(n.agent.cancel(now, h2).unwrap());
    });
    let late: Rc<RefCell<Vec<Result<(), AgentError>>>> = Rc::default();
    let l = late.clone();
    nd_mut(&mut net, b).at(start + Duration::from_secs(6), move |n, now| {
        let incoming = n.presented.last().expect("presented").incoming;
        l.borrow_mut().push(n.agent.respond(now, incoming, Answer::Accept, ""));
    });
    settle(&mut net, 600);
    assert_eq!(effects.borrow()[1], CancelEffect::Withdrawing);
    assert_eq!(polled(&net, a, h2), Some(Outcome::Cancelled(CancelReason::ByUser)));
    assert_eq!(invited(&net, b), 1);
    assert_eq!(ended(&net, b), vec![Outcome::Cancelled(CancelReason::ByUser)]);
    assert_eq!(*late.borrow(), vec![Err(AgentError::Invitation(InviteError::Ended))]);

    // 3. Already answered: NoEffect. Nothing is sent and both outcomes stay
    //    Accepted.
    nd_mut(&mut net, b).reaction = answer_after(0, Answer::Accept, "");
    let h3 = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let outcome = await_outcome(&mut net, a, h3);
    assert_eq!(outcome, Outcome::Accepted);
    let sent_before = nd(&net, a).sent.len();
    let events_before = nd(&net, b).events.len();
    let now = net.now;
    assert_eq!(nd_mut(&mut net, a).agent.cancel(now, h3), Ok(CancelEffect::NoEffect));
    settle(&mut net, 600);
    assert_eq!(polled(&net, a, h3), Some(Outcome::Accepted));
    assert_eq!(responded_at(&net, a, h3).len(), 1);
    assert_eq!(ended(&net, b).last(), Some(&Outcome::Accepted));
    let nb = nd(&net, b);
    assert!(
        nb.events[events_before..]
            .iter()
            .all(|(_, e)| matches!(e, Event::IncomingEnded { outcome: Outcome::Accepted, .. })),
        "nothing but B's own Accepted end follows: {:?}",
        &nb.events[events_before..]
    );
    // A's datagrams after the cancel are only the acknowledgement of B's
    // Final and duplicates of it; no Cancel reached B (B ended Accepted).
    assert_eq!(nd(&net, a).sent.len(), sent_before, "NoEffect sends nothing");
}

// ----- 8. registration needed -------------------------------------------------

#[test]
fn invitation_to_an_unregistered_application_is_refused_without_being_shown() {
    let (mut net, _book, ids) = network(3, 8);
    let (a, b, k) = (ids[0], ids[1], ids[2]);
    register(&mut net, b, APP2);
    let opts = InviteOptions::default();

    // Not registered: refused, never presented.
    let h = invite_endpoint(&mut net, a, b, &request(), opts);
    settle(&mut net, 120);
    assert_eq!(polled(&net, a, h), Some(Outcome::NotRegistered));
    assert_eq!(invited(&net, b), 0);
    assert!(ended(&net, b).is_empty(), "nobody at B was told");

    // Registered: it rings and is accepted.
    register(&mut net, b, APP);
    let h = invite_endpoint(&mut net, a, b, &request(), opts);
    settle(&mut net, 120);
    assert_eq!(polled(&net, a, h), Some(Outcome::Accepted));
    assert_eq!(invited(&net, b), 1);

    // Unregistered again: refused again.
    nd_mut(&mut net, b).agent.unregister_application(APP).unwrap();
    let h = invite_endpoint(&mut net, a, b, &request(), opts);
    settle(&mut net, 120);
    assert_eq!(polled(&net, a, h), Some(Outcome::NotRegistered));
    assert_eq!(invited(&net, b), 1);

    // Registrations are hidden from senders the policy refuses: under
    // TrustedOnly a known (not trusted) contact hears NotAccepted for a
    // registered and an unregistered application alike; a trusted one
    // learns NotRegistered.
    nd_mut(&mut net, b).agent.set_policy(Policy::TrustedOnly);
    let k_at_b = befriend(&mut net, b, k, Trust::Known);
    let b_at_k = befriend(&mut net, k, b, Trust::Trusted);
    let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
    befriend(&mut net, b, a, Trust::Trusted);
    let target = target_of(&net, b);
    let registered = InvitationRequest { app_id: APP2, ..request() };
    let hk_unreg = invite_contact(&mut net, k, b_at_k, &[target], &request(), opts);
    let hk_reg = invite_contact(&mut net, k, b_at_k, &[target], &registered, opts);
    let ha_unreg = invite_contact(&mut net, a, b_at_a, &[target], &request(), opts);
    settle(&mut net, 120);
    assert_eq!(polled(&net, k, hk_unreg), Some(Outcome::NotAccepted));
    assert_eq!(polled(&net, k, hk_reg), Some(Outcome::NotAccepted));
    assert_eq!(polled(&net, a, ha_unreg), Some(Outcome::NotRegistered));
    assert_eq!(invited(&net, b), 1, "nothing new was presented");
    assert_eq!(nd(&net, b).agent.contact(k_at_b).unwrap().trust(), Trust::Known);
}

// ----- 9. recipient policy ------------------------------------------------------

/// How A fares inviting B over a fresh network: B has `policy`, and knows A
/// as `a_at_b` (or not at all); A invites by contact (IK, it holds B's card)
/// or by address (XX). Returns A's outcome, how many invitations B
/// presented, and whether B sent anything at all.
fn policy_run(
    seed: u64,
    policy: Policy,
    a_at_b: Option<Trust>,
    ik: bool,
) -> (Outcome, usize, bool) {
    let book = AddressBook::default();
    let mut net = Network::new(seed, Faults::clean(20));
    let a = add_agents(&mut net, &book, 1, seed * 10, AgentConfig::default())[0];
    let b = add_agents(&mut net, &book, 1, seed * 10 + 1, AgentConfig::with_policy(policy))[0];
    register(&mut net, b, APP);
    if let Some(trust) = a_at_b {
        befriend(&mut net, b, a, trust);
    }
    let h = if ik {
        let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
        let target = target_of(&net, b);
        invite_contact(&mut net, a, b_at_a, &[target], &request(), InviteOptions::default())
    } else {
        invite_endpoint(&mut net, a, b, &request(), InviteOptions::default())
    };
    settle(&mut net, 120);
    let outcome = polled(&net, a, h).expect("answered");
    (outcome, invited(&net, b), !nd(&net, b).sent.is_empty())
}

#[test]
fn recipient_policy_anyone_trusted_only_nobody_defaults_to_anyone() {
    use Outcome::{Accepted, NotAccepted, Unreachable};
    // Windows' default is Anyone.
    assert_eq!(AgentConfig::default().policy, Policy::Anyone);
    let (net, _book, ids) = network(1, 9);
    assert_eq!(nd(&net, ids[0]).agent.policy(), Policy::Anyone);

    let (ik, xx) = (true, false);
    let (trusted, known) = (Some(Trust::Trusted), Some(Trust::Known));
    let cases = [
        // Anyone: even a stranger who knows only the address.
        (Policy::Anyone, None, xx, (Accepted, 1, true)),
        (Policy::Anyone, None, ik, (Accepted, 1, true)),
        // Trusted contacts only.
        (Policy::TrustedOnly, trusted, ik, (Accepted, 1, true)),
        (Policy::TrustedOnly, trusted, xx, (Accepted, 1, true)),
        (Policy::TrustedOnly, known, ik, (NotAccepted, 0, true)),
        (Policy::TrustedOnly, None, xx, (NotAccepted, 0, true)),
        // A stranger with the card meets silence, as if nobody were there.
        (Policy::TrustedOnly, None, ik, (Unreachable, 0, false)),
        // No one: a contact is told, a stranger meets silence.
        (Policy::Nobody, trusted, ik, (NotAccepted, 0, true)),
        (Policy::Nobody, None, ik, (Unreachable, 0, false)),
        (Policy::Nobody, trusted, xx, (Unreachable, 0, false)),
    ];
    for (i, (policy, trust, mode, expected)) in cases.into_iter().enumerate() {
        let got = policy_run(900 + i as u64, policy, trust, mode);
        assert_eq!(got, expected, "{policy:?} {trust:?} ik={mode}");
    }

    // Trust is a property of the contact, changed in place: the same known
    // contact is accepted once marked trusted, and refused when it is no
    // longer trusted; a policy change applies from the next invitation.
    let (mut net, _book, ids) = network(2, 19);
    let (a, b) = (ids[0], ids[1]);
    register(&mut net, b, APP);
    nd_mut(&mut net, b).agent.set_policy(Policy::TrustedOnly);
    let a_at_b = befriend(&mut net, b, a, Trust::Known);
    let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
    let target = target_of(&net, b);
    let opts = InviteOptions::default();
    let mut outcomes = Vec::new();
    for step in 0..4 {
        match step {
            1 => nd_mut(&mut net, b)
                .agent
                .update_contact(a_at_b, ContactUpdate::default().trust(Trust::Trusted))
                .unwrap(),
            2 => nd_mut(&mut net, b).agent.set_policy(Policy::Nobody),
            3 => nd_mut(&mut net, b).agent.set_policy(Policy::Anyone),
            _ => {}
        }
        let h = invite_contact(&mut net, a, b_at_a, &[target], &request(), opts);
        settle(&mut net, 120);
        outcomes.push(polled(&net, a, h).unwrap());
    }
    assert_eq!(outcomes, vec![NotAccepted, Accepted, NotAccepted, Accepted]);
}

// ----- 10. sign-in scope ------------------------------------------------------

#[test]
fn no_sign_in_needed_and_scope_is_policy_per_application() {
    let (mut net, _book, ids) = network(3, 10);
    let (s, b, t) = (ids[0], ids[1], ids[2]);
    // B takes invitations from trusted contacts only ("Internet" scope),
    // except for APP2, which takes them from anyone ("People Near Me").
    nd_mut(&mut net, b).agent.set_policy(Policy::TrustedOnly);
    register(&mut net, b, APP);
    nd_mut(&mut net, b).agent.register_application(APP2, "near me", Some(Policy::Anyone)).unwrap();
    befriend(&mut net, b, t, Trust::Trusted);
    let b_at_t = befriend(&mut net, t, b, Trust::Known);
    let opts = InviteOptions::default();

    // S is a fresh agent: no contacts, no applications, no sign-in of any
    // kind. It invites by address at once.
    assert_eq!(nd(&net, s).agent.contacts().count(), 0);
    assert_eq!(nd(&net, s).agent.applications().count(), 0);
    let to_app2 = InvitationRequest { app_id: APP2, ..request() };
    let near = invite_endpoint(&mut net, s, b, &to_app2, opts);
    let far = invite_endpoint(&mut net, s, b, &request(), opts);
    // T, a trusted contact of B, reaches APP through B's global policy.
    let target = target_of(&net, b);
    let trusted = invite_contact(&mut net, t, b_at_t, &[target], &request(), opts);
    settle(&mut net, 120);
    assert_eq!(polled(&net, s, near), Some(Outcome::Accepted));
    assert_eq!(polled(&net, s, far), Some(Outcome::NotAccepted));
    assert_eq!(polled(&net, t, trusted), Some(Outcome::Accepted));
    let presented: Vec<AppId> = nd(&net, b).presented.iter().map(|x| x.app_id).collect();
    assert_eq!(presented.len(), 2);
    assert!(presented.contains(&APP) && presented.contains(&APP2));
    let s_identity = nd(&net, s).agent.identity().identity();
    let from_s = nd(&net, b).presented.iter().find(|x| x.app_id == APP2).unwrap();
    assert_eq!(*from_s.inviter.identity(), s_identity);
    assert_eq!(from_s.contact, None, "S is a stranger");
}

// ----- 11. the host's UX --------------------------------------------------------

#[test]
fn host_ux_is_events_invited_is_the_prompt_respond_answers_acceptance_launches() {
    let (mut net, _book, ids) = network(2, 11);
    let (a, b) = (ids[0], ids[1]);
    nd_mut(&mut net, b).agent.register_application(APP, "Whiteboard", None).unwrap();
    let a_at_b = befriend(&mut net, b, a, Trust::Known);
    nd_mut(&mut net, b).reaction = Reaction::Ignore;
    let h = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    run_to(&mut net, a, secs(1));

    // The toast: one Invited event; the dialog: everything to decide on.
    let nb = nd(&net, b);
    let incoming = match nb.events.as_slice() {
        [(_, Event::Invited(id))] => *id,
        other => panic!("expected one Invited event, got {other:?}"),
    };
    let view = nb.agent.incoming(incoming).unwrap();
    assert_eq!(*view.inviter.identity(), nd(&net, a).agent.identity().identity());
    assert_eq!(view.contact, Some(a_at_b));
    assert_eq!(view.address, nd(&net, a).address());
    assert_eq!(view.app_id, APP);
    assert_eq!(nb.agent.application(view.app_id).unwrap().name.as_str(), "Whiteboard");
    assert_eq!((view.message, view.data), ("join me", &b"port=4000"[..]));
    assert!(view.expires_at > net.now && view.expires_at <= secs(301));
    assert_eq!(view.outcome, None);
    // Nothing is launched while the prompt is up.
    assert_eq!(nb.agent.launch_info(incoming).err(), Some(AgentError::NoLaunchInfo));
    assert_eq!(nd(&net, a).agent.response(h), Ok(Status::Pending { ringing: true }));

    // The click: Accept, ten seconds later; the launch follows the
    // inviter's acknowledgement.
    let answered = secs(10);
    nd_mut(&mut net, b).at(answered, move |n, now| {
        n.agent.respond(now, incoming, Answer::Accept, "").unwrap();
        assert_eq!(n.agent.launch_info(incoming).err(), Some(AgentError::NoLaunchInfo));
    });
    settle(&mut net, 120);
    let nb = nd(&net, b);
    let kinds: Vec<Event> = nb.events.iter().map(|x| x.1).collect();
    assert_eq!(
        kinds,
        vec![
            Event::Invited(incoming),
            Event::IncomingEnded { incoming, outcome: Outcome::Accepted }
        ]
    );
    let launched_at = nb.events[1].0;
    assert!(launched_at >= answered && launched_at < answered + Duration::from_secs(1));
    assert!(nb.agent.launch_info(incoming).is_ok());
    assert_eq!(polled(&net, a, h), Some(Outcome::Accepted));
    // One invitation, one prompt, one answer.
    let now = net.now;
    assert_eq!(
        nd_mut(&mut net, b).agent.respond(now, incoming, Answer::Decline, ""),
        Err(AgentError::Invitation(InviteError::Ended))
    );

    // A declined invitation launches nothing.
    nd_mut(&mut net, b).reaction = answer_after(1, Answer::Decline, "");
    invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let declined = run_until_incoming_ended(&mut net, b);
    assert_ne!(declined, incoming);
    assert_eq!(ended(&net, b), vec![Outcome::Accepted, Outcome::Declined]);
    assert_eq!(nd(&net, b).agent.launch_info(declined).err(), Some(AgentError::NoLaunchInfo));
}

// ----- 12. launch information ---------------------------------------------------

#[test]
fn launch_info_names_inviter_endpoint_contact_if_any_and_data_verbatim_else_not_found() {
    let (mut net, _book, ids) = network(3, 12);
    let (a, b, s) = (ids[0], ids[1], ids[2]);
    register(&mut net, b, APP);
    let a_at_b = befriend(&mut net, b, a, Trust::Known);
    let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
    // Not text, with NULs: the application validates it, the agent does
    // not touch it.
    let data: &[u8] = b"\0\xff\xfegraph\0chat\x80";
    let invitation = InvitationRequest { app_id: APP, message: "", data };
    let target = target_of(&net, b);
    invite_contact(&mut net, a, b_at_a, &[target], &invitation, InviteOptions::default());
    let from_contact = run_until_incoming_ended(&mut net, b);
    invite_endpoint(&mut net, s, b, &invitation, InviteOptions::default());
    let from_stranger = run_until_incoming_ended(&mut net, b);
    settle(&mut net, 120);

    let nb = nd(&net, b);
    let na = nd(&net, a);
    let info = nb.agent.launch_info(from_contact).expect("launch info");
    assert_eq!(info.inviter, na.agent.identity().certificate());
    assert_eq!(info.inviter.endpoint(), EndpointId(0));
    assert_eq!(info.contact, Some(a_at_b));
    assert_eq!(info.address, na.address());
    assert_eq!((info.app_id, info.message, info.data), (APP, "", data));
    assert_eq!(info.outcome, Some(Outcome::Accepted));

    // From a stranger: no contact, but its authenticated certificate.
    let info = nb.agent.launch_info(from_stranger).expect("launch info");
    assert_eq!(info.contact, None);
    assert_eq!(info.inviter, nd(&net, s).agent.identity().certificate());
    assert_eq!(info.address, nd(&net, s).address());
    assert_eq!(info.data, data);

    // Not launched by an accepted invitation: PEER_E_NOT_FOUND.
    nd_mut(&mut net, b).reaction = answer_after(0, Answer::Decline, "");
    invite_endpoint(&mut net, s, b, &invitation, InviteOptions::default());
    let declined = run_until_incoming_ended(&mut net, b);
    assert_eq!(nd(&net, b).incoming_outcomes().last().unwrap().1, Outcome::Declined);
    assert_eq!(nd(&net, b).agent.launch_info(declined).err(), Some(AgentError::NoLaunchInfo));
    assert!(nd(&net, b).agent.incoming(declined).is_ok(), "the invitation itself is readable");
}

// ----- 13. the registration store ----------------------------------------------

#[test]
fn application_registry_holds_64_latest_registration_wins_unknown_is_not_found() {
    // The default agent: 64 applications, Windows' limit per scope.
    let mut rng = HashDrbg::from_u64(13);
    let local = LocalIdentity::generate(&mut rng, EndpointId(0));
    let mut agent: Box<Agent> = Box::new(Agent::new(local, AgentConfig::default(), [13; 32]));
    for i in 0..64u8 {
        agent.register_application(AppId([i; 16]), &format!("app {i}"), None).unwrap();
    }
    assert_eq!(agent.applications().count(), 64);
    assert_eq!(
        agent.register_application(AppId([64; 16]), "one too many", None),
        Err(AgentError::ApplicationsFull)
    );
    // Registering an id again replaces it, even with the table full.
    agent.register_application(AppId([7; 16]), "seven, again", Some(Policy::Nobody)).unwrap();
    assert_eq!(agent.applications().count(), 64);
    let seven = agent.application(AppId([7; 16])).unwrap();
    assert_eq!((seven.name.as_str(), seven.policy), ("seven, again", Some(Policy::Nobody)));
    // Names are checked; nothing changes on error.
    assert_eq!(agent.register_application(AppId([7; 16]), "", None), Err(AgentError::BadName));
    let long = "n".repeat(65);
    assert_eq!(agent.register_application(AppId([7; 16]), &long, None), Err(AgentError::BadName));
    assert_eq!(agent.application(AppId([7; 16])).unwrap().name.as_str(), "seven, again");
    // Unregistering: PEER_E_NOT_FOUND the second time.
    agent.unregister_application(AppId([7; 16])).unwrap();
    assert_eq!(agent.unregister_application(AppId([7; 16])), Err(AgentError::UnknownApplication));
    assert!(agent.application(AppId([7; 16])).is_none());
    assert_eq!(agent.applications().count(), 63);

    // Between agents: the newest registration's policy decides.
    let (mut net, _book, ids) = network(2, 113);
    let (a, b) = (ids[0], ids[1]);
    let mut outcomes = Vec::new();
    for policy in [Some(Policy::Nobody), None, Some(Policy::TrustedOnly)] {
        nd_mut(&mut net, b).agent.register_application(APP, "app", policy).unwrap();
        assert_eq!(nd(&net, b).agent.applications().count(), 1);
        let h = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
        settle(&mut net, 120);
        outcomes.push(polled(&net, a, h).unwrap());
    }
    assert_eq!(outcomes, vec![Outcome::NotAccepted, Outcome::Accepted, Outcome::NotAccepted]);
}

// ----- 14. memory: borrowed views, release ---------------------------------------

#[test]
fn getters_borrow_from_the_agent_and_launch_info_stays_readable_until_release() {
    let (mut net, _book, ids) = network(2, 14);
    let (a, b) = (ids[0], ids[1]);
    register(&mut net, b, APP);
    befriend(&mut net, b, a, Trust::Trusted);
    let buffers = nd(&net, b).agent.buffers_free();
    let h = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let incoming = run_until_incoming_ended(&mut net, b);
    let first: (String, Vec<u8>) = {
        let info = nd(&net, b).agent.launch_info(incoming).unwrap();
        (info.message.to_owned(), info.data.to_vec())
    };
    assert_eq!(first, ("join me".to_owned(), b"port=4000".to_vec()));
    // An hour later, read again and again: the same, and still holding one
    // body buffer and one slot.
    settle(&mut net, 3_600);
    let nb = nd(&net, b);
    for _ in 0..3 {
        let info = nb.agent.launch_info(incoming).unwrap();
        assert_eq!((info.message, info.data), (first.0.as_str(), first.1.as_slice()));
    }
    assert_eq!(nb.agent.buffers_free(), buffers - 1);
    assert_eq!(nb.agent.invitations_in_use(), 1);
    // Enumerations are plain iterators over borrowed records.
    assert_eq!(nb.agent.contacts().count(), 1);
    assert_eq!(nb.agent.applications().map(|a| a.id).collect::<Vec<_>>(), vec![APP]);

    // Release gives both back; afterwards the id is unknown.
    let nb = nd_mut(&mut net, b);
    nb.agent.release(incoming).unwrap();
    assert_eq!(nb.agent.buffers_free(), buffers);
    assert_eq!(nb.agent.invitations_in_use(), 0);
    assert_eq!(nb.agent.launch_info(incoming).err(), Some(AgentError::UnknownIncoming));
    assert_eq!(nb.agent.release(incoming), Err(AgentError::UnknownIncoming));

    // Released as soon as it ended, while the invitation still lingers: the
    // buffer comes back at once, the slot once the linger is over.
    let h2 = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let second = run_until_incoming_ended(&mut net, b);
    let nb = nd_mut(&mut net, b);
    assert_eq!(nb.agent.buffers_free(), buffers - 1);
    nb.agent.release(second).unwrap();
    assert_eq!(nb.agent.buffers_free(), buffers);
    assert_eq!(nb.agent.launch_info(second).err(), Some(AgentError::UnknownIncoming));
    assert_eq!(nb.agent.invitations_in_use(), 1, "still lingering");
    settle(&mut net, 600);
    let nb = nd(&net, b);
    assert_eq!(nb.agent.invitations_in_use(), 0);
    assert_eq!(nb.agent.launch_info(second).err(), Some(AgentError::UnknownIncoming));
    assert_eq!(polled(&net, a, h2), Some(Outcome::Accepted));

    // The inviter's side: the response borrows the answerer's certificate
    // from the agent; close frees the handle; nothing else is held.
    let na = nd(&net, a);
    let Ok(Status::Answered(r)) = na.agent.response(h) else { panic!("pending") };
    assert_eq!(r.answered_by, Some(nd(&net, b).agent.identity().certificate()));
    assert_eq!(na.agent.invitations_in_use(), 0);
    assert_eq!(na.agent.buffers_free(), buffers);
    let now = net.now;
    assert_eq!(na.agent.handles_in_use(), 2);
    nd_mut(&mut net, a).agent.close(now, h).unwrap();
    nd_mut(&mut net, a).agent.close(now, h2).unwrap();
    assert_eq!(nd(&net, a).agent.handles_in_use(), 0);
}

// ----- 15. no global startup ----------------------------------------------------

/// X (policy Nobody) and Y (Anyone) in one process, both with APP
/// registered; Z invites both, then X invites Z. Returns the outcomes and
/// the network's whole trace.
fn independent_agents(seed: u64) -> (Vec<Outcome>, Vec<TraceEntry>) {
    let book = AddressBook::default();
    let mut net = Network::new(seed, Faults::clean(20));
    let x = add_agents(&mut net, &book, 1, 150, AgentConfig::with_policy(Policy::Nobody))[0];
    let ids = add_agents(&mut net, &book, 2, 151, AgentConfig::default());
    let (y, z) = (ids[0], ids[1]);
    for &n in &[x, y, z] {
        register(&mut net, n, APP);
    }
    let y_at_z = befriend(&mut net, z, y, Trust::Trusted);
    let opts = InviteOptions::default();
    let zx = invite_endpoint(&mut net, z, x, &request(), opts);
    let zy = invite_endpoint(&mut net, z, y, &request(), opts);
    let xz = invite_endpoint(&mut net, x, z, &request(), opts);
    settle(&mut net, 600);
    // Each agent keeps its own settings and records.
    assert_eq!(nd(&net, x).agent.policy(), Policy::Nobody);
    assert_eq!(nd(&net, y).agent.policy(), Policy::Anyone);
    assert_eq!(nd(&net, z).agent.contacts().map(|c| c.0).collect::<Vec<_>>(), vec![y_at_z]);
    assert_eq!(nd(&net, x).agent.contacts().count(), 0);
    assert_eq!(nd(&net, y).agent.contacts().count(), 0);
    assert_eq!(invited(&net, x), 0);
    let outcomes = vec![
        polled(&net, z, zx).unwrap(),
        polled(&net, z, zy).unwrap(),
        polled(&net, x, xz).unwrap(),
    ];
    (outcomes, net.trace)
}

#[test]
fn agents_need_no_global_startup_and_two_in_one_process_are_independent() {
    // Nothing to start: `new`, then straight to work. X's Nobody silences
    // only X; X's own invitation goes out; Y in the same process accepts.
    let (outcomes, trace) = independent_agents(15);
    assert_eq!(outcomes, vec![Outcome::Unreachable, Outcome::Accepted, Outcome::Accepted]);
    // No state survives between runs in one process: the same scenario
    // again is the same, datagram for datagram.
    let (again, trace_again) = independent_agents(15);
    assert_eq!(again, outcomes);
    assert!(!trace.is_empty());
    assert!(trace == trace_again, "the two runs differ");

    // Two agents with the same identity and seed, alive at once, are two
    // independent objects: one's commands do not touch the other.
    let mut rng = HashDrbg::from_u64(16);
    let local = LocalIdentity::generate(&mut rng, EndpointId(0));
    let mut one: Box<Agent> = Box::new(Agent::new(local.clone(), AgentConfig::default(), [1; 32]));
    let mut two: Box<Agent> = Box::new(Agent::new(local, AgentConfig::default(), [1; 32]));
    one.set_policy(Policy::Nobody);
    one.register_application(APP, "app", None).unwrap();
    let to: SocketAddr = "192.0.2.1:7000".parse().unwrap();
    one.invite_endpoint(Instant::ZERO, to, &request(), InviteOptions::default()).unwrap();
    assert_eq!((one.policy(), two.policy()), (Policy::Nobody, Policy::Anyone));
    assert_eq!((one.applications().count(), two.applications().count()), (1, 0));
    assert_eq!((one.handles_in_use(), two.handles_in_use()), (1, 0));
    assert_eq!(two.poll_timeout(), None);

    // No API version to negotiate: the protocol version is in every
    // datagram. `one`'s initiation is taken by `two`; the same datagram
    // claiming another version is dropped without a reply.
    let mut buf = [0u8; MAX_DATAGRAM];
    let t = one.poll_transmit(Instant::ZERO, &mut buf).expect("an initiation");
    assert_eq!(t.destination, to);
    let initiation = buf[..t.len].to_vec();
    let mut other_version = initiation.clone();
    other_version[0] = VERSION + 1;
    let from: SocketAddr = "192.0.2.2:7000".parse().unwrap();
    assert_eq!(
        two.handle_datagram(Instant::ZERO, from, &other_version),
        Err(Dropped::Malformed(WireError::UnknownVersion))
    );
    assert!(two.poll_transmit(Instant::ZERO, &mut buf).is_none());
    assert_eq!(two.handle_datagram(Instant::ZERO, from, &initiation), Ok(()));
    assert!(two.poll_transmit(Instant::ZERO, &mut buf).is_some(), "answered");
}

// ----- 16. fan-out and the combined outcome --------------------------------------

/// What one endpoint of the invited contact does.
#[derive(Clone, Copy, Debug)]
enum Ep {
    /// Answers after this many seconds.
    Answers(u64, Answer),
    /// Never answers.
    Ignores,
    /// Has not registered the application.
    Unregistered,
    /// Cannot be reached.
    Offline,
}

struct FanOut {
    responded: Vec<(Instant, Outcome)>,
    answered_by: Option<EndpointId>,
    /// Each endpoint's incoming outcomes.
    ended: Vec<Vec<Outcome>>,
    /// Each endpoint's answer results.
    answers: Vec<Vec<Result<(), AgentError>>>,
}

/// One contact invitation, expiring after 30 s, to a contact with one
/// endpoint per entry of `eps`.
fn fan_out(seed: u64, eps: &[Ep]) -> FanOut {
    let book = AddressBook::default();
    let mut net = Network::new(seed, Faults::clean(20));
    let a = add_agents(&mut net, &book, 1, seed * 10, AgentConfig::default())[0];
    let n = u32::try_from(eps.len()).unwrap();
    let (endpoints, card) = one_identity_at(&mut net, &book, n, seed * 10 + 1);
    for (&e, ep) in endpoints.iter().zip(eps) {
        match *ep {
            Ep::Answers(after, answer) => {
                register(&mut net, e, APP);
                nd_mut(&mut net, e).reaction = answer_after(after, answer, "");
            }
            Ep::Ignores => {
                register(&mut net, e, APP);
                nd_mut(&mut net, e).reaction = Reaction::Ignore;
            }
            Ep::Unregistered => register(&mut net, e, APP2),
            Ep::Offline => {
                register(&mut net, e, APP);
                net.cut.push((a, e));
            }
        }
    }
    let contact = nd_mut(&mut net, a).agent.add_contact(&card, Trust::Trusted).unwrap();
    let targets: Vec<Target> = endpoints.iter().map(|&e| target_of(&net, e)).collect();
    let opts = InviteOptions::default().expires_in(Duration::from_secs(30));
    let h = invite_contact(&mut net, a, contact, &targets, &request(), opts);
    settle(&mut net, 600);
    let answered_by = match nd(&net, a).agent.response(h).unwrap() {
        Status::Answered(r) => r.answered_by.map(|c| c.endpoint()),
        _ => panic!("pending"),
    };
    FanOut {
        responded: responded_at(&net, a, h),
        answered_by,
        ended: endpoints.iter().map(|&e| ended(&net, e)).collect(),
        answers: endpoints
            .iter()
            .map(|&e| nd(&net, e).answers.iter().map(|x| x.1).collect())
            .collect(),
    }
}

#[test]
fn fan_out_to_several_endpoints_combines_accept_first_then_declined_expired_error() {
    use Outcome::{Accepted, Declined, Expired, NotRegistered, Unreachable};
    let elsewhere = Outcome::Cancelled(CancelReason::AnsweredElsewhere);

    // The first Accept wins at once; the others are withdrawn, and a late
    // answer is refused.
    let r = fan_out(
        160,
        &[Ep::Answers(1, Answer::Accept), Ep::Ignores, Ep::Answers(5, Answer::Decline)],
    );
    assert_eq!(r.responded.iter().map(|x| x.1).collect::<Vec<_>>(), vec![Accepted]);
    assert!(r.responded[0].0 < secs(2), "decided at once: {:?}", r.responded[0].0);
    assert_eq!(r.answered_by, Some(EndpointId(0)));
    assert_eq!(r.ended, vec![vec![Accepted], vec![elsewhere], vec![elsewhere]]);
    assert_eq!(r.answers[2], vec![Err(AgentError::Invitation(InviteError::Ended))]);

    // Otherwise the outcome waits for every endpoint. Declined comes first,
    // though it was the first answer and the other endpoint expired later.
    let r = fan_out(161, &[Ep::Answers(2, Answer::Decline), Ep::Ignores]);
    assert_eq!(r.responded.iter().map(|x| x.1).collect::<Vec<_>>(), vec![Declined]);
    assert!(r.responded[0].0 >= secs(30), "waited for the expiry: {:?}", r.responded[0].0);
    assert_eq!(r.answered_by, Some(EndpointId(0)));
    assert_eq!(r.ended, vec![vec![Declined], vec![Expired]]);

    // Expired before the refusals and failures.
    let r = fan_out(162, &[Ep::Offline, Ep::Unregistered, Ep::Ignores]);
    assert_eq!(r.responded.iter().map(|x| x.1).collect::<Vec<_>>(), vec![Expired]);
    assert_eq!(r.answered_by, Some(EndpointId(2)));
    assert_eq!(r.ended, vec![vec![], vec![], vec![Expired]]);

    // An automatic refusal (the application is not registered) before
    // Unreachable.
    let r = fan_out(163, &[Ep::Offline, Ep::Unregistered]);
    assert_eq!(r.responded.iter().map(|x| x.1).collect::<Vec<_>>(), vec![NotRegistered]);
    assert_eq!(r.answered_by, Some(EndpointId(1)));
    assert_eq!(r.ended, vec![vec![], vec![]], "nothing was presented");

    // Nobody answers: Unreachable, decided by no endpoint.
    let r = fan_out(164, &[Ep::Offline, Ep::Offline]);
    assert_eq!(r.responded.iter().map(|x| x.1).collect::<Vec<_>>(), vec![Unreachable]);
    assert_eq!(r.answered_by, None);
}

// ----- 17. secured transport ------------------------------------------------------

/// Whether any `window`-byte run of `needle` occurs in `haystack`.
fn leaks(haystack: &[u8], needle: &[u8], window: usize) -> bool {
    needle.windows(window).any(|w| haystack.windows(window).any(|h| h == w))
}

#[test]
fn invitation_travels_only_inside_an_authenticated_encrypted_session() {
    let (mut net, book, ids) = network(2, 17);
    let (a, b) = (ids[0], ids[1]);
    // Over IPv6 (which Windows requires) as well as IPv4.
    book.set(a, "[2001:db8::a]:7000".parse().unwrap());
    book.set(b, "[2001:db8::b]:7000".parse().unwrap());
    register(&mut net, b, APP);
    let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
    nd_mut(&mut net, b).reaction = answer_after(5, Answer::Accept, "");
    let message = "meet me at the usual place and bring the key";
    let data: Vec<u8> = (0..600u32).map(|i| (i.wrapping_mul(97) % 253) as u8).collect();
    let secret = InvitationRequest { app_id: APP, message, data: &data };
    let target = target_of(&net, b);
    let hc = invite_contact(&mut net, a, b_at_a, &[target], &secret, InviteOptions::default());

    // While B rings, A's latest transport datagram replayed verbatim, and a
    // forgery of it (a fresh counter, one bit of ciphertext flipped), are
    // dropped by B and change nothing.
    run_to(&mut net, a, secs(2));
    assert_eq!(invited(&net, b), 1);
    let replayed = net
        .trace
        .iter()
        .rev()
        .find_map(|e| match e {
            TraceEntry::Sent { from, to, bytes, .. }
                if *from == a && *to == b && peek_type(bytes) == Ok(FrameType::Transport) =>
            {
                Some(bytes.clone())
            }
            _ => None,
        })
        .expect("a transport datagram from A");
    let mut forged = replayed.clone();
    let counter = u64::from_be_bytes(forged[8..16].try_into().unwrap());
    forged[8..16].copy_from_slice(&(counter + 100).to_be_bytes());
    *forged.last_mut().unwrap() ^= 1;
    let dropped_before = nd(&net, b).dropped.len();
    net.inject(a, b, &replayed);
    net.inject(a, b, &forged);
    run_to(&mut net, a, secs(3));
    let nb = nd(&net, b);
    assert_eq!(
        nb.dropped[dropped_before..].iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![
            Dropped::Session(session::Dropped::Replayed),
            Dropped::Session(session::Dropped::Decrypt)
        ]
    );
    assert_eq!(nb.events.len(), 1, "still only the Invited event");

    // And the same over XX, by address.
    let he = invite_endpoint(&mut net, a, b, &secret, InviteOptions::default());
    settle(&mut net, 120);
    assert_eq!(polled(&net, a, hc), Some(Outcome::Accepted));
    assert_eq!(polled(&net, a, he), Some(Outcome::Accepted));
    assert_eq!(nd(&net, b).presented.len(), 2);
    for seen in &nd(&net, b).presented {
        assert_eq!((seen.message.as_str(), seen.data.as_slice()), (message, data.as_slice()));
    }

    // The passive observer: every datagram either way, handshakes included.
    let datagrams: Vec<&[u8]> = net
        .trace
        .iter()
        .filter_map(|e| match e {
            TraceEntry::Sent { bytes, .. } => Some(bytes.as_slice()),
            _ => None,
        })
        .collect();
    assert!(datagrams.len() > 10);
    for d in &datagrams {
        assert!(!leaks(d, message.as_bytes(), 8), "the message shows");
        assert!(!leaks(d, &data, 8), "the data shows");
        assert!(!leaks(d, &APP.0, 8), "the application id shows");
    }
    // Before A first hears from B, A sends handshake initiations only: the
    // invitation waits for the authenticated session.
    let mut heard = false;
    for e in &net.trace {
        match e {
            TraceEntry::Delivered { from, to, .. } if *from == b && *to == a => heard = true,
            TraceEntry::Sent { from, bytes, at, .. } if *from == a && !heard && *at < secs(3) => {
                assert_eq!(peek_type(bytes), Ok(FrameType::Initiation), "at {at:?}");
            }
            _ => {}
        }
    }
    assert!(heard);
}

// ----- 18. timeouts ---------------------------------------------------------------

#[test]
fn timeouts_are_bounded_on_virtual_time_and_leave_no_timers_behind() {
    let (mut net, _book, ids) = network(2, 18);
    let (a, b) = (ids[0], ids[1]);
    register(&mut net, b, APP);

    // No sign-in step: the first datagram leaves at the invite's instant.
    let h = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    net.step();
    assert_eq!(nd(&net, a).sent.first().map(|x| x.0), Some(Instant::ZERO));
    settle(&mut net, 600);
    assert_eq!(polled(&net, a, h), Some(Outcome::Accepted));
    let accepted = nd(&net, b).incoming_outcomes()[0].0;
    nd_mut(&mut net, b).agent.release(accepted).unwrap();

    // Nobody at the address: Unreachable once the handshake gives up.
    let start = net.now;
    let nobody: SocketAddr = "10.9.9.9:7000".parse().unwrap();
    let h = nd_mut(&mut net, a)
        .agent
        .invite_endpoint(start, nobody, &request(), InviteOptions::default())
        .unwrap()
        .unwrap();
    settle(&mut net, 600);
    let r = responded_at(&net, a, h);
    assert_eq!(r.iter().map(|x| x.1).collect::<Vec<_>>(), vec![Outcome::Unreachable]);
    let took = r[0].0.saturating_duration_since(start);
    assert!(
        took >= HANDSHAKE_TIMEOUT
            && took <= HANDSHAKE_TIMEOUT.saturating_add(Duration::from_secs(1)),
        "gave up after {took:?}"
    );
    assert!(nd(&net, a).unroutable > 0);

    // The invitee falls silent while ringing: Unreachable within the
    // liveness timeout of the last thing heard from it.
    nd_mut(&mut net, b).reaction = Reaction::Ignore;
    let start = net.now;
    let h = invite_endpoint(&mut net, a, b, &request(), InviteOptions::default());
    let cut_at = start + Duration::from_secs(10);
    run_to(&mut net, a, cut_at);
    assert_eq!(nd(&net, a).agent.response(h), Ok(Status::Pending { ringing: true }));
    net.cut.push((b, a));
    net.cut.push((a, b));
    let last_heard = net
        .trace
        .iter()
        .filter_map(|e| match e {
            TraceEntry::Delivered { at, from, to, .. } if *from == b && *to == a => Some(*at),
            _ => None,
        })
        .next_back()
        .expect("A heard from B");
    settle(&mut net, 600);
    let r = responded_at(&net, a, h);
    assert_eq!(r.iter().map(|x| x.1).collect::<Vec<_>>(), vec![Outcome::Unreachable]);
    assert!(
        r[0].0 > cut_at && r[0].0 <= last_heard + LIVENESS_TIMEOUT,
        "gave up at {:?}, last heard at {last_heard:?}",
        r[0].0
    );

    // Nothing keeps running afterwards: no timer, no slot.
    for &n in &[a, b] {
        assert_eq!(nd(&net, n).agent.poll_timeout(), None, "node {n}");
        assert_eq!(nd(&net, n).agent.invitations_in_use(), 0, "node {n}");
    }
}
