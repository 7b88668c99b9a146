//! `contact_card_parse`: arbitrary bytes as the text of a contact card.
//!
//! The input is read as UTF-8, invalid sequences replaced (lossy); there is
//! no other framing. It is parsed as it is, and again with `peercollab1:` in
//! front (so the fuzzer reaches the base32 decoder without spelling the
//! prefix).
//!
//! Checked for each text that parses:
//! - `to_string()` is `encoded_len()` bytes, at most `MAX_CARD_TEXT_LEN`,
//!   starts with the prefix, and re-parses to an equal card whose own text is
//!   the same (the uppercase spelling is canonical);
//! - the input's base32 characters, separators dropped and read the way the
//!   parser reads them (case-folded, `O` as `0`, `I`/`L` as `1`), are exactly
//!   the canonical text's: one card, one spelling;
//! - the lowercase text parses to the same card;
//! - the fingerprint is the identity's, and the re-parsed card's.
//!
//! For a text that is refused with `BadCharacter { position }`, the position
//! is inside the text, on a character boundary, and the character there is
//! not one a card may hold.

use peercollab_core::card::{CARD_PREFIX, CardError, ContactCard, MAX_CARD_TEXT_LEN};

/// The base32 characters of a card's text after its prefix, as the parser
/// reads them: separators dropped, uppercase, `O` as `0`, `I` and `L` as `1`.
fn normalised_symbols(text: &str) -> String {
    let body = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
    body[CARD_PREFIX.len()..]
        .chars()
        .filter(|&c| c != '-' && !c.is_ascii_whitespace())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

fn check(text: &str) {
    match ContactCard::parse(text) {
        Ok(card) => {
            let canonical = card.to_string();
            assert_eq!(canonical.len(), card.encoded_len(), "encoded_len is not the text's length");
            assert!(canonical.len() <= MAX_CARD_TEXT_LEN);
            assert!(canonical.starts_with(CARD_PREFIX));
            assert_eq!(
                normalised_symbols(text),
                canonical[CARD_PREFIX.len()..],
                "a card has two spellings"
            );

            let again = ContactCard::parse(&canonical).expect("a card's own text parses");
            assert!(again == card, "re-parsed card differs: {again:?} vs {card:?}");
            assert_eq!(again.to_string(), canonical, "the text is not canonical");
            assert_eq!(again.fingerprint(), card.fingerprint(), "fingerprint changed");
            assert_eq!(card.fingerprint(), card.identity().fingerprint());
            assert_eq!(card.fingerprint().to_string(), again.fingerprint().to_string());

            let lower = ContactCard::parse(&canonical.to_ascii_lowercase())
                .expect("the lowercase text parses");
            assert!(lower == card, "the lowercase text is another card");
        }
        Err(CardError::BadCharacter { position }) => {
            assert!(position < text.len(), "BadCharacter at {position} of {}", text.len());
            assert!(text.is_char_boundary(position), "BadCharacter inside a character");
            let c = text[position..].chars().next().expect("a character at the position");
            assert!(
                !(c.is_ascii_alphanumeric() && !matches!(c, 'u' | 'U')) && c != '-',
                "BadCharacter for {c:?}, which a card may hold"
            );
            assert!(!c.is_ascii_whitespace());
        }
        Err(_) => {}
    }
}

/// The target's body.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check(&text);
    check(&format!("{CARD_PREFIX}{text}"));
}
