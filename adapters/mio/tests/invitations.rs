//! mio ↔ mio over loopback: contact and endpoint invitations, the handle
//! API, launch information, IPv6.

mod common;

use common::{APP, Net, v4, v6, v6_available};
use peercollab_mio::{
    AgentError, Answer, CancelEffect, CancelReason, Duration, Error, InviteOptions, Notice,
    Outcome, Request, Status,
};

fn responded(net: &mut Net, k: usize) -> Answer {
    net.expect(k, "an answer", |n| match n {
        Notice::Responded { answer, .. } => Some(answer.clone()),
        _ => None,
    })
}

fn ended(net: &mut Net, k: usize) -> Outcome {
    net.expect(k, "the end of an incoming invitation", |n| match n {
        Notice::IncomingEnded { outcome, .. } => Some(*outcome),
        _ => None,
    })
}

#[test]
fn a_contact_invitation_rings_and_is_accepted_with_launch_info() {
    let mut net = Net::new(2, &[v4()]);
    let bob = net.befriend(0, 1);
    let request = Request::new(APP).message("join me").data(&b"room=7"[..]);
    let handle = net.eps[0].start_invite_contact(bob, &request, InviteOptions::default()).unwrap();
    assert_eq!(net.eps[0].status(handle).unwrap(), Status::Pending { ringing: false });

    let invitation = net.invited(1);
    assert_eq!(invitation.message, "join me");
    assert_eq!(&invitation.data[..], b"room=7");
    assert_eq!(invitation.identity(), net.eps[0].identity().identity());
    assert_eq!(invitation.contact.as_ref().map(|c| c.1.as_str()), Some("alice"));
    net.expect(0, "ringing", |n| matches!(n, Notice::Ringing(h) if *h == handle).then_some(()));
    assert_eq!(net.eps[0].status(handle).unwrap(), Status::Pending { ringing: true });

    net.eps[1].accept(invitation.id).unwrap();
    let answer = responded(&mut net, 0);
    assert_eq!(answer.outcome, Outcome::Accepted);
    assert_eq!(answer.identity(), Some(net.eps[1].identity().identity()));
    assert_eq!(answer.contact, Some(bob));
    assert_eq!(net.eps[0].status(handle).unwrap(), Status::Answered(answer));
    assert_eq!(ended(&mut net, 1), Outcome::Accepted);

    let launch = net.eps[1].launch_info(invitation.id).unwrap();
    assert_eq!(&launch.data[..], b"room=7");
    assert_eq!(launch.app_id, APP);
    assert_eq!(launch.identity(), net.eps[0].identity().identity());
    net.eps[1].release(invitation.id).unwrap();
    assert!(matches!(
        net.eps[1].launch_info(invitation.id),
        Err(Error::Agent(AgentError::UnknownIncoming))
    ));
    net.eps[0].close(handle).unwrap();
    assert!(matches!(net.eps[0].status(handle), Err(Error::Agent(AgentError::UnknownHandle))));
}

#[test]
fn a_contact_invitation_declined_carries_the_reason() {
    let mut net = Net::new(2, &[v4()]);
    let bob = net.befriend(0, 1);
    let handle =
        net.eps[0].start_invite_contact(bob, &Request::new(APP), InviteOptions::default()).unwrap();
    let invitation = net.invited(1);
    net.eps[1].decline(invitation.id, "not now").unwrap();
    let answer = responded(&mut net, 0);
    assert_eq!(answer.outcome, Outcome::Declined);
    assert_eq!(answer.reason, "not now");
    assert_eq!(ended(&mut net, 1), Outcome::Declined);
    assert!(matches!(
        net.eps[1].launch_info(invitation.id),
        Err(Error::Agent(AgentError::NoLaunchInfo | AgentError::UnknownIncoming))
    ));
    net.eps[0].close(handle).unwrap();
}

#[test]
fn a_contact_invitation_answered_busy_carries_the_retry_after() {
    let mut net = Net::new(2, &[v4()]);
    let bob = net.befriend(0, 1);
    net.eps[0].start_invite_contact(bob, &Request::new(APP), InviteOptions::default()).unwrap();
    let invitation = net.invited(1);
    net.eps[1].busy(invitation.id, Duration::from_secs(42)).unwrap();
    let answer = responded(&mut net, 0);
    assert_eq!(answer.outcome, Outcome::Busy { retry_after: Duration::from_secs(42) });
    assert_eq!(ended(&mut net, 1), Outcome::Busy { retry_after: Duration::from_secs(42) });
}

#[test]
fn an_endpoint_invitation_names_the_authenticated_answerer() {
    // Strangers: neither knows the other; the invitee's policy is Anyone.
    let mut net = Net::new(2, &[v4()]);
    let bob_addr = net.eps[1].local_addrs()[0];
    let handle = net.eps[0]
        .start_invite_endpoint(bob_addr, &Request::new(APP).message("hi"), InviteOptions::default())
        .unwrap();
    let invitation = net.invited(1);
    assert_eq!(invitation.contact, None);
    assert_eq!(invitation.address, net.eps[0].local_addrs()[0]);
    net.eps[1].accept(invitation.id).unwrap();
    let answer = responded(&mut net, 0);
    assert_eq!(answer.outcome, Outcome::Accepted);
    assert_eq!(answer.identity(), Some(net.eps[1].identity().identity()));
    assert_eq!(answer.contact, None);
    net.eps[0].close(handle).unwrap();

    // Expecting another identity: refused before anything is revealed.
    let wrong = net.eps[0].identity().identity();
    net.eps[0]
        .start_invite_endpoint(bob_addr, &Request::new(APP), InviteOptions::default().expect(wrong))
        .unwrap();
    let answer = responded(&mut net, 0);
    assert!(matches!(answer.outcome, Outcome::Failed(_)), "{answer:?}");
}

#[test]
fn cancel_while_ringing_ends_cancelled_at_both_ends_and_close_frees_the_handle() {
    let mut net = Net::new(2, &[v4()]);
    let bob = net.befriend(0, 1);
    let handle =
        net.eps[0].start_invite_contact(bob, &Request::new(APP), InviteOptions::default()).unwrap();
    let invitation = net.invited(1);
    net.expect(0, "ringing", |n| matches!(n, Notice::Ringing(_)).then_some(()));

    assert_eq!(net.eps[0].cancel(handle).unwrap(), CancelEffect::Withdrawing);
    let answer = responded(&mut net, 0);
    assert_eq!(answer.outcome, Outcome::Cancelled(CancelReason::ByUser));
    assert_eq!(ended(&mut net, 1), Outcome::Cancelled(CancelReason::ByUser));
    // Too late to answer.
    assert!(net.eps[1].accept(invitation.id).is_err());
    // Cancelling again does nothing; the handle stays until closed.
    assert_eq!(net.eps[0].cancel(handle).unwrap(), CancelEffect::NoEffect);
    assert!(matches!(net.eps[0].status(handle).unwrap(), Status::Answered(_)));
    net.eps[0].close(handle).unwrap();
    assert!(matches!(net.eps[0].close(handle), Err(Error::Agent(AgentError::UnknownHandle))));
}

#[test]
fn close_before_the_outcome_cancels_and_no_event_names_the_handle() {
    let mut net = Net::new(2, &[v4()]);
    let bob = net.befriend(0, 1);
    let handle =
        net.eps[0].start_invite_contact(bob, &Request::new(APP), InviteOptions::default()).unwrap();
    net.invited(1);
    net.eps[0].close(handle).unwrap();
    assert_eq!(ended(&mut net, 1), Outcome::Cancelled(CancelReason::ByUser));
    for _ in 0..5 {
        net.step(std::time::Duration::from_millis(5));
    }
    assert!(
        net.notices[0].iter().all(|n| !matches!(n, Notice::Responded { .. })),
        "{:?}",
        net.notices[0]
    );
}

#[test]
fn over_ipv6_and_over_an_endpoint_with_both_families() {
    if !v6_available() {
        eprintln!("IPv6 loopback unavailable: skipped");
        return;
    }
    // a: IPv4 and IPv6 sockets; b: IPv6 only; c: IPv4 only.
    let mut net = Net::new(0, &[]);
    let a = net.add(&[v4(), v6()]);
    let b = net.add(&[v6()]);
    let c = net.add(&[v4()]);
    let bob = net.befriend(a, b);
    net.eps[a].start_invite_contact(bob, &Request::new(APP), InviteOptions::default()).unwrap();
    let invitation = net.invited(b);
    assert!(invitation.address.is_ipv6());
    assert_eq!(invitation.address, net.eps[a].local_addrs()[1]);
    net.eps[b].accept(invitation.id).unwrap();
    assert_eq!(responded(&mut net, a).outcome, Outcome::Accepted);

    // IPv4 from the same endpoint.
    let c_addr = net.eps[c].local_addrs()[0];
    net.eps[a].start_invite_endpoint(c_addr, &Request::new(APP), InviteOptions::default()).unwrap();
    let invitation = net.invited(c);
    assert_eq!(invitation.address, net.eps[a].local_addrs()[0]);
    net.eps[c].decline(invitation.id, "").unwrap();
    assert_eq!(responded(&mut net, a).outcome, Outcome::Declined);

    // An IPv4-only endpoint cannot reach an IPv6 address: said at once.
    let b_addr = net.eps[b].local_addrs()[0];
    let err = net.eps[c]
        .start_invite_endpoint(b_addr, &Request::new(APP), InviteOptions::default())
        .unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable));
    assert!(err.to_string().contains("bind an IPv6 address"), "{err}");
}

#[test]
fn a_dual_stack_socket_carries_ipv4_peers_as_ipv4_addresses() {
    if !v6_available() {
        eprintln!("IPv6 unavailable: skipped");
        return;
    }
    let mut net = Net::new(0, &[]);
    let Ok(()) = std::net::UdpSocket::bind("[::]:0").map(drop) else {
        eprintln!("IPv6 wildcard unavailable: skipped");
        return;
    };
    let a = net.add(&["[::]:0".parse().unwrap()]);
    let c = net.add(&[v4()]);
    let port = net.eps[a].local_addrs()[0].port();
    let a_v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    net.eps[c].start_invite_endpoint(a_v4, &Request::new(APP), InviteOptions::default()).unwrap();
    let Some(invitation) = try_invited(&mut net, a) else {
        eprintln!("no dual stack on this platform: skipped");
        return;
    };
    assert_eq!(invitation.address, net.eps[c].local_addrs()[0]);
    net.eps[a].accept(invitation.id).unwrap();
    assert_eq!(responded(&mut net, c).outcome, Outcome::Accepted);
}

fn try_invited(net: &mut Net, k: usize) -> Option<peercollab_mio::Invitation> {
    for _ in 0..100 {
        net.step(std::time::Duration::from_millis(10));
        if let Some(at) = net.notices[k].iter().position(|n| matches!(n, Notice::Invited(_)))
            && let Notice::Invited(i) = net.notices[k].remove(at)
        {
            return Some(i);
        }
    }
    None
}
