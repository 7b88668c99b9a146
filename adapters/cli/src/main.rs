//! `peercollab`: peer collaboration invitations from the command line.
#![forbid(unsafe_code)]

mod demo;
mod store;

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use peercollab_core::agent::{AgentConfig, ContactId, InviteOptions, Policy};
use peercollab_core::invite::{AppId, Outcome};
use peercollab_core::{Duration, Instant};
use peercollab_tokio::{Endpoint, IncomingInvitation, Request, Status};
use store::{PolicyName, Store, StoreError, StoredApp, StoredContact, app_id, hex, parse_card};

const EXIT_CODES: &str = "\
Exit codes:
   0  success (invite: Accepted)
   1  the demo saw an unexpected outcome
   2  bad arguments
   3  store error (no identity, damaged file, unknown contact or application)
   4  network error (cannot bind, no route)
   5  refused by the user (contacts add without confirmation)
  10  invite: Declined        11  Busy           12  Expired
  13  invite: Cancelled       14  Unreachable    15  NotRegistered
  16  invite: NotAccepted     17  Failed";

/// Peer collaboration invitations: an identity, contacts and applications in
/// a data directory; listen for invitations, invite, or watch a demo.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXIT_CODES)]
struct Cli {
    /// The data directory (default: $PEERCOLLAB_HOME, else
    /// $XDG_DATA_HOME/peercollab, else ~/.local/share/peercollab).
    #[arg(long, global = true)]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Four peers on loopback telling every story of an invitation.
    Demo,
    /// Creates an identity in the data directory.
    Init {
        /// Replace an existing identity.
        #[arg(long)]
        force: bool,
    },
    /// Prints my contact card and fingerprint.
    Card {
        /// My display name on the card.
        #[arg(long, default_value = "me")]
        name: String,
        /// Addresses to put on the card (where `listen` will be reached).
        #[arg(long = "address", required = true)]
        addresses: Vec<SocketAddr>,
    },
    /// Manages contacts.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Manages applications.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Sets whom invitations are accepted from.
    Policy {
        /// anyone, trusted (contacts only) or nobody.
        #[arg(value_enum)]
        policy: PolicyName,
    },
    /// Backs up or restores the identity.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Serves: shows each invitation and asks (or answers by itself).
    Listen {
        /// Addresses to listen on.
        #[arg(long = "bind", default_value = "0.0.0.0:4000")]
        bind: Vec<SocketAddr>,
        /// Answer every invitation this way without asking.
        #[arg(long, value_enum)]
        auto: Option<AutoAnswer>,
    },
    /// Invites a contact (by name) or whoever answers at an address, and
    /// waits for the answer; the exit code tells the outcome.
    Invite {
        /// A contact's name, or an address.
        to: String,
        /// The application: a name or 32 hex digits.
        #[arg(long)]
        app: String,
        /// A message shown to the invitee.
        #[arg(long, default_value = "")]
        message: String,
        /// A file whose bytes are the application data (at most 16 KiB).
        #[arg(long)]
        data_file: Option<PathBuf>,
        /// Seconds the invitee has to answer.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
        expires: u64,
        /// Local address to send from.
        #[arg(long, default_value = "0.0.0.0:0")]
        bind: SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
enum ContactsCommand {
    /// Adds a contact from its card text.
    Add {
        /// The card, as `peercollab card` prints it.
        card: String,
        /// Trust it (its invitations pass a trusted-only policy).
        #[arg(long)]
        trusted: bool,
        /// Do not ask to confirm the fingerprint.
        #[arg(long)]
        yes: bool,
        /// A local name (default: the card's).
        #[arg(long)]
        name: Option<String>,
    },
    /// Lists contacts.
    List,
    /// Removes a contact.
    Remove {
        /// Its name.
        name: String,
    },
    /// Marks a contact trusted (or untrusted).
    Trust {
        /// Its name.
        name: String,
        /// Mark it untrusted instead.
        #[arg(long)]
        untrusted: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AppsCommand {
    /// Registers an application by name or 32-hex-digit id.
    Register {
        /// The name (mapped to an id both peers agree on) or the id.
        app: String,
        /// Its display name (default: the name given).
        #[arg(long)]
        name: Option<String>,
        /// A command run when an invitation to it is accepted, with the
        /// launch information in PEERCOLLAB_* variables and the data on
        /// its standard input.
        #[arg(long)]
        run: Option<String>,
        /// Its own policy, overriding the global one.
        #[arg(long, value_enum)]
        policy: Option<PolicyName>,
    },
    /// Lists applications.
    List,
    /// Unregisters an application.
    Unregister {
        /// Its name or id.
        app: String,
    },
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Writes the identity (secret keys!) to FILE, owner-only.
    Export {
        /// Where to write it.
        file: PathBuf,
        /// Overwrite FILE.
        #[arg(long)]
        force: bool,
    },
    /// Replaces the identity with the one in FILE.
    Import {
        /// A file written by `identity export`.
        file: PathBuf,
        /// Replace an existing identity.
        #[arg(long)]
        force: bool,
    },
}

/// How `listen --auto` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum AutoAnswer {
    Accept,
    Decline,
    Busy,
}

/// What a command can fail with; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] peercollab_driver::Error),
    #[error("{0}")]
    Usage(String),
    #[error("not confirmed: {0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Store(_) => 3,
            CliError::Net(_) | CliError::Io(_) => 4,
            CliError::Refused(_) => 5,
        }
    }
}

/// The exit code of an invitation's outcome.
fn outcome_code(outcome: Outcome) -> u8 {
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

/// A readable name of an application id: the demo's names, else hex.
pub(crate) fn app_name(id: &AppId) -> String {
    ["demo chat"].iter().find(|n| app_id(n) == *id).map_or_else(|| hex(&id.0), |n| (*n).to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peercollab: cannot start: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("peercollab: {e}");
            ExitCode::from(e.code())
        }
    }
}

async fn run(cli: Cli) -> Result<u8, CliError> {
    let store = Store::locate(cli.home)?;
    match cli.command {
        Command::Demo => Ok(if demo::run().await? { 0 } else { 1 }),
        Command::Init { force } => {
            let identity = store.init(force, peercollab_driver::os_seed()?)?;
            println!(
                "identity {} created in {}",
                identity.identity().fingerprint(),
                store.dir().display()
            );
            Ok(0)
        }
        Command::Card { name, addresses } => {
            let identity = store.identity()?;
            let card = peercollab_core::card::ContactCard::issue(
                identity.secret(),
                &name,
                core::slice::from_ref(identity.certificate()),
                &addresses,
            )
            .map_err(|e| CliError::Usage(format!("cannot make a card: {e}")))?;
            println!("{card}");
            eprintln!("fingerprint {}", card.fingerprint());
            Ok(0)
        }
        Command::Contacts(c) => contacts(&store, c),
        Command::Apps(c) => apps(&store, c),
        Command::Policy { policy } => {
            store.update(|b| {
                b.policy = policy;
                Ok(())
            })?;
            Ok(0)
        }
        Command::Identity(IdentityCommand::Export { file, force }) => {
            if file.exists() && !force {
                return Err(StoreError::Exists(file).into());
            }
            let id = store.identity_file()?;
            store::write_atomic(&file, &serde_json::to_vec_pretty(&id).unwrap_or_default(), true)?;
            eprintln!("identity written to {} (keep it secret)", file.display());
            Ok(0)
        }
        Command::Identity(IdentityCommand::Import { file, force }) => {
            let bytes = std::fs::read(&file)?;
            let id: store::IdentityFile = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Damaged { path: file.clone(), detail: e.to_string() })?;
            store.import_identity(&id, force)?;
            println!("identity {} imported", store.identity()?.identity().fingerprint());
            Ok(0)
        }
        Command::Listen { bind, auto } => listen(&store, &bind, auto).await,
        Command::Invite { to, app, message, data_file, expires, bind } => {
            let data = match data_file {
                Some(path) => std::fs::read(path)?,
                None => Vec::new(),
            };
            invite(&store, &to, app_id(&app), message, data, expires, bind).await
        }
    }
}

fn contacts(store: &Store, command: ContactsCommand) -> Result<u8, CliError> {
    match command {
        ContactsCommand::Add { card, trusted, yes, name } => {
            let parsed = parse_card(&card)
                .map_err(|e| CliError::Usage(format!("not a contact card: {e}")))?;
            let name = name.unwrap_or_else(|| parsed.display_name().to_owned());
            println!("{name}: fingerprint {}", parsed.fingerprint());
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::Refused(
                        "check the fingerprint with its owner, then pass --yes (stdin is not a terminal)".into(),
                    ));
                }
                print!("Is this the fingerprint its owner sees? [y/N] ");
                std::io::stdout().flush()?;
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    return Err(CliError::Refused("fingerprint not confirmed".into()));
                }
            }
            let text = parsed.to_string();
            store.update(|b| {
                if b.contacts.iter().any(|c| c.name == name) {
                    return Err(StoreError::ContactExists(name.clone()));
                }
                b.contacts.push(StoredContact { name: name.clone(), card: text, trusted });
                Ok(())
            })?;
            println!("added {name} ({})", if trusted { "trusted" } else { "known" });
            Ok(0)
        }
        ContactsCommand::List => {
            for c in store.book()?.contacts {
                let fp = parse_card(&c.card)
                    .map(|card| card.fingerprint().to_string())
                    .unwrap_or_default();
                println!("{:<20} {fp} {}", c.name, if c.trusted { "trusted" } else { "known" });
            }
            Ok(0)
        }
        ContactsCommand::Remove { name } => {
            store.update(|b| {
                let before = b.contacts.len();
                b.contacts.retain(|c| c.name != name);
                if b.contacts.len() == before {
                    Err(StoreError::NoContact(name.clone()))
                } else {
                    Ok(())
                }
            })?;
            Ok(0)
        }
        ContactsCommand::Trust { name, untrusted } => {
            store.update(|b| {
                let c = b
                    .contacts
                    .iter_mut()
                    .find(|c| c.name == name)
                    .ok_or_else(|| StoreError::NoContact(name.clone()))?;
                c.trusted = !untrusted;
                Ok(())
            })?;
            Ok(0)
        }
    }
}

fn apps(store: &Store, command: AppsCommand) -> Result<u8, CliError> {
    match command {
        AppsCommand::Register { app, name, run, policy } => {
            let id = hex(&app_id(&app).0);
            let name = name.unwrap_or(app);
            store.update(|b| {
                b.apps.retain(|a| a.id != id);
                b.apps.push(StoredApp { id: id.clone(), name: name.clone(), policy, run });
                Ok(())
            })?;
            println!("registered {name} ({id})");
            Ok(0)
        }
        AppsCommand::List => {
            for a in store.book()?.apps {
                println!("{} {:<24} policy {:?} run {:?}", a.id, a.name, a.policy, a.run);
            }
            Ok(0)
        }
        AppsCommand::Unregister { app } => {
            let id = hex(&app_id(&app).0);
            store.update(|b| {
                let before = b.apps.len();
                b.apps.retain(|a| a.id != id && a.name != app);
                if b.apps.len() == before {
                    Err(StoreError::NoApplication(app.clone()))
                } else {
                    Ok(())
                }
            })?;
            Ok(0)
        }
    }
}

/// An endpoint with the store's identity, contacts, applications and
/// policy; the contacts' ids by name.
async fn endpoint(
    store: &Store,
    bind: &[SocketAddr],
) -> Result<(Endpoint, peercollab_tokio::Incoming, Vec<(String, ContactId)>), CliError> {
    let identity = store.identity()?;
    let book = store.book()?;
    let (endpoint, incoming) = Endpoint::builder(identity)
        .config(AgentConfig::with_policy(Policy::from(book.policy)))
        .bind(bind)
        .await?;
    let mut names = Vec::new();
    for c in &book.contacts {
        match parse_card(&c.card) {
            Ok(card) => names.push((c.name.clone(), endpoint.add_contact(&card, c.trust())?)),
            Err(e) => eprintln!("peercollab: contact {:?} skipped: {e}", c.name),
        }
    }
    for a in &book.apps {
        let id = app_id(&a.id);
        endpoint.register_application(id, &a.name, a.policy.map(Policy::from))?;
    }
    Ok((endpoint, incoming, names))
}

async fn listen(
    store: &Store,
    bind: &[SocketAddr],
    auto: Option<AutoAnswer>,
) -> Result<u8, CliError> {
    let (endpoint, mut incoming, _) = endpoint(store, bind).await?;
    println!("listening on {:?} as {}", endpoint.local_addrs(), endpoint.identity().fingerprint());
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(mut invitation) = next else { break };
        let info = invitation.info().clone();
        let who = info
            .contact
            .as_ref()
            .map_or("a stranger".to_owned(), |c| format!("{} ({:?})", c.1, c.2));
        let now = endpoint.with_agent(|_, now| now);
        println!(
            "invitation from {who} [{}] to {} — {:?}; {} s to answer",
            info.identity().fingerprint(),
            app_name(&info.app_id),
            info.message,
            info.expires_in(now).as_millis() / 1000
        );
        let answer = match auto {
            Some(a) => a,
            None => {
                print!("accept, decline or busy? [a/d/b] ");
                std::io::stdout().flush()?;
                let mut line = String::new();
                use tokio::io::AsyncBufReadExt;
                stdin.read_line(&mut line).await?;
                match line.trim() {
                    "a" | "accept" => AutoAnswer::Accept,
                    "b" | "busy" => AutoAnswer::Busy,
                    _ => AutoAnswer::Decline,
                }
            }
        };
        let result = match answer {
            AutoAnswer::Accept => invitation.accept(),
            AutoAnswer::Decline => invitation.decline("declined"),
            AutoAnswer::Busy => invitation.busy(Duration::from_secs(60)),
        };
        if let Err(e) = result {
            println!("  could not answer: {e}");
            continue;
        }
        let run = store
            .book()?
            .apps
            .into_iter()
            .find(|a| app_id(&a.id) == info.app_id)
            .and_then(|a| a.run);
        tokio::spawn(finish(invitation, run));
    }
    let report = endpoint.shutdown(std::time::Duration::from_secs(5)).await;
    println!("stopped: {report:?}");
    Ok(0)
}

/// Waits for an answered invitation's end; an accepted one launches the
/// application's command with the launch information.
async fn finish(mut invitation: IncomingInvitation, run: Option<String>) {
    let outcome = invitation.ended().await;
    println!("  ended {outcome:?}");
    let (Ok(Outcome::Accepted), Some(command)) = (outcome, run) else { return };
    let Ok(launch) = invitation.launch_info() else { return };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("PEERCOLLAB_INVITER", launch.identity().fingerprint().to_string())
        .env("PEERCOLLAB_CONTACT", launch.contact.as_ref().map_or(String::new(), |c| c.1.clone()))
        .env("PEERCOLLAB_APP_ID", hex(&launch.app_id.0))
        .env("PEERCOLLAB_MESSAGE", &launch.message)
        .stdin(std::process::Stdio::piped())
        .spawn();
    match child {
        Ok(mut child) => {
            if let Some(mut stdin) = child.stdin.take() {
                use tokio::io::AsyncWriteExt;
                let _ = stdin.write_all(&launch.data).await;
            }
            let status = child.wait().await;
            println!("  launched {command:?}: {status:?}");
        }
        Err(e) => println!("  cannot launch {command:?}: {e}"),
    }
}

async fn invite(
    store: &Store,
    to: &str,
    app: AppId,
    message: String,
    data: Vec<u8>,
    expires: u64,
    bind: SocketAddr,
) -> Result<u8, CliError> {
    let (endpoint, _incoming, names) = endpoint(store, &[bind]).await?;
    let request = Request::new(app).message(message).data(data);
    let options = InviteOptions::default().expires_in(Duration::from_secs(expires));
    let mut invitation = match (names.iter().find(|(n, _)| n == to), to.parse::<SocketAddr>()) {
        (Some((_, contact)), _) => {
            println!("connecting to {to}…");
            endpoint.start_invite_contact(*contact, &[], &request, options)?
        }
        (None, Ok(address)) => {
            println!("connecting to {address}…");
            endpoint.start_invite_endpoint(address, &request, options)?
        }
        (None, Err(_)) => return Err(StoreError::NoContact(to.into()).into()),
    };
    let started: Instant = endpoint.with_agent(|_, now| now);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    let answer = loop {
        tokio::select! {
            status = invitation.changed() => match status? {
                Status::Pending { ringing: true } => println!("ringing…"),
                Status::Answered(answer) => break answer,
                _ => {}
            },
            _ = tick.tick() => {
                let now: Instant = endpoint.with_agent(|_, now| now);
                let left = expires.saturating_sub(now.saturating_duration_since(started).as_millis() / 1000);
                if matches!(invitation.status(), Status::Pending { ringing: true }) {
                    println!("  {left} s left");
                }
            }
            _ = tokio::signal::ctrl_c() => {
                println!("cancelling…");
                let _ = invitation.cancel();
            }
        }
    };
    let by = answer.identity().map_or("nobody".into(), |i| i.fingerprint().to_string());
    println!(
        "{:?} (answered by {by}){}",
        answer.outcome,
        if answer.reason.is_empty() { String::new() } else { format!(": {}", answer.reason) }
    );
    Ok(outcome_code(answer.outcome))
}
