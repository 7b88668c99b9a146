//! The constants table of `spec/timers.md` is the contract: every row must
//! name a constant of the code with the same value, and every timer constant
//! of the code must have a row. A change to either side without the other
//! fails here.

use peercollab_core::replay::REPLAY_WINDOW;
use peercollab_core::session::{
    COOKIE_LIFETIME, HANDSHAKE_JITTER_MAX, HANDSHAKE_RETRANSMIT_INITIAL, HANDSHAKE_RETRANSMIT_MAX,
    HANDSHAKE_TIMEOUT,
};

/// The code's values, in milliseconds for timers and as a count otherwise.
fn code_constants() -> Vec<(&'static str, u64)> {
    vec![
        ("HANDSHAKE_RETRANSMIT_INITIAL", HANDSHAKE_RETRANSMIT_INITIAL.as_millis()),
        ("HANDSHAKE_RETRANSMIT_MAX", HANDSHAKE_RETRANSMIT_MAX.as_millis()),
        ("HANDSHAKE_JITTER_MAX", HANDSHAKE_JITTER_MAX.as_millis()),
        ("HANDSHAKE_TIMEOUT", HANDSHAKE_TIMEOUT.as_millis()),
        ("COOKIE_LIFETIME", COOKIE_LIFETIME.as_millis()),
        ("REPLAY_WINDOW", REPLAY_WINDOW),
    ]
}

/// `"1 s"` → 1000, `"333 ms"` → 333, `"128 counters"` → 128.
fn spec_value(cell: &str) -> u64 {
    let mut parts = cell.split_whitespace();
    let n: u64 =
        parts.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("value {cell:?}"));
    match parts.next() {
        Some("s") => n * 1000,
        Some("ms") | Some("counters") | None => n,
        Some(unit) => panic!("unknown unit {unit:?} in {cell:?}"),
    }
}

#[test]
fn timers_table_of_the_spec_matches_the_code() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/timers.md")).unwrap();
    let rows: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c == '_')
                .then(|| (name.to_owned(), spec_value(cells[2])))
        })
        .collect();
    let code = code_constants();
    for (name, value) in &rows {
        let found = code.iter().find(|(n, _)| n == name);
        assert_eq!(found.map(|(_, v)| *v), Some(*value), "spec/timers.md row {name}");
    }
    for (name, _) in &code {
        assert!(rows.iter().any(|(n, _)| n == name), "{name} has no row in spec/timers.md");
    }
}
