//! The mutation record: proof that each attack test can fail.
//!
//! Builds the attack tests (`tests/tests/attack_*.rs`, `agent_defences.rs`)
//! with `--cfg peercollab_mutation` in a target directory of its own, runs
//! them once with every defence in place (all must pass), then once per
//! defence of `peercollab_core::mutation::Defence` with that defence
//! switched off (`PEERCOLLAB_DISABLE`), and records which tests fail. A
//! defence that no test misses fails the run (exit 1).
//!
//! ```sh
//! cargo run --release --bin peercollab-mutation -- --write spec/mutation-record.md
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use peercollab_core::mutation::Defence;

/// Runs the attack tests once per defence switched off and records which
/// tests catch each.
#[derive(Parser, Debug)]
#[command(name = "peercollab-mutation", version)]
struct Args {
    /// Write the record (Markdown) to this file as well as to stdout.
    #[arg(long)]
    write: Option<PathBuf>,
    /// Only these defences (by name; default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// A test run taking longer than this many seconds counts as caught
    /// (the defence's absence made a test hang) and is stopped.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// The workspace to test (default: the one this program was built from).
    #[arg(long)]
    workspace: Option<PathBuf>,
}

/// The outcome of one run of the attack tests.
struct Run {
    /// `binary::test` of every failed test.
    failed: Vec<String>,
    /// `binary::test` of every passed test.
    passed: Vec<String>,
    /// Stopped after the timeout.
    timed_out: bool,
    /// The tests compiled (a build failure is an error, never a catch).
    built: bool,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds tests/")
        .to_path_buf()
}

/// The test binaries of the record: every attack test and the agent's
/// defence tests.
fn test_binaries(root: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root.join("tests/tests"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".rs")
            && (stem.starts_with("attack_") || stem == "agent_defences")
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// `cargo test` of the attack tests (`binaries`) or, with none, of the
/// core's unit tests.
fn cargo(root: &Path, binaries: &[String]) -> Command {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("mutation");
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root)
        .env("RUSTFLAGS", "--cfg peercollab_mutation")
        .env("CARGO_TARGET_DIR", target)
        .args(["test", "--release", "--no-fail-fast"]);
    if binaries.is_empty() {
        c.args(["-p", "peercollab-core", "--lib"]);
    } else {
        c.args(["-p", "peercollab-tests"]);
        for b in binaries {
            c.args(["--test", b]);
        }
    }
    c
}

/// Runs the attack tests, then the core's unit tests, with `disable` off.
fn run(root: &Path, binaries: &[String], disable: &[Defence], timeout: Duration) -> Run {
    let mut all = run_one(root, binaries, disable, timeout);
    let unit = run_one(root, &[], disable, timeout);
    all.failed.extend(unit.failed);
    all.passed.extend(unit.passed);
    all.timed_out |= unit.timed_out;
    all.built &= unit.built;
    all
}

fn run_one(root: &Path, binaries: &[String], disable: &[Defence], timeout: Duration) -> Run {
    let names: Vec<&str> = disable.iter().map(|d| d.name()).collect();
    let mut c = cargo(root, binaries);
    c.env("PEERCOLLAB_DISABLE", names.join(",")).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("cargo runs");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let mut timed_out = false;
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    parse(&out, &err, timed_out)
}

/// Reads libtest's output: `test NAME ... FAILED` under cargo's `Running
/// tests/BINARY.rs` lines (on stderr).
fn parse(stdout: &str, stderr: &str, timed_out: bool) -> Run {
    // Cargo announces each binary on stderr, libtest reports on stdout; the
    // binaries run one after another, so their "running N tests" blocks
    // come in the announced order.
    let order: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Running "))
        .map(|l| {
            if l.starts_with("unittests src/lib.rs") {
                "core"
            } else {
                l.strip_prefix("tests/").and_then(|l| l.split(".rs").next()).unwrap_or("?")
            }
        })
        .collect();
    let mut failed = Vec::new();
    let mut passed = Vec::new();
    let mut block = None::<usize>;
    for line in stdout.lines() {
        if line.starts_with("running ") {
            block = Some(block.map_or(0, |b| b + 1));
        } else if let Some(rest) = line.strip_prefix("test ") {
            let binary = block.and_then(|b| order.get(b)).copied().unwrap_or("?");
            if let Some(name) = rest.strip_suffix(" ... FAILED") {
                failed.push(format!("{binary}::{name}"));
            } else if let Some(name) = rest.strip_suffix(" ... ok") {
                passed.push(format!("{binary}::{name}"));
            }
        }
    }
    failed.sort();
    failed.dedup();
    Run { failed, passed, timed_out, built: !stderr.contains("could not compile") }
}

/// Layered defences: an attack that several defences stop, each alone
/// enough, shows only with all of them gone. Each group is one more
/// mutation of the record.
const GROUPS: &[(&str, &[Defence])] = &[(
    "a replayed invitation: the replay cache, the replay window and the remembered ids",
    &[Defence::ReplayCache, Defence::ReplayWindow, Defence::RememberedIds],
)];

/// Attack tests whose defence is a property of the protocol rather than a
/// check that can be taken out, with the reason; every other test must
/// fail under some mutation.
const STRUCTURAL: &[(&str, &str)] = &[
    (
        "attack_auth::unknown_key_share_relabelled_source_is_attributed_to_the_authenticated_inviter",
        "no code attributes an invitation by its source address: the inviter is the \
         certificate the handshake authenticated, so there is no check to take out",
    ),
    (
        "attack_replay::replay_of_responses_cancels_and_acks_into_a_later_invitation_changes_no_decision",
        "each session has its own keys: a datagram of another session fails its AEAD, which \
         no switch can make accept a key it was not sealed with",
    ),
];

/// One mutation: a defence, or a group of them, switched off.
struct Mutation {
    label: String,
    off: Vec<Defence>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let root = args.workspace.clone().unwrap_or_else(workspace);
    let binaries = match test_binaries(&root) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => {
            eprintln!("peercollab-mutation: no attack tests under {}", root.display());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("peercollab-mutation: reading tests/tests: {e}");
            return ExitCode::from(2);
        }
    };
    let mut mutations: Vec<Mutation> = Vec::new();
    let everything = args.only.is_empty();
    for name in &args.only {
        match Defence::ALL.into_iter().find(|d| d.name() == name) {
            Some(d) => mutations.push(Mutation { label: format!("`{}`", d.name()), off: vec![d] }),
            None => {
                eprintln!("peercollab-mutation: no defence named {name:?}");
                return ExitCode::from(2);
            }
        }
    }
    if everything {
        for d in Defence::ALL {
            mutations.push(Mutation { label: format!("`{}`", d.name()), off: vec![d] });
        }
        for (what, group) in GROUPS {
            let names: Vec<String> = group.iter().map(|d| format!("`{}`", d.name())).collect();
            mutations.push(Mutation {
                label: format!("{} ({what})", names.join(" + ")),
                off: group.to_vec(),
            });
        }
    }
    let timeout = Duration::from_secs(args.timeout);
    eprintln!("peercollab-mutation: building and running {} test binaries", binaries.len());
    let baseline = run(&root, &binaries, &[], timeout);
    if !baseline.built {
        eprintln!("peercollab-mutation: the tests do not build");
        return ExitCode::from(2);
    }
    if !baseline.failed.is_empty() || baseline.timed_out || baseline.passed.is_empty() {
        eprintln!(
            "peercollab-mutation: with every defence in place {} tests failed ({:?}), {} passed",
            baseline.failed.len(),
            baseline.failed,
            baseline.passed.len()
        );
        return ExitCode::FAILURE;
    }
    let mut results = Vec::new();
    for m in &mutations {
        let started = Instant::now();
        let r = run(&root, &binaries, &m.off, timeout);
        if !r.built {
            eprintln!("peercollab-mutation: the tests stopped building");
            return ExitCode::from(2);
        }
        eprintln!(
            "peercollab-mutation: without {:<60} {:>3} failed{} ({:.0} s)",
            m.label,
            r.failed.len(),
            if r.timed_out { ", timed out" } else { "" },
            started.elapsed().as_secs_f64()
        );
        results.push((m, r));
    }
    // libtest reports tests as they finish: sorted, the record is the same
    // from run to run.
    let mut attack_tests: Vec<&String> =
        baseline.passed.iter().filter(|t| !t.starts_with("core::")).collect();
    attack_tests.sort();
    let mut md = String::new();
    md.push_str(&format!(
        "# Mutation record\n\nGenerated by `cargo run --release --bin peercollab-mutation -- \
         --write spec/mutation-record.md` (threat-model.md §4): each defence of \
         `peercollab_core::mutation::Defence` switched off in turn, then each group of layered \
         defences, in a build with `--cfg peercollab_mutation` (`PEERCOLLAB_DISABLE=<names>`); \
         for each, the tests that then fail — the attack tests (`tests/tests/attack_*.rs`, \
         `agent_defences.rs`: {} tests in {} binaries) and the core's unit tests (`core::`). \
         With every defence in place all {} pass.\n\n## Defences and the tests that catch \
         their removal\n\n| defence switched off | tests that fail without it |\n|---|---|\n",
        attack_tests.len(),
        binaries.len(),
        baseline.passed.len()
    ));
    let mut uncaught = Vec::new();
    let mut caught_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (m, r) in &results {
        let mut caught: Vec<String> = r.failed.iter().map(|t| format!("`{t}`")).collect();
        for t in &r.failed {
            caught_by.entry(t.as_str()).or_default().push(m.label.as_str());
        }
        if r.timed_out {
            caught.push(format!("(a test hung: stopped after {} s)", args.timeout));
        }
        if caught.is_empty() {
            uncaught.push(m.label.clone());
            caught.push("**none**".to_owned());
        }
        md.push_str(&format!("| {} | {} |\n", m.label, caught.join("<br>")));
    }
    md.push_str(
        "\n## Attack tests and the removed defences that make them fail\n\n| test | fails \
         without |\n|---|---|\n",
    );
    let mut unfailing = Vec::new();
    for t in &attack_tests {
        let structural = STRUCTURAL.iter().find(|(name, _)| name == t).map(|(_, why)| *why);
        let by = match (caught_by.get(t.as_str()), structural) {
            (Some(v), _) => v.join(", "),
            (None, Some(why)) => format!("nothing it can be without: {why}"),
            (None, None) => {
                unfailing.push((*t).clone());
                "**nothing**".to_owned()
            }
        };
        md.push_str(&format!("| `{t}` | {by} |\n"));
    }
    print!("{md}");
    if let Some(path) = &args.write
        && let Err(e) = std::fs::write(path, &md)
    {
        eprintln!("peercollab-mutation: writing {}: {e}", path.display());
        return ExitCode::from(2);
    }
    let mut ok = true;
    if !uncaught.is_empty() {
        eprintln!("peercollab-mutation: no test fails without {}", uncaught.join(", "));
        ok = false;
    }
    if everything && !unfailing.is_empty() {
        eprintln!("peercollab-mutation: no removed defence fails {}", unfailing.join(", "));
        ok = false;
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
