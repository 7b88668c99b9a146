//! The policy table (`core/src/agent/policy.rs`, `spec/policy-table.md`)
//! between two agents on the virtual network: every one of its rows, and
//! the per-application policy overrides the table does not show.
//!
//! Each case builds a fresh network of an inviter A and an invitee B. B's
//! global policy and registered applications are the case's; A is related
//! to B as the row's sender:
//!
//! - **Trusted** / **Known**: B added A's card with that trust (and A holds
//!   B's card);
//! - **Stranger**: A holds B's card, B does not know A;
//! - **Scanner**: A does not hold B's card. In IK it invites a contact made
//!   from the card of a *different* identity that names B's address, so B
//!   cannot verify the first message's MAC; in XX it only knows B's
//!   address.
//!
//! IK rows invite with `invite_contact`, XX rows with
//! `invite_endpoint(B's address)`. B's user declines whatever rings. Then,
//! by what the row says B sends:
//!
//! - **nothing**: B sent no datagram at all and reported no event (and
//!   dropped the initiation for the table's reason: bad MAC for an IK
//!   scanner, policy for everyone else); A's outcome is Unreachable;
//! - **Final(code)**: B answered but presented nothing; A's outcome is the
//!   code's (NotRegistered, NotAccepted);
//! - **rings**: B presented the invitation once and its user declined; A
//!   heard it ring and its outcome is Declined.

use peercollab_core::agent::policy::{InviteeSends, InviterSees, POLICY_TABLE, PolicyRow};
use peercollab_core::agent::{
    AgentConfig, ContactId, Dropped, Event, Handle, InvitationRequest, InviteOptions, Policy,
    Sender, Target, Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::{Answer, AppId, FinalCode, Outcome};
use peercollab_core::session;
use peercollab_core::wire::Mode;
use peercollab_core::{Duration, HashDrbg};
use peercollab_tests::agents::{APP, AddressBook, AgentNode, settle};
use peercollab_tests::party::Reaction;
use peercollab_tests::{Faults, Network, NodeId};

/// A second application, registered without a policy of its own.
const OTHER_APP: AppId = AppId(*b"peercollab-other");

/// Long enough for every case to end: the handshake gives up after 32 s,
/// a declined invitation ends in seconds; what is left is lingering.
const RUN_SECS: u64 = 3_600;

/// Rows walked between two agents. A row found to fail because of an agent
/// bug would be listed here (with a separate `#[ignore]`d test naming the
/// bug) so the walk keeps guarding every other row; none is.
const EXCLUDED_ROWS: &[(Mode, Sender, Policy, bool)] = &[];

fn request(app_id: AppId) -> InvitationRequest<'static> {
    InvitationRequest { app_id, message: "join me", data: b"port=4000" }
}

/// An inviter A and an invitee B on a fresh network.
struct Pair {
    net: Network,
    a: NodeId,
    b: NodeId,
    /// What A invites over IK: B, or (IK scanner) the impostor at B's
    /// address. `None` when A holds no card for B's address.
    contact: Option<(ContactId, Target)>,
}

/// A and B with B's global `policy`, A related to B as `sender` (for
/// `mode`: only an IK scanner needs the impostor's card). Nothing is
/// registered at B yet.
fn pair(seed: u64, mode: Mode, sender: Sender, policy: Policy) -> Pair {
    let book = AddressBook::default();
    let mut net = Network::new(seed, Faults::clean(20));
    let a = net.nodes.len();
    net.add(Box::new(AgentNode::new(seed * 10 + 1, a, &book, AgentConfig::default())));
    let b = net.nodes.len();
    net.add(Box::new(AgentNode::new(seed * 10 + 2, b, &book, AgentConfig::with_policy(policy))));
    let b_address = net.node::<AgentNode>(b).address();

    if let Some(trust) = match sender {
        Sender::Trusted => Some(Trust::Trusted),
        Sender::Known => Some(Trust::Known),
        Sender::Stranger | Sender::Scanner => None,
    } {
        let a_card = net.node::<AgentNode>(a).card();
        net.node_mut::<AgentNode>(b).agent.add_contact(&a_card, trust).expect("B adds A");
    }

    let card = match sender {
        Sender::Trusted | Sender::Known | Sender::Stranger => Some(net.node::<AgentNode>(b).card()),
        // Another identity's card naming B's address: A's first IK message
        // is built for the impostor's static key, so B cannot verify its
        // MAC. In XX the scanner needs no card at all.
        Sender::Scanner if mode == Mode::Ik => {
            let mut rng = HashDrbg::from_u64(seed * 10 + 3);
            let impostor = LocalIdentity::generate(&mut rng, EndpointId(0));
            let card = ContactCard::issue(
                impostor.secret(),
                "impostor",
                &[*impostor.certificate()],
                &[b_address],
            )
            .expect("impostor card");
            Some(card)
        }
        Sender::Scanner => None,
    };
    let contact = card.map(|card| {
        let id = net
            .node_mut::<AgentNode>(a)
            .agent
            .add_contact(&card, Trust::Trusted)
            .expect("A adds B");
        let endpoint = card.certificates()[0].endpoint();
        (id, Target { endpoint, address: b_address })
    });

    net.node_mut::<AgentNode>(b).reaction = Reaction::Answer {
        after: Duration::from_secs(1),
        answer: Answer::Decline,
        reason: "no".into(),
    };
    Pair { net, a, b, contact }
}

impl Pair {
    /// Registers `app` at B with its own `policy` (`None`: the global one).
    fn register(&mut self, app: AppId, policy: Option<Policy>) {
        self.net
            .node_mut::<AgentNode>(self.b)
            .agent
            .register_application(app, "test app", policy)
            .expect("register");
    }

    /// A invites B to `app` over `mode`, now.
    fn invite(&mut self, mode: Mode, app: AppId) -> Handle {
        let now = self.net.now;
        let b_address = self.net.node::<AgentNode>(self.b).address();
        let contact = self.contact;
        let agent = &mut self.net.node_mut::<AgentNode>(self.a).agent;
        let handle = match mode {
            Mode::Ik => {
                let (id, target) = contact.expect("an IK inviter holds a card for B's address");
                agent.invite_contact(now, id, &[target], &request(app), InviteOptions::default())
            }
            Mode::Xx => {
                agent.invite_endpoint(now, b_address, &request(app), InviteOptions::default())
            }
        };
        handle.expect("invite").expect("handle")
    }

    /// Runs the network until nothing is left to do.
    fn run(&mut self) {
        settle(&mut self.net, RUN_SECS);
    }

    fn node(&self, id: NodeId) -> &AgentNode {
        self.net.node::<AgentNode>(id)
    }

    /// How many invitations B presented.
    fn presented(&self) -> usize {
        self.node(self.b).count(|e| matches!(e, Event::Invited(_)))
    }

    /// Whether A heard its invitation ring.
    fn rang(&self, handle: Handle) -> bool {
        self.node(self.a).count(|e| *e == Event::Ringing(handle)) > 0
    }
}

/// The inviter's outcome for a Final code of the table.
fn outcome_of(code: FinalCode) -> Outcome {
    match code {
        FinalCode::NotRegistered => Outcome::NotRegistered,
        FinalCode::NotAccepted => Outcome::NotAccepted,
        other => panic!("the policy table has no Final({other:?})"),
    }
}

/// `mode sender policy registered`, as a row is named in failures.
fn describe(row: &PolicyRow) -> String {
    format!(
        "{:?} {:?} policy={:?} registered={} (expected: B sends {:?}, A sees {:?})",
        row.mode, row.sender, row.policy, row.registered, row.sends, row.sees
    )
}

/// Runs one row between two agents; the differences from the table, if
/// any.
fn check_row(seed: u64, row: &PolicyRow) -> Vec<String> {
    let mut p = pair(seed, row.mode, row.sender, row.policy);
    if row.registered {
        p.register(APP, None);
    }
    let handle = p.invite(row.mode, APP);
    p.run();

    let mut problems = Vec::new();
    let a = p.node(p.a);
    let b = p.node(p.b);
    let a_outcomes = a.responded(handle);
    let b_events: Vec<Event> = b.events.iter().map(|(_, e)| *e).collect();

    // What B put on the wire, and what B's user was told.
    match row.sends {
        InviteeSends::Nothing => {
            if !b.sent.is_empty() {
                problems.push(format!("B sent {} datagram(s), expected none", b.sent.len()));
            }
            if !b_events.is_empty() {
                problems.push(format!("B reported {b_events:?}, expected no event"));
            }
            // Silent for the table's reason: an IK scanner's MAC fails,
            // everyone else is turned away by policy.
            let reason = match (row.mode, row.sender) {
                (Mode::Ik, Sender::Scanner) => Dropped::Session(session::Dropped::BadMac),
                _ => Dropped::NotAdmitted,
            };
            if b.dropped.is_empty() || b.dropped.iter().any(|(_, d)| *d != reason) {
                let dropped: Vec<_> = b.dropped.iter().map(|(_, d)| *d).collect();
                problems.push(format!("B dropped {dropped:?}, expected only {reason:?}"));
            }
        }
        InviteeSends::Final(code) => {
            if b.sent.is_empty() {
                problems.push(format!(
                    "B sent nothing, expected a handshake answer and Final({code:?})"
                ));
            }
            if p.presented() != 0 {
                problems.push(format!("B presented the invitation (events {b_events:?}), expected Final({code:?}) unseen"));
            }
        }
        InviteeSends::Rings => {
            if p.presented() != 1 {
                problems.push(format!(
                    "B presented {} invitation(s), expected 1 (events {b_events:?})",
                    p.presented()
                ));
            }
            let answers: Vec<_> = b.answers.iter().map(|(_, r)| *r).collect();
            if answers != [Ok(())] {
                problems.push(format!("B's user answered {answers:?}, expected one Decline"));
            }
        }
    }

    // What A learned.
    let expected = match row.sees {
        InviterSees::Unreachable => Outcome::Unreachable,
        InviterSees::Final(code) => outcome_of(code),
        InviterSees::TheAnswer => Outcome::Declined,
    };
    if a_outcomes != [expected] {
        problems.push(format!("A's outcome is {a_outcomes:?}, expected [{expected:?}]"));
    }
    if row.sees == InviterSees::TheAnswer && !p.rang(handle) {
        problems.push("A never heard its invitation ring".to_owned());
    }
    problems
}

#[test]
fn every_policy_table_row_holds_between_two_agents() {
    assert_eq!(POLICY_TABLE.len(), 48);
    let mut failures = Vec::new();
    let mut walked = 0;
    for (i, row) in POLICY_TABLE.iter().enumerate() {
        if EXCLUDED_ROWS.contains(&(row.mode, row.sender, row.policy, row.registered)) {
            continue;
        }
        walked += 1;
        let problems = check_row(1_000 + i as u64, row);
        if !problems.is_empty() {
            failures.push(format!(
                "row {}: {}\n    {}",
                i + 1,
                describe(row),
                problems.join("\n    ")
            ));
        }
    }
    assert_eq!(walked + EXCLUDED_ROWS.len(), POLICY_TABLE.len());
    assert!(
        failures.is_empty(),
        "{} of {walked} policy table rows do not hold between two agents:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The walk's checks are not vacuous: a row stating another answer than
/// the agent gives is reported.
#[test]
fn a_row_contradicting_the_agents_answer_is_reported() {
    let answers = [
        (InviteeSends::Nothing, InviterSees::Unreachable),
        (
            InviteeSends::Final(FinalCode::NotRegistered),
            InviterSees::Final(FinalCode::NotRegistered),
        ),
        (InviteeSends::Final(FinalCode::NotAccepted), InviterSees::Final(FinalCode::NotAccepted)),
        (InviteeSends::Rings, InviterSees::TheAnswer),
    ];
    for (i, (sends, sees)) in answers.into_iter().enumerate() {
        // A row of the table with this answer, stated with the next one.
        let row = POLICY_TABLE.iter().find(|r| r.sends == sends).expect("every answer occurs");
        let (wrong_sends, wrong_sees) = answers[(i + 1) % answers.len()];
        let wrong = PolicyRow { sends: wrong_sends, sees: wrong_sees, ..*row };
        assert_eq!(row.sees, sees);
        assert!(!check_row(2_000 + i as u64, &wrong).is_empty(), "{} passed", describe(&wrong));
    }
}

// ----- per-application policies ------------------------------------------------

/// Global TrustedOnly, but [`APP`] accepts anyone and [`OTHER_APP`] has no
/// policy of its own: a stranger A, B declining what rings.
fn trusted_only_with_an_app_for_anyone(seed: u64) -> Pair {
    let mut p = pair(seed, Mode::Ik, Sender::Stranger, Policy::TrustedOnly);
    p.register(APP, Some(Policy::Anyone));
    p.register(OTHER_APP, None);
    p
}

#[test]
fn an_app_open_to_anyone_makes_a_trusted_only_agent_answer_a_strangers_ik_initiation() {
    let mut p = trusted_only_with_an_app_for_anyone(1);
    let handle = p.invite(Mode::Ik, APP);
    p.run();
    assert!(!p.node(p.b).sent.is_empty(), "B answers the stranger's IK initiation");
    assert_eq!(p.node(p.b).agent.stats().not_admitted, 0);
    assert_eq!(p.node(p.a).responded(handle), vec![Outcome::Declined]);
}

#[test]
fn a_strangers_invitation_to_an_app_open_to_anyone_rings_under_a_trusted_only_policy() {
    let mut p = trusted_only_with_an_app_for_anyone(2);
    let handle = p.invite(Mode::Ik, APP);
    p.run();
    assert_eq!(p.presented(), 1, "the invitation rings at B");
    let seen = &p.node(p.b).presented[0];
    assert_eq!(seen.app_id, APP);
    assert_eq!(seen.contact, None, "A is a stranger to B");
    assert!(p.rang(handle));
    assert_eq!(p.node(p.a).responded(handle), vec![Outcome::Declined]);
}

#[test]
fn a_strangers_invitation_to_an_app_without_override_is_not_accepted_under_a_trusted_only_policy() {
    let mut p = trusted_only_with_an_app_for_anyone(3);
    let handle = p.invite(Mode::Ik, OTHER_APP);
    p.run();
    assert!(!p.node(p.b).sent.is_empty(), "the initiation is answered, the invitation refused");
    assert_eq!(p.presented(), 0);
    assert!(p.node(p.b).events.is_empty(), "a refused invitation ends unseen");
    assert_eq!(p.node(p.a).responded(handle), vec![Outcome::NotAccepted]);
}

/// Global Nobody, but [`APP`] accepts trusted contacts and [`OTHER_APP`]
/// has no policy of its own.
fn nobody_with_an_app_for_trusted_contacts(seed: u64, sender: Sender) -> Pair {
    let mut p = pair(seed, Mode::Xx, sender, Policy::Nobody);
    p.register(APP, Some(Policy::TrustedOnly));
    p.register(OTHER_APP, None);
    p
}

#[test]
fn an_app_open_to_trusted_contacts_makes_a_nobody_agent_answer_xx_initiations() {
    // A scanner is identified only at the third message: its first is
    // answered because some policy in force is not Nobody, and its
    // invitation is then refused by the application's policy.
    let mut p = nobody_with_an_app_for_trusted_contacts(4, Sender::Scanner);
    let handle = p.invite(Mode::Xx, APP);
    p.run();
    assert!(!p.node(p.b).sent.is_empty(), "B answers the XX initiation");
    assert_eq!(p.presented(), 0);
    assert_eq!(p.node(p.a).responded(handle), vec![Outcome::NotAccepted]);
}

#[test]
fn a_trusted_contacts_xx_invitation_to_an_app_open_to_trusted_contacts_rings_under_a_nobody_policy()
{
    let mut p = nobody_with_an_app_for_trusted_contacts(5, Sender::Trusted);
    let handle = p.invite(Mode::Xx, APP);
    p.run();
    assert_eq!(p.presented(), 1);
    assert!(p.node(p.b).presented[0].contact.is_some(), "B knows A");
    assert_eq!(p.node(p.a).responded(handle), vec![Outcome::Declined]);
}

#[test]
fn a_trusted_contacts_xx_invitation_to_an_app_without_override_is_not_accepted_under_a_nobody_policy()
 {
    let mut p = nobody_with_an_app_for_trusted_contacts(6, Sender::Trusted);
    let handle = p.invite(Mode::Xx, OTHER_APP);
    p.run();
    assert!(!p.node(p.b).sent.is_empty());
    assert_eq!(p.presented(), 0);
    assert_eq!(p.node(p.a).responded(handle), vec![Outcome::NotAccepted]);
}

#[test]
fn an_app_open_to_trusted_contacts_leaves_a_nobody_agent_silent_to_a_strangers_ik_initiation() {
    // No policy in force could accept a stranger, so its IK initiation is
    // dropped as if nobody were there.
    let mut p = pair(7, Mode::Ik, Sender::Stranger, Policy::Nobody);
    p.register(APP, Some(Policy::TrustedOnly));
    let handle = p.invite(Mode::Ik, APP);
    p.run();
    assert!(p.node(p.b).sent.is_empty(), "B sent {:?}", p.node(p.b).sent);
    assert!(p.node(p.b).events.is_empty());
    assert_eq!(p.node(p.a).responded(handle), vec![Outcome::Unreachable]);
}
