//! Shared code of the fuzz targets: input framing ([`framing`]), the pieces
//! of operation schedules the stateful targets share ([`schedule`]), fixed
//! keys, and the harness bodies, so the seed-corpus generator
//! (`examples/gen_corpus.rs`) builds inputs exactly the way the targets read
//! them.

pub mod agent_network;
pub mod agent_ops;
pub mod contact_card_parse;
pub mod frame_decode;
pub mod framing;
pub mod handshake_responder;
pub mod invitation_machine;
pub mod invite_message;
pub mod noise_responder;
pub mod schedule;
pub mod sim;
