//! The invitation protocol between parties over the virtual network: one
//! test per message and rule of `spec/invitation.md`.

use peercollab_core::invite::{AppId, InvitationEvent, Outcome};
use peercollab_core::{Duration, Instant};
use peercollab_tests::party::{OfferSpec, Party};
use peercollab_tests::{Faults, Network};

const APP: AppId = AppId([7; 16]);

fn two_parties(seed: u64, faults: Faults) -> (Network, usize, usize) {
    let mut net = Network::new(seed, faults);
    let a = net.add(Box::new(Party::new(seed * 2 + 1, 2)));
    let b = net.add(Box::new(Party::new(seed * 2 + 2, 2)));
    let a_cert = *net.node::<Party>(a).local.certificate();
    let b_cert = *net.node::<Party>(b).local.certificate();
    net.node_mut::<Party>(a).add_contact(b_cert);
    net.node_mut::<Party>(b).add_contact(a_cert);
    (net, a, b)
}

#[test]
fn an_accepted_contact_invitation_ends_accepted_on_both_sides() {
    let (mut net, a, b) = two_parties(1, Faults::clean(20));
    let b_cert = *net.node::<Party>(b).local.certificate();
    let slot = net
        .node_mut::<Party>(a)
        .invite_contact(Instant::ZERO, b, b_cert, &OfferSpec::simple(APP))
        .unwrap();
    net.run(10_000, Instant::from_millis(600_000), |_| false).unwrap();
    let inviter = &net.node::<Party>(a).slots[slot];
    let invitee = &net.node::<Party>(b).slots[0];
    assert_eq!(inviter.outcome(), Some(Outcome::Accepted), "{:?}", inviter.events);
    assert_eq!(
        invitee.outcome(),
        Some(Outcome::Accepted),
        "{:?} {:?}",
        invitee.events,
        invitee.dropped
    );
    assert_eq!(invitee.count(InvitationEvent::Invited), 1);
    assert!(inviter.invitation.is_closed() && invitee.invitation.is_closed());
    let _ = Duration::ZERO;
}
