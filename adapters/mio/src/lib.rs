//! peercollab over [mio]: peer collaboration invitations on UDP, driven by
//! an event loop the caller owns.
//!
//! An [`Endpoint`] is one peer (an agent of `peercollab-core`, through
//! [`peercollab_driver::Driver`]) with one or more UDP sockets, IPv4 or IPv6
//! (an unspecified IPv6 address is dual stack where the platform allows),
//! registered in the caller's [`mio::Poll`]. Each datagram leaves by a
//! socket of its destination's family (the one the peer was last heard on,
//! if any).
//!
//! # The loop
//!
//! ```text
//! loop {
//!     poll.poll(&mut events, endpoint.next_timeout())?;   // wait at most until the next deadline
//!     for event in &events { endpoint.handle_event(event); }   // reads, drives the agent, sends
//!     endpoint.handle_timeout();                          // timers due (early calls are harmless)
//!     while let Some(notice) = endpoint.poll_event() { … } // what happened
//! }
//! ```
//!
//! [`Endpoint::handle_event`] returns `false` for events of other sources,
//! so several endpoints and the application's own sources share a `Poll`.
//! Commands (`start_invite_*`, `respond`, `cancel`, …) send at once; their
//! events join the queue, and [`Endpoint::next_timeout`] is zero while the
//! queue holds any, so the next turn drains them.
//!
//! # Windows parity
//!
//! | Windows | here |
//! |---|---|
//! | `PeerCollabAsyncInviteContact` / `…Endpoint` | [`Endpoint::start_invite_contact`] / [`Endpoint::start_invite_endpoint`] → [`Handle`] |
//! | the invitation's event | [`Notice::Ringing`], [`Notice::Responded`] from [`Endpoint::poll_event`] |
//! | `PeerCollabGetInvitationResponse` | [`Endpoint::status`] → [`Status::Pending`] / [`Status::Answered`] |
//! | `PeerCollabCancelInvitation`, `PeerCollabCloseHandle` | [`Endpoint::cancel`], [`Endpoint::close`] |
//! | `PeerCollabInviteContact` / `…Endpoint` (waiting) | [`Endpoint::invite_contact_blocking`] / [`Endpoint::invite_endpoint_blocking`]: run the loop on the `Poll` until the outcome, keeping every other event |
//! | (the invitee's dialog) | [`Notice::Invited`], then [`Endpoint::accept`] / [`decline`](Endpoint::decline) / [`busy`](Endpoint::busy); [`Notice::IncomingEnded`] |
//! | `PeerCollabGetAppLaunchInfo` | [`Endpoint::launch_info`], then [`Endpoint::release`] |
//! | contacts, applications, policy | [`Endpoint::add_contact`], [`Endpoint::register_application`], [`Endpoint::set_policy`], …; anything else through [`Endpoint::with_agent`] |
//!
//! Outcomes (declined, busy, expired, unreachable…) are not errors: they
//! are the [`Outcome`] of an [`Answer`]. [`Error`] is local misuse
//! ([`Error::Agent`], nothing changed), sockets, or a shut-down endpoint.
//!
//! # Time
//!
//! With a [`SystemClock`] the loop waits in real time. With a
//! [`ManualClock`] (tests) timers run only when the clock is advanced; give
//! the endpoint a waker ([`Tokens::waker`]) so that an advance wakes a
//! `poll` waiting with no timeout. Only one waker may serve a `Poll`:
//! endpoints sharing one share it ([`Tokens::shared_waker`]).
//!
//! # Allocations
//!
//! Everything an endpoint needs is allocated by [`Endpoint::bind`]; in
//! steady state an invitation allocates nothing on the heap, on either
//! side, through the loop above and the handle API (`start_invite_*`,
//! [`Endpoint::accept`], [`Endpoint::release`], [`Endpoint::close`]). The
//! notices are owned but cheap: their text ([`Text`]) and data share a
//! buffer allocated once and reclaimed once the notices holding pieces of
//! it are dropped. `tests/allocations.rs` checks this with a counting
//! allocator. The waiting calls and [`Endpoint::shutdown`] make their own
//! list of events.
//!
//! # Shutdown
//!
//! [`Endpoint::shutdown`] cancels what is pending, declines what is
//! unanswered and runs the loop (bounded) until the inviters acknowledged
//! every answer, reporting those that did not. Dropping the endpoint
//! deregisters and closes its sockets; invitations in flight then end for
//! their peers by the protocol's timers (Unreachable or Expired).
//!
//! # Example
//!
//! Two endpoints on loopback in one `Poll`: alice invites bob, a trusted
//! contact, who accepts.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use mio::{Events, Poll, Token};
//! use peercollab_mio::{AgentConfig, AppId, Endpoint, EndpointId, InviteOptions, Notice,
//!     Outcome, Request, SystemClock, Tokens, Trust, generate_identity};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! const CHAT: AppId = AppId(*b"example-chat-app");
//! let mut poll = Poll::new()?;
//! let loopback = ["127.0.0.1:0".parse()?];
//! let clock = Arc::new(SystemClock::new());
//! let mut alice = Endpoint::bind(&loopback, generate_identity(EndpointId(1))?,
//!     AgentConfig::default(), clock.clone(), poll.registry(), Tokens::new(Token(0)))?;
//! let mut bob = Endpoint::bind(&loopback, generate_identity(EndpointId(1))?,
//!     AgentConfig::default(), clock, poll.registry(), Tokens::new(Token(10)))?;
//!
//! bob.register_application(CHAT, "chat", None)?;
//! bob.add_contact(&alice.my_card("alice")?, Trust::Trusted)?;
//! let bob_id = alice.add_contact(&bob.my_card("bob")?, Trust::Trusted)?;
//! let request = Request::new(CHAT).message("join me").data(&b"room=7"[..]);
//! let handle = alice.start_invite_contact(bob_id, &request, InviteOptions::default())?;
//!
//! let mut events = Events::with_capacity(64);
//! let deadline = Instant::now() + Duration::from_secs(10);
//! let answer = 'run: loop {
//!     assert!(Instant::now() < deadline, "no answer in time");
//!     let timeout = [alice.next_timeout(), bob.next_timeout(), Some(Duration::from_millis(100))]
//!         .into_iter().flatten().min();
//!     poll.poll(&mut events, timeout)?;
//!     for event in &events {
//!         let _ = alice.handle_event(event) || bob.handle_event(event);
//!     }
//!     alice.handle_timeout();
//!     bob.handle_timeout();
//!     while let Some(notice) = bob.poll_event() {
//!         if let Notice::Invited(invitation) = notice {
//!             println!("{:?} invites bob: {}", invitation.contact, invitation.message);
//!             bob.accept(invitation.id)?;
//!         }
//!     }
//!     while let Some(notice) = alice.poll_event() {
//!         if let Notice::Responded { handle: h, answer } = notice {
//!             assert_eq!(h, handle);
//!             break 'run answer;
//!         }
//!     }
//! };
//! assert_eq!(answer.outcome, Outcome::Accepted);
//! assert_eq!(answer.identity(), Some(bob.identity().identity()));
//! alice.close(handle)?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/mio_two_peers.rs` plays the same with the waiting call.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod endpoint;
mod sockets;

pub use endpoint::{Endpoint, SHUTDOWN_REASON, ShutdownReport, Tokens, WakerToken};

pub use mio;
pub use peercollab_driver::core::agent::{
    AgentConfig, AgentError, ContactId, ContactUpdate, Handle, IncomingId, InviteOptions, Policy,
    Target, Trust,
};
pub use peercollab_driver::core::card::ContactCard;
pub use peercollab_driver::core::identity::{EndpointId, IdentityKey, LocalIdentity};
pub use peercollab_driver::core::invite::{
    Answer as Reply, AppId, CancelEffect, CancelReason, Outcome,
};
pub use peercollab_driver::core::{Duration, Instant};
pub use peercollab_driver::{
    Answer, Clock, Driver, DriverStats, Error, Invitation, ManualClock, Notice, Request, Status,
    SystemClock, Text, generate_identity, os_seed,
};
