//! The `peercollab` binary, driven as a user would, with a temporary data
//! directory per test. Every wait is bounded; child processes are killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peercollab"))
}

fn home(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peercollab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(home: &Path, args: &[&str]) -> Output {
    bin().arg("--home").arg(home).args(args).stdin(Stdio::null()).output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_demo_tells_every_story_and_exits_zero() {
    let out = bin().arg("demo").output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "demo failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "Accepted (as expected)",
        "Declined (as expected)",
        "Busy { retry_after: Duration(30000) } (as expected)",
        "bob's identity, verified",
        "Cancelled(ByUser) (as expected)",
        "Expired (as expected)",
        "NotAccepted (as expected)",
        "NotRegistered (as expected)",
        "launch information: inviter",
        "8 of 8 stories as expected",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn init_creates_an_owner_only_key_file_and_refuses_to_overwrite_it() {
    let h = home("init");
    assert!(run(&h, &["init"]).status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.join("identity.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(&h, &["init"]);
    assert_eq!(again.status.code(), Some(3), "an existing identity is a store error");
    assert!(run(&h, &["init", "--force"]).status.success());
    let temporaries = std::fs::read_dir(&h)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .count();
    assert_eq!(temporaries, 0, "no temporary file left behind");
    let _ = std::fs::remove_dir_all(h);
}

#[test]
fn bad_arguments_exit_two_without_a_panic() {
    for args in [
        &["invite"][..],
        &["policy", "everyone"],
        &["card"],
        &["listen", "--bind", "not-an-address"],
        &["frobnicate"],
    ] {
        let out = bin().args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{args:?}");
    }
}

#[test]
fn adding_a_contact_needs_a_confirmed_fingerprint() {
    let (a, b) = (home("add-a"), home("add-b"));
    assert!(run(&a, &["init"]).status.success());
    assert!(run(&b, &["init"]).status.success());
    let card = stdout(&run(&b, &["card", "--name", "bob", "--address", "127.0.0.1:4000"]));
    let refused = run(&a, &["contacts", "add", card.trim()]);
    assert_eq!(refused.status.code(), Some(5), "no terminal, no --yes: refused");
    assert!(run(&a, &["contacts", "add", card.trim(), "--yes", "--trusted"]).status.success());
    let list = stdout(&run(&a, &["contacts", "list"]));
    assert!(list.contains("bob") && list.contains("trusted"), "{list}");
    assert_eq!(run(&a, &["contacts", "add", "not a card", "--yes"]).status.code(), Some(2));
    for h in [a, b] {
        let _ = std::fs::remove_dir_all(h);
    }
}

#[test]
fn an_exported_identity_imports_elsewhere_unchanged() {
    let (a, b) = (home("export-a"), home("export-b"));
    assert!(run(&a, &["init"]).status.success());
    let file = a.join("backup.json");
    assert!(run(&a, &["identity", "export", file.to_str().unwrap()]).status.success());
    assert_eq!(
        run(&a, &["identity", "export", file.to_str().unwrap()]).status.code(),
        Some(3),
        "no overwrite without --force"
    );
    assert!(run(&b, &["identity", "import", file.to_str().unwrap()]).status.success());
    let card = |h: &Path| stdout(&run(h, &["card", "--address", "127.0.0.1:1"]));
    assert_eq!(card(&a), card(&b));
    for h in [a, b] {
        let _ = std::fs::remove_dir_all(h);
    }
}

struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A listener answering `auto`, and an inviter whose contact it is; the
/// invite's exit code.
fn listen_and_invite(name: &str, auto: &str, port: u16) -> Option<i32> {
    let (l, i) = (home(&format!("{name}-l")), home(&format!("{name}-i")));
    let address = format!("127.0.0.1:{port}");
    for h in [&l, &i] {
        assert!(run(h, &["init"]).status.success());
        assert!(run(h, &["apps", "register", "chess"]).status.success());
    }
    let l_card = stdout(&run(&l, &["card", "--name", "listener", "--address", &address]));
    let i_card = stdout(&run(&i, &["card", "--name", "inviter", "--address", "127.0.0.1:1"]));
    assert!(run(&i, &["contacts", "add", l_card.trim(), "--yes", "--trusted"]).status.success());
    assert!(run(&l, &["contacts", "add", i_card.trim(), "--yes", "--trusted"]).status.success());
    let _listener = Listener(
        bin()
            .arg("--home")
            .arg(&l)
            .args(["listen", "--bind", &address, "--auto", auto])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut invite = bin()
        .arg("--home")
        .arg(&i)
        .args(["invite", "listener", "--app", "chess", "--message", "a game?"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = invite.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = invite.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for h in [l, i] {
        let _ = std::fs::remove_dir_all(h);
    }
    code
}

#[test]
fn an_invitation_between_two_processes_exits_with_its_outcome() {
    assert_eq!(listen_and_invite("accept", "accept", 47_311), Some(0), "Accepted");
    assert_eq!(listen_and_invite("decline", "decline", 47_312), Some(10), "Declined");
}
