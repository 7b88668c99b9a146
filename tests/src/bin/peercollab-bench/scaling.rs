//! How the cost of one datagram grows with the number of live sessions:
//! an agent with 4,096 invitations ringing against one with 16, for a
//! transport datagram to a live session (looked up by its receiver index,
//! replay-checked, then its AEAD tag checked — forged here, so it is
//! dropped at the last check and can be replayed with a fresh counter
//! every time) and for junk naming no live session.

use std::time::Duration;

use peercollab_core::Instant;
use peercollab_tests::bench::pair::{Dir, Pair};
use peercollab_tests::bench::{median, rate};

/// Transport frame type (`spec/wire.md`).
const TRANSPORT: u8 = 5;
/// The live sessions of the large agent.
const LARGE: usize = 4096;
/// The live sessions of the small agent.
const SMALL: usize = 16;
/// The agent's stack frame holds a whole agent while it is built: 4,096
/// invitation slots are about 12 MiB.
const STACK: usize = 256 << 20;

/// Per-datagram rates (datagrams per second) with `live` sessions ringing:
/// (transport to a live session, junk).
fn rates<const I: usize>(live: usize, rounds: usize, round: Duration) -> (Vec<f64>, Vec<f64>) {
    let mut pair = Pair::<I, I>::new(3);
    let mut last_out = Vec::new();
    for _ in 0..live {
        // One inviter, one source address: keep within its rate limit
        // (20 initiations a second).
        pair.now += peercollab_core::Duration::from_millis(50);
        pair.ring_unanswered(|dir, d| {
            if dir == Dir::Out && d.first().is_some_and(|_| d.get(1) == Some(&TRANSPORT)) {
                last_out = d.to_vec();
            }
        });
    }
    assert_eq!(pair.b.invitations_in_use(), live, "every invitation rings");
    assert!(last_out.len() > 16, "a transport datagram was seen");
    let mut junk = last_out.clone();
    // A receiver index naming no slot's current session.
    junk[4..8].copy_from_slice(
        &0xdead_0000_u32.wrapping_add(u32::try_from(I).unwrap_or(0)).to_be_bytes(),
    );
    let now: Instant = pair.now;
    let from = pair.a_addr;
    let mut counter = 1u64 << 40;
    let (mut transport, mut dropped) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        transport.push(rate(round, || {
            counter += 1;
            last_out[8..16].copy_from_slice(&counter.to_be_bytes());
            let _ = pair.b.handle_datagram(now, from, &last_out);
        }));
        dropped.push(rate(round, || {
            let _ = pair.b.handle_datagram(now, from, &junk);
        }));
    }
    (transport, dropped)
}

/// (transport ratio, junk ratio): the per-datagram cost with 4,096 live
/// sessions over that with 16, medians of per-round ratios.
pub(crate) fn scaling(rounds: usize, round: Duration) -> (f64, f64) {
    let run = std::thread::Builder::new().stack_size(STACK).spawn(move || {
        let mut transport = Vec::new();
        let mut junk = Vec::new();
        for _ in 0..rounds {
            let (small_t, small_j) = rates::<SMALL>(SMALL, 1, round);
            let (large_t, large_j) = rates::<LARGE>(LARGE, 1, round);
            transport.push(median(small_t) / median(large_t));
            junk.push(median(small_j) / median(large_j));
        }
        (median(transport), median(junk))
    });
    run.expect("a thread").join().expect("the scaling run")
}
