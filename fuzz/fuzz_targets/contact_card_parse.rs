//! Arbitrary bytes as the text of a contact card. See
//! `src/contact_card_parse.rs` for the checked properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peercollab_fuzz::contact_card_parse::run(data);
});
