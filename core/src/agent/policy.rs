//! Whom an agent accepts invitations from, and the table that says what
//! goes on the wire for every kind of sender.
//!
//! Policy is applied as soon as the sender's identity is known: at the
//! first handshake message in IK (the initiator states it there), at the
//! third in XX. An invitation names its application only once the handshake
//! is over, so the first check asks whether *any* policy in force could
//! accept this sender; the second, when the Invite arrives, applies the
//! policy of that application ([`Application::policy`], else the global
//! one).
//!
//! [`POLICY_TABLE`] is the normative table (`spec/policy-table.md` is generated
//! from it); [`admits_initiation`] and [`screen`] implement it, a unit test
//! checks they reproduce every row and `tests/tests/agent_policy.rs` walks
//! every row between two agents.

use crate::invite::{Admission, AppId, FinalCode};
use crate::wire::Mode;

/// Whom invitations are accepted from (Windows' "Allow invitations from:
/// Anyone / Trusted contacts only / No one").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// Anyone who completes the handshake (Windows' default).
    #[default]
    Anyone,
    /// Only contacts marked [`Trust::Trusted`](super::Trust::Trusted).
    TrustedOnly,
    /// Nobody.
    Nobody,
}

impl Policy {
    /// Every policy, in declaration order.
    pub const ALL: [Policy; 3] = [Policy::Anyone, Policy::TrustedOnly, Policy::Nobody];

    /// Whether this policy accepts an invitation from `sender`.
    #[must_use]
    pub const fn accepts(self, sender: Sender) -> bool {
        match self {
            Policy::Anyone => true,
            Policy::TrustedOnly => matches!(sender, Sender::Trusted),
            Policy::Nobody => false,
        }
    }
}

/// Who an invitation comes from, as the invitee sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sender {
    /// A contact marked trusted.
    Trusted,
    /// A contact not marked trusted.
    Known,
    /// Not a contact, but holds this agent's card (can address an IK
    /// initiation to it).
    Stranger,
    /// Not a contact and without the card: knows only an address. In IK it
    /// cannot compute the first message's MAC; in XX, which needs no card,
    /// it is indistinguishable from a stranger.
    Scanner,
}

impl Sender {
    /// Every sender class, in declaration order.
    pub const ALL: [Sender; 4] =
        [Sender::Trusted, Sender::Known, Sender::Stranger, Sender::Scanner];
}

/// A registered application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Application {
    /// Its 16-byte id (Windows' application GUID).
    pub id: AppId,
    /// A name for people, at most [`MAX_APP_NAME`] bytes.
    pub name: heapless::String<MAX_APP_NAME>,
    /// Overrides the global policy for invitations to this application.
    pub policy: Option<Policy>,
}

/// The longest application name, in bytes: a contact card's display-name
/// limit, and the same rules (Windows' description limit is 255 characters;
/// a name for a prompt needs far less).
pub const MAX_APP_NAME: usize = crate::card::MAX_NAME_LEN;

/// What the invitee puts on the wire for an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InviteeSends {
    /// Nothing at all: the handshake's first message is dropped before any
    /// reply, as if nobody were there.
    Nothing,
    /// It answers the handshake and then this Final, without asking anyone.
    Final(FinalCode),
    /// It answers the handshake, presents the invitation and rings; the
    /// user's answer follows.
    Rings,
}

/// What the inviter learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InviterSees {
    /// Unreachable, after the handshake's give-up time.
    Unreachable,
    /// The outcome of this Final.
    Final(FinalCode),
    /// Ringing, then the user's answer.
    TheAnswer,
}

/// One row of the policy table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyRow {
    /// The handshake.
    pub mode: Mode,
    /// Who invites.
    pub sender: Sender,
    /// The policy in force for the application (global and per-application
    /// alike in this table).
    pub policy: Policy,
    /// Whether the application is registered at the invitee.
    pub registered: bool,
    /// What the invitee sends.
    pub sends: InviteeSends,
    /// What the inviter's outcome is.
    pub sees: InviterSees,
}

/// Whether the first handshake message is answered at all. `could_accept`
/// tells whether any policy in force (global or of a registered
/// application) accepts a sender of this class; `any_not_nobody`, whether
/// any policy in force is not [`Policy::Nobody`].
///
/// - IK: a scanner never gets here (its MAC fails first). A contact is
///   always answered — it knows this agent exists and deserves a clear
///   "not accepted"; a stranger only if some policy could accept it, so an
///   agent that takes invitations from trusted contacts only is silent to
///   strangers, exactly like an address where nobody listens.
/// - XX: the sender is unknown until the third message, so the first is
///   answered unless every policy is Nobody (then all are dropped).
#[must_use]
pub const fn admits_initiation(
    mode: Mode,
    sender: Sender,
    could_accept: bool,
    any_not_nobody: bool,
) -> bool {
    match mode {
        Mode::Ik => match sender {
            Sender::Trusted | Sender::Known => true,
            Sender::Stranger => could_accept,
            Sender::Scanner => false,
        },
        Mode::Xx => any_not_nobody,
    }
}

/// The verdict on an Invite whose sender passed [`admits_initiation`]:
/// policy first, so a sender the policy refuses never learns which
/// applications are registered; then registration.
#[must_use]
pub const fn screen(sender: Sender, policy: Policy, registered: bool) -> Admission {
    if !policy.accepts(sender) {
        Admission::NotAccepted
    } else if !registered {
        Admission::NotRegistered
    } else {
        Admission::Present
    }
}

const fn row(mode: Mode, sender: Sender, policy: Policy, registered: bool) -> PolicyRow {
    // The table for one policy in force everywhere: `could_accept` and
    // `any_not_nobody` follow from it.
    let answered =
        admits_initiation(mode, sender, policy.accepts(sender), !matches!(policy, Policy::Nobody));
    let (sends, sees) = if !answered || matches!((mode, sender), (Mode::Ik, Sender::Scanner)) {
        (InviteeSends::Nothing, InviterSees::Unreachable)
    } else {
        match screen(sender, policy, registered) {
            Admission::Present => (InviteeSends::Rings, InviterSees::TheAnswer),
            Admission::NotRegistered => (
                InviteeSends::Final(FinalCode::NotRegistered),
                InviterSees::Final(FinalCode::NotRegistered),
            ),
            _ => (
                InviteeSends::Final(FinalCode::NotAccepted),
                InviterSees::Final(FinalCode::NotAccepted),
            ),
        }
    };
    PolicyRow { mode, sender, policy, registered, sends, sees }
}

const fn build_table() -> [PolicyRow; 48] {
    let modes = [Mode::Ik, Mode::Xx];
    let mut out = [row(Mode::Ik, Sender::Trusted, Policy::Anyone, true); 48];
    let mut i = 0;
    while i < 48 {
        let mode = modes[i / 24];
        let sender = Sender::ALL[(i / 6) % 4];
        let policy = Policy::ALL[(i / 2) % 3];
        let registered = i % 2 == 0;
        out[i] = row(mode, sender, policy, registered);
        i += 1;
    }
    out
}

/// The policy table: mode × sender × policy × registered → what the
/// invitee sends and what the inviter sees. 48 rows, in the order mode,
/// sender, policy, registered (yes first).
pub const POLICY_TABLE: [PolicyRow; 48] = build_table();

#[cfg(test)]
mod tests {
    use super::*;

    fn find(mode: Mode, sender: Sender, policy: Policy, registered: bool) -> PolicyRow {
        *POLICY_TABLE
            .iter()
            .find(|r| {
                r.mode == mode
                    && r.sender == sender
                    && r.policy == policy
                    && r.registered == registered
            })
            .expect("every combination has a row")
    }

    #[test]
    fn every_combination_has_exactly_one_row() {
        for (i, a) in POLICY_TABLE.iter().enumerate() {
            for b in &POLICY_TABLE[i + 1..] {
                assert!(
                    (a.mode, a.sender, a.policy, a.registered)
                        != (b.mode, b.sender, b.policy, b.registered)
                );
            }
        }
    }

    /// The rows people reason about, stated by hand: a regression in the
    /// functions shows here as a readable difference.
    #[test]
    fn table_states_the_intended_answers() {
        use FinalCode::*;
        let cases = [
            (Mode::Ik, Sender::Trusted, Policy::TrustedOnly, true, InviteeSends::Rings),
            (Mode::Ik, Sender::Trusted, Policy::Anyone, false, InviteeSends::Final(NotRegistered)),
            (Mode::Ik, Sender::Trusted, Policy::Nobody, true, InviteeSends::Final(NotAccepted)),
            (Mode::Ik, Sender::Known, Policy::TrustedOnly, false, InviteeSends::Final(NotAccepted)),
            (Mode::Ik, Sender::Stranger, Policy::Anyone, true, InviteeSends::Rings),
            (Mode::Ik, Sender::Stranger, Policy::TrustedOnly, true, InviteeSends::Nothing),
            (Mode::Ik, Sender::Stranger, Policy::Nobody, false, InviteeSends::Nothing),
            (Mode::Ik, Sender::Scanner, Policy::Anyone, true, InviteeSends::Nothing),
            (Mode::Xx, Sender::Scanner, Policy::Anyone, true, InviteeSends::Rings),
            (
                Mode::Xx,
                Sender::Stranger,
                Policy::TrustedOnly,
                true,
                InviteeSends::Final(NotAccepted),
            ),
            (Mode::Xx, Sender::Trusted, Policy::Nobody, true, InviteeSends::Nothing),
            (Mode::Xx, Sender::Known, Policy::Anyone, false, InviteeSends::Final(NotRegistered)),
        ];
        for (mode, sender, policy, registered, sends) in cases {
            assert_eq!(
                find(mode, sender, policy, registered).sends,
                sends,
                "{mode:?} {sender:?} {policy:?} {registered}"
            );
        }
    }

    #[test]
    fn inviter_sees_what_the_invitee_sends() {
        for r in POLICY_TABLE {
            let expected = match r.sends {
                InviteeSends::Nothing => InviterSees::Unreachable,
                InviteeSends::Final(code) => InviterSees::Final(code),
                InviteeSends::Rings => InviterSees::TheAnswer,
            };
            assert_eq!(r.sees, expected, "{r:?}");
        }
    }
}
