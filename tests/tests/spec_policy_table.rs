//! `spec/policy-table.md` is generated from the policy table
//! (`POLICY_TABLE` in `core/src/agent/policy.rs`) and must equal what it
//! renders.
//!
//! The document explains its columns and the rules the table follows, then
//! lists the table: one row per row of `POLICY_TABLE`, in its order. The
//! rules stated in prose are checked against the table here too, so the
//! text cannot claim what the rows do not do. (That the agent behaves as
//! the rows say is `agent_policy.rs`.)
//!
//! With `PEERCOLLAB_REGENERATE_SPEC=1` the file is (re)written first; the
//! check then runs as usual. Without it, a missing or different file fails,
//! so the committed document cannot drift from the code.

use std::fmt::Write as _;
use std::path::Path;

use peercollab_tests::vectors::check_generated_document;

use peercollab_core::agent::policy::{InviteeSends, InviterSees, POLICY_TABLE, PolicyRow};
use peercollab_core::agent::{Policy, Sender};
use peercollab_core::invite::FinalCode;
use peercollab_core::wire::Mode;

const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/policy-table.md");
const REGENERATE_COMMAND: &str =
    "PEERCOLLAB_REGENERATE_SPEC=1 cargo test -p peercollab-tests --test spec_policy_table";

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Ik => "IK",
        Mode::Xx => "XX",
    }
}

fn sender_name(sender: Sender) -> &'static str {
    match sender {
        Sender::Trusted => "Trusted",
        Sender::Known => "Known",
        Sender::Stranger => "Stranger",
        Sender::Scanner => "Scanner",
    }
}

fn policy_name(policy: Policy) -> &'static str {
    match policy {
        Policy::Anyone => "Anyone",
        Policy::TrustedOnly => "TrustedOnly",
        Policy::Nobody => "Nobody",
    }
}

fn code_name(code: FinalCode) -> String {
    match code {
        FinalCode::NotRegistered => "NotRegistered".to_owned(),
        FinalCode::NotAccepted => "NotAccepted".to_owned(),
        other => format!("{other:?}"),
    }
}

fn sends_name(sends: InviteeSends) -> String {
    match sends {
        InviteeSends::Nothing => "nothing".to_owned(),
        InviteeSends::Final(code) => format!("Final({})", code_name(code)),
        InviteeSends::Rings => "rings".to_owned(),
    }
}

fn sees_name(sees: InviterSees) -> String {
    match sees {
        InviterSees::Unreachable => "Unreachable".to_owned(),
        InviterSees::Final(code) => code_name(code),
        InviterSees::TheAnswer => "the answer".to_owned(),
    }
}

/// The whole document.
fn document() -> String {
    let mut out = String::new();
    out.push_str(
        "# Policy table (version 1)\n\
         \n\
         > **Generated file: do not edit it by hand.** The test\n\
         > `tests/tests/spec_policy_table.rs` renders it from `POLICY_TABLE` in\n\
         > `core/src/agent/policy.rs` and fails whenever the two differ. After a\n\
         > change to the table, regenerate it with\n\
         >\n\
         > ```sh\n\
         > ",
    );
    out.push_str(REGENERATE_COMMAND);
    out.push_str(
        "\n\
         > ```\n\
         \n\
         What an agent puts on the wire when an invitation arrives, and what the\n\
         inviter learns, for every handshake mode, kind of sender, policy, and\n\
         whether the application is registered. `tests/tests/agent_policy.rs` runs\n\
         every row between two agents. The policy decides twice: at the handshake's\n\
         first message, whether to answer at all (IK states the initiator's\n\
         identity there; XX only at its third message), and at the Invite, which\n\
         names the application, whether to present it.\n\
         \n\
         ## Columns\n\
         \n\
         | Column | Meaning |\n\
         |---|---|\n\
         | Mode | The handshake: IK (`invite_contact`: the inviter holds the invitee's card) or XX (`invite_endpoint`: an address is enough). |\n\
         | Sender | Who invites, as the invitee sees it. Trusted: a contact marked trusted. Known: a contact not marked trusted. Stranger: not a contact, but holds the invitee's card. Scanner: not a contact and without the card; it knows only an address. |\n\
         | Policy | The policy in force for the application: Anyone, TrustedOnly (trusted contacts only) or Nobody. The table has one policy in force everywhere, global and per application alike; see Per-application policies. |\n\
         | Registered | Whether the application is registered at the invitee. |\n\
         | Invitee sends | nothing: not a single datagram. Final(code): it answers the handshake and then sends this Final, without asking its user. rings: it answers the handshake, presents the invitation and rings; its user's answer follows. |\n\
         | Inviter sees | Unreachable: its handshake gives up after `HANDSHAKE_TIMEOUT` (32 s, timers.md §1). NotRegistered, NotAccepted: the outcome of that Final. the answer: Ringing, then the outcome of the user's answer. |\n\
         \n\
         ## Rules\n\
         \n\
         1. **Policy before registration.** A sender the policy refuses gets\n   \
            Final(NotAccepted) whether or not the application is registered, so it\n   \
            never learns which applications are. Only a sender the policy accepts\n   \
            hears NotRegistered.\n\
         2. **IK contacts are always answered.** A contact, trusted or known, knows\n   \
            this agent exists: its IK initiation is answered under every policy,\n   \
            Nobody included, and a refusal is a clear Final(NotAccepted).\n\
         3. **Silence is nothing sent.** A sender that is not answered gets no\n   \
            datagram at all, not even a handshake response or an error: the address\n   \
            looks exactly like one where nobody listens, and the inviter sees\n   \
            Unreachable. This is the answer to an IK stranger that no policy in force\n   \
            could accept, to an IK scanner (its first message's MAC cannot be\n   \
            verified), and to every XX initiation when every policy in force is\n   \
            Nobody.\n\
         4. **In XX a scanner is a stranger.** XX needs no card, and the sender is\n   \
            identified only at its third message: every XX scanner row equals the XX\n   \
            stranger row with the same policy and registration.\n\
         \n\
         ## Per-application policies\n\
         \n\
         An application may be registered with a policy of its own, which replaces\n\
         the global one for invitations to it. The first handshake message does not\n\
         name the application, so it is screened against every policy in force, the\n\
         global one and every application's: an IK stranger is answered if any of\n\
         them could accept it, an XX initiation unless all of them are Nobody. The\n\
         Invite is then screened by the policy of the application it names (its\n\
         own, else the global one), policy before registration (rule 1). With a\n\
         single policy in force everywhere this is the table below.\n\
         \n\
         ## The table\n\
         \n",
    );
    writeln!(
        out,
        "{} rows: mode × sender × policy × registered, in that order (registered\n\
         first).\n",
        POLICY_TABLE.len()
    )
    .unwrap();
    out.push_str(
        "| # | Mode | Sender | Policy | Registered | Invitee sends | Inviter sees |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (i, row) in POLICY_TABLE.iter().enumerate() {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            mode_name(row.mode),
            sender_name(row.sender),
            policy_name(row.policy),
            if row.registered { "yes" } else { "no" },
            sends_name(row.sends),
            sees_name(row.sees),
        )
        .unwrap();
    }
    out
}

#[test]
fn policy_table_document_is_generated_from_the_table() {
    check_generated_document(
        Path::new(DOCUMENT),
        &document(),
        "core/src/agent/policy.rs",
        REGENERATE_COMMAND,
    );
}

// ----- the document's prose against the table ----------------------------------

fn find(mode: Mode, sender: Sender, policy: Policy, registered: bool) -> &'static PolicyRow {
    POLICY_TABLE
        .iter()
        .find(|r| {
            r.mode == mode && r.sender == sender && r.policy == policy && r.registered == registered
        })
        .expect("every combination has a row")
}

#[test]
fn rows_are_in_the_order_the_document_states() {
    let mut expected = Vec::new();
    for mode in [Mode::Ik, Mode::Xx] {
        for sender in Sender::ALL {
            for policy in Policy::ALL {
                for registered in [true, false] {
                    expected.push((mode, sender, policy, registered));
                }
            }
        }
    }
    let actual: Vec<_> =
        POLICY_TABLE.iter().map(|r| (r.mode, r.sender, r.policy, r.registered)).collect();
    assert_eq!(actual, expected);
}

#[test]
fn policy_comes_before_registration() {
    for row in POLICY_TABLE.iter().filter(|r| r.sends != InviteeSends::Nothing) {
        let expected = match (row.policy.accepts(row.sender), row.registered) {
            (false, _) => InviteeSends::Final(FinalCode::NotAccepted),
            (true, false) => InviteeSends::Final(FinalCode::NotRegistered),
            (true, true) => InviteeSends::Rings,
        };
        assert_eq!(row.sends, expected, "{row:?}");
    }
}

#[test]
fn ik_contacts_are_always_answered() {
    for row in POLICY_TABLE
        .iter()
        .filter(|r| r.mode == Mode::Ik && matches!(r.sender, Sender::Trusted | Sender::Known))
    {
        assert_ne!(row.sends, InviteeSends::Nothing, "{row:?}");
    }
}

#[test]
fn silence_is_nothing_sent_and_exactly_where_the_document_says() {
    for row in &POLICY_TABLE {
        assert_eq!(
            row.sends == InviteeSends::Nothing,
            row.sees == InviterSees::Unreachable,
            "{row:?}"
        );
        let silent = match (row.mode, row.sender) {
            (Mode::Ik, Sender::Trusted | Sender::Known) => false,
            (Mode::Ik, Sender::Stranger) => !row.policy.accepts(Sender::Stranger),
            (Mode::Ik, Sender::Scanner) => true,
            (Mode::Xx, _) => row.policy == Policy::Nobody,
        };
        assert_eq!(row.sends == InviteeSends::Nothing, silent, "{row:?}");
    }
}

#[test]
fn in_xx_a_scanner_is_a_stranger() {
    for row in POLICY_TABLE.iter().filter(|r| r.mode == Mode::Xx && r.sender == Sender::Scanner) {
        let stranger = find(Mode::Xx, Sender::Stranger, row.policy, row.registered);
        assert_eq!((row.sends, row.sees), (stranger.sends, stranger.sees), "{row:?}");
    }
}

#[test]
fn the_columns_name_every_answer_the_table_gives() {
    // The Columns section explains exactly these cells.
    let mut sends: Vec<String> = POLICY_TABLE.iter().map(|r| sends_name(r.sends)).collect();
    sends.sort();
    sends.dedup();
    assert_eq!(sends, ["Final(NotAccepted)", "Final(NotRegistered)", "nothing", "rings"]);
    let mut sees: Vec<String> = POLICY_TABLE.iter().map(|r| sees_name(r.sees)).collect();
    sees.sort();
    sees.dedup();
    assert_eq!(sees, ["NotAccepted", "NotRegistered", "Unreachable", "the answer"]);
}
