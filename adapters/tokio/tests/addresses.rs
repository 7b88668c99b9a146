//! IPv4 and IPv6, several addresses per endpoint, dual stack, and bind
//! errors, over real UDP sockets on loopback. IPv6 cases are skipped (with
//! a note) where the machine has no IPv6 loopback.

mod common;

use std::net::SocketAddr;

use common::{endpoint_at, has_v6, next, pair_at, request, v4, v6, within};
use peercollab_tokio::{Endpoint, EndpointId, Error, InviteOptions, Outcome, generate_identity};

#[tokio::test]
async fn a_contact_invitation_over_ipv6_loopback_is_accepted() {
    if !has_v6() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let mut p = pair_at(None, &[v6()], &[v6()]).await;
    assert!(p.bob.local_addrs()[0].is_ipv6());
    tokio::spawn(async move {
        let mut incoming = next(&mut p.bob_in).await;
        assert!(incoming.info().address.is_ipv6());
        incoming.accept().unwrap();
        let _ = incoming.ended().await;
    });
    let answer = p.alice.invite_contact(p.bob_contact, request(), InviteOptions::default());
    assert_eq!(within("the answer", answer).await.unwrap().outcome, Outcome::Accepted);
}

#[tokio::test]
async fn an_endpoint_on_both_families_reaches_a_v4_only_and_a_v6_only_peer() {
    if !has_v6() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let (both, _) = endpoint_at(None, &[v4(), v6()]).await;
    let addrs = both.local_addrs();
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    for family in [v4(), v6()] {
        let (peer, mut peer_in) = endpoint_at(None, &[family]).await;
        peer.register_application(common::APP, "test", None).unwrap();
        let address = peer.local_addrs()[0];
        let answering = tokio::spawn(async move {
            let mut incoming = next(&mut peer_in).await;
            let from = incoming.info().address;
            incoming.accept().unwrap();
            let _ = incoming.ended().await;
            from
        });
        let answer = both.invite_endpoint(address, request(), InviteOptions::default());
        let answer = within("the answer", answer).await.unwrap();
        assert_eq!(answer.outcome, Outcome::Accepted);
        let from = within("the invitee", answering).await.unwrap();
        assert_eq!(
            from,
            both.local_addrs()[usize::from(address.is_ipv6())],
            "sent by its family's socket"
        );
    }
}

#[tokio::test]
async fn a_dual_stack_socket_carries_ipv4_peers_where_the_platform_allows() {
    let unspecified: SocketAddr = "[::]:0".parse().unwrap();
    let Ok((dual, mut dual_in)) =
        Endpoint::builder(generate_identity(EndpointId(1)).unwrap()).bind(&[unspecified]).await
    else {
        eprintln!("skipped: no IPv6 here");
        return;
    };
    dual.register_application(common::APP, "test", None).unwrap();
    let port = dual.local_addrs()[0].port();
    let (v4_peer, _) = endpoint_at(None, &[v4()]).await;
    // Whether the platform gave dual stack shows in whether it answers.
    let target: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    tokio::spawn(async move {
        if let Some(mut incoming) = dual_in.next().await {
            assert!(incoming.info().address.is_ipv4(), "seen as the IPv4 address it is");
            incoming.accept().unwrap();
            let _ = incoming.ended().await;
        }
    });
    let mut invitation =
        v4_peer.start_invite_endpoint(target, &request(), InviteOptions::default()).unwrap();
    match tokio::time::timeout(common::BOUND / 2, invitation.outcome()).await {
        Ok(answer) => assert_eq!(answer.unwrap().outcome, Outcome::Accepted),
        Err(_) => eprintln!("skipped: this platform keeps IPv6 sockets IPv6-only"),
    }
}

#[tokio::test]
async fn a_port_in_use_fails_the_bind_naming_the_address_and_binds_nothing() {
    let taken = std::net::UdpSocket::bind(v4()).unwrap();
    let address = taken.local_addr().unwrap();
    let free = std::net::UdpSocket::bind(v4()).unwrap().local_addr().unwrap();
    // The first address binds, the second is taken: nothing stays bound.
    let result =
        Endpoint::builder(generate_identity(EndpointId(1)).unwrap()).bind(&[free, address]).await;
    match result {
        Err(e @ Error::Bind { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&address.to_string()), "{text}");
            assert!(text.contains("cannot bind"), "{text}");
            let Error::Bind { address: a, source } = e else { unreachable!() };
            assert_eq!(a, address);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
    assert!(std::net::UdpSocket::bind(free).is_ok(), "the first socket was closed again");
    let none = Endpoint::builder(generate_identity(EndpointId(1)).unwrap()).bind(&[]).await;
    assert!(matches!(none, Err(Error::Io(_))), "no address at all");
}
