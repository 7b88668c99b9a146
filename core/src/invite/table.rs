//! The transitions of both roles, declared once.
//!
//! Each role has a set of states, a set of events and one row for **every**
//! (state, event) pair: no wildcard. The `transitions!` macro turns the
//! rows into an exhaustive `match` (a missing pair does not compile, a
//! repeated one is an unreachable pattern) and into a constant table that
//! tests enumerate and that renders the state diagram in
//! `spec/state-machine.md`, so the code, the tests and the spec cannot
//! drift apart.
//!
//! A row says what the pair means:
//! - `Go(S) [actions]`: perform the actions, then enter state `S`; entering
//!   a state *different* from the current one first runs that state's entry
//!   actions ([`inviter_entry`], [`invitee_entry`]), which set its timers
//!   and send what the state is about.
//! - `Stay [actions]`: perform the actions, remain.
//! - `Ignore`: a stale or duplicate input, or a timer the state never arms;
//!   harmless, changes nothing. A command answered `Ignore` is a no-op.
//! - `Unexpected`: input an honest peer cannot send in this state; it is
//!   dropped and counted, and changes nothing.
//! - `Misuse`: a command that is not allowed in this state; the caller gets
//!   an error and nothing changes.
//!
//! Actions run in the order listed, before the entry actions of the next
//! state.
//!
//! One rule lives outside the table because it is not an event of its own:
//! every authentic datagram from the invitee — a keepalive, a Sack, a
//! Ringing, anything — restarts the inviter's silence clock, and so its
//! give-up deadline while Delivering or Ringing and its liveness probe
//! while Ringing.

macro_rules! named_enum {
    ($(#[$m:meta])* pub enum $name:ident { $( $(#[$vm:meta])* $v:ident ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vm])* $v ),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            /// The name used in the spec.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self { $($name::$v => stringify!($v)),* }
            }
        }
    };
}

/// What a row of the table does with its (state, event) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Perform the actions, then enter the next state.
    Go,
    /// Perform the actions and remain.
    Stay,
    /// Stale or duplicate input, a timer the state never arms, or a command
    /// that is a no-op here.
    Ignore,
    /// Input an honest peer cannot send in this state: dropped, counted.
    Unexpected,
    /// A command not allowed in this state: an error, nothing changes.
    Misuse,
}

/// One row of a role's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<S: 'static, E: 'static, A: 'static> {
    /// The current state.
    pub state: S,
    /// The event.
    pub event: E,
    /// What the pair means.
    pub verdict: Verdict,
    /// The state after the row (the current one unless `Go`).
    pub next: S,
    /// The actions, in order.
    pub actions: &'static [A],
}

/// Declares a role's rows: generates the lookup `fn` (an exhaustive match)
/// and the constant table from the same text.
macro_rules! transitions {
    (
        $(#[$tm:meta])* table $table:ident;
        $(#[$fm:meta])* fn $lookup:ident($S:ident, $E:ident) -> $A:ident;
        $( $s:ident, $e:ident => $verdict:ident $( ($next:ident) )? [ $( $a:ident ),* ]; )*
    ) => {
        $(#[$tm])*
        pub const $table: &[Row<$S, $E, $A>] = &[
            $( Row {
                state: $S::$s,
                event: $E::$e,
                verdict: Verdict::$verdict,
                next: transitions!(@next $S, $s $(, $next)?),
                actions: &[$($A::$a),*],
            }, )*
        ];

        $(#[$fm])*
        #[must_use]
        pub const fn $lookup(state: $S, event: $E) -> Row<$S, $E, $A> {
            match (state, event) {
                $( ($S::$s, $E::$e) => Row {
                    state: $S::$s,
                    event: $E::$e,
                    verdict: Verdict::$verdict,
                    next: transitions!(@next $S, $s $(, $next)?),
                    actions: &[$($A::$a),*],
                }, )*
            }
        }
    };
    (@next $S:ident, $s:ident) => { $S::$s };
    (@next $S:ident, $s:ident, $next:ident) => { $S::$next };
}

named_enum! {
    /// The inviter's states.
    pub enum InviterState {
        /// The secure session's handshake is under way.
        Connecting,
        /// The Invite's fragments are on their way; not all acknowledged.
        Delivering,
        /// The invitee holds the whole invitation and shows it.
        Ringing,
        /// The outcome is decided (Cancelled, or Unreachable after giving
        /// up); a Cancel is retransmitted until the invitee confirms it.
        Cancelling,
        /// The outcome is decided; duplicates are answered until the linger
        /// ends.
        Lingering,
        /// Everything is freed.
        Closed,
    }
}

named_enum! {
    /// The inviter's events.
    pub enum InviterEvent {
        /// The session's handshake completed: the Invite can be sent.
        Established,
        /// The session failed (handshake given up, or the peer is not who
        /// was called).
        SessionFailed,
        /// A fragment acknowledgement arrived.
        Sack,
        /// A Ringing arrived.
        Ringing,
        /// A Final other than Cancelled arrived.
        Final,
        /// A Final(Cancelled) arrived: the invitee confirms a Cancel.
        CancelConfirmed,
        /// The caller cancels.
        Cancel,
        /// The retransmission timer fired.
        RetransmitTimer,
        /// The give-up timer fired.
        GiveUpTimer,
        /// The linger ended.
        LingerTimer,
    }
}

named_enum! {
    /// The inviter's actions.
    pub enum InviterAction {
        /// Queue every fragment of the Invite.
        SendInvite,
        /// Record which fragments the invitee holds; if that is news, send
        /// the missing ones again at once.
        ApplySack,
        /// Send the lowest unacknowledged fragment again (a probe).
        ResendProbe,
        /// Send an empty transport datagram: a ringing invitee answers it
        /// with Ringing (a liveness probe; the body is no longer held).
        SendProbe,
        /// Double the retransmission delay (up to its maximum) and re-arm.
        BackOff,
        /// Stop sending fragments and give the body buffer back.
        StopDelivery,
        /// Tell the caller the invitee is ringing.
        NotifyRinging,
        /// Acknowledge the Final that arrived.
        SendAck,
        /// Send the Cancel (again).
        SendCancel,
        /// Answer a Final that arrives after the outcome: an Ack if the
        /// outcome came from that Final, a Cancel otherwise.
        AnswerLateFinal,
        /// Outcome: the Final's answer.
        EndWithFinal,
        /// Outcome: Cancelled, for the caller's reason.
        EndCancelled,
        /// Outcome: Unreachable; a Cancel (reason GaveUp) withdraws the
        /// invitation in case the invitee still hears us.
        EndUnreachable,
        /// Outcome: from the session's failure (Unreachable, or Failed when
        /// the peer is not who was called).
        EndWithSessionFailure,
    }
}

named_enum! {
    /// The invitee's states.
    pub enum InviteeState {
        /// The session is up (or confirming); no fragment yet.
        AwaitingInvite,
        /// Fragments are arriving.
        Receiving,
        /// The invitation is presented; the user has not answered.
        Ringing,
        /// A Final is retransmitted until the inviter acknowledges it.
        Answering,
        /// The outcome is decided; duplicates are answered until the linger
        /// ends.
        Lingering,
        /// Everything is freed.
        Closed,
    }
}

named_enum! {
    /// The invitee's events.
    pub enum InviteeEvent {
        /// The session failed (the inviter never confirmed it).
        SessionFailed,
        /// A fragment not held before, consistent with the invitation.
        Fragment,
        /// An empty transport datagram (the inviter's liveness probe).
        Probe,
        /// A fragment already held (or one that no longer matters).
        FragmentDuplicate,
        /// The last fragment arrived and the body is valid.
        Reassembled,
        /// The invitation is refused before it is presented: screening said
        /// no (not registered, not accepted, busy), no buffer was free, or
        /// it broke the protocol.
        Refused,
        /// The inviter acknowledged our Final.
        Ack,
        /// A Cancel arrived.
        Cancel,
        /// The user answers.
        Respond,
        /// The acknowledgement delay ended.
        AckTimer,
        /// Time to ring again.
        RingingTimer,
        /// The invitation expired.
        ExpiryTimer,
        /// The retransmission timer fired.
        RetransmitTimer,
        /// The give-up timer fired.
        GiveUpTimer,
        /// The linger ended.
        LingerTimer,
    }
}

named_enum! {
    /// The invitee's actions.
    pub enum InviteeAction {
        /// Take the invitation's id, application, lengths and expiry from
        /// its first message.
        Adopt,
        /// Take a body buffer from the pool (when the body is not empty).
        TakeBuffer,
        /// Copy the fragment into the body buffer.
        StoreFragment,
        /// Arm the acknowledgement delay (if not armed): what the state
        /// sends to acknowledge goes out once per delay, however many
        /// fragments arrive.
        ScheduleAck,
        /// Restart the reassembly give-up deadline (progress was made).
        RefreshStall,
        /// Send a fragment acknowledgement.
        SendSack,
        /// Send Ringing.
        SendRinging,
        /// Re-arm the ringing timer.
        ArmRinging,
        /// Send the Final (again).
        SendFinal,
        /// Double the retransmission delay (up to its maximum) and re-arm.
        BackOff,
        /// The Final's code comes with the event: the screening refusal, or
        /// the user's answer.
        TakeCode,
        /// The Final says Expired.
        DeclareExpired,
        /// Outcome: our Final, now acknowledged.
        EndWithFinal,
        /// Outcome: Cancelled, for the inviter's reason.
        EndCancelled,
        /// Outcome: Unreachable.
        EndUnreachable,
        /// Confirm a Cancel with Final(Cancelled), if the outcome is
        /// Cancelled.
        ConfirmCancel,
    }
}

/// Entry actions of the inviter's states: what entering the state (from a
/// different one) does, before anything else in it.
#[must_use]
pub const fn inviter_entry(state: InviterState) -> &'static str {
    match state {
        InviterState::Connecting => "the session sends its handshake",
        InviterState::Delivering => {
            "start the silence clock; arm retransmission (RETRANSMIT_INITIAL); arm give-up: DELIVERY_TIMEOUT of silence, or expiry + EXPIRY_GRACE, whichever is first"
        }
        InviterState::Ringing => {
            "arm the liveness probe (LIVENESS_PROBE_AFTER of silence, then RETRANSMIT_INITIAL doubling); arm give-up: LIVENESS_TIMEOUT of silence, or expiry + EXPIRY_GRACE, whichever is first"
        }
        InviterState::Cancelling => {
            "clear timers; send Cancel; arm retransmission (RETRANSMIT_INITIAL); arm give-up (CANCEL_TIMEOUT)"
        }
        InviterState::Lingering => "clear timers; arm linger (LINGER)",
        InviterState::Closed => "close the session, release the buffer, clear timers and outputs",
    }
}

/// Entry actions of the invitee's states.
#[must_use]
pub const fn invitee_entry(state: InviteeState) -> &'static str {
    match state {
        InviteeState::AwaitingInvite => "arm give-up (INVITE_WAIT_TIMEOUT)",
        InviteeState::Receiving => "arm expiry; arm give-up (REASSEMBLY_TIMEOUT)",
        InviteeState::Ringing => {
            "clear the acknowledgement delay and give-up; present the invitation; send Ringing; arm ringing (RINGING_INTERVAL); arm expiry"
        }
        InviteeState::Answering => {
            "clear timers and pending messages; release the body buffer if never presented; send Final; arm retransmission (RETRANSMIT_INITIAL); arm give-up (FINAL_TIMEOUT)"
        }
        InviteeState::Lingering => {
            "clear timers; release the body buffer if never presented; arm linger (LINGER)"
        }
        InviteeState::Closed => "close the session, release the buffer, clear timers and outputs",
    }
}

transitions! {
    /// The inviter's table: one row per (state, event) pair.
    table INVITER;
    /// The inviter's row for a pair.
    fn inviter(InviterState, InviterEvent) -> InviterAction;

    Connecting, Established => Go(Delivering) [SendInvite];
    Connecting, SessionFailed => Go(Closed) [EndWithSessionFailure];
    Connecting, Sack => Unexpected [];
    Connecting, Ringing => Unexpected [];
    Connecting, Final => Unexpected [];
    Connecting, CancelConfirmed => Unexpected [];
    Connecting, Cancel => Go(Closed) [EndCancelled];
    Connecting, RetransmitTimer => Ignore [];
    Connecting, GiveUpTimer => Ignore [];
    Connecting, LingerTimer => Ignore [];

    Delivering, Established => Ignore [];
    Delivering, SessionFailed => Go(Closed) [StopDelivery, EndWithSessionFailure];
    Delivering, Sack => Stay [ApplySack];
    Delivering, Ringing => Go(Ringing) [StopDelivery, NotifyRinging];
    Delivering, Final => Go(Lingering) [StopDelivery, SendAck, EndWithFinal];
    Delivering, CancelConfirmed => Unexpected [];
    Delivering, Cancel => Go(Cancelling) [StopDelivery, EndCancelled];
    Delivering, RetransmitTimer => Stay [ResendProbe, BackOff];
    Delivering, GiveUpTimer => Go(Cancelling) [StopDelivery, EndUnreachable];
    Delivering, LingerTimer => Ignore [];

    Ringing, Established => Ignore [];
    Ringing, SessionFailed => Go(Closed) [EndWithSessionFailure];
    Ringing, Sack => Ignore [];
    Ringing, Ringing => Ignore [];
    Ringing, Final => Go(Lingering) [SendAck, EndWithFinal];
    Ringing, CancelConfirmed => Unexpected [];
    Ringing, Cancel => Go(Cancelling) [EndCancelled];
    Ringing, RetransmitTimer => Stay [SendProbe, BackOff];
    Ringing, GiveUpTimer => Go(Cancelling) [EndUnreachable];
    Ringing, LingerTimer => Ignore [];

    Cancelling, Established => Ignore [];
    Cancelling, SessionFailed => Go(Closed) [];
    Cancelling, Sack => Ignore [];
    Cancelling, Ringing => Ignore [];
    Cancelling, Final => Stay [SendCancel];
    Cancelling, CancelConfirmed => Go(Lingering) [SendAck];
    Cancelling, Cancel => Ignore [];
    Cancelling, RetransmitTimer => Stay [SendCancel, BackOff];
    Cancelling, GiveUpTimer => Go(Closed) [];
    Cancelling, LingerTimer => Ignore [];

    Lingering, Established => Ignore [];
    Lingering, SessionFailed => Go(Closed) [];
    Lingering, Sack => Ignore [];
    Lingering, Ringing => Ignore [];
    Lingering, Final => Stay [AnswerLateFinal];
    Lingering, CancelConfirmed => Stay [SendAck];
    Lingering, Cancel => Ignore [];
    Lingering, RetransmitTimer => Ignore [];
    Lingering, GiveUpTimer => Ignore [];
    Lingering, LingerTimer => Go(Closed) [];

    Closed, Established => Ignore [];
    Closed, SessionFailed => Ignore [];
    Closed, Sack => Ignore [];
    Closed, Ringing => Ignore [];
    Closed, Final => Ignore [];
    Closed, CancelConfirmed => Ignore [];
    Closed, Cancel => Ignore [];
    Closed, RetransmitTimer => Ignore [];
    Closed, GiveUpTimer => Ignore [];
    Closed, LingerTimer => Ignore [];
}

// Once the body is settled (Ringing, Answering, Lingering) every fragment is
// classified `FragmentDuplicate`, so the `Fragment` and `Refused` rows of
// those states cannot fire; they are `Ignore` because the table is complete.
transitions! {
    /// The invitee's table: one row per (state, event) pair.
    table INVITEE;
    /// The invitee's row for a pair.
    fn invitee(InviteeState, InviteeEvent) -> InviteeAction;

    AwaitingInvite, SessionFailed => Go(Closed) [EndUnreachable];
    AwaitingInvite, Fragment => Go(Receiving) [Adopt, TakeBuffer, StoreFragment, ScheduleAck];
    AwaitingInvite, Probe => Ignore [];
    AwaitingInvite, FragmentDuplicate => Unexpected [];
    AwaitingInvite, Reassembled => Unexpected [];
    AwaitingInvite, Refused => Go(Answering) [Adopt, TakeCode];
    AwaitingInvite, Ack => Unexpected [];
    AwaitingInvite, Cancel => Go(Lingering) [Adopt, EndCancelled, ConfirmCancel];
    AwaitingInvite, Respond => Misuse [];
    AwaitingInvite, AckTimer => Ignore [];
    AwaitingInvite, RingingTimer => Ignore [];
    AwaitingInvite, ExpiryTimer => Ignore [];
    AwaitingInvite, RetransmitTimer => Ignore [];
    AwaitingInvite, GiveUpTimer => Go(Closed) [EndUnreachable];
    AwaitingInvite, LingerTimer => Ignore [];

    Receiving, SessionFailed => Go(Closed) [EndUnreachable];
    Receiving, Fragment => Stay [StoreFragment, ScheduleAck, RefreshStall];
    Receiving, Probe => Stay [ScheduleAck];
    Receiving, FragmentDuplicate => Stay [ScheduleAck];
    Receiving, Reassembled => Go(Ringing) [];
    Receiving, Refused => Go(Answering) [TakeCode];
    Receiving, Ack => Unexpected [];
    Receiving, Cancel => Go(Lingering) [EndCancelled, ConfirmCancel];
    Receiving, Respond => Misuse [];
    Receiving, AckTimer => Stay [SendSack];
    Receiving, RingingTimer => Ignore [];
    Receiving, ExpiryTimer => Go(Answering) [DeclareExpired];
    Receiving, RetransmitTimer => Ignore [];
    Receiving, GiveUpTimer => Go(Closed) [EndUnreachable];
    Receiving, LingerTimer => Ignore [];

    Ringing, SessionFailed => Go(Closed) [EndUnreachable];
    Ringing, Fragment => Ignore [];
    Ringing, Probe => Stay [ScheduleAck];
    Ringing, FragmentDuplicate => Stay [ScheduleAck];
    Ringing, Reassembled => Unexpected [];
    Ringing, Refused => Ignore [];
    Ringing, Ack => Unexpected [];
    Ringing, Cancel => Go(Lingering) [EndCancelled, ConfirmCancel];
    Ringing, Respond => Go(Answering) [TakeCode];
    Ringing, AckTimer => Stay [SendRinging];
    Ringing, RingingTimer => Stay [SendRinging, ArmRinging];
    Ringing, ExpiryTimer => Go(Answering) [DeclareExpired];
    Ringing, RetransmitTimer => Ignore [];
    Ringing, GiveUpTimer => Ignore [];
    Ringing, LingerTimer => Ignore [];

    Answering, SessionFailed => Go(Closed) [EndUnreachable];
    Answering, Fragment => Ignore [];
    Answering, Probe => Stay [ScheduleAck];
    Answering, FragmentDuplicate => Stay [ScheduleAck];
    Answering, Reassembled => Unexpected [];
    Answering, Refused => Ignore [];
    Answering, Ack => Go(Lingering) [EndWithFinal];
    Answering, Cancel => Go(Lingering) [EndCancelled, ConfirmCancel];
    Answering, Respond => Misuse [];
    Answering, AckTimer => Stay [SendFinal];
    Answering, RingingTimer => Ignore [];
    Answering, ExpiryTimer => Ignore [];
    Answering, RetransmitTimer => Stay [SendFinal, BackOff];
    Answering, GiveUpTimer => Go(Closed) [EndUnreachable];
    Answering, LingerTimer => Ignore [];

    Lingering, SessionFailed => Go(Closed) [];
    Lingering, Fragment => Ignore [];
    Lingering, Probe => Ignore [];
    Lingering, FragmentDuplicate => Ignore [];
    Lingering, Reassembled => Unexpected [];
    Lingering, Refused => Ignore [];
    Lingering, Ack => Ignore [];
    Lingering, Cancel => Stay [ConfirmCancel];
    Lingering, Respond => Misuse [];
    Lingering, AckTimer => Ignore [];
    Lingering, RingingTimer => Ignore [];
    Lingering, ExpiryTimer => Ignore [];
    Lingering, RetransmitTimer => Ignore [];
    Lingering, GiveUpTimer => Ignore [];
    Lingering, LingerTimer => Go(Closed) [];

    Closed, SessionFailed => Ignore [];
    Closed, Fragment => Ignore [];
    Closed, Probe => Ignore [];
    Closed, FragmentDuplicate => Ignore [];
    Closed, Reassembled => Ignore [];
    Closed, Refused => Ignore [];
    Closed, Ack => Ignore [];
    Closed, Cancel => Ignore [];
    Closed, Respond => Misuse [];
    Closed, AckTimer => Ignore [];
    Closed, RingingTimer => Ignore [];
    Closed, ExpiryTimer => Ignore [];
    Closed, RetransmitTimer => Ignore [];
    Closed, GiveUpTimer => Ignore [];
    Closed, LingerTimer => Ignore [];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_complete<S, E, A>(
        table: &[Row<S, E, A>],
        states: &[S],
        events: &[E],
        lookup: impl Fn(S, E) -> Row<S, E, A>,
    ) where
        S: Copy + PartialEq + core::fmt::Debug,
        E: Copy + PartialEq + core::fmt::Debug,
        A: PartialEq + core::fmt::Debug,
    {
        assert_eq!(table.len(), states.len() * events.len(), "one row per (state, event)");
        for &s in states {
            for &e in events {
                let rows: usize = table.iter().filter(|r| r.state == s && r.event == e).count();
                assert_eq!(rows, 1, "{s:?} × {e:?} must have exactly one row");
                let row = lookup(s, e);
                assert_eq!((row.state, row.event), (s, e));
                let declared = table.iter().find(|r| r.state == s && r.event == e);
                assert_eq!(declared, Some(&row), "lookup and table agree");
                match row.verdict {
                    Verdict::Go => assert_ne!(row.next, s, "{s:?} × {e:?}: Go must change state"),
                    _ => assert_eq!(row.next, s, "{s:?} × {e:?}: only Go changes state"),
                }
                if matches!(row.verdict, Verdict::Ignore | Verdict::Unexpected | Verdict::Misuse) {
                    assert!(row.actions.is_empty(), "{s:?} × {e:?}: no actions on a refusal");
                }
            }
        }
    }

    #[test]
    fn every_inviter_state_and_event_pair_has_exactly_one_row() {
        check_complete(INVITER, InviterState::ALL, InviterEvent::ALL, inviter);
    }

    #[test]
    fn every_invitee_state_and_event_pair_has_exactly_one_row() {
        check_complete(INVITEE, InviteeState::ALL, InviteeEvent::ALL, invitee);
    }

    #[test]
    fn closed_is_terminal_for_both_roles() {
        assert!(
            INVITER
                .iter()
                .filter(|r| r.state == InviterState::Closed)
                .all(|r| r.next == InviterState::Closed && r.actions.is_empty())
        );
        assert!(
            INVITEE
                .iter()
                .filter(|r| r.state == InviteeState::Closed)
                .all(|r| r.next == InviteeState::Closed && r.actions.is_empty())
        );
    }

    #[test]
    fn every_state_is_reachable_and_every_action_is_used() {
        for &s in InviterState::ALL {
            let reached = s == InviterState::Connecting || INVITER.iter().any(|r| r.next == s);
            assert!(reached, "{s:?} unreachable");
        }
        for &s in InviteeState::ALL {
            let reached = s == InviteeState::AwaitingInvite || INVITEE.iter().any(|r| r.next == s);
            assert!(reached, "{s:?} unreachable");
        }
        for a in InviterAction::ALL {
            assert!(INVITER.iter().any(|r| r.actions.contains(a)), "{a:?} unused");
        }
        for a in InviteeAction::ALL {
            assert!(INVITEE.iter().any(|r| r.actions.contains(a)), "{a:?} unused");
        }
    }

    #[test]
    fn exactly_one_outcome_on_every_path_from_start_to_closed() {
        // Every row that decides an outcome leaves the undecided states, and
        // no row of a decided state decides again.
        let inviter_ends = |r: &Row<InviterState, InviterEvent, InviterAction>| {
            r.actions.iter().filter(|a| a.name().starts_with("End")).count()
        };
        for r in INVITER {
            let decided = matches!(
                r.state,
                InviterState::Cancelling | InviterState::Lingering | InviterState::Closed
            );
            let ends = inviter_ends(r);
            assert!(ends <= 1, "{r:?}");
            if decided {
                assert_eq!(ends, 0, "{r:?} decides twice");
            } else if matches!(
                r.next,
                InviterState::Cancelling | InviterState::Lingering | InviterState::Closed
            ) {
                assert_eq!(ends, 1, "{r:?} leaves undecided without an outcome");
            }
        }
        for r in INVITEE {
            let decided = matches!(r.state, InviteeState::Lingering | InviteeState::Closed);
            let ends = r.actions.iter().filter(|a| a.name().starts_with("End")).count();
            assert!(ends <= 1, "{r:?}");
            if decided {
                assert_eq!(ends, 0, "{r:?} decides twice");
            } else if matches!(r.next, InviteeState::Lingering | InviteeState::Closed) {
                assert_eq!(ends, 1, "{r:?} leaves undecided without an outcome");
            }
        }
    }
}
