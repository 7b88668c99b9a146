//! Defence switches for the mutation record: proof that each attack test
//! can fail.
//!
//! Every defence of `spec/threat-model.md` §4 asks `enabled` before it
//! acts. In every ordinary build that is a constant `true` and nothing can
//! change it. Only a build with `RUSTFLAGS="--cfg peercollab_mutation"` —
//! which `peercollab-mutation` (in `tests/`) makes, in a target directory
//! of its own — reads the environment variable `PEERCOLLAB_DISABLE` once:
//! the [`Defence`]s it names (by [`Defence::name`], separated by commas)
//! are skipped for the whole process, as if their code had been deleted.
//! The program then runs the attack tests once per defence (and once per
//! group of layered defences) and records which fail
//! (`spec/mutation-record.md`): a defence no test misses, or a test no
//! removed defence makes fail, is a test that cannot fail.

/// A defence that a mutation build can switch off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Defence {
    /// mac1 of an initiation checked before any Diffie-Hellman
    /// (`Agent::on_initiation`, `Incoming::read_admitting`).
    Mac1,
    /// Initiations remembered by ephemeral key and dropped when seen again
    /// (`Guard::seen`).
    ReplayCache,
    /// An initiation carrying one of our own ephemeral keys is dropped
    /// (`Agent::is_own_initiation`).
    Reflection,
    /// Under load, a cookie is demanded (`Agent::under_load`).
    Cookie,
    /// Per-source token bucket (`Guard::allow`).
    RateLimit,
    /// At most half the slots hold unconfirmed handshakes; the oldest one
    /// makes room (`Agent::on_initiation`, `half_open_places`).
    HalfOpenRoom,
    /// A contact's own unconfirmed handshakes make room for its new one
    /// (`HALF_OPEN_PER_CONTACT`).
    PerContactRoom,
    /// No answer before authentication is larger than its trigger: the
    /// minimum initiation lengths (`wire::MIN_IK_INITIATION_LEN`,
    /// `MIN_XX_INITIATION_LEN`) and the check in `Incoming::accept`.
    ResponseSize,
    /// Every refused IK initiation costs the same work
    /// (`session::pad_refusal`).
    UniformWork,
    /// Transport counters checked against the replay window
    /// (`Session::handle_datagram`, `ReplayWindow::check`).
    ReplayWindow,
    /// A counter enters the replay window only once its datagram proved
    /// authentic (`Session::on_transport`).
    WindowAfterAead,
    /// IK's message 2 mixes `se`: the inviter proves its static key before
    /// anything it sends can be read, so a holder of the invitee's static key
    /// cannot pass for a contact (`noise::pattern`, the IK pattern).
    IkSe,
    /// X25519 results of all zeros refused (`noise::dh`,
    /// `identity::check_static_key`).
    Contributory,
    /// Weak Ed25519 keys refused and signatures checked strictly
    /// (`IdentityKey::from_bytes`, `IdentityKey::verify`).
    StrictSignatures,
    /// A certificate must certify the static key of the handshake
    /// (`session::verify_statement`).
    CertificateBinding,
    /// The stated identity must be the one expected
    /// (`session::verify_statement`).
    IdentityCheck,
    /// Policy answers refused senders with silence, before any state
    /// (`Agent::on_initiation`).
    PolicySilence,
    /// A revoked certificate is refused (`Agent::on_initiation`,
    /// `Screening::screen`).
    Revocation,
    /// An invitation id is presented at most once (`Screening::screen`).
    RememberedIds,
    /// The invitee's Final is retransmitted until acknowledged
    /// (`InviteeAction::SendFinal`).
    FinalRetransmit,
    /// An invitation ends at its expiry: the invitee's expiry timer, and an
    /// answer or a last fragment at or after it refused
    /// (`Invitation::handle_timeout`, `Invitation::respond`).
    Expiry,
    /// Nothing waits for ever: the invitation's give-up timers
    /// (`Invitation::handle_timeout`).
    GiveUp,
    /// A Cancel that crossed the invitee's answer wins: the invitee ends
    /// Cancelled, as the inviter does (`Answering, Cancel` in
    /// `core/src/invite/table.rs`).
    CancelWins,
    /// An earlier `now` counts as the latest (`Agent::clock`).
    MonotonicClock,
    /// An invitee clamps the announced expiry to its maximum
    /// (`InviteeAction::Adopt`).
    ExpiryClamp,
    /// The header's version and reserved bits are checked
    /// (`wire::peek_type`).
    HeaderChecks,
}

impl Defence {
    /// Every defence, in the order of the record.
    pub const ALL: [Defence; 26] = [
        Defence::Mac1,
        Defence::ReplayCache,
        Defence::Reflection,
        Defence::Cookie,
        Defence::RateLimit,
        Defence::HalfOpenRoom,
        Defence::PerContactRoom,
        Defence::ResponseSize,
        Defence::UniformWork,
        Defence::ReplayWindow,
        Defence::WindowAfterAead,
        Defence::IkSe,
        Defence::Contributory,
        Defence::StrictSignatures,
        Defence::CertificateBinding,
        Defence::IdentityCheck,
        Defence::PolicySilence,
        Defence::Revocation,
        Defence::RememberedIds,
        Defence::FinalRetransmit,
        Defence::Expiry,
        Defence::GiveUp,
        Defence::CancelWins,
        Defence::MonotonicClock,
        Defence::ExpiryClamp,
        Defence::HeaderChecks,
    ];

    /// Its name in `PEERCOLLAB_DISABLE` and in the record.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Defence::Mac1 => "mac1",
            Defence::ReplayCache => "replay-cache",
            Defence::Reflection => "reflection",
            Defence::Cookie => "cookie",
            Defence::RateLimit => "rate-limit",
            Defence::HalfOpenRoom => "half-open-room",
            Defence::PerContactRoom => "per-contact-room",
            Defence::ResponseSize => "response-size",
            Defence::UniformWork => "uniform-work",
            Defence::ReplayWindow => "replay-window",
            Defence::WindowAfterAead => "window-after-aead",
            Defence::IkSe => "ik-se",
            Defence::Contributory => "contributory",
            Defence::StrictSignatures => "strict-signatures",
            Defence::CertificateBinding => "certificate-binding",
            Defence::IdentityCheck => "identity-check",
            Defence::PolicySilence => "policy-silence",
            Defence::Revocation => "revocation",
            Defence::RememberedIds => "remembered-ids",
            Defence::FinalRetransmit => "final-retransmit",
            Defence::Expiry => "expiry",
            Defence::GiveUp => "give-up",
            Defence::CancelWins => "cancel-wins",
            Defence::MonotonicClock => "monotonic-clock",
            Defence::ExpiryClamp => "expiry-clamp",
            Defence::HeaderChecks => "header-checks",
        }
    }
}

/// Whether `defence` acts: always, but in a mutation build whose
/// `PEERCOLLAB_DISABLE` names it.
#[cfg(not(peercollab_mutation))]
#[inline(always)]
pub(crate) const fn enabled(_defence: Defence) -> bool {
    true
}

/// Whether `defence` acts: not if `PEERCOLLAB_DISABLE` (a comma-separated
/// list of names, read once) names it. An unknown name is a panic, so a
/// typo cannot pass for a defence no test catches.
#[cfg(peercollab_mutation)]
pub(crate) fn enabled(defence: Defence) -> bool {
    extern crate std;
    static DISABLED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let disabled = DISABLED.get_or_init(|| {
        let names = std::env::var("PEERCOLLAB_DISABLE").unwrap_or_default();
        let mut mask = 0u32;
        for name in names.split(',').filter(|n| !n.is_empty()) {
            let at = Defence::ALL.iter().position(|d| d.name() == name);
            let Some(at) = at else { panic!("PEERCOLLAB_DISABLE: no defence named {name:?}") };
            mask |= 1 << at;
        }
        mask
    });
    let at = Defence::ALL.iter().position(|d| *d == defence).unwrap_or(0);
    disabled & (1 << at) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defence_is_listed_once_under_a_distinct_name_and_fits_the_mask() {
        assert!(Defence::ALL.len() <= 32);
        for (i, a) in Defence::ALL.iter().enumerate() {
            for b in &Defence::ALL[i + 1..] {
                assert_ne!(a, b);
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[cfg(not(peercollab_mutation))]
    #[test]
    fn outside_a_mutation_build_every_defence_acts() {
        assert!(Defence::ALL.into_iter().all(enabled));
    }
}
