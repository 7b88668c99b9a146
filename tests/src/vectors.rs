//! Helpers of the tests that hold committed files to the code: readable
//! differences between a committed JSON vector file, or a generated spec
//! document, and what the code produces now.

use peercollab_core::session::StatementForm;
use peercollab_core::wire::Mode;
use serde_json::Value;

use crate::{hex, unhex};

/// Set to `1` to rewrite the vector files from the code's inputs.
pub const REGENERATE_ENV: &str = "PEERCOLLAB_REGENERATE_VECTORS";

/// The vector file at `path`, parsed; first (re)written from `generate` if
/// it is absent or [`REGENERATE_ENV`] is `1`. The file is written aside and
/// renamed, so a test reading it in parallel sees the old or the new file,
/// never half of one.
pub fn read_or_regenerate(path: &std::path::Path, generate: impl FnOnce() -> Value) -> Value {
    if std::env::var(REGENERATE_ENV).is_ok_and(|v| v == "1") || !path.exists() {
        let text = serde_json::to_string_pretty(&generate()).expect("json") + "\n";
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).expect("write the vector file");
        std::fs::rename(&tmp, path).expect("rename the vector file");
        eprintln!("wrote {}", path.display());
    }
    let text = std::fs::read_to_string(path).expect("read the vector file");
    serde_json::from_str(&text).expect("the vector file is JSON")
}

/// Fails, listing them, if there are `differences` between the file at
/// `path` and what the code produces.
pub fn assert_no_differences(path: &std::path::Path, differences: &[String]) {
    assert!(
        differences.is_empty(),
        "{} differences between {} and what the code produces from its inputs \
         (set {REGENERATE_ENV}=1 to rewrite the file, if the change is intended):\n{}",
        differences.len(),
        path.display(),
        differences.join("\n")
    );
}

/// Set to `1` to rewrite the generated spec documents from the code.
pub const REGENERATE_SPEC_ENV: &str = "PEERCOLLAB_REGENERATE_SPEC";

/// Holds the generated document at `path` to `generated`, what `source`
/// renders now; with [`REGENERATE_SPEC_ENV`] `=1` the file is first
/// rewritten (aside, then renamed, so a parallel reader never sees half of
/// it). `command` is how to regenerate it, for the failure message.
pub fn check_generated_document(
    path: &std::path::Path,
    generated: &str,
    source: &str,
    command: &str,
) {
    if std::env::var(REGENERATE_SPEC_ENV).is_ok_and(|v| v == "1") {
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, generated).expect("write the generated document");
        std::fs::rename(&tmp, path).expect("rename the generated document");
        eprintln!("wrote {}", path.display());
    }
    let committed = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {} ({e}); generate it with `{command}`", path.display())
    });
    assert!(
        committed == generated,
        "{} is not what {source} renders; {}\n\
         The file is generated: do not edit it by hand. If the code changed on purpose, \
         regenerate it with\n    {command}\nand commit it.",
        path.display(),
        first_difference(&committed, generated),
    );
}

/// The first line where `want` and `got` differ, for a failure message.
fn first_difference(want: &str, got: &str) -> String {
    let (mut w, mut g) = (want.lines(), got.lines());
    let mut n = 0;
    loop {
        n += 1;
        match (w.next(), g.next()) {
            (None, None) => return "the files differ only in line endings".to_owned(),
            (a, b) if a == b => {}
            (a, b) => {
                return format!(
                    "first difference at line {n}:\n  committed: {}\n  generated: {}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                );
            }
        }
    }
}

/// A handshake mode as the vector files name it.
#[must_use]
pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Ik => "IK",
        Mode::Xx => "XX",
    }
}

/// The mode a vector file names; panics (naming `vector`) on anything else.
#[must_use]
pub fn mode_from_json(vector: &str, v: &Value) -> Mode {
    match v.as_str() {
        Some("IK") => Mode::Ik,
        Some("XX") => Mode::Xx,
        other => panic!("{vector}: unknown mode {other:?}"),
    }
}

/// How an IK initiator states its identity, as the vector files name it.
#[must_use]
pub fn statement_name(s: StatementForm) -> &'static str {
    match s {
        StatementForm::Certificate => "certificate",
        StatementForm::Hash => "certificate_hash",
    }
}

/// The statement form a vector file names (absent: the full certificate);
/// panics (naming `vector`) on anything else.
#[must_use]
pub fn statement_from_json(vector: &str, v: Option<&Value>) -> StatementForm {
    match v.and_then(Value::as_str) {
        None | Some("certificate") => StatementForm::Certificate,
        Some("certificate_hash") => StatementForm::Hash,
        Some(other) => panic!("{vector}: unknown statement form {other:?}"),
    }
}

/// Every difference between the file (`want`) and the regenerated document
/// (`got`), with a per-byte hex diff for strings of hex.
pub fn json_diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => json_diff(&format!("{path}.{k}"), wv, gv, out),
                    None => out.push(format!("{path}.{k}: in the file, not regenerated")),
                }
            }
            for k in g.keys().filter(|k| !w.contains_key(*k)) {
                out.push(format!("{path}.{k}: regenerated, missing from the file"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                out.push(format!(
                    "{path}: {} entries in the file, {} regenerated",
                    w.len(),
                    g.len()
                ));
            }
            for (k, (wv, gv)) in w.iter().zip(g).enumerate() {
                json_diff(&format!("{path}[{k}]"), wv, gv, out);
            }
        }
        (Value::String(w), Value::String(g)) if w != g => out.push(hex_diff(path, w, g)),
        (w, g) if w != g => out.push(format!("{path}: file {w} != regenerated {g}")),
        _ => {}
    }
}

fn hex_diff(path: &str, want: &str, got: &str) -> String {
    let is_hex = |s: &str| s.len().is_multiple_of(2) && s.bytes().all(|c| c.is_ascii_hexdigit());
    if !(is_hex(want) && is_hex(got)) {
        return format!("{path}: file {want:?} != regenerated {got:?}");
    }
    let (w, g) = (unhex(want), unhex(got));
    let first = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
    let window =
        |b: &[u8]| hex(&b[first.saturating_sub(4).min(b.len())..(first + 12).min(b.len())]);
    format!(
        "{path}: {} bytes in the file, {} regenerated; first difference at byte {first}\n  \
         file:        ..{}..\n  regenerated: ..{}..\n  file (all):        {want}\n  regenerated (all): {got}",
        w.len(),
        g.len(),
        window(&w),
        window(&g),
    )
}
