//! Prints the memory an agent takes: `size_of` with the default capacities,
//! and what one more contact, application, invitation slot, body buffer or
//! remembered id adds, measured as the difference between two agent types
//! that differ in that one capacity by 16, divided by 16 (so every table,
//! queue and index a slot needs is counted, not only its record, and
//! alignment padding averages out).
//!
//! `cargo run --release -p peercollab-tests --example agent_footprint`

use std::mem::size_of;

use peercollab_core::agent::Agent;
use peercollab_core::invite::{DataPool, Invitation};
use peercollab_core::session::Session;

fn main() {
    let default = size_of::<Agent>();
    let per_contact = (size_of::<Agent<48, 64, 16, 4, 128>>() - default) / 16;
    let per_app = (size_of::<Agent<32, 80, 16, 4, 128>>() - default) / 16;
    let per_invitation = (size_of::<Agent<32, 64, 32, 4, 128>>() - default) / 16;
    let per_buffer = (size_of::<Agent<32, 64, 16, 20, 128>>() - default) / 16;
    let per_id = (size_of::<Agent<32, 64, 16, 4, 144>>() - default) / 16;
    let smallest = size_of::<Agent<1, 1, 1, 0, 1>>();
    println!(
        "agent, default capacities (32 contacts, 64 applications, 16 invitation slots, 4 body buffers, 128 remembered ids): {default} bytes"
    );
    println!("  per contact:                {per_contact} bytes");
    println!("  per application:            {per_app} bytes");
    println!(
        "  per invitation slot:        {per_invitation} bytes (one outgoing endpoint or one incoming invitation)"
    );
    println!("  per body buffer:            {per_buffer} bytes");
    println!("  per remembered id:          {per_id} bytes");
    println!("agent, one of each and no buffer: {smallest} bytes");
    println!(
        "invitation: {} bytes (its session: {} bytes)",
        size_of::<Invitation>(),
        size_of::<Session>()
    );
    println!("body pool of 2 buffers: {} bytes", size_of::<DataPool<2>>());
}
