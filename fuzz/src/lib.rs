//! Shared code of the fuzz targets: input framing, fixed keys, and the
//! harness bodies, so the seed-corpus generator (`examples/gen_corpus.rs`)
//! builds inputs exactly the way the targets read them.

pub mod noise_responder;
