//! The adapters' error type.

use std::net::SocketAddr;

use peercollab_core::agent::AgentError;

/// What an adapter call can fail with. Local misuse keeps the agent's
/// typed error; outcomes of invitations (declined, expired, unreachable…)
/// are not errors but [`Answer`](crate::Answer)s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The agent refused the command; nothing changed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// A contact card could not be made or read.
    #[error("contact card: {0}")]
    Card(#[from] peercollab_core::card::CardError),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket to {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Another socket operation failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The operating system gave no randomness.
    #[error("no entropy from the operating system: {0}")]
    Entropy(getrandom::Error),
    /// The endpoint has shut down.
    #[error("the endpoint has shut down")]
    Closed,
}
