//! The network commands, on `peercollab-tokio`: a store brought to life as
//! an [`Endpoint`] ([`Live`]), `listen` and `invite`, and the launch of an
//! application's command on accept.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration as StdDuration, Instant as WallClock};

use peercollab_core::Duration;
use peercollab_core::agent::{AgentConfig, ContactId, ContactUpdate, InviteOptions, Target};
use peercollab_core::identity::EndpointId;
use peercollab_core::invite::{CancelReason, FailureCause, MAX_APP_DATA, Outcome};
use peercollab_tokio::{
    Answer, Endpoint, Incoming, IncomingInvitation, InvitationInfo, Request, Status, Trust,
};
use tokio::sync::{mpsc, watch};

use crate::CliError;
use crate::store::{Book, PolicyName, Store, StoreError, StoredApp, app_id, hex, parse_card};

/// How often `listen` re-reads the store.
pub(crate) const RELOAD_EVERY: StdDuration = StdDuration::from_millis(500);

/// The retry-after `listen` answers Busy with.
pub(crate) const BUSY_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One answer to an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AutoAnswer {
    /// Accept (and launch the application's command, if any).
    Accept,
    /// Decline.
    Decline,
    /// Busy: ask again in a minute.
    Busy,
}

/// A contact as loaded into the endpoint.
struct LiveContact {
    name: String,
    card: String,
    trusted: bool,
    id: ContactId,
}

/// A data directory brought to life: an endpoint with its identity, and
/// the contacts, applications and policy of `store.json` as last read.
pub(crate) struct Live {
    pub(crate) endpoint: Endpoint,
    store: Store,
    contacts: Vec<LiveContact>,
    apps: Vec<StoredApp>,
    policy: Option<PolicyName>,
    /// The bytes of `store.json` last applied.
    bytes: Option<Vec<u8>>,
    /// The book last applied.
    pub(crate) book: Book,
    /// The last error reading the store, reported once.
    last_error: Option<String>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// Something [`Live::reload`] did or could not do.
pub(crate) struct Change {
    pub(crate) problem: bool,
    pub(crate) text: String,
}

impl Live {
    /// Binds an endpoint for the store's identity at `bind` and loads the
    /// store into it.
    pub(crate) async fn bind(
        store: &Store,
        bind: &[SocketAddr],
    ) -> Result<(Live, Incoming), CliError> {
        let identity = store.identity()?;
        let (book, bytes) = store.book_and_bytes()?;
        let (endpoint, incoming) = Endpoint::builder(identity)
            .config(AgentConfig::with_policy(book.policy.into()))
            .bind(bind)
            .await?;
        let mut live = Live {
            endpoint,
            store: Store::at(store.dir().to_owned()),
            contacts: Vec::new(),
            apps: Vec::new(),
            policy: Some(book.policy),
            bytes: None,
            book: Book::default(),
            last_error: None,
        };
        for change in live.apply(book, bytes) {
            if change.problem {
                eprintln!("peercollab: {}", change.text);
            }
        }
        Ok((live, incoming))
    }

    /// Re-reads `store.json` and applies what changed; says what it did.
    pub(crate) fn reload(&mut self) -> Vec<Change> {
        match self.store.book_and_bytes() {
            Ok((book, bytes)) => {
                self.last_error = None;
                if self.bytes.as_ref() == Some(&bytes) {
                    return Vec::new();
                }
                self.apply(book, bytes)
            }
            Err(e) => {
                let text = format!("store not re-read: {e}");
                if self.last_error.as_ref() == Some(&text) {
                    return Vec::new();
                }
                self.last_error = Some(text.clone());
                vec![Change { problem: true, text }]
            }
        }
    }

    /// Brings the endpoint in line with `book`.
    fn apply(&mut self, book: Book, bytes: Vec<u8>) -> Vec<Change> {
        let mut log = Vec::new();
        let mut did = |problem: bool, text: String| log.push(Change { problem, text });
        // Contacts gone, or whose card changed.
        let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.contacts)
            .into_iter()
            .partition(|c| book.contacts.iter().any(|b| b.name == c.name && b.card == c.card));
        for c in gone {
            match self.endpoint.remove_contact(c.id) {
                Ok(()) => did(false, format!("contact {} removed", c.name)),
                Err(e) => did(true, format!("contact {} not removed: {e}", c.name)),
            }
        }
        self.contacts = kept;
        for b in &book.contacts {
            let trust = b.trust();
            if let Some(c) = self.contacts.iter_mut().find(|c| c.name == b.name && c.card == b.card)
            {
                if c.trusted != b.trusted {
                    match self.endpoint.update_contact(c.id, ContactUpdate::default().trust(trust))
                    {
                        Ok(()) => {
                            c.trusted = b.trusted;
                            did(false, format!("contact {} now {}", b.name, trust_word(trust)));
                        }
                        Err(e) => did(true, format!("contact {} not changed: {e}", b.name)),
                    }
                }
                continue;
            }
            let added = parse_card(&b.card).map_err(|e| e.to_string()).and_then(|card| {
                self.endpoint.add_contact(&card, trust).map_err(|e| e.to_string())
            });
            match added {
                Ok(id) => {
                    // Invitations show the local name, not the card's.
                    let rename = ContactUpdate::default().display_name(&b.name);
                    let _ = self.endpoint.update_contact(id, rename);
                    self.contacts.push(LiveContact {
                        name: b.name.clone(),
                        card: b.card.clone(),
                        trusted: b.trusted,
                        id,
                    });
                    did(false, format!("contact {} added ({})", b.name, trust_word(trust)));
                }
                Err(e) => did(true, format!("contact {} not loaded: {e}", b.name)),
            }
        }
        // Applications.
        for a in &self.apps {
            if !book.apps.iter().any(|b| b.id == a.id) {
                match self.endpoint.unregister_application(app_id(&a.id)) {
                    Ok(()) => did(false, format!("application {} unregistered", a.name)),
                    Err(e) => did(true, format!("application {} not unregistered: {e}", a.name)),
                }
            }
        }
        let mut apps = Vec::new();
        for b in &book.apps {
            if self.apps.contains(b) {
                apps.push(b.clone());
                continue;
            }
            let policy = b.policy.map(Into::into);
            match self.endpoint.register_application(app_id(&b.id), &b.name, policy) {
                Ok(()) => {
                    apps.push(b.clone());
                    did(false, format!("application {} registered", b.name));
                }
                Err(e) => did(true, format!("application {} not registered: {e}", b.name)),
            }
        }
        self.apps = apps;
        if self.policy != Some(book.policy) {
            match self.endpoint.set_policy(book.policy.into()) {
                Ok(()) => {
                    self.policy = Some(book.policy);
                    did(false, format!("policy now {}", book.policy.word()));
                }
                Err(e) => did(true, format!("policy not changed: {e}")),
            }
        }
        self.book = book;
        self.bytes = Some(bytes);
        log
    }

    /// The loaded contact named `name`.
    pub(crate) fn contact(&self, name: &str) -> Option<ContactId> {
        self.contacts.iter().find(|c| c.name == name).map(|c| c.id)
    }

    /// The local name of a loaded contact.
    pub(crate) fn contact_name(&self, id: ContactId) -> Option<&str> {
        self.contacts.iter().find(|c| c.id == id).map(|c| c.name.as_str())
    }
}

pub(crate) fn print_changes(changes: Vec<Change>) {
    for c in changes {
        if c.problem {
            println!("  store: {} (!)", c.text);
        } else {
            println!("  store changed: {}", c.text);
        }
    }
}

fn trust_word(trust: Trust) -> &'static str {
    match trust {
        Trust::Trusted => "trusted",
        _ => "known, not trusted",
    }
}

/// Who sent an invitation, as the invitee knows them.
pub(crate) fn who(info: &InvitationInfo) -> String {
    match &info.contact {
        Some((_, name, Trust::Trusted)) => format!("{name} (trusted contact)"),
        Some((_, name, _)) => format!("{name} (contact, not trusted)"),
        None => "a stranger".to_owned(),
    }
}

/// Prints an incoming invitation as `listen` shows it.
pub(crate) fn describe(book: &Book, info: &InvitationInfo, left: Duration, prefix: &str) {
    let indent = " ".repeat(prefix.chars().count());
    println!(
        "{prefix}invitation from {} — verified identity {}, at {}",
        who(info),
        info.identity().fingerprint(),
        info.address
    );
    println!(
        "{indent}  application {:?}, message {:?}, {} bytes of data; {} s to answer",
        book.app_name(&info.app_id),
        info.message,
        info.data.len(),
        left.as_millis().div_ceil(1000)
    );
}

/// Reads standard input line by line on a thread of its own (so that a
/// blocked read never holds up the runtime or the exit); `None` at the end.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Becomes `true` on Ctrl-C.
fn ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tx.send_replace(true);
        }
    });
    rx
}

/// `listen`: serves until Ctrl-C; shows each invitation and asks (or
/// answers `auto`); re-reads the store every [`RELOAD_EVERY`].
pub(crate) async fn listen(
    store: &Store,
    bind: &[SocketAddr],
    auto: Option<AutoAnswer>,
) -> Result<u8, CliError> {
    let (mut live, mut incoming) = Live::bind(store, bind).await?;
    let addrs: Vec<String> = live.endpoint.local_addrs().iter().map(ToString::to_string).collect();
    println!(
        "listening on {} as {} ({}); policy {}; {} contacts, {} applications",
        addrs.join(", "),
        live.book.name.as_deref().unwrap_or("me"),
        live.endpoint.identity().fingerprint(),
        live.book.policy.word(),
        live.contacts.len(),
        live.apps.len()
    );
    if live.apps.is_empty() {
        println!(
            "  no application registered: invitations will be answered NotRegistered \
             (peercollab apps register NAME)"
        );
    }
    let _ = std::io::stdout().flush();
    let mut lines = auto.is_none().then(stdin_lines);
    let mut stop = ctrl_c();
    let mut reload = tokio::time::interval(RELOAD_EVERY);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    enum Event {
        Invited(Option<Box<IncomingInvitation>>),
        Reload,
        Stop,
    }
    loop {
        let event = tokio::select! {
            next = incoming.next() => Event::Invited(next.map(Box::new)),
            _ = reload.tick() => Event::Reload,
            _ = stop.changed() => Event::Stop,
        };
        match event {
            Event::Reload => print_changes(live.reload()),
            Event::Stop | Event::Invited(None) => break,
            Event::Invited(Some(invitation)) => {
                let go_on =
                    answer_one(&mut live, *invitation, auto, &mut lines, &mut reload, &mut stop)
                        .await;
                if !go_on {
                    break;
                }
            }
        }
    }
    println!("stopping…");
    let report = live.endpoint.shutdown(StdDuration::from_secs(3)).await;
    println!(
        "stopped ({} unanswered invitation(s) declined, {} answer(s) not acknowledged)",
        report.declined, report.unacknowledged
    );
    Ok(0)
}

/// Shows one invitation, gets its answer (from `auto`, or asks on the
/// terminal with a countdown), answers, and leaves a task to report its
/// end and launch the application. `false`: stop listening.
async fn answer_one(
    live: &mut Live,
    mut invitation: IncomingInvitation,
    auto: Option<AutoAnswer>,
    lines: &mut Option<mpsc::UnboundedReceiver<String>>,
    reload: &mut tokio::time::Interval,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let info = invitation.info().clone();
    let left = |live: &Live| info.expires_in(live.endpoint.with_agent(|_, now| now));
    println!();
    describe(&live.book, &info, left(live), "");
    let answer = match (auto, lines.as_mut()) {
        (Some(a), _) => {
            println!("  answering {a:?} (--auto)");
            a
        }
        (None, None) => {
            println!("  standard input is closed: declining");
            AutoAnswer::Decline
        }
        (None, Some(rx)) => {
            enum Ask {
                Line(Option<String>),
                Tick,
                Ended(Result<Outcome, peercollab_tokio::Error>),
                Reload,
                Stop,
            }
            let every = StdDuration::from_secs(10);
            let mut countdown =
                tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let mut prompt = true;
            loop {
                if prompt {
                    print!("  accept, decline or busy? [a/d/b] ");
                    let _ = std::io::stdout().flush();
                    prompt = false;
                }
                let ask = tokio::select! {
                    line = rx.recv() => Ask::Line(line),
                    _ = countdown.tick() => Ask::Tick,
                    ended = invitation.ended() => Ask::Ended(ended),
                    _ = reload.tick() => Ask::Reload,
                    _ = stop.changed() => Ask::Stop,
                };
                match ask {
                    Ask::Line(Some(line)) => match line.trim().to_ascii_lowercase().as_str() {
                        "a" | "accept" | "y" | "yes" => break AutoAnswer::Accept,
                        "d" | "decline" | "n" | "no" => break AutoAnswer::Decline,
                        "b" | "busy" => break AutoAnswer::Busy,
                        _ => {
                            println!("  answer a (accept), d (decline) or b (busy)");
                            prompt = true;
                        }
                    },
                    Ask::Line(None) => {
                        println!("\n  standard input closed: declining (--auto answers by itself)");
                        *lines = None;
                        break AutoAnswer::Decline;
                    }
                    Ask::Tick => {
                        println!("\n  {} s left", left(live).as_millis().div_ceil(1000));
                        prompt = true;
                    }
                    Ask::Ended(outcome) => {
                        println!("\n  it ended before an answer: {}", outcome_text(&outcome));
                        return true;
                    }
                    Ask::Reload => print_changes(live.reload()),
                    Ask::Stop => {
                        println!();
                        let _ = invitation.decline("the invitee stopped listening");
                        return false;
                    }
                }
            }
        }
    };
    let answered = match answer {
        AutoAnswer::Accept => invitation.accept(),
        AutoAnswer::Decline => invitation.decline("declined"),
        AutoAnswer::Busy => invitation.busy(BUSY_RETRY_AFTER),
    };
    if let Err(e) = answered {
        println!("  could not answer: {e}");
        return true;
    }
    let app = live.book.apps.iter().find(|a| app_id(&a.id) == info.app_id).cloned();
    tokio::spawn(async move {
        let outcome = invitation.ended().await;
        println!("  invitation from {} ended: {}", who(&info), outcome_text(&outcome));
        if let (Ok(Outcome::Accepted), Some(app)) = (outcome, app)
            && let Some(command) = &app.run
        {
            match invitation.launch_info() {
                Ok(launch) => {
                    report_launch("  ", command, run_command(command, &app.name, &launch).await)
                }
                Err(e) => println!("  no launch information: {e}"),
            }
        }
    });
    true
}

/// Prints how a launched command ended.
pub(crate) fn report_launch(
    prefix: &str,
    command: &str,
    status: std::io::Result<std::process::ExitStatus>,
) {
    match status {
        Ok(status) => println!("{prefix}launched {command:?}: {status}"),
        Err(e) => println!("{prefix}could not launch {command:?}: {e}"),
    }
}

/// Runs an application's `command` for an accepted invitation (Windows'
/// launch-on-accept), by the shell (`sh -c`; `cmd /C` on Windows), with
/// the launch information (`GetAppLaunchInfo`) in its environment —
///
/// | variable | value |
/// |---|---|
/// | `PEERCOLLAB_INVITER` | the inviter's verified identity fingerprint |
/// | `PEERCOLLAB_INVITER_KEY` | the inviter's identity key, 64 hex digits |
/// | `PEERCOLLAB_CONTACT` | the inviter's contact name, empty for a stranger |
/// | `PEERCOLLAB_TRUST` | `trusted`, `known` or `stranger` |
/// | `PEERCOLLAB_ADDRESS` | the inviter's address |
/// | `PEERCOLLAB_APP_ID` | the application id, 32 hex digits |
/// | `PEERCOLLAB_APP_NAME` | the application's registered name |
/// | `PEERCOLLAB_MESSAGE` | the message |
/// | `PEERCOLLAB_DATA_LEN` | the length of the data |
///
/// — and the application data (the inviter's bytes: validate them) on its
/// standard input. Its output goes where ours goes; waits for it to end.
pub(crate) async fn run_command(
    command: &str,
    app_name: &str,
    launch: &InvitationInfo,
) -> std::io::Result<std::process::ExitStatus> {
    #[cfg(windows)]
    let mut cmd = {
        let mut c = tokio::process::Command::new("cmd");
        c.arg("/C").arg(command);
        c
    };
    #[cfg(not(windows))]
    let mut cmd = {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(command);
        c
    };
    let (contact, trust) = match &launch.contact {
        Some((_, name, Trust::Trusted)) => (name.as_str(), "trusted"),
        Some((_, name, _)) => (name.as_str(), "known"),
        None => ("", "stranger"),
    };
    let mut child = cmd
        .env("PEERCOLLAB_INVITER", launch.identity().fingerprint().to_string())
        .env("PEERCOLLAB_INVITER_KEY", hex(launch.identity().as_bytes()))
        .env("PEERCOLLAB_CONTACT", contact)
        .env("PEERCOLLAB_TRUST", trust)
        .env("PEERCOLLAB_ADDRESS", launch.address.to_string())
        .env("PEERCOLLAB_APP_ID", hex(&launch.app_id.0))
        .env("PEERCOLLAB_APP_NAME", app_name)
        .env("PEERCOLLAB_MESSAGE", &launch.message)
        .env("PEERCOLLAB_DATA_LEN", launch.data.len().to_string())
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        // A command that does not read its input is no error.
        let _ = stdin.write_all(&launch.data).await;
    }
    child.wait().await
}

/// An invitation's outcome in words.
pub(crate) fn outcome_text(outcome: &Result<Outcome, peercollab_tokio::Error>) -> String {
    match outcome {
        Ok(o) => outcome_word(*o),
        Err(e) => format!("unknown ({e})"),
    }
}

/// One outcome in words.
pub(crate) fn outcome_word(outcome: Outcome) -> String {
    match outcome {
        Outcome::Busy { retry_after } => {
            format!("Busy (retry after {} s)", retry_after.as_millis().div_ceil(1000))
        }
        Outcome::Cancelled(CancelReason::ByUser) => "Cancelled (by the inviter)".into(),
        Outcome::Cancelled(CancelReason::AnsweredElsewhere) => {
            "Cancelled (answered elsewhere)".into()
        }
        Outcome::Cancelled(CancelReason::GaveUp) => "Cancelled (the inviter gave up)".into(),
        Outcome::Failed(FailureCause::IdentityMismatch) => {
            "Failed (another identity answered)".into()
        }
        Outcome::Failed(FailureCause::RevokedCertificate) => {
            "Failed (a revoked certificate)".into()
        }
        Outcome::Failed(FailureCause::InvalidInvitation) => "Failed (invalid invitation)".into(),
        other => format!("{other:?}"),
    }
}

/// The exit code of `invite` for an outcome (the table in `--help`).
pub(crate) fn outcome_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Accepted => 0,
        Outcome::Declined => 10,
        Outcome::Busy { .. } => 11,
        Outcome::Expired => 12,
        Outcome::Cancelled(_) => 13,
        Outcome::Unreachable => 14,
        Outcome::NotRegistered => 15,
        Outcome::NotAccepted => 16,
        _ => 17,
    }
}

/// `--endpoint [ID@]ADDR`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EndpointArg {
    pub(crate) id: Option<u32>,
    pub(crate) address: SocketAddr,
}

pub(crate) fn parse_endpoint(s: &str) -> Result<EndpointArg, String> {
    let bad = || format!("{s:?} is not [ID@]ADDRESS, like 127.0.0.1:4000 or 2@[::1]:4000");
    let (id, address) = match s.split_once('@') {
        Some((id, address)) => (Some(id.parse::<u32>().map_err(|_| bad())?), address),
        None => (None, s),
    };
    Ok(EndpointArg { id, address: address.parse().map_err(|_| bad())? })
}

/// What `invite` was asked.
#[derive(Debug)]
pub(crate) struct InviteArgs {
    pub(crate) to: String,
    pub(crate) app: String,
    pub(crate) message: String,
    pub(crate) data_file: Option<std::path::PathBuf>,
    pub(crate) expires: u64,
    pub(crate) endpoints: Vec<EndpointArg>,
    pub(crate) bind: Vec<SocketAddr>,
}

/// Where an invitation goes.
enum To {
    Contact(String),
    Address(SocketAddr),
}

/// `invite`: invites, shows the progress, prints the outcome; returns its
/// exit code. Ctrl-C cancels.
pub(crate) async fn invite(store: &Store, args: InviteArgs) -> Result<u8, CliError> {
    let book = store.book()?;
    let to = if book.contacts.iter().any(|c| c.name == args.to) {
        To::Contact(args.to.clone())
    } else if let Ok(address) = args.to.parse() {
        To::Address(address)
    } else {
        return Err(StoreError::NoContact(format!(
            "{} (nor an address like 127.0.0.1:4000; see `peercollab contacts list`)",
            args.to
        ))
        .into());
    };
    if matches!(to, To::Address(_)) && !args.endpoints.is_empty() {
        return Err(CliError::Usage(
            "--endpoint names a contact's endpoints; to invite an address, give it instead of a \
             contact name"
                .into(),
        ));
    }
    let (app, app_name) = match book.app(&args.app) {
        Some(a) => (app_id(&a.id), a.name.clone()),
        None => (app_id(&args.app), args.app.clone()),
    };
    let data = match &args.data_file {
        Some(path) => std::fs::read(path).map_err(|e| {
            CliError::Usage(format!("cannot read --data-file {}: {e}", path.display()))
        })?,
        None => Vec::new(),
    };
    if data.len() > MAX_APP_DATA {
        return Err(CliError::Usage(format!(
            "--data-file holds {} bytes; an invitation carries at most {MAX_APP_DATA}",
            data.len()
        )));
    }
    let bind = if args.bind.is_empty() { default_binds(&to, &book) } else { args.bind.clone() };
    // Not listening: invitations arriving meanwhile are answered Busy by
    // the adapter (nobody takes them), not left to ring.
    let (live, _) = Live::bind(store, &bind).await?;
    let request = Request::new(app).message(args.message).data(data);
    let options = InviteOptions::default().expires_in(Duration::from_secs(args.expires));
    let (mut invitation, whom) = match &to {
        To::Contact(name) => {
            let contact = live.contact(name).ok_or_else(|| {
                CliError::Store(StoreError::Damaged {
                    path: store.dir().join("store.json"),
                    detail: format!("contact {name} could not be loaded"),
                })
            })?;
            let targets = targets(&live, contact, &args.endpoints)?;
            let at: Vec<String> = if targets.is_empty() {
                live.endpoint
                    .with_agent(|a, _| a.contact(contact).map(|c| c.addresses().to_vec()))
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            } else {
                targets.iter().map(|t| format!("{}@{}", t.endpoint.0, t.address)).collect()
            };
            if at.is_empty() {
                return Err(CliError::Usage(format!(
                    "{name}'s card names no address: give one with --endpoint ADDRESS"
                )));
            }
            let invitation = live
                .endpoint
                .start_invite_contact(contact, &targets, &request, options)
                .map_err(no_route)?;
            println!("connecting to {name} at {}…", at.join(", "));
            (invitation, name.clone())
        }
        To::Address(address) => {
            let invitation = live
                .endpoint
                .start_invite_endpoint(*address, &request, options)
                .map_err(no_route)?;
            println!("connecting to whoever answers at {address}…");
            (invitation, address.to_string())
        }
    };
    let _ = std::io::stdout().flush();
    let started = WallClock::now();
    let mut ringing_since = None;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + StdDuration::from_secs(5),
        StdDuration::from_secs(5),
    );
    let mut stop = ctrl_c();
    let mut cancelled = false;
    let answer: Answer = loop {
        tokio::select! {
            status = invitation.changed() => match status? {
                Status::Pending { ringing: true } if ringing_since.is_none() => {
                    ringing_since = Some(WallClock::now());
                    println!(
                        "ringing at {whom} ({app_name}) — {} s to answer",
                        args.expires.saturating_sub(started.elapsed().as_secs())
                    );
                }
                Status::Answered(answer) => break answer,
                _ => {}
            },
            _ = tick.tick() => {
                let elapsed = started.elapsed().as_secs();
                if ringing_since.is_some() {
                    println!("  ringing, {} s left", args.expires.saturating_sub(elapsed));
                } else {
                    println!("  connecting… ({elapsed} s)");
                }
            }
            _ = stop.changed(), if !cancelled => {
                cancelled = true;
                println!("\ncancelling…");
                if let Err(e) = invitation.cancel() {
                    println!("  could not cancel: {e}");
                }
            }
        }
    };
    let by = match (answer.identity(), answer.contact.and_then(|c| live.contact_name(c))) {
        (Some(identity), Some(name)) => format!("{name} ({})", identity.fingerprint()),
        (Some(identity), None) => format!("{} (not one of your contacts)", identity.fingerprint()),
        (None, _) => String::new(),
    };
    let mut line = outcome_word(answer.outcome);
    if !by.is_empty() {
        line.push_str(&format!(" — answered by {by}, identity verified"));
    }
    if !answer.reason.is_empty() {
        line.push_str(&format!(": {:?}", answer.reason));
    }
    println!("{line}");
    drop(invitation);
    live.endpoint.shutdown(StdDuration::from_millis(200)).await;
    Ok(outcome_code(answer.outcome))
}

/// An address this endpoint cannot send to is a usage error, not a
/// network failure.
fn no_route(e: peercollab_tokio::Error) -> CliError {
    match e {
        peercollab_tokio::Error::Io(io) => CliError::Usage(format!("{io} (see --bind)")),
        other => other.into(),
    }
}

/// The sockets `invite` binds when not told: an ephemeral port on IPv4 or
/// IPv6, whichever the target (or the contact's first address) is.
fn default_binds(to: &To, book: &Book) -> Vec<SocketAddr> {
    let first = match to {
        To::Address(a) => Some(*a),
        To::Contact(name) => book
            .contacts
            .iter()
            .find(|c| &c.name == name)
            .and_then(|c| parse_card(&c.card).ok())
            .and_then(|card| card.addresses().first().copied()),
    };
    match first {
        Some(SocketAddr::V6(_)) => vec![SocketAddr::from(([0u16; 8], 0))],
        _ => vec![SocketAddr::from(([0u8; 4], 0))],
    }
}

/// The targets `--endpoint` names: `ID@ADDR`, or `ADDR` for the contact's
/// k-th endpoint (in its card's order). Empty: the card's.
fn targets(live: &Live, contact: ContactId, args: &[EndpointArg]) -> Result<Vec<Target>, CliError> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let endpoints: Vec<EndpointId> = live
        .endpoint
        .with_agent(|a, _| a.contact(contact).map(|c| c.endpoints().collect()))
        .map_err(peercollab_tokio::Error::from)?;
    args.iter()
        .enumerate()
        .map(|(k, arg)| {
            let endpoint = match arg.id {
                Some(id) => EndpointId(id),
                None => *endpoints.get(k).ok_or_else(|| {
                    CliError::Usage(format!(
                        "the contact has {} endpoint(s); name the endpoint of --endpoint {} as \
                         ID@ADDRESS",
                        endpoints.len(),
                        arg.address
                    ))
                })?,
            };
            Ok(Target { endpoint, address: arg.address })
        })
        .collect()
}
