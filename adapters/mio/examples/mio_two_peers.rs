//! Two peers on loopback.
//!
//! 1. In one `Poll` loop: alice invites bob, a trusted contact, with the
//!    handle API; it rings; bob accepts and reads the launch information.
//! 2. The waiting call: bob serves from his own thread and `Poll`; alice
//!    invites his endpoint with `invite_endpoint_blocking`; he declines.
//!
//! `cargo run -p peercollab-mio --example mio_two_peers`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use peercollab_mio::{
    AgentConfig, AppId, Endpoint, EndpointId, Error, InviteOptions, Notice, Request, SystemClock,
    Tokens, Trust, generate_identity,
};

const CHAT: AppId = AppId(*b"two-peers-chat!!");

fn endpoint(poll: &Poll, first_token: Token) -> Result<Endpoint, Error> {
    let mut ep = Endpoint::bind(
        &[SocketAddr::from(([127, 0, 0, 1], 0))],
        generate_identity(EndpointId(1))?,
        AgentConfig::default(),
        Arc::new(SystemClock::new()),
        poll.registry(),
        Tokens::new(first_token),
    )?;
    ep.register_application(CHAT, "chat", None)?;
    Ok(ep)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut poll = Poll::new()?;
    let mut alice = endpoint(&poll, Token(0))?;
    let mut bob = endpoint(&poll, Token(1))?;
    bob.add_contact(&alice.my_card("alice")?, Trust::Trusted)?;
    let bob_id = alice.add_contact(&bob.my_card("bob")?, Trust::Trusted)?;

    // 1. The handle API, both peers in one loop.
    let request = Request::new(CHAT).message("join me in room 7").data(&b"room=7"[..]);
    let started = Instant::now();
    let handle = alice.start_invite_contact(bob_id, &request, InviteOptions::default())?;
    let mut events = Events::with_capacity(64);
    let (mut answer, mut launched) = (None, false);
    while answer.is_none() || !launched {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("no answer within 10 s".into());
        }
        let timeout = [alice.next_timeout(), bob.next_timeout(), Some(Duration::from_secs(1))]
            .into_iter()
            .flatten()
            .min();
        poll.poll(&mut events, timeout)?;
        for event in &events {
            let _ = alice.handle_event(event) || bob.handle_event(event);
        }
        alice.handle_timeout();
        bob.handle_timeout();
        while let Some(notice) = bob.poll_event() {
            match notice {
                Notice::Invited(invitation) => {
                    let from = invitation.contact.as_ref().map_or("a stranger", |c| c.1.as_str());
                    println!("bob: {from} invites me: {:?}", invitation.message);
                    bob.accept(invitation.id)?;
                }
                Notice::IncomingEnded { incoming, outcome } => {
                    println!("bob: the invitation ended {outcome:?}");
                    let launch = bob.launch_info(incoming)?;
                    println!(
                        "bob: launching with data {:?}",
                        String::from_utf8_lossy(&launch.data)
                    );
                    bob.release(incoming)?;
                    launched = true;
                }
                _ => {}
            }
        }
        while let Some(notice) = alice.poll_event() {
            match notice {
                Notice::Ringing(_) => println!("alice: ringing at bob"),
                Notice::Responded { answer: a, .. } => {
                    println!("alice: {:?} after {:?}", a.outcome, started.elapsed());
                    answer = Some(a);
                }
                _ => {}
            }
        }
    }
    alice.close(handle)?;

    // 2. The waiting call: bob serves from another thread, with a Poll of
    // his own (an endpoint is `Send`: it can be made here and moved).
    drop(bob);
    let mut bob_poll = Poll::new()?;
    let mut bob = endpoint(&bob_poll, Token(0))?;
    let bob_addr = bob.local_addrs()[0];
    let server = std::thread::spawn(move || -> Result<(), Error> {
        let mut events = Events::with_capacity(64);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            bob_poll.poll(&mut events, bob.next_timeout().or(Some(Duration::from_millis(100))))?;
            for event in &events {
                bob.handle_event(event);
            }
            bob.handle_timeout();
            while let Some(notice) = bob.poll_event() {
                match notice {
                    Notice::Invited(invitation) => bob.decline(invitation.id, "in a meeting")?,
                    Notice::IncomingEnded { .. } => return Ok(()),
                    _ => {}
                }
            }
        }
        Ok(())
    });
    let answer = alice.invite_endpoint_blocking(
        &mut poll,
        bob_addr,
        &Request::new(CHAT),
        InviteOptions::default(),
    )?;
    println!(
        "alice: whoever is at {bob_addr} ({}) answered {:?}: {:?}",
        answer.identity().map(|i| i.fingerprint().to_string()).unwrap_or_default(),
        answer.outcome,
        answer.reason
    );
    server.join().map_err(|_| "bob's thread panicked")??;
    Ok(())
}
