//! A bare-metal binary for `thumbv7em-none-eabihf` that links
//! `peercollab-core` with **no global allocator**: if anything in the core
//! (or its dependencies) used `alloc`, this binary would fail to link.
//!
//! It also **runs**, on QEMU's `mps2-an386` (an Arm MPS2 board with a
//! Cortex-M4F; `memory.x` is its memory map), printing through semihosting
//! and exiting with a failure status when any exchange fails:
//!
//! - an IK contact handshake and an XX endpoint handshake between two secure
//!   sessions, each followed by a transport payload both ways;
//! - a whole accepted invitation between two invitation state machines;
//! - a contact card round trip;
//! - a **full contact invitation between two agents** (contacts, application
//!   registration, policy, handles): IK, Invite, Ringing, Final(Accepted)
//!   and Ack, asserting that the inviter's and the invitee's outcomes are both
//!   Accepted.
//!
//! For each step it prints the stack high-water mark (cortex-m-rt's
//! `paint-stack` fills the stack with a pattern at reset; the firmware
//! repaints below the stack pointer between steps and scans for the lowest
//! overwritten word after each) and the time the step took on the board's
//! 25 MHz CMSDK timer 0, which under `qemu -icount shift=0` (one instruction
//! per nanosecond of virtual time) counts one tick per 40 instructions.
//! `core::hint::black_box` keeps the optimiser from folding the work away.
//!
//! Build: `cargo build --release` in this directory (the target is set in
//! `.cargo/config.toml`); run: `cargo run --release`, or `run-qemu.sh` for
//! both feature variants and a table of their footprints.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::hint::black_box;
use core::panic::PanicInfo;
use core::ptr::{read_volatile, write_volatile};

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use cortex_m_rt::{ExceptionFrame, STACK_PAINT_VALUE, entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use peercollab_core::agent::{
    Agent, AgentConfig, Event, InvitationRequest, InviteOptions, Policy, Target, Trust,
};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{EndpointId, LocalIdentity};
use peercollab_core::invite::{
    Admission, Answer, AppId, DEFAULT_EXPIRY, DataPool, Invitation, InvitationEvent, InviteId,
    InviteeConfig, Offer, Outcome,
};
use peercollab_core::session::{Incoming, PinnedPeer, Received, Session, StatementForm};
use peercollab_core::wire::MAX_DATAGRAM;
use peercollab_core::{HashDrbg, Instant};

/// One handshake between Alice (initiator) and Bob (responder), then one
/// payload each way. `contact` picks IK (Alice pinned Bob) or XX.
#[inline(never)]
fn handshake(
    contact: bool,
    alice: &LocalIdentity,
    bob: &LocalIdentity,
    rng: &mut HashDrbg,
) -> bool {
    let now = Instant::ZERO;
    let (Ok(a_pins_b), Ok(b_pins_a)) =
        (PinnedPeer::new(alice, *bob.certificate()), PinnedPeer::new(bob, *alice.certificate()))
    else {
        return false;
    };
    let started = if contact {
        Session::initiate_contact(alice, &a_pins_b, 1, StatementForm::Certificate, now, rng)
    } else {
        Session::initiate_endpoint(alice, Some(bob.identity()), 1, now, rng)
    };
    let Ok(mut a) = started else { return false };
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut payload = [0u8; MAX_DATAGRAM];
    let Some(n) = a.poll_transmit(now, &mut buf) else { return false };
    let directory = [b_pins_a];
    let Ok(incoming) = Incoming::read(bob, &directory[..], black_box(&buf[..n])) else {
        return false;
    };
    let Ok(mut b) = incoming.accept(bob, 2, now, rng) else { return false };
    let Some(n) = b.poll_transmit(now, &mut buf) else { return false };
    if a.handle_datagram(now, black_box(&buf[..n]), &mut payload, rng).is_err() {
        return false;
    }
    if !contact {
        let Some(n) = a.poll_transmit(now, &mut buf) else { return false };
        if b.handle_datagram(now, black_box(&buf[..n]), &mut payload, rng).is_err() {
            return false;
        }
    }
    let Ok(n) = a.send(now, b"invite", &mut buf) else { return false };
    if b.handle_datagram(now, black_box(&buf[..n]), &mut payload, rng) != Ok(Received::Payload(6)) {
        return false;
    }
    let Ok(n) = b.send(now, b"ringing", &mut buf) else { return false };
    let got = a.handle_datagram(now, black_box(&buf[..n]), &mut payload, rng);
    got == Ok(Received::Payload(7)) && a.handshake_hash() == b.handshake_hash()
}

/// One whole accepted contact invitation between two `Invitation`s, with an
/// empty body (so a pool of no buffers will do): handshake, Invite, Final,
/// Ack.
#[inline(never)]
fn invitation(alice: &LocalIdentity, bob: &LocalIdentity, rng: &mut HashDrbg) -> bool {
    let now = Instant::ZERO;
    let Ok(a_pins_b) = PinnedPeer::new(alice, *bob.certificate()) else { return false };
    let Ok(b_pins_a) = PinnedPeer::new(bob, *alice.certificate()) else { return false };
    let directory = [b_pins_a];
    let Ok(session) = Session::initiate_contact(alice, &a_pins_b, 1, StatementForm::Hash, now, rng)
    else {
        return false;
    };
    let (mut pool_a, mut pool_b) = (DataPool::<0>::new(), DataPool::<0>::new());
    let offer = Offer {
        id: InviteId::random(rng),
        app_id: AppId([1; 16]),
        message: "",
        data: &[],
        expires_in: DEFAULT_EXPIRY,
    };
    let Ok(mut a) = Invitation::invite(session, &offer, now, &mut pool_a) else { return false };
    let mut b: Option<Invitation> = None;
    let mut screen = |_: &_, _| Admission::Present;
    let mut buf = [0u8; MAX_DATAGRAM];
    // Every exchange of an accepted invitation takes a handful of rounds.
    for _ in 0..8 {
        while let Some(n) = a.poll_transmit(now, &pool_a, &mut buf) {
            let bytes = black_box(&buf[..n]);
            match b.as_mut() {
                Some(b) => {
                    let _ = b.handle_datagram(now, bytes, &mut pool_b, &mut screen, rng);
                }
                None => {
                    let Ok(incoming) = Incoming::read(bob, &directory[..], bytes) else {
                        return false;
                    };
                    let Ok(s) = incoming.accept(bob, 2, now, rng) else { return false };
                    let Ok(inv) = Invitation::invitee(s, InviteeConfig::default(), now) else {
                        return false;
                    };
                    b = Some(inv);
                }
            }
        }
        let Some(b) = b.as_mut() else { return false };
        while let Some(e) = b.poll_event() {
            if e == InvitationEvent::Invited && b.respond(now, Answer::Accept, "").is_err() {
                return false;
            }
        }
        while let Some(n) = b.poll_transmit(now, &pool_b, &mut buf) {
            let _ = a.handle_datagram(now, black_box(&buf[..n]), &mut pool_a, &mut screen, rng);
        }
        if a.outcome() == Some(Outcome::Accepted) && b.outcome() == Some(Outcome::Accepted) {
            return true;
        }
    }
    false
}

/// Small agents: two contacts, two applications, two invitation slots, no
/// body buffer (the invitation's body is empty), four remembered ids.
type SmallAgent = Agent<2, 2, 2, 0, 4>;

/// Alice's and Bob's identities.
#[inline(never)]
fn identities(rng: &mut HashDrbg) -> (LocalIdentity, LocalIdentity) {
    let alice = LocalIdentity::generate(rng, EndpointId(1));
    let bob = LocalIdentity::generate(rng, EndpointId(1));
    (alice, bob)
}

/// What the agents' invitation came to.
#[derive(Default)]
struct AgentsRun {
    /// The inviter's combined outcome (`Event::Responded`).
    inviter: Option<Outcome>,
    /// The invitee's outcome (`Event::IncomingEnded`).
    invitee: Option<Outcome>,
    /// Whether the inviter saw `Event::Ringing`.
    ringing: bool,
    /// Datagrams sent, both directions.
    datagrams: usize,
    /// Their bytes.
    bytes: usize,
    /// Timer ticks from `invite_contact` to both outcomes.
    ticks: u32,
}

impl AgentsRun {
    fn accepted(&self) -> bool {
        self.ringing
            && self.inviter == Some(Outcome::Accepted)
            && self.invitee == Some(Outcome::Accepted)
    }
}

/// A whole accepted contact invitation between two agents, from cards to
/// the inviter's `Responded(Accepted)` and the invitee's
/// `IncomingEnded(Accepted)`.
#[inline(never)]
fn agents(alice: LocalIdentity, bob: LocalIdentity, seed: u64) -> AgentsRun {
    let mut run = AgentsRun::default();
    let at = |last| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 7000);
    let (a_addr, b_addr) = (at(1), at(2));
    let app = AppId([7; 16]);
    let mut a = SmallAgent::new(alice, AgentConfig::default(), [seed as u8; 32]);
    let mut b = SmallAgent::new(bob, AgentConfig::with_policy(Policy::TrustedOnly), [9; 32]);
    let (Ok(a_card), Ok(b_card)) = (a.my_card("Alice", &[a_addr]), b.my_card("Bob", &[b_addr]))
    else {
        return run;
    };
    let (Ok(bob_at_a), Ok(_)) =
        (a.add_contact(&b_card, Trust::Trusted), b.add_contact(&a_card, Trust::Trusted))
    else {
        return run;
    };
    if b.register_application(app, "app", None).is_err() {
        return run;
    }
    let now = Instant::ZERO;
    let t0 = timer_now();
    let target = Target { endpoint: EndpointId(1), address: b_addr };
    let request = InvitationRequest { app_id: app, message: "", data: &[] };
    let Ok(Some(handle)) =
        a.invite_contact(now, bob_at_a, &[target], &request, InviteOptions::default())
    else {
        return run;
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    // The invitee answers one round after it is invited, as a person would:
    // its Ringing reaches the inviter before its Final.
    let mut to_answer = None;
    // An accepted invitation takes a handful of round trips.
    for _ in 0..8 {
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            (run.datagrams, run.bytes) = (run.datagrams + 1, run.bytes + t.len);
            let _ = b.handle_datagram(now, a_addr, black_box(&buf[..t.len]));
        }
        if let Some(incoming) = to_answer.take()
            && b.respond(now, incoming, Answer::Accept, "").is_err()
        {
            return run;
        }
        while let Some(e) = b.poll_event() {
            match e {
                Event::Invited(incoming) => to_answer = Some(incoming),
                Event::IncomingEnded { outcome, .. } => run.invitee = Some(outcome),
                _ => {}
            }
        }
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            (run.datagrams, run.bytes) = (run.datagrams + 1, run.bytes + t.len);
            let _ = a.handle_datagram(now, b_addr, black_box(&buf[..t.len]));
        }
        while let Some(e) = a.poll_event() {
            match e {
                Event::Ringing(h) if h == handle => run.ringing = true,
                Event::Responded { handle: h, outcome } if h == handle => {
                    run.inviter = Some(outcome);
                }
                _ => {}
            }
        }
        if run.inviter.is_some() && run.invitee.is_some() {
            run.ticks = t0.wrapping_sub(timer_now());
            break;
        }
    }
    run
}

/// A contact card written and parsed back.
#[inline(never)]
fn card_round_trip(alice: &LocalIdentity) -> bool {
    let Ok(card) = ContactCard::issue(alice.secret(), "Alice", &[*alice.certificate()], &[]) else {
        return false;
    };
    let mut text: heapless::String<{ peercollab_core::card::MAX_CARD_TEXT_LEN }> =
        heapless::String::new();
    if write!(text, "{card}").is_err() {
        return false;
    }
    ContactCard::parse(black_box(text.as_str())).is_ok_and(|c| c == card)
}

// --- Measurement -----------------------------------------------------------

unsafe extern "C" {
    /// The top of the stack (cortex-m-rt's linker script).
    static _stack_start: u32;
    /// The lowest address the stack may reach (cortex-m-rt's linker script).
    static _stack_end: u32;
}

fn stack_top() -> usize {
    (&raw const _stack_start) as usize
}

fn stack_bottom() -> usize {
    (&raw const _stack_end) as usize
}

/// Paints every word from the bottom of the stack region up to the stack
/// pointer with [`STACK_PAINT_VALUE`].
#[inline(never)]
fn repaint() {
    // SAFETY: writes only words below the current stack pointer: no live
    // frame is there (the loop itself uses registers only, and no interrupt
    // is enabled), and nothing else is placed in the stack region.
    unsafe {
        core::arch::asm!(
            "2:",
            "mov {sp}, sp",
            "cmp {p}, {sp}",
            "bhs 3f",
            "str {v}, [{p}], #4",
            "b 2b",
            "3:",
            p = inout(reg) stack_bottom() => _,
            sp = out(reg) _,
            v = in(reg) STACK_PAINT_VALUE,
            options(nostack),
        );
    }
}

/// The stack used since the last paint: from the top of the stack down to
/// the lowest word that no longer holds the paint.
#[inline(never)]
fn high_water() -> usize {
    let mut p = stack_bottom();
    // SAFETY: reads aligned words inside the stack region, below the
    // current stack pointer until the first overwritten word, which is at
    // or below it.
    while p < stack_top() && unsafe { read_volatile(p as *const u32) } == STACK_PAINT_VALUE {
        p += 4;
    }
    stack_top() - p
}

/// CMSDK APB timer 0 of the MPS2 board: CTRL, VALUE, RELOAD, a 32-bit
/// down counter on the 25 MHz peripheral clock.
const TIMER0: *mut u32 = 0x4000_0000 as *mut u32;

/// Starts timer 0 counting down from `u32::MAX`.
fn timer_start() {
    // SAFETY: the MPS2 timer's RELOAD, VALUE and CTRL registers; nothing
    // else uses the timer.
    unsafe {
        write_volatile(TIMER0.add(2), u32::MAX);
        write_volatile(TIMER0.add(1), u32::MAX);
        write_volatile(TIMER0, 1);
    }
}

/// Timer 0's current value.
fn timer_now() -> u32 {
    // SAFETY: the MPS2 timer's VALUE register.
    unsafe { read_volatile(TIMER0.add(1)) }
}

/// Nanoseconds of virtual time per tick of the 25 MHz timer: under
/// `-icount shift=0`, instructions per tick.
const NS_PER_TICK: u64 = 40;

/// One measured step: repaints the stack, runs `f`, prints the result, the
/// stack high-water mark and the time, and returns the result and the mark.
fn step(name: &str, f: impl FnOnce() -> bool) -> (bool, usize) {
    repaint();
    let t0 = timer_now();
    let ok = f();
    let ticks = t0.wrapping_sub(timer_now());
    let stack = high_water();
    hprintln!(
        "step {:<28} {:>4} stack {:>6} B  instructions ~{}",
        name,
        if ok { "ok" } else { "FAIL" },
        stack,
        u64::from(ticks) * NS_PER_TICK
    );
    (ok, stack)
}

#[entry]
fn main() -> ! {
    timer_start();
    let seed = black_box(0x5eed);
    hprintln!(
        "peercollab-nostd-check: QEMU mps2-an386 (Cortex-M4F), no allocator, precomputed tables {}",
        if cfg!(feature = "precomputed-tables") { "on" } else { "off" }
    );
    hprintln!(
        "agents: Agent<2, 2, 2, 0, 4>, {} bytes each, on the stack",
        core::mem::size_of::<SmallAgent>()
    );
    let mut rng = HashDrbg::from_u64(seed);
    let mut ids = None;
    let mut results = [(false, 0); 6];
    results[0] = step("identities", || {
        ids = Some(identities(&mut rng));
        true
    });
    let Some((alice, bob)) = ids else { fail("no identities") };
    results[1] = step("IK session handshake", || handshake(true, &alice, &bob, &mut rng));
    results[2] = step("XX session handshake", || handshake(false, &alice, &bob, &mut rng));
    results[3] = step("invitation (state machines)", || invitation(&alice, &bob, &mut rng));
    results[4] = step("contact card round trip", || card_round_trip(&alice));
    let mut run = AgentsRun::default();
    results[5] = step("contact invitation (agents)", || {
        run = agents(alice, bob, seed);
        run.accepted()
    });
    hprintln!(
        "contact invitation: inviter {:?}, invitee {:?}, ringing {}, {} datagrams, {} bytes",
        run.inviter,
        run.invitee,
        if run.ringing { "seen" } else { "not seen" },
        run.datagrams,
        run.bytes
    );
    hprintln!(
        "contact invitation alone (invite_contact to both outcomes): instructions ~{}",
        u64::from(run.ticks) * NS_PER_TICK
    );
    let peak = results.iter().map(|r| r.1).max().unwrap_or(0);
    hprintln!("peak stack: {} bytes (of {} available)", peak, stack_top() - stack_bottom());
    if peak >= stack_top() - stack_bottom() {
        fail("the stack ran out");
    }
    if !results.iter().all(|r| r.0) {
        fail("a step failed");
    }
    hprintln!("result: PASS");
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        core::hint::spin_loop();
    }
}

/// Prints why and exits QEMU with a failure status.
fn fail(why: &str) -> ! {
    hprintln!("result: FAIL ({})", why);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    fail("panic")
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("hard fault: {:?}", frame);
    fail("hard fault")
}
