//! `peercollab demo`: four peers on loopback UDP, in one process, tell
//! every story of an invitation — accepted (with launch information),
//! declined, busy, an endpoint invitation answered by a verified identity,
//! cancelled while ringing, expired, refused by policy, and to an
//! application not registered. Each story checks its outcome; the demo
//! fails if any differs.

use std::time::Instant as WallClock;

use peercollab_core::agent::{Policy, Trust};
use peercollab_core::invite::{AppId, CancelReason, Outcome};
use peercollab_core::{Duration, identity::EndpointId};
use peercollab_tokio::{Endpoint, Incoming, InviteOptions, Request, Status, generate_identity};

use crate::CliError;

/// The demo's application, as both peers name it.
const CHAT: &str = "demo chat";

async fn peer() -> Result<(Endpoint, Incoming), CliError> {
    let any = "127.0.0.1:0".parse().map_err(|_| CliError::Usage("address".into()))?;
    Ok(Endpoint::builder(generate_identity(EndpointId(1))?).bind(&[any]).await?)
}

/// Bob's side: answers as each invitation's message asks, and tells what
/// happened.
async fn serve(mut incoming: Incoming) {
    while let Some(mut invitation) = incoming.next().await {
        let info = invitation.info().clone();
        let who = info.contact.as_ref().map_or("a stranger".to_owned(), |c| c.1.clone());
        println!(
            "    bob: invited by {who} ({}) to {:?}: {:?}",
            info.identity().fingerprint(),
            crate::app_name(&info.app_id),
            info.message
        );
        let answered = match info.message.as_str() {
            "accept" => invitation.accept(),
            "decline" => invitation.decline("I am painting"),
            "busy" => invitation.busy(Duration::from_secs(30)),
            _ => Ok(()),
        };
        if let Err(e) = answered {
            println!("    bob: could not answer: {e}");
        }
        tokio::spawn(async move {
            match invitation.ended().await {
                Ok(Outcome::Accepted) => match invitation.launch_info() {
                    Ok(launch) => println!(
                        "    bob: launch information: inviter {}, application {:?}, message {:?}, data {:?}",
                        launch.identity().fingerprint(),
                        crate::app_name(&launch.app_id),
                        launch.message,
                        String::from_utf8_lossy(&launch.data)
                    ),
                    Err(e) => println!("    bob: no launch information: {e}"),
                },
                Ok(outcome) => println!("    bob: the invitation ended {outcome:?}"),
                Err(e) => println!("    bob: {e}"),
            }
        });
    }
}

struct Stories {
    failed: usize,
}

impl Stories {
    async fn heading(&self, n: usize, title: &str) {
        // Bob's last lines of the story before (the end he saw) first.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        println!("\n{n}. {title}");
    }

    fn check(&mut self, what: &str, expected: Outcome, got: Outcome) {
        if expected == got {
            println!("   => {what}: {got:?} (as expected)");
        } else {
            self.failed += 1;
            println!("   => {what}: {got:?} — UNEXPECTED, wanted {expected:?}");
        }
    }
}

/// Runs every story; `Ok(false)` if any outcome was not the expected one.
pub(crate) async fn run() -> Result<bool, CliError> {
    let started = WallClock::now();
    let chat: AppId = crate::store::app_id(CHAT);
    println!("peercollab demo: four peers on loopback UDP");
    let (alice, _) = peer().await?;
    let (bob, bob_in) = peer().await?;
    let (carol, _) = peer().await?;
    let (dave, _) = peer().await?;
    let bob_card = bob.my_card("bob", &[])?;
    let alice_card = alice.my_card("alice", &[])?;
    let dave_card = dave.my_card("dave", &[])?;
    for (name, e, card) in
        [("alice", &alice, &alice_card), ("bob", &bob, &bob_card), ("dave", &dave, &dave_card)]
    {
        println!("  {name:<6} {} at {}", card.fingerprint(), e.local_addrs()[0]);
    }
    println!(
        "  carol  {} at {} (a stranger to bob)",
        carol.identity().fingerprint(),
        carol.local_addrs()[0]
    );
    let bob_at_alice = alice.add_contact(&bob_card, Trust::Trusted)?;
    let bob_at_dave = dave.add_contact(&bob_card, Trust::Trusted)?;
    bob.add_contact(&alice_card, Trust::Trusted)?;
    bob.add_contact(&dave_card, Trust::Known)?;
    bob.register_application(chat, CHAT, None)?;
    println!("  cards exchanged: bob trusts alice, knows dave (untrusted); bob registers {CHAT:?}");
    tokio::spawn(serve(bob_in));

    let mut s = Stories { failed: 0 };
    let ask = |what: &str| Request::new(chat).message(what).data(&b"board=3"[..]);
    let options = InviteOptions::default();

    s.heading(1, "alice invites her contact bob; it rings, bob accepts").await;
    let mut inv = alice.start_invite_contact(bob_at_alice, &[], &ask("accept"), options)?;
    if let Ok(Status::Pending { ringing: true }) = inv.changed().await {
        println!("    alice: ringing at bob");
    }
    let answer = inv.outcome().await?;
    s.check("alice's outcome", Outcome::Accepted, answer.outcome);
    drop(inv);

    s.heading(2, "bob declines, with a reason").await;
    let answer = alice.invite_contact(bob_at_alice, ask("decline"), options).await?;
    println!("    alice: reason {:?}", answer.reason);
    s.check("alice's outcome", Outcome::Declined, answer.outcome);

    s.heading(3, "bob is busy and asks to be asked again later").await;
    let answer = alice.invite_contact(bob_at_alice, ask("busy"), options).await?;
    s.check(
        "alice's outcome",
        Outcome::Busy { retry_after: Duration::from_secs(30) },
        answer.outcome,
    );

    s.heading(4, "carol, a stranger, invites whoever answers at bob's address").await;
    let answer = carol.invite_endpoint(bob.local_addrs()[0], ask("accept"), options).await?;
    let verified = answer.identity() == Some(bob.identity());
    println!(
        "    carol: answered by {} — {}",
        answer.identity().map_or("nobody".into(), |i| i.fingerprint().to_string()),
        if verified { "bob's identity, verified" } else { "NOT bob" }
    );
    if !verified {
        s.failed += 1;
    }
    s.check("carol's outcome", Outcome::Accepted, answer.outcome);

    s.heading(5, "alice cancels while it rings").await;
    let mut inv = alice.start_invite_contact(bob_at_alice, &[], &ask("ring"), options)?;
    while !matches!(inv.changed().await?, Status::Pending { ringing: true }) {}
    println!("    alice: ringing; cancelling: {:?}", inv.cancel()?);
    let answer = inv.outcome().await?;
    s.check("alice's outcome", Outcome::Cancelled(CancelReason::ByUser), answer.outcome);
    drop(inv);

    s.heading(6, "nobody answers within the invitation's 2 s").await;
    let short = InviteOptions::default().expires_in(Duration::from_secs(2));
    let answer = alice.invite_contact(bob_at_alice, ask("ignore"), short).await?;
    s.check("alice's outcome", Outcome::Expired, answer.outcome);

    s.heading(7, "bob accepts trusted contacts only; dave, known but untrusted, invites").await;
    bob.set_policy(Policy::TrustedOnly)?;
    let answer = dave.invite_contact(bob_at_dave, ask("accept"), options).await?;
    s.check("dave's outcome", Outcome::NotAccepted, answer.outcome);
    bob.set_policy(Policy::Anyone)?;

    s.heading(8, "alice invites bob to an application he has not registered").await;
    let other = crate::store::app_id("a game bob does not have");
    let answer =
        alice.invite_contact(bob_at_alice, Request::new(other).message("accept"), options).await?;
    s.check("alice's outcome", Outcome::NotRegistered, answer.outcome);

    // Bob's last lines of the last story.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    println!();
    for (name, e) in [("alice", &alice), ("bob", &bob)] {
        let st = e.stats();
        println!(
            "  {name}: {} datagrams out, {} in, {} dropped",
            st.datagrams_out, st.datagrams_in, st.datagrams_dropped
        );
    }
    let report = bob.shutdown(std::time::Duration::from_secs(2)).await;
    println!("  bob shut down: {report:?}");
    println!(
        "\n{} of 8 stories as expected, in {:.1} s",
        8 - s.failed.min(8),
        started.elapsed().as_secs_f64()
    );
    Ok(s.failed == 0)
}
