//! The constants tables of `spec/timers.md` are the contract: every row must
//! name a constant of the code with the same value, and every timer constant
//! of the code must have a row, in the table of its own section. A change to
//! either side without the other fails here.
//!
//! Three tables: the session's (§1, `core/src/session.rs`,
//! `core/src/replay.rs`), the responder defences' (§4,
//! `core/src/agent/guard.rs`, `core/src/agent/mod.rs`) and the invitation's
//! (§5, `core/src/invite/mod.rs`).

use peercollab_core::agent::guard::{
    COOKIE_SECRET_MAX_AGE, HALF_OPEN_PER_CONTACT, RATE_BURST, RATE_PER_SECOND, RATE_SOURCES,
};
use peercollab_core::agent::{COOKIE_REPLIES, UNDER_LOAD_DH_PER_SECOND};
use peercollab_core::invite::{
    ACK_DELAY, CANCEL_TIMEOUT, DEFAULT_EXPIRY, DEFAULT_MAX_EXPIRY, DELIVERY_TIMEOUT, EXPIRY_GRACE,
    FINAL_TIMEOUT, INVITE_WAIT_TIMEOUT, LINGER, LIVENESS_PROBE_AFTER, LIVENESS_TIMEOUT,
    POOL_BUSY_RETRY_AFTER, REASSEMBLY_TIMEOUT, RETRANSMIT_INITIAL, RETRANSMIT_MAX,
    RINGING_INTERVAL,
};
use peercollab_core::replay::REPLAY_WINDOW;
use peercollab_core::session::{
    COOKIE_LIFETIME, HANDSHAKE_JITTER_MAX, HANDSHAKE_RETRANSMIT_INITIAL, HANDSHAKE_RETRANSMIT_MAX,
    HANDSHAKE_TIMEOUT,
};

/// The heading of the session's table.
const SESSION_SECTION: &str = "## 1. Constants";
/// The heading of the responder defences' table.
const DEFENCES_SECTION: &str = "## 4. Cookies and the responder's defences";
/// The heading of the invitation's table.
const INVITATION_SECTION: &str = "## 5. Invitations";

/// The session's values, in milliseconds for timers and as a count otherwise.
fn session_constants() -> Vec<(&'static str, u64)> {
    vec![
        ("HANDSHAKE_RETRANSMIT_INITIAL", HANDSHAKE_RETRANSMIT_INITIAL.as_millis()),
        ("HANDSHAKE_RETRANSMIT_MAX", HANDSHAKE_RETRANSMIT_MAX.as_millis()),
        ("HANDSHAKE_JITTER_MAX", HANDSHAKE_JITTER_MAX.as_millis()),
        ("HANDSHAKE_TIMEOUT", HANDSHAKE_TIMEOUT.as_millis()),
        ("COOKIE_LIFETIME", COOKIE_LIFETIME.as_millis()),
        ("REPLAY_WINDOW", REPLAY_WINDOW),
    ]
}

/// The responder defences' values, in milliseconds for timers and as a
/// count otherwise.
fn defence_constants() -> Vec<(&'static str, u64)> {
    vec![
        ("COOKIE_SECRET_MAX_AGE", COOKIE_SECRET_MAX_AGE.as_millis()),
        ("RATE_PER_SECOND", u64::from(RATE_PER_SECOND)),
        ("RATE_BURST", u64::from(RATE_BURST)),
        ("RATE_SOURCES", RATE_SOURCES as u64),
        ("HALF_OPEN_PER_CONTACT", HALF_OPEN_PER_CONTACT as u64),
        ("UNDER_LOAD_DH_PER_SECOND", u64::from(UNDER_LOAD_DH_PER_SECOND)),
        ("COOKIE_REPLIES", COOKIE_REPLIES as u64),
    ]
}

/// The invitation's timers, in milliseconds, in the order of
/// `core/src/invite/mod.rs`.
fn invitation_constants() -> Vec<(&'static str, u64)> {
    vec![
        ("DEFAULT_EXPIRY", DEFAULT_EXPIRY.as_millis()),
        ("DEFAULT_MAX_EXPIRY", DEFAULT_MAX_EXPIRY.as_millis()),
        ("RETRANSMIT_INITIAL", RETRANSMIT_INITIAL.as_millis()),
        ("RETRANSMIT_MAX", RETRANSMIT_MAX.as_millis()),
        ("ACK_DELAY", ACK_DELAY.as_millis()),
        ("RINGING_INTERVAL", RINGING_INTERVAL.as_millis()),
        ("DELIVERY_TIMEOUT", DELIVERY_TIMEOUT.as_millis()),
        ("LIVENESS_PROBE_AFTER", LIVENESS_PROBE_AFTER.as_millis()),
        ("LIVENESS_TIMEOUT", LIVENESS_TIMEOUT.as_millis()),
        ("EXPIRY_GRACE", EXPIRY_GRACE.as_millis()),
        ("FINAL_TIMEOUT", FINAL_TIMEOUT.as_millis()),
        ("CANCEL_TIMEOUT", CANCEL_TIMEOUT.as_millis()),
        ("INVITE_WAIT_TIMEOUT", INVITE_WAIT_TIMEOUT.as_millis()),
        ("REASSEMBLY_TIMEOUT", REASSEMBLY_TIMEOUT.as_millis()),
        ("LINGER", LINGER.as_millis()),
        ("POOL_BUSY_RETRY_AFTER", POOL_BUSY_RETRY_AFTER.as_millis()),
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

fn timers_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/timers.md")).unwrap()
}

/// The constant rows of `lines`: a first cell that is one backquoted
/// `UPPER_CASE` name, and its value from the second cell.
fn constant_rows<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, u64)> {
    lines
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .then(|| (name.to_owned(), spec_value(cells[2])))
        })
        .collect()
}

/// The constant rows of the section whose heading is `heading`, up to the
/// next `## ` heading.
fn section_rows(text: &str, heading: &str) -> Vec<(String, u64)> {
    let mut lines = text.lines().skip_while(|l| l.trim_end() != heading);
    assert!(lines.next().is_some(), "spec/timers.md has no section {heading:?}");
    constant_rows(lines.take_while(|l| !l.starts_with("## ")))
}

/// The section's table and the code's constants match row for row: the same
/// names, in the same order, with the same values.
fn check_section(text: &str, heading: &str, code: &[(&str, u64)]) {
    let rows = section_rows(text, heading);
    for (name, value) in &rows {
        let found = code.iter().find(|(n, _)| n == name);
        assert_eq!(found.map(|(_, v)| *v), Some(*value), "spec/timers.md {heading:?} row {name}");
    }
    for (name, _) in code {
        let count = rows.iter().filter(|(n, _)| n == name).count();
        assert_eq!(count, 1, "{name} must have exactly one row in spec/timers.md {heading:?}");
    }
    let spec_order: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    let code_order: Vec<&str> = code.iter().map(|(n, _)| *n).collect();
    assert_eq!(spec_order, code_order, "spec/timers.md {heading:?}: rows out of the code's order");
}

#[test]
fn timers_table_of_the_spec_matches_the_code() {
    check_section(&timers_md(), SESSION_SECTION, &session_constants());
}

#[test]
fn defences_table_of_the_spec_matches_the_code() {
    check_section(&timers_md(), DEFENCES_SECTION, &defence_constants());
}

#[test]
fn invitation_timers_table_of_the_spec_matches_the_code() {
    check_section(&timers_md(), INVITATION_SECTION, &invitation_constants());
}

#[test]
fn every_constant_row_of_the_spec_is_in_a_checked_table() {
    let text = timers_md();
    let everywhere = constant_rows(text.lines());
    let checked = section_rows(&text, SESSION_SECTION).len()
        + section_rows(&text, DEFENCES_SECTION).len()
        + section_rows(&text, INVITATION_SECTION).len();
    assert_eq!(
        everywhere.len(),
        checked,
        "spec/timers.md has constant rows outside the tables of {SESSION_SECTION:?}, \
         {DEFENCES_SECTION:?} and {INVITATION_SECTION:?}: {everywhere:?}"
    );
}
