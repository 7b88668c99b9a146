//! What the peercollab adapters (`peercollab-tokio`, `peercollab-mio`)
//! share, so that each stays a thin layer of sockets and timers:
//!
//! - [`Driver`]: the agent behind a clock, with the drain order of the
//!   core's contract done once (datagrams out, then events, then the next
//!   deadline) and the agent's events turned into owned [`Notice`]s;
//! - owned copies of what the agent lends: [`Request`], [`Answer`],
//!   [`Status`], [`Invitation`] (also the launch information), their text
//!   and bytes cut from an [`Arena`] allocated once and recycled, so that
//!   an invitation costs no heap allocation in steady state ([`Text`]);
//! - [`Clock`]: [`SystemClock`] for real time, [`ManualClock`] for tests
//!   that run long timers instantly over real sockets;
//! - [`os_seed`] and [`generate_identity`]: the only places the operating
//!   system's randomness enters;
//! - [`net`]: binding UDP sockets (dual stack where allowed) and routing
//!   each datagram to a socket of its destination's family;
//! - [`Error`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod clock;
mod driver;
mod error;
pub mod net;
mod owned;
mod text;

pub use clock::{Clock, ManualClock, SystemClock, Wake};
pub use driver::{Driver, DriverStats, Notice, default_targets, default_targets_into};
pub use error::Error;
pub use owned::{Answer, Invitation, Request, Status};
pub use peercollab_core as core;
pub use text::{ARENA_BYTES, Arena, Text};

use peercollab_core::HashDrbg;
use peercollab_core::identity::{EndpointId, LocalIdentity};

/// 32 bytes from the operating system's randomness: the seed of an agent's
/// entropy.
pub fn os_seed() -> Result<[u8; 32], Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(Error::Entropy)?;
    Ok(seed)
}

/// A fresh identity (ed25519) and static key (x25519) for `endpoint`, from
/// the operating system's randomness.
pub fn generate_identity(endpoint: EndpointId) -> Result<LocalIdentity, Error> {
    let mut rng = HashDrbg::new(os_seed()?);
    Ok(LocalIdentity::generate(&mut rng, endpoint))
}
