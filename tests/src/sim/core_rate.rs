//! The core-only rate: whole accepted contact invitations between two
//! agents of the simulator's capacities, datagrams handed straight from one
//! to the other, no faults, no scheduler, no checker. The simulator's own
//! rate is reported as a fraction of it.

use peercollab_core::agent::{
    Agent, AgentConfig, Event, InvitationRequest, InviteOptions, Target, Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{EndpointId, IdentitySecret, LocalIdentity};
use peercollab_core::invite::Answer;
use peercollab_core::noise::KeyPair;
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{Duration, Instant};

use super::{
    APPS, SIM_APPS, SIM_BUFFERS, SIM_CONTACTS, SIM_INVITATIONS, SIM_RECENT, SimRng, payload,
};
use crate::agents::AddressBook;

type Two = Agent<SIM_CONTACTS, SIM_APPS, SIM_INVITATIONS, SIM_BUFFERS, SIM_RECENT>;

/// Moves every pending datagram between `a` and `b` (both ways); answers
/// Accept at `b`, releases there, closes at `a`. Returns whether anything
/// moved, and whether `a` and `b` each saw their outcome.
fn pump(a: &mut Two, b: &mut Two, now: Instant, done: &mut (bool, bool)) -> bool {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut moved = false;
    let (addr_a, addr_b) = (AddressBook::default_address(0), AddressBook::default_address(1));
    while let Some(t) = a.poll_transmit(now, &mut buf) {
        let _ = b.handle_datagram(now, addr_a, &buf[..t.len]);
        moved = true;
    }
    while let Some(t) = b.poll_transmit(now, &mut buf) {
        let _ = a.handle_datagram(now, addr_b, &buf[..t.len]);
        moved = true;
    }
    while let Some(e) = b.poll_event() {
        match e {
            Event::Invited(id) => {
                let _ = b.respond(now, id, Answer::Accept, "");
            }
            Event::IncomingEnded { incoming, .. } => {
                let _ = b.release(incoming);
                done.1 = true;
            }
            _ => {}
        }
    }
    while let Some(e) = a.poll_event() {
        if let Event::Responded { handle, .. } = e {
            let _ = a.close(now, handle);
            done.0 = true;
        }
    }
    moved
}

/// Runs `count` accepted contact invitations between two fresh agents
/// seeded from `seed`; returns how many completed and the wall-clock
/// seconds they took.
#[must_use]
pub fn measure(count: u32, seed: u64) -> (u32, f64) {
    let mut rng = SimRng::stream(seed, 4);
    let la = LocalIdentity::generate(&mut rng, EndpointId(0));
    let secret_b = IdentitySecret::generate(&mut rng);
    let lb = LocalIdentity::new(secret_b.clone(), KeyPair::generate(&mut rng), EndpointId(0), 1);
    let mut a = Box::new(Two::new(la, AgentConfig::default(), rng.seed32()));
    let mut b = Box::new(Two::new(lb, AgentConfig::default(), rng.seed32()));
    let card = ContactCard::issue(
        &secret_b,
        "b",
        &[*b.identity().certificate()],
        &[AddressBook::default_address(1)],
    );
    let (Ok(card), Ok(())) = (card, b.register_application(APPS[0], "app", None).map(|_| ()))
    else {
        return (0, 0.0);
    };
    let Ok(contact) = a.add_contact(&card, Trust::Trusted) else { return (0, 0.0) };
    let target = Target { endpoint: EndpointId(0), address: AddressBook::default_address(1) };
    let mut now = Instant::ZERO;
    let mut completed = 0;
    let start = std::time::Instant::now();
    for k in 0..count {
        let data = payload(k, 16);
        let msg = super::message(k);
        let request = InvitationRequest { app_id: APPS[0], message: &msg, data: &data };
        if a.invite_contact(now, contact, &[target], &request, InviteOptions::default()).is_err() {
            break;
        }
        let mut done = (false, false);
        for _ in 0..10_000 {
            if pump(&mut a, &mut b, now, &mut done) {
                continue;
            }
            if done == (true, true) {
                completed += 1;
                break;
            }
            let Some(next) = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min()
            else {
                break;
            };
            now = now.max(next);
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
        // Let earlier invitations linger out of their slots, and their ids
        // out of the remembered-id table (`SIM_RECENT` ids, each kept for
        // the maximum expiry plus grace).
        now += Duration::from_secs(10);
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
    (completed, start.elapsed().as_secs_f64())
}
