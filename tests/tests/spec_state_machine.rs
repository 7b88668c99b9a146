//! `spec/state-machine.md` is generated from the invitation's transition
//! tables (`core/src/invite/table.rs`) and must equal what they render.
//!
//! The document shows, for each role, a Mermaid state diagram (one arrow per
//! `Go` row, rows with the same source and target merged into one arrow),
//! the entry actions of every state and the full transition table: one row
//! per (state, event) pair, in declaration order.
//!
//! With `PEERCOLLAB_REGENERATE_SPEC=1` the file is (re)written first; the
//! check then runs as usual. Without it, a missing or different file fails,
//! so the committed document cannot drift from the code.

use std::fmt::Write as _;
use std::path::Path;

use peercollab_tests::vectors::check_generated_document;

use peercollab_core::invite::table::{
    self, INVITEE, INVITER, InviteeAction, InviteeEvent, InviteeState, InviterAction, InviterEvent,
    InviterState, Row, Verdict,
};

const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/state-machine.md");
const REGENERATE_COMMAND: &str =
    "PEERCOLLAB_REGENERATE_SPEC=1 cargo test -p peercollab-tests --test spec_state_machine";

/// The table's enums all have `name()`; this lets one renderer serve both
/// roles.
trait Named: Copy + PartialEq + 'static {
    fn name(self) -> &'static str;
}

macro_rules! named {
    ($($t:ty),*) => {
        $(impl Named for $t {
            fn name(self) -> &'static str {
                <$t>::name(self)
            }
        })*
    };
}

named!(InviterState, InviterEvent, InviterAction, InviteeState, InviteeEvent, InviteeAction);

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Go => "Go",
        Verdict::Stay => "Stay",
        Verdict::Ignore => "Ignore",
        Verdict::Unexpected => "Unexpected",
        Verdict::Misuse => "Misuse",
    }
}

/// Everything the document says about one role.
struct Role<S: 'static, E: 'static, A: 'static> {
    title: &'static str,
    table_path: &'static str,
    initial: S,
    terminal: S,
    states: &'static [S],
    events: &'static [E],
    rows: &'static [Row<S, E, A>],
    entry: fn(S) -> &'static str,
}

fn inviter() -> Role<InviterState, InviterEvent, InviterAction> {
    Role {
        title: "Inviter",
        table_path: "table::INVITER",
        initial: InviterState::Connecting,
        terminal: InviterState::Closed,
        states: InviterState::ALL,
        events: InviterEvent::ALL,
        rows: INVITER,
        entry: table::inviter_entry,
    }
}

fn invitee() -> Role<InviteeState, InviteeEvent, InviteeAction> {
    Role {
        title: "Invitee",
        table_path: "table::INVITEE",
        initial: InviteeState::AwaitingInvite,
        terminal: InviteeState::Closed,
        states: InviteeState::ALL,
        events: InviteeEvent::ALL,
        rows: INVITEE,
        entry: table::invitee_entry,
    }
}

/// `Event / action, action`, or `Event` alone when the row has no actions.
fn label<S, E: Named, A: Named>(row: &Row<S, E, A>) -> String {
    let actions = row.actions.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
    if actions.is_empty() {
        row.event.name().to_owned()
    } else {
        format!("{} / {actions}", row.event.name())
    }
}

/// The diagram's arrows: one per (from, to) pair of `Go` rows, in the order
/// the pair first appears, with the rows' labels in declaration order.
fn arrows<S: Named, E: Named, A: Named>(role: &Role<S, E, A>) -> Vec<(S, S, Vec<String>)> {
    let mut arrows: Vec<(S, S, Vec<String>)> = Vec::new();
    for row in role.rows.iter().filter(|r| r.verdict == Verdict::Go) {
        match arrows.iter_mut().find(|(f, t, _)| *f == row.state && *t == row.next) {
            Some((_, _, labels)) => labels.push(label(row)),
            None => arrows.push((row.state, row.next, vec![label(row)])),
        }
    }
    arrows
}

/// The Mermaid `stateDiagram-v2` source of a role, without the fence.
fn diagram<S: Named, E: Named, A: Named>(role: &Role<S, E, A>) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    writeln!(out, "    [*] --> {}", role.initial.name()).unwrap();
    for (from, to, labels) in arrows(role) {
        writeln!(out, "    {} --> {} : {}", from.name(), to.name(), labels.join("<br/>")).unwrap();
    }
    writeln!(out, "    {} --> [*]", role.terminal.name()).unwrap();
    out
}

/// `text` as a paragraph wrapped at 78 columns (a code span is never cut),
/// followed by a blank line.
fn paragraph(out: &mut String, text: &str) {
    let mut words: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match words.last_mut() {
            Some(open) if open.matches('`').count() % 2 == 1 => {
                open.push(' ');
                open.push_str(word);
            }
            _ => words.push(word.to_owned()),
        }
    }
    let mut line = String::new();
    for word in &words {
        if !line.is_empty() && line.len() + 1 + word.len() > 78 {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push_str("\n\n");
}

fn names<T: Named>(all: &[T]) -> String {
    all.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

fn render_role<S: Named, E: Named, A: Named>(out: &mut String, n: usize, role: &Role<S, E, A>) {
    let (states, events) = (role.states.len(), role.events.len());
    let go = role.rows.iter().filter(|r| r.verdict == Verdict::Go).count();
    writeln!(out, "## {n}. {}\n", role.title).unwrap();
    paragraph(out, &format!("States ({states}): {}.", names(role.states)));
    paragraph(out, &format!("Events ({events}): {}.", names(role.events)));

    writeln!(out, "### {n}.1 Diagram\n").unwrap();
    paragraph(
        out,
        &format!(
            "One arrow per `Go` row of `{}` ({go} rows), labelled `Event / actions`. \
             Rows with the same source and target share an arrow, one label per line. \
             `Stay`, `Ignore`, `Unexpected` and `Misuse` rows change no state: they are \
             in the table of §{n}.3 only. The machine starts in {} and ends in {}.",
            role.table_path,
            role.initial.name(),
            role.terminal.name(),
        ),
    );
    writeln!(out, "```mermaid\n{}```\n", diagram(role)).unwrap();

    writeln!(out, "### {n}.2 Entry actions\n").unwrap();
    writeln!(out, "What entering a state from a different one does, before anything else in it.\n")
        .unwrap();
    out.push_str("| State | Entry actions |\n|---|---|\n");
    for &s in role.states {
        writeln!(out, "| {} | {} |", s.name(), (role.entry)(s)).unwrap();
    }
    out.push('\n');

    writeln!(out, "### {n}.3 Transitions\n").unwrap();
    paragraph(
        out,
        &format!(
            "{states} states × {events} events = {} rows, in declaration order. Next is \
             the state the row enters; — when the state stays the same.",
            states * events
        ),
    );
    out.push_str("| State | Event | Verdict | Next | Actions |\n|---|---|---|---|---|\n");
    for row in role.rows {
        let next = if row.next == row.state { "—" } else { row.next.name() };
        let actions = row.actions.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
        let actions = if actions.is_empty() { "—".to_owned() } else { actions };
        writeln!(
            out,
            "| {} | {} | {} | {next} | {actions} |",
            row.state.name(),
            row.event.name(),
            verdict_name(row.verdict),
        )
        .unwrap();
    }
    out.push('\n');
}

/// The whole document.
fn document() -> String {
    let mut out = String::new();
    out.push_str(
        "# Invitation state machine (version 1)\n\
         \n\
         > **Generated file: do not edit it by hand.** The test\n\
         > `tests/tests/spec_state_machine.rs` renders it from the transition\n\
         > tables in `core/src/invite/table.rs` and fails whenever the two\n\
         > differ. After a change to the tables, regenerate it with\n\
         >\n\
         > ```sh\n\
         > ",
    );
    out.push_str(REGENERATE_COMMAND);
    out.push_str(
        "\n\
         > ```\n\
         \n\
         Each role has one row for every (state, event) pair: there is no\n\
         wildcard. What each state, event and action means is documented on its\n\
         enum in `core/src/invite/table.rs`; the messages are in invitation.md and\n\
         the timers in timers.md (§5).\n\
         \n\
         ## Verdicts\n\
         \n\
         | Verdict | Meaning |\n\
         |---|---|\n\
         | Go | Perform the actions, then enter the next state. Entering a state different from the current one first runs that state's entry actions, which set its timers and send what the state is about. |\n\
         | Stay | Perform the actions, remain. |\n\
         | Ignore | A stale or duplicate input, or a timer the state never arms; harmless, changes nothing. A command answered `Ignore` is a no-op. |\n\
         | Unexpected | Input an honest peer cannot send in this state; it is dropped and counted, and changes nothing. |\n\
         | Misuse | A command that is not allowed in this state; the caller gets an error and nothing changes. |\n\
         \n\
         Actions run in the order listed, before the entry actions of the next\n\
         state.\n\
         \n",
    );
    render_role(&mut out, 1, &inviter());
    render_role(&mut out, 2, &invitee());
    // One trailing newline.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[test]
fn state_machine_document_is_generated_from_the_tables() {
    check_generated_document(
        Path::new(DOCUMENT),
        &document(),
        "core/src/invite/table.rs",
        REGENERATE_COMMAND,
    );
}

fn check_counts<S: Named, E: Named, A: Named>(role: &Role<S, E, A>) {
    assert_eq!(
        role.rows.len(),
        role.states.len() * role.events.len(),
        "{}: one row per (state, event) pair",
        role.title
    );
    // Declaration order is state-major, events in their enum's order: the
    // document's table reads like the enums.
    let pairs: Vec<(S, E)> = role.rows.iter().map(|r| (r.state, r.event)).collect();
    let expected: Vec<(S, E)> =
        role.states.iter().flat_map(|&s| role.events.iter().map(move |&e| (s, e))).collect();
    assert!(pairs == expected, "{}: rows not in (state, event) declaration order", role.title);
}

#[test]
fn every_role_has_one_row_per_state_and_event() {
    check_counts(&inviter());
    check_counts(&invitee());
}

/// The states named by the arrows of a diagram, `[*]` excluded.
fn diagram_states(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in source.lines().skip(1) {
        let arrow = line.split(" : ").next().expect("split yields one part");
        let (from, to) = arrow.split_once("-->").unwrap_or_else(|| panic!("not an arrow: {line}"));
        for name in [from.trim(), to.trim()] {
            if name != "[*]" {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn check_diagram<S: Named, E: Named, A: Named>(role: &Role<S, E, A>) {
    let source = diagram(role);
    let named = diagram_states(&source);
    let known: Vec<&str> = role.states.iter().map(|s| s.name()).collect();
    for name in &named {
        assert!(
            known.contains(&name.as_str()),
            "{}: diagram names unknown state {name}",
            role.title
        );
    }
    for s in &known {
        assert!(named.iter().any(|n| n == s), "{}: state {s} missing from the diagram", role.title);
    }
    // Every Go row is on exactly one arrow, and nothing else is.
    let go = role.rows.iter().filter(|r| r.verdict == Verdict::Go).count();
    let labels: usize = arrows(role).iter().map(|(_, _, l)| l.len()).sum();
    assert_eq!(labels, go, "{}: one label per Go row", role.title);
    assert!(
        arrows(role).iter().all(|(f, t, _)| f != t),
        "{}: a Go row that does not change state",
        role.title
    );
}

#[test]
fn diagrams_name_only_states_of_the_tables() {
    check_diagram(&inviter());
    check_diagram(&invitee());
}
