//! Steady state allocates nothing: after a warm-up, whole invitations
//! through two endpoints on one current-thread runtime (start with a
//! handle, await the answer, accept and drop the incoming invitation,
//! close) make no heap allocation, counted by a global allocator. Message,
//! data and the contact's name are copied, so the recycled buffers are
//! exercised. (One test in this binary: the count is process-wide.)

use std::sync::Arc;
use std::time::Duration as StdDuration;

use peercollab_tokio::{
    AppId, Clock, Duration, Endpoint, EndpointId, InviteOptions, ManualClock, Outcome, Request,
    Trust, generate_identity,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const APP: AppId = AppId(*b"tokio-alloc-test");
const BOUND: StdDuration = StdDuration::from_secs(10);

#[test]
fn invitations_in_steady_state_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let clock = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let here = ["127.0.0.1:0".parse().unwrap()];
        let builder = |identity| Endpoint::builder(identity).clock(Arc::clone(&shared)).bind(&here);
        let (alice, _) = builder(generate_identity(EndpointId(1)).unwrap()).await.unwrap();
        let (bob, mut incoming) = builder(generate_identity(EndpointId(1)).unwrap()).await.unwrap();
        bob.register_application(APP, "test", None).unwrap();
        bob.add_contact(&alice.my_card("alice", &[]).unwrap(), Trust::Trusted).unwrap();
        let contact = alice.add_contact(&bob.my_card("bob", &[]).unwrap(), Trust::Trusted).unwrap();
        tokio::spawn(async move {
            while let Some(mut invitation) = incoming.next().await {
                assert_eq!(invitation.info().message, "join me");
                assert_eq!(invitation.info().contact.as_ref().unwrap().1, "alice");
                invitation.accept().unwrap();
                // Dropped accepted: released once it ends.
            }
        });
        let request = Request::new(APP).message("join me").data(&b"port=4000"[..]);
        // Warm-up: 40 rounds fill every pool and queue (the incoming queue
        // takes blocks of 32 and recycles them from the third on).
        let mut counted = Vec::with_capacity(64);
        for round in 0..80 {
            // Nothing counted while the runtime makes its per-`block_on`
            // list of yielded tasks.
            tokio::task::yield_now().await;
            let region = Region::new(GLOBAL);
            let mut a =
                alice.start_invite_contact(contact, &[], &request, InviteOptions::default());
            let mut b =
                alice.start_invite_contact(contact, &[], &request, InviteOptions::default());
            for invitation in [&mut a, &mut b] {
                let invitation = invitation.as_mut().expect("started");
                let answer = tokio::time::timeout(BOUND, invitation.outcome()).await;
                let answer = answer.expect("in time").expect("answered");
                assert_eq!(answer.outcome, Outcome::Accepted);
                assert_eq!(answer.reason, "");
            }
            drop((a, b));
            let allocations = region.change().allocations;
            if round >= 40 {
                counted.push(allocations);
            }
            // Untimed: the invitee ends, then both linger 32 s.
            for _ in 0..200 {
                clock.advance(Duration::from_secs(40));
                tokio::time::sleep(StdDuration::from_millis(1)).await;
                let in_use = alice.with_agent(|a, _| a.invitations_in_use())
                    + bob.with_agent(|a, _| a.invitations_in_use());
                if in_use == 0 {
                    break;
                }
            }
        }
        assert!(counted.iter().all(|&n| n == 0), "allocations per batch of two: {counted:?}");
    });
}
