//! The `peercollab` binary, driven as a user would, with a temporary data
//! directory per test. Every wait is bounded; child processes are killed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peercollab"))
}

/// A fresh temporary data directory, removed on drop.
struct Home(PathBuf);

impl Home {
    fn new(name: &str) -> Home {
        let dir =
            std::env::temp_dir().join(format!("peercollab-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Home(dir)
    }

    fn run(&self, args: &[&str]) -> Output {
        bin()
            .arg("--home")
            .arg(&self.0)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        stdout(&out)
    }

    fn card(&self, name: &str, addresses: &[&str]) -> String {
        let mut args = vec!["card", "--name", name];
        for a in addresses {
            args.extend(["--address", a]);
        }
        self.ok(&args).trim().to_owned()
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn temporaries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .count()
}

/// Waits for `child` at most `limit`; kills it if it runs longer.
fn wait(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_demo_tells_every_story_and_exits_zero() {
    let started = Instant::now();
    let mut child = bin().arg("demo").stdout(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut text);
        text
    });
    let code = wait(&mut child, Duration::from_secs(60));
    let text = reader.join().unwrap();
    assert_eq!(code, Some(0), "demo failed:\n{text}");
    for expected in [
        "alice: Accepted (as expected)",
        "[chess] launched: invited by alice (trusted",
        "alice: Declined (as expected)",
        "alice: Busy (retry after 30 s) (as expected)",
        "verified, it is her contact bob",
        "alice: Cancelled (by the inviter) (as expected)",
        "alice: Expired (as expected)",
        "carol: NotAccepted (as expected)",
        "alice: NotAccepted (as expected)",
        "alice: NotRegistered (as expected)",
        "bob's phone: Cancelled (answered elsewhere) (as expected)",
        "10 of 10 stories as expected",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("UNEXPECTED") && !text.contains("FAILED"), "{text}");
    eprintln!("demo took {:?}", started.elapsed());
}

#[test]
fn init_creates_an_owner_only_key_file_and_refuses_to_overwrite_it() {
    let h = Home::new("init");
    h.ok(&["init", "--name", "me"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(h.path().join("identity.json")), 0o600);
        assert_eq!(mode(h.path().to_owned()), 0o700);
    }
    let first = std::fs::read(h.path().join("identity.json")).unwrap();
    let again = h.run(&["init"]);
    assert_eq!(again.status.code(), Some(3), "an existing identity is a store error");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read(h.path().join("identity.json")).unwrap(), first, "untouched");
    h.ok(&["init", "--force"]);
    assert_ne!(std::fs::read(h.path().join("identity.json")).unwrap(), first);
    assert_eq!(temporaries(h.path()), 0, "no temporary file left behind");
}

#[test]
fn every_write_goes_through_a_rename_and_leaves_no_temporary_file() {
    let h = Home::new("writes");
    h.ok(&["init"]);
    h.ok(&["apps", "register", "chess", "--run", "true", "--policy", "trusted"]);
    h.ok(&["apps", "register", "00112233445566778899aabbccddeeff", "--name", "raw"]);
    h.ok(&["policy", "nobody"]);
    assert_eq!(h.ok(&["policy"]).trim(), "nobody");
    let list = h.ok(&["apps", "list"]);
    assert!(list.contains("chess") && list.contains("00112233445566778899aabbccddeeff"), "{list}");
    h.ok(&["apps", "unregister", "raw"]);
    assert!(!h.ok(&["apps", "list"]).contains("raw"));
    assert_eq!(h.run(&["apps", "unregister", "raw"]).status.code(), Some(3));
    let store: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.path().join("store.json")).unwrap()).unwrap();
    assert_eq!(store["policy"], "nobody");
    assert_eq!(temporaries(h.path()), 0);
}

#[test]
fn bad_arguments_exit_two_without_a_panic() {
    let h = Home::new("bad");
    h.ok(&["init"]);
    for args in [
        &["invite"][..],
        &["policy", "everyone"],
        &["listen", "--bind", "not-an-address"],
        &["frobnicate"],
        &["invite", "x", "--app", "chess", "--endpoint", "nowhere"],
        &["invite", "x", "--app", "chess", "--expires", "0"],
        &["invite", "127.0.0.1:9", "--app", "chess", "--endpoint", "127.0.0.1:9"],
        &["invite", "127.0.0.1:9", "--app", "chess", "--data-file", "/nonexistent/file"],
        &["contacts", "add", "not a card", "--yes"],
        &["contacts", "add", "peercollab1:0000", "--yes"],
        &["init", "--force", "--name", ""],
        &["card", "--address", "0.0.0.0:0"],
    ] {
        let out =
            bin().arg("--home").arg(h.path()).args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{args:?}");
    }
    // Not a contact and not an address: a store error naming the fix.
    let out = h.run(&["invite", "nobody-i-know", "--app", "chess"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("contacts list"), "{out:?}");
    // No identity yet.
    let empty = Home::new("bad-empty");
    let out = empty.run(&["card"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("peercollab init"), "{out:?}");
}

#[test]
fn adding_a_contact_needs_a_confirmed_fingerprint() {
    let (a, b) = (Home::new("add-a"), Home::new("add-b"));
    a.ok(&["init"]);
    b.ok(&["init"]);
    let card = b.card("bob", &["127.0.0.1:4000"]);
    let refused = a.run(&["contacts", "add", &card]);
    assert_eq!(refused.status.code(), Some(5), "no terminal, no --yes: refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"), "{refused:?}");
    assert!(stdout(&refused).contains("fingerprint"), "the fingerprint is shown");
    assert!(!a.ok(&["contacts", "list"]).contains("bob"), "nothing added");
    a.ok(&["contacts", "add", &card, "--yes", "--trusted"]);
    let list = a.ok(&["contacts", "list"]);
    assert!(list.contains("bob") && list.contains("trusted") && list.contains("127.0.0.1:4000"));
    // The same identity again, under another name: refused.
    assert_eq!(
        a.run(&["contacts", "add", &card, "--yes", "--name", "bob2"]).status.code(),
        Some(3)
    );
    // My own card: refused.
    let mine = a.card("me", &[]);
    assert_eq!(a.run(&["contacts", "add", &mine, "--yes"]).status.code(), Some(3));
    a.ok(&["contacts", "trust", "bob", "--untrusted"]);
    assert!(a.ok(&["contacts", "list"]).contains("known"));
    a.ok(&["contacts", "remove", "bob"]);
    assert_eq!(a.run(&["contacts", "remove", "bob"]).status.code(), Some(3));
}

#[test]
fn an_exported_identity_imports_elsewhere_unchanged() {
    let (a, b, c) = (Home::new("export-a"), Home::new("export-b"), Home::new("export-c"));
    a.ok(&["init"]);
    let file = a.path().join("backup.json");
    let file = file.to_str().unwrap();
    a.ok(&["identity", "export", file]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(a.run(&["identity", "export", file]).status.code(), Some(3), "no overwrite");
    a.ok(&["identity", "export", file, "--force"]);
    b.ok(&["identity", "import", file]);
    assert_eq!(a.card("x", &["127.0.0.1:1"]), b.card("x", &["127.0.0.1:1"]));
    assert_eq!(b.run(&["identity", "import", file]).status.code(), Some(3), "no overwrite");
    // Another device of the same identity: same fingerprint, another
    // endpoint; one card can name both.
    c.ok(&["identity", "import", file, "--as-endpoint", "2"]);
    let fingerprint = |h: &Home| {
        let out = h.run(&["card", "--name", "x"]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(fingerprint(&a), fingerprint(&c));
    let phone = c.card("x", &["127.0.0.1:2"]);
    let both = a.ok(&["card", "--name", "x", "--address", "127.0.0.1:1", "--merge", &phone]);
    assert!(both.trim().len() > phone.len(), "two certificates");
    let stranger = Home::new("export-d");
    stranger.ok(&["init"]);
    let other = stranger.card("y", &[]);
    assert_eq!(a.run(&["card", "--merge", &other]).status.code(), Some(2));
}

/// A running `listen`: its output collected, killed on drop.
struct Listener {
    child: Child,
    output: Arc<Mutex<String>>,
    address: String,
}

impl Listener {
    fn start(home: &Home, args: &[&str]) -> Listener {
        let mut child = bin()
            .arg("--home")
            .arg(home.path())
            .args(["listen", "--bind", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut listener = Listener { child, output, address: String::new() };
        let first = listener.wait_for("listening on ");
        listener.address =
            first.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().to_owned();
        listener
    }

    /// Waits (at most 10 s) until the output holds `text`; returns it.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.output.lock().unwrap().clone();
            if out.contains(text) {
                return out;
            }
            assert!(Instant::now() < deadline, "no {text:?} in:\n{out}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two peers who hold each other's cards (without addresses: the inviter
/// names the listener's with --endpoint), both with chess registered.
fn pair(name: &str) -> (Home, Home) {
    let (l, i) = (Home::new(&format!("{name}-l")), Home::new(&format!("{name}-i")));
    for h in [&l, &i] {
        h.ok(&["init"]);
        h.ok(&["apps", "register", "chess"]);
    }
    let l_card = l.card("listener", &[]);
    let i_card = i.card("inviter", &[]);
    i.ok(&["contacts", "add", &l_card, "--yes", "--trusted"]);
    l.ok(&["contacts", "add", &i_card, "--yes", "--trusted"]);
    (l, i)
}

fn invite(home: &Home, to: &str, extra: &[&str]) -> Child {
    bin()
        .arg("--home")
        .arg(home.path())
        .args(["invite", to, "--app", "chess", "--message", "a game?"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn invite_code(home: &Home, to: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut child = invite(home, to, extra);
    let code = wait(&mut child, Duration::from_secs(20));
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut text);
    (code, text)
}

#[test]
fn invitations_between_two_processes_exit_with_their_outcome() {
    for (auto, expected) in [("accept", 0), ("decline", 10), ("busy", 11)] {
        let (l, i) = pair(auto);
        let listener = Listener::start(&l, &["--auto", auto]);
        let (code, text) = invite_code(&i, "listener", &["--endpoint", &listener.address]);
        assert_eq!(code, Some(expected), "{auto}: {text}");
        listener.wait_for("invitation from inviter (trusted contact)");
        listener.wait_for("ended");
    }
}

#[test]
fn an_endpoint_invitation_names_the_verified_answerer() {
    let (l, i) = pair("endpoint");
    let listener = Listener::start(&l, &["--auto", "accept"]);
    let (code, text) = invite_code(&i, &listener.address, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("answered by listener (") && text.contains("identity verified"),
        "{text}"
    );
}

#[test]
fn the_prompt_is_answered_on_standard_input_and_accepting_launches_the_application() {
    let (l, i) = pair("prompt");
    let out = l.path().join("launched.txt");
    let run = format!(
        "printf '%s|%s|%s|%s' \"$PEERCOLLAB_CONTACT\" \"$PEERCOLLAB_TRUST\" \"$PEERCOLLAB_MESSAGE\" \"$(cat)\" > '{}'",
        out.display()
    );
    l.ok(&["apps", "register", "chess", "--run", &run]);
    let data = i.path().join("data.bin");
    std::fs::create_dir_all(i.path()).unwrap();
    std::fs::write(&data, b"board=e4").unwrap();
    let mut listener = Listener::start(&l, &[]);
    let mut inviting = invite(
        &i,
        "listener",
        &["--endpoint", &listener.address, "--data-file", data.to_str().unwrap()],
    );
    listener.wait_for("s to answer");
    listener.say("what?\n");
    listener.wait_for("answer a (accept)");
    listener.say("a\n");
    assert_eq!(wait(&mut inviting, Duration::from_secs(20)), Some(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&out).map_or(true, |s| s.is_empty()) {
        assert!(Instant::now() < deadline, "not launched:\n{}", listener.wait_for(""));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "inviter|trusted|a game?|board=e4");
}

#[test]
fn a_running_listener_follows_the_store_another_command_changes() {
    let (l, i) = pair("reload");
    let listener = Listener::start(&l, &["--auto", "accept"]);
    l.ok(&["policy", "nobody"]);
    listener.wait_for("policy now nobody");
    let (code, text) = invite_code(&i, "listener", &["--endpoint", &listener.address]);
    assert_eq!(code, Some(16), "NotAccepted: {text}");
    l.ok(&["policy", "anyone"]);
    l.ok(&["apps", "unregister", "chess"]);
    listener.wait_for("application chess unregistered");
    let (code, text) = invite_code(&i, "listener", &["--endpoint", &listener.address]);
    assert_eq!(code, Some(15), "NotRegistered: {text}");
    l.ok(&["apps", "register", "chess"]);
    l.ok(&["policy", "trusted"]);
    l.ok(&["contacts", "trust", "inviter", "--untrusted"]);
    listener.wait_for("contact inviter now known, not trusted");
    let (code, text) = invite_code(&i, "listener", &["--endpoint", &listener.address]);
    assert_eq!(code, Some(16), "an untrusted contact under a trusted-only policy: {text}");
    l.ok(&["contacts", "trust", "inviter"]);
    listener.wait_for("contact inviter now trusted");
    let (code, text) = invite_code(&i, "listener", &["--endpoint", &listener.address]);
    assert_eq!(code, Some(0), "trusted again: {text}");
    // A damaged store is reported once; the listener keeps serving.
    std::fs::write(l.path().join("store.json"), b"{").unwrap();
    listener.wait_for("store not re-read");
}

#[cfg(unix)]
#[test]
fn ctrl_c_cancels_a_ringing_invitation() {
    let (l, i) = pair("cancel");
    let listener = Listener::start(&l, &[]);
    let mut inviting = invite(&i, "listener", &["--endpoint", &listener.address]);
    listener.wait_for("s to answer");
    // The inviter rings once the listener asks; then SIGINT.
    std::thread::sleep(Duration::from_millis(200));
    let killed = Command::new("kill").args(["-INT", &inviting.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert_eq!(wait(&mut inviting, Duration::from_secs(20)), Some(13), "Cancelled");
    listener.wait_for("it ended before an answer: Cancelled");
}

#[test]
fn concurrent_commands_never_lose_each_others_writes() {
    let h = Home::new("concurrent");
    h.ok(&["init"]);
    let children: Vec<Child> = (0..8)
        .map(|k| {
            bin()
                .arg("--home")
                .arg(h.path())
                .args(["apps", "register", &format!("app-{k}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert_eq!(wait(&mut c, Duration::from_secs(20)), Some(0));
    }
    let list = h.ok(&["apps", "list"]);
    for k in 0..8 {
        assert!(list.contains(&format!("app-{k}")), "app-{k} lost:\n{list}");
    }
    assert_eq!(temporaries(h.path()), 0);
}
