//! What the loopback tests share: endpoints on real UDP sockets, a pair of
//! mutual contacts, bounded waits, a manual clock moved in steps.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use peercollab_tokio::{
    AppId, Clock, ContactId, Duration, Endpoint, EndpointId, Incoming, IncomingInvitation,
    ManualClock, Request, Trust, generate_identity,
};

pub const APP: AppId = AppId(*b"tokio-loopback-2");

/// Every wait is bounded by this: a bug fails instead of hanging.
pub const BOUND: StdDuration = StdDuration::from_secs(10);

pub fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

/// Whether this machine has IPv6 loopback (containers often do not).
pub fn has_v6() -> bool {
    std::net::UdpSocket::bind(v6()).is_ok()
}

/// `fut`, or a panic naming `what` after [`BOUND`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: nothing within {BOUND:?}"),
    }
}

pub async fn endpoint_at(
    clock: Option<&ManualClock>,
    addrs: &[SocketAddr],
) -> (Endpoint, Incoming) {
    let mut b = Endpoint::builder(generate_identity(EndpointId(1)).unwrap());
    if let Some(c) = clock {
        b = b.clock(Arc::new(c.clone()) as Arc<dyn Clock>);
    }
    b.bind(addrs).await.unwrap()
}

pub async fn endpoint(clock: Option<&ManualClock>) -> (Endpoint, Incoming) {
    endpoint_at(clock, &[v4()]).await
}

/// Alice and Bob, each the other's trusted contact; Bob has [`APP`].
pub struct Pair {
    pub alice: Endpoint,
    pub alice_in: Incoming,
    pub bob: Endpoint,
    pub bob_in: Incoming,
    /// Bob, as Alice's contact.
    pub bob_contact: ContactId,
}

pub async fn pair_at(clock: Option<&ManualClock>, a: &[SocketAddr], b: &[SocketAddr]) -> Pair {
    let (alice, alice_in) = endpoint_at(clock, a).await;
    let (bob, bob_in) = endpoint_at(clock, b).await;
    let bob_contact = alice.add_contact(&bob.my_card("bob", &[]).unwrap(), Trust::Trusted).unwrap();
    bob.add_contact(&alice.my_card("alice", &[]).unwrap(), Trust::Trusted).unwrap();
    bob.register_application(APP, "test", None).unwrap();
    Pair { alice, alice_in, bob, bob_in, bob_contact }
}

pub async fn pair(clock: Option<&ManualClock>) -> Pair {
    pair_at(clock, &[v4()], &[v4()]).await
}

pub async fn next(incoming: &mut Incoming) -> IncomingInvitation {
    within("an incoming invitation", incoming.next()).await.expect("the stream is open")
}

pub fn request() -> Request {
    Request::new(APP).message("join me").data(&b"port=4000"[..])
}

/// Moves a shared manual clock in steps, letting the sockets carry what
/// each step sends, until `done` or `limit` of virtual time.
pub async fn run_clock(
    clock: &ManualClock,
    step: Duration,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) {
    let mut passed = Duration::ZERO;
    while !done() && passed < limit {
        clock.advance(step);
        passed = passed.saturating_add(step);
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
}
