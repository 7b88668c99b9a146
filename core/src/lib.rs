//! # peercollab-core
//!
//! The sans-IO, `no_std`, allocation-free core of peercollab: peer
//! collaboration invitations over mutually authenticated, forward-secret
//! Noise sessions.
//!
//! The core consumes datagrams, clock ticks and entropy and produces datagrams
//! and events. It never touches a socket, a clock, a thread or the operating
//! system's randomness, and every table has a fixed capacity, so its memory
//! is bounded by construction.
//!
//! Layers, bottom up:
//! - [`time`] and [`entropy`]: time and randomness as inputs;
//! - [`noise`]: the Noise Protocol Framework (revision 34) for
//!   `25519_ChaChaPoly_SHA256`, pattern-driven;
//! - [`identity`]: ed25519 identities, x25519 static keys and the
//!   certificates that bind them;
//! - [`card`]: contact cards, the copy-pasteable public identity of a peer;
//! - [`wire`]: the datagram formats, as zero-copy views and `Repr` structs;
//! - [`session`]: one secure session between two peers, over datagrams.
//!
//! ## Fuzzing only: transparent cryptography
//! The feature `fuzzing-transparent-crypto` adds a runtime switch
//! ([`fuzzing`]) that makes AEAD, MACs and sealed cookies transparent so a
//! fuzzer can forge frames and reach post-handshake states. It compiles only
//! under `cfg(fuzzing)` (cargo-fuzz): anywhere else it is a
//! `compile_error!`. Without it, [`fuzzing::transparent_crypto`] is a
//! constant `false`.
//!
//! ## No panics on input
//! Nothing received from the network, and no argument a caller passes, can
//! make the core panic: malformed input is a typed error or is dropped and
//! counted.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod agent;
pub mod card;
pub mod entropy;
pub mod fuzzing;
pub mod identity;
pub mod invite;
pub mod mac;
pub mod mutation;
pub mod noise;
pub mod ops;
pub mod replay;
pub mod session;
pub mod time;
mod util;
pub mod wire;

pub use entropy::{Entropy, HashDrbg};
pub use time::{Duration, Instant};
