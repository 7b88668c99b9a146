//! `peercollab demo`: alice and bob (and carol, a stranger to bob), each
//! with a fresh identity in a temporary data directory, on loopback UDP,
//! in one process. They go through the same store and endpoint code as the
//! commands (`init`, `apps register --run`, `card`, `contacts add`,
//! `policy`, `identity import --as-endpoint`, `listen`'s re-reading of the
//! store, `invite`), then tell every story of an invitation: accepted with
//! the application launched, declined, busy, an endpoint invitation
//! answered by a verified identity, cancelled while ringing, expired,
//! refused by policy (a stranger to a trusted-only peer; nobody), an
//! application not registered, and two devices of one contact invited at
//! once where the first to accept wins. Each story checks its outcome on
//! both sides where both see one; the demo fails if any differs. Every
//! wait is bounded.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant as WallClock};

use peercollab_core::Duration;
use peercollab_core::agent::InviteOptions;
use peercollab_core::invite::{CancelReason, Outcome};
use peercollab_tokio::{Incoming, IncomingInvitation, Request, Status};
use tokio::sync::mpsc;

use crate::net::{Live, describe, outcome_word, print_changes, report_launch, run_command};
use crate::store::{Book, PolicyName, Store, app_id};
use crate::{CliError, add_contact, card, init, register_app, remove_contact, set_policy};

/// How long any one step may take before the demo calls it a failure.
const STEP: StdDuration = StdDuration::from_secs(10);

/// The command bob's chess runs on accept: it prints its launch
/// information (from the environment, the data from its input).
#[cfg(not(windows))]
const CHESS: &str = r#"echo "    [chess] launched: invited by ${PEERCOLLAB_CONTACT:-a stranger} ($PEERCOLLAB_TRUST, $PEERCOLLAB_INVITER) from $PEERCOLLAB_ADDRESS, message \"$PEERCOLLAB_MESSAGE\", data \"$(cat)\"""#;
#[cfg(windows)]
const CHESS: &str = "echo     [chess] launched: invited by %PEERCOLLAB_CONTACT% (%PEERCOLLAB_TRUST%), message \"%PEERCOLLAB_MESSAGE%\"";

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, CliError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir()
            .join(format!("peercollab-demo-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn home(&self, name: &str) -> Store {
        Store::at(self.0.join(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What bob's devices tell the demo.
enum Seen {
    /// An invitation was presented; `held` if the demo answers it itself.
    Presented { device: &'static str, held: Option<Box<IncomingInvitation>> },
    /// An invitation ended there.
    Ended { device: &'static str, outcome: Outcome },
}

/// One of bob's devices, serving: it answers as the invitation's message
/// asks ("accept", "decline", "busy"; no message hands it to the demo;
/// anything else rings unanswered), and reports every presentation and end.
async fn serve(
    mut incoming: Incoming,
    device: &'static str,
    book: Book,
    answers: bool,
    tx: mpsc::UnboundedSender<Seen>,
) {
    let prefix = format!("    {device}: ");
    while let Some(mut invitation) = incoming.next().await {
        let info = invitation.info().clone();
        let now = incoming.endpoint().with_agent(|_, now| now);
        describe(&book, &info, info.expires_in(now), &prefix);
        let answered = match info.message.as_str() {
            _ if !answers => {
                println!("{prefix}  (rings; nobody picks it up here)");
                Ok(())
            }
            "accept" => invitation.accept().map(|()| println!("{prefix}  accepts")),
            "decline" => {
                invitation.decline("in a meeting").map(|()| println!("{prefix}  declines"))
            }
            "busy" => invitation
                .busy(Duration::from_secs(30))
                .map(|()| println!("{prefix}  is busy: try again in 30 s")),
            "" => {
                let _ = tx.send(Seen::Presented { device, held: Some(Box::new(invitation)) });
                continue;
            }
            _ => {
                println!("{prefix}  (rings; bob does not answer)");
                Ok(())
            }
        };
        if let Err(e) = answered {
            println!("{prefix}  could not answer: {e}");
        }
        let _ = tx.send(Seen::Presented { device, held: None });
        tokio::spawn(watch_end(invitation, device, book.clone(), tx.clone()));
    }
}

/// Waits for an invitation's end at bob's `device`; an accepted one
/// launches its application's command with the launch information.
async fn watch_end(
    mut invitation: IncomingInvitation,
    device: &'static str,
    book: Book,
    tx: mpsc::UnboundedSender<Seen>,
) {
    let Ok(outcome) = invitation.ended().await else { return };
    println!("    {device}: the invitation ended {}", outcome_word(outcome));
    if outcome == Outcome::Accepted {
        let app = book.apps.iter().find(|a| app_id(&a.id) == invitation.info().app_id);
        if let Some(app) = app
            && let Some(command) = &app.run
        {
            match invitation.launch_info() {
                Ok(launch) => report_launch(
                    &format!("    {device}: "),
                    &app.name,
                    run_command(command, &app.name, &launch).await,
                ),
                Err(e) => println!("    {device}: no launch information: {e}"),
            }
        }
    }
    // Released (its body buffer back in the pool) before the demo hears of it.
    drop(invitation);
    let _ = tx.send(Seen::Ended { device, outcome });
}

/// Bounds a step.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> Result<T, CliError> {
    tokio::time::timeout(STEP, f)
        .await
        .map_err(|_| CliError::Usage(format!("{what}: no result within {} s", STEP.as_secs())))
}

struct Stories {
    n: usize,
    failed: Vec<String>,
    /// The stories with a failure.
    failed_stories: std::collections::BTreeSet<usize>,
    bob: mpsc::UnboundedReceiver<Seen>,
}

impl Stories {
    async fn heading(&mut self, title: &str) {
        self.n += 1;
        println!("\n{}. {title}", self.n);
    }

    fn check(&mut self, who: &str, expected: Outcome, got: Outcome) {
        if expected == got {
            println!("   => {who}: {} (as expected)", outcome_word(got));
        } else {
            self.fail(format!(
                "{who}: {} — UNEXPECTED, wanted {}",
                outcome_word(got),
                outcome_word(expected)
            ));
        }
    }

    fn fail(&mut self, what: String) {
        println!("   => {what}");
        self.failed.push(format!("story {}: {what}", self.n));
        self.failed_stories.insert(self.n);
    }

    /// Waits for the next end at bob's `device` (presentations skipped).
    async fn bob_ended(&mut self, device: &str) -> Result<Outcome, CliError> {
        within("bob's side", async {
            loop {
                match self.bob.recv().await {
                    Some(Seen::Ended { device: d, outcome }) if d == device => return Ok(outcome),
                    Some(_) => {}
                    None => return Err(CliError::Usage("bob stopped".into())),
                }
            }
        })
        .await?
    }

    /// Records a step's error as a failed story.
    fn done(&mut self, result: Result<(), CliError>) {
        if let Err(e) = result {
            self.fail(format!("FAILED: {e}"));
        }
    }
}

/// Prints a command as a user would type it.
fn say(who: &str, command: &str) {
    println!("  {who}$ peercollab {command}");
}

fn short(card: &str) -> String {
    format!("{}…", card.get(..24).unwrap_or(card))
}

fn home_of(store: &Store) -> &Path {
    store.dir()
}

/// Runs every story; `Ok(false)` if any outcome was not the expected one.
pub(crate) async fn run() -> Result<bool, CliError> {
    let started = WallClock::now();
    let tmp = TempDir::new()?;
    println!("peercollab demo: alice and bob (and carol, a stranger) on loopback UDP");
    println!("  data directories under {}", tmp.0.display());
    let (alice_s, bob_s, carol_s) = (tmp.home("alice"), tmp.home("bob"), tmp.home("carol"));
    println!("\nSetting up (each peer's commands, with --home <its directory>):");
    for (name, store) in [("alice", &alice_s), ("bob", &bob_s), ("carol", &carol_s)] {
        let id = init(store, Some(name), false)?;
        say(name, &format!("init --name {name}"));
        println!(
            "         identity {} in {}",
            id.identity().fingerprint(),
            home_of(store).display()
        );
    }
    register_app(&bob_s, "chess", None, Some(CHESS.into()), None)?;
    say(
        "bob",
        "apps register chess --run '<a command printing its PEERCOLLAB_* launch information>'",
    );
    let loopback = ["127.0.0.1:0".parse().map_err(|_| CliError::Usage("address".into()))?];
    let (mut alice, _alice_in) = Live::bind(&alice_s, &loopback).await?;
    let (mut bob, bob_in) = Live::bind(&bob_s, &loopback).await?;
    let (carol, _carol_in) = Live::bind(&carol_s, &loopback).await?;
    let (alice_at, bob_at) = (alice.endpoint.local_addrs()[0], bob.endpoint.local_addrs()[0]);
    say("bob", &format!("listen --bind {bob_at}    (bob serves from here on)"));
    let bob_card = card(&bob_s, None, &[bob_at], &[])?;
    let alice_card = card(&alice_s, None, &[alice_at], &[])?;
    say("bob", &format!("card --address {bob_at}"));
    println!("         {} (fingerprint {})", short(&bob_card.to_string()), bob_card.fingerprint());
    say("alice", &format!("card --address {alice_at}"));
    println!(
        "         {} (fingerprint {})",
        short(&alice_card.to_string()),
        alice_card.fingerprint()
    );
    add_contact(&alice_s, &bob_card, true, None)?;
    say(
        "alice",
        &format!(
            "contacts add <bob's card> --trusted   (fingerprint {} checked with bob)",
            bob_card.fingerprint()
        ),
    );
    add_contact(&bob_s, &alice_card, true, None)?;
    say(
        "bob",
        &format!(
            "contacts add <alice's card> --trusted   (fingerprint {} checked with alice)",
            alice_card.fingerprint()
        ),
    );
    alice.reload();
    print!("  bob's listen re-reads its store:");
    let changes: Vec<String> = bob.reload().into_iter().map(|c| c.text).collect();
    println!(" {}", changes.join("; "));
    println!(
        "  carol ({}) is nobody's contact; she knows only bob's address.",
        carol.endpoint.identity().fingerprint()
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(serve(bob_in, "bob", bob.book.clone(), true, tx.clone()));

    let mut s = Stories { n: 0, failed: Vec::new(), failed_stories: Default::default(), bob: rx };
    let chess = app_id("chess");
    let ask = |what: &str| Request::new(chess).message(what).data(&b"board=e2e4"[..]);
    let options = InviteOptions::default();
    let bob_contact =
        alice.contact("bob").ok_or_else(|| CliError::Usage("bob not loaded".into()))?;

    s.heading("alice invites her contact bob to chess; it rings, bob accepts, chess starts").await;
    say("alice", "invite bob --app chess --message accept --data-file <board=e2e4>");
    let r = async {
        let mut inv =
            alice.endpoint.start_invite_contact(bob_contact, &[], &ask("accept"), options)?;
        if let Status::Pending { ringing: true } = within("ringing", inv.changed()).await?? {
            println!("    alice: ringing at bob");
        }
        let answer = within("the answer", inv.outcome()).await??;
        let verified = answer.identity() == Some(bob.endpoint.identity());
        println!(
            "    alice: answered by {}",
            if verified { "bob, identity verified" } else { "SOMEONE ELSE" }
        );
        s.check("alice", Outcome::Accepted, answer.outcome);
        let seen = s.bob_ended("bob").await?;
        s.check("bob", Outcome::Accepted, seen);
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);

    s.heading("bob declines, with a reason").await;
    say("alice", "invite bob --app chess --message decline");
    let r = async {
        let answer = within(
            "the answer",
            alice.endpoint.invite_contact(bob_contact, ask("decline"), options),
        )
        .await??;
        println!("    alice: reason {:?}", answer.reason);
        s.check("alice", Outcome::Declined, answer.outcome);
        let seen = s.bob_ended("bob").await?;
        s.check("bob", Outcome::Declined, seen);
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);

    s.heading("bob is busy and asks to be invited again later").await;
    say("alice", "invite bob --app chess --message busy");
    let r = async {
        let answer =
            within("the answer", alice.endpoint.invite_contact(bob_contact, ask("busy"), options))
                .await??;
        s.check("alice", Outcome::Busy { retry_after: Duration::from_secs(30) }, answer.outcome);
        let seen = s.bob_ended("bob").await?;
        s.check("bob", Outcome::Busy { retry_after: Duration::from_secs(30) }, seen);
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);

    s.heading("alice invites whoever answers at bob's address (an endpoint invitation)").await;
    say("alice", &format!("invite {bob_at} --app chess --message accept"));
    let r = async {
        let answer =
            within("the answer", alice.endpoint.invite_endpoint(bob_at, ask("accept"), options))
                .await??;
        let name = answer.contact.and_then(|c| alice.contact_name(c));
        match (answer.identity(), name) {
            (Some(id), Some(name)) if id == bob.endpoint.identity() => println!(
                "    alice: answered by {} — verified, it is her contact {name}",
                id.fingerprint()
            ),
            (id, _) => s.fail(format!("answered by {id:?}, not bob's verified identity")),
        }
        s.check("alice", Outcome::Accepted, answer.outcome);
        let seen = s.bob_ended("bob").await?;
        s.check("bob", Outcome::Accepted, seen);
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);

    s.heading("alice cancels while it rings (Ctrl-C in `invite`)").await;
    say("alice", "invite bob --app chess --message ring    …then Ctrl-C");
    let r = async {
        let mut inv =
            alice.endpoint.start_invite_contact(bob_contact, &[], &ask("ring"), options)?;
        within("ringing", async {
            while !matches!(inv.changed().await, Ok(Status::Pending { ringing: true }) | Err(_)) {}
        })
        .await?;
        println!("    alice: ringing; cancelling: {:?}", inv.cancel()?);
        let answer = within("the answer", inv.outcome()).await??;
        s.check("alice", Outcome::Cancelled(CancelReason::ByUser), answer.outcome);
        let seen = s.bob_ended("bob").await?;
        s.check("bob", Outcome::Cancelled(CancelReason::ByUser), seen);
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);

    s.heading("nobody answers within the invitation's 2 s: it expires").await;
    say("alice", "invite bob --app chess --message ring --expires 2");
    let r = async {
        let short = InviteOptions::default().expires_in(Duration::from_secs(2));
        let answer =
            within("the answer", alice.endpoint.invite_contact(bob_contact, ask("ring"), short))
                .await??;
        s.check("alice", Outcome::Expired, answer.outcome);
        let seen = s.bob_ended("bob").await?;
        s.check("bob", Outcome::Expired, seen);
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);

    s.heading("bob accepts trusted contacts only; carol, a stranger, invites his address").await;
    set_policy(&bob_s, PolicyName::Trusted)?;
    say("bob", "policy trusted");
    print_changes(bob.reload());
    say("carol", &format!("invite {bob_at} --app chess --message accept"));
    let r = async {
        let answer =
            within("the answer", carol.endpoint.invite_endpoint(bob_at, ask("accept"), options))
                .await??;
        println!(
            "    carol: refused by {} (whoever answers an endpoint invitation is identified)",
            answer.identity().map_or("nobody".into(), |i| i.fingerprint().to_string())
        );
        s.check("carol", Outcome::NotAccepted, answer.outcome);
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);

    s.heading("bob accepts invitations from nobody; alice, a trusted contact, is refused").await;
    set_policy(&bob_s, PolicyName::Nobody)?;
    say("bob", "policy nobody");
    print_changes(bob.reload());
    say("alice", "invite bob --app chess --message accept");
    let r = async {
        let answer = within(
            "the answer",
            alice.endpoint.invite_contact(bob_contact, ask("accept"), options),
        )
        .await??;
        s.check("alice", Outcome::NotAccepted, answer.outcome);
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);
    set_policy(&bob_s, PolicyName::Anyone)?;
    say("bob", "policy anyone");
    print_changes(bob.reload());

    s.heading("alice invites bob to go, an application he has not registered").await;
    say("alice", "invite bob --app go --message accept");
    let r = async {
        let go = Request::new(app_id("go")).message("accept");
        let answer =
            within("the answer", alice.endpoint.invite_contact(bob_contact, go, options)).await??;
        s.check("alice", Outcome::NotRegistered, answer.outcome);
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);

    s.heading("bob's laptop and phone both ring; he picks up on the laptop, the phone stops").await;
    let r = async {
        let phone_s = tmp.home("bob-phone");
        let exported = bob_s.identity_file()?;
        say("bob", "identity export bob.key    (then, on the phone:)");
        phone_s.import_identity(&exported.another_endpoint(2, peercollab_driver::os_seed()?), false)?;
        say("bob", "identity import bob.key --as-endpoint 2");
        register_app(&phone_s, "chess", None, None, None)?;
        add_contact(&phone_s, &alice_card, true, None)?;
        say("bob", "apps register chess; contacts add <alice's card> --trusted");
        let (phone, phone_in) = Live::bind(&phone_s, &loopback).await?;
        let phone_at = phone.endpoint.local_addrs()[0];
        say("bob", &format!("listen --bind {phone_at}"));
        tokio::spawn(serve(phone_in, "bob's phone", phone.book.clone(), false, tx.clone()));
        let phone_card = card(&phone_s, None, &[phone_at], &[])?;
        let both = card(&bob_s, None, &[bob_at], &[phone_card.to_string()])?;
        say("bob", &format!("card --address {bob_at} --merge <the phone's card>    (two endpoints, one identity)"));
        remove_contact(&alice_s, "bob")?;
        add_contact(&alice_s, &both, true, None)?;
        say("alice", "contacts remove bob; contacts add <bob's new card> --trusted");
        print_changes(alice.reload());
        let bob_both = alice.contact("bob").ok_or_else(|| CliError::Usage("bob not reloaded".into()))?;
        say("alice", "invite bob --app chess");
        // No message and no data: bob's laptop has no free body buffer left
        // (the four invitations it declined, was busy for, or let ring in
        // stories 2, 3, 5 and 6 hold theirs while they linger, 32 s), and
        // an invitation without a body needs none.
        let bare = Request::new(chess);
        let mut inv = alice.endpoint.start_invite_contact(bob_both, &[], &bare, options)?;
        // Bob's laptop holds the invitation until the phone rings too.
        let (mut laptop, mut phone_rang) = (None, false);
        within("both devices ringing", async {
            while laptop.is_none() || !phone_rang {
                match s.bob.recv().await {
                    Some(Seen::Presented { device: "bob", held: Some(i) }) => laptop = Some(i),
                    Some(Seen::Presented { device: "bob's phone", .. }) => phone_rang = true,
                    Some(_) => {}
                    None => break,
                }
            }
        })
        .await?;
        let mut laptop = laptop.ok_or_else(|| CliError::Usage("the laptop never rang".into()))?;
        println!("    bob: picks up on the laptop");
        laptop.accept()?;
        tokio::spawn(watch_end(*laptop, "bob", bob.book.clone(), tx.clone()));
        let answer = within("the answer", inv.outcome()).await??;
        let by = answer.answered_by.map(|c| c.endpoint().0);
        println!("    alice: answered by bob's endpoint {}", by.map_or("?".into(), |e| e.to_string()));
        s.check("alice", Outcome::Accepted, answer.outcome);
        let (mut at_laptop, mut at_phone) = (None, None);
        within("both devices' ends", async {
            while at_laptop.is_none() || at_phone.is_none() {
                match s.bob.recv().await {
                    Some(Seen::Ended { device: "bob", outcome }) => at_laptop = Some(outcome),
                    Some(Seen::Ended { device: "bob's phone", outcome }) => at_phone = Some(outcome),
                    Some(_) => {}
                    None => break,
                }
            }
        })
        .await?;
        if let (Some(laptop), Some(phone)) = (at_laptop, at_phone) {
            s.check("bob's laptop", Outcome::Accepted, laptop);
            s.check("bob's phone", Outcome::Cancelled(CancelReason::AnsweredElsewhere), phone);
        }
        drop(inv);
        phone.endpoint.shutdown(StdDuration::from_secs(1)).await;
        Ok::<(), CliError>(())
    }
    .await;
    s.done(r);

    println!();
    for (name, e) in [("alice", &alice.endpoint), ("bob", &bob.endpoint)] {
        let st = e.stats();
        println!(
            "  {name}: {} datagrams out, {} in, {} dropped",
            st.datagrams_out, st.datagrams_in, st.datagrams_dropped
        );
    }
    for e in [&alice.endpoint, &bob.endpoint, &carol.endpoint] {
        e.shutdown(StdDuration::from_secs(1)).await;
    }
    println!(
        "\n{} of {} stories as expected, in {:.1} s",
        s.n - s.failed_stories.len(),
        s.n,
        started.elapsed().as_secs_f64()
    );
    for f in &s.failed {
        println!("  FAILED {f}");
    }
    Ok(s.failed.is_empty())
}
