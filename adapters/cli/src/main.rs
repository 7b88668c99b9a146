//! `peercollab`: peer collaboration invitations from the command line.
//!
//! An identity, contacts, applications and a policy live in a data
//! directory (the store: `store.rs` documents its files, atomic writes and
//! locking); `listen` serves invitations and `invite` sends one, on the
//! tokio adapter (`net.rs`); `demo` plays every kind of invitation between
//! peers on loopback (`demo.rs`).
#![forbid(unsafe_code)]

/// `println!` that ignores a closed standard output (`peercollab contacts
/// list | head -1`, a listener whose terminal went away) instead of
/// panicking; it shadows the standard one in every module below.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` likewise.
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod demo;
mod net;
mod store;

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::LocalIdentity;
use store::{PolicyName, Store, StoreError, StoredApp, StoredContact, app_id, hex, parse_card};

use crate::net::{AutoAnswer, EndpointArg, InviteArgs};

const EXIT_CODES: &str = "\
Exit codes:
   0  success; invite: Accepted
   1  demo: a story ended otherwise than expected
   2  bad arguments or input (usage, a malformed card, address or file)
   3  store: no identity, a damaged file, an unknown contact or
      application, or something exists and --force was not given
   4  network: a socket cannot be bound, no entropy
   5  not confirmed: contacts add without --yes and no terminal, or `no`
   6  other input/output error (the terminal)
  invite's outcome:
  10  Declined         11  Busy (retry later)   12  Expired
  13  Cancelled        14  Unreachable          15  NotRegistered (the
  16  NotAccepted (the invitee's policy)            invitee lacks the app)
  17  Failed (another identity answered, a revoked certificate)

Data directory: --home, else $PEERCOLLAB_HOME, else $XDG_DATA_HOME/peercollab,
else ~/.local/share/peercollab.";

const INVITE_HELP: &str = "\
Exit codes: 0 Accepted, 10 Declined, 11 Busy, 12 Expired, 13 Cancelled
(Ctrl-C cancels), 14 Unreachable, 15 NotRegistered, 16 NotAccepted,
17 Failed; 2 bad arguments, 3 store, 4 network.";

const LISTEN_HELP: &str = "\
An application registered with --run COMMAND is launched, by the shell,
when an invitation to it is accepted, with the launch information in its
environment: PEERCOLLAB_INVITER (the verified identity fingerprint),
PEERCOLLAB_INVITER_KEY (the identity key, hex), PEERCOLLAB_CONTACT (the
contact name, empty for a stranger), PEERCOLLAB_TRUST (trusted, known or
stranger), PEERCOLLAB_ADDRESS, PEERCOLLAB_APP_ID (hex), PEERCOLLAB_APP_NAME,
PEERCOLLAB_MESSAGE, PEERCOLLAB_DATA_LEN; the application data on its
standard input. The store is re-read every half second: contacts, trust,
applications and policy changed in another terminal apply at once.";

/// Peer collaboration invitations: an identity, contacts and applications in
/// a data directory; listen for invitations, invite, or watch a demo.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXIT_CODES)]
struct Cli {
    /// The data directory (default: $PEERCOLLAB_HOME, else
    /// $XDG_DATA_HOME/peercollab, else ~/.local/share/peercollab).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Two peers (and a stranger) on loopback, in temporary data
    /// directories, telling every story of an invitation.
    Demo,
    /// Creates an identity in the data directory.
    Init {
        /// My display name on my cards.
        #[arg(long)]
        name: Option<String>,
        /// Replace an existing identity (the old one is lost: export it
        /// first).
        #[arg(long)]
        force: bool,
    },
    /// Prints my contact card (on stdout) and its fingerprint (on stderr).
    Card {
        /// My display name on the card (default: the one given to init).
        #[arg(long)]
        name: Option<String>,
        /// Where `listen` will be reached (up to 4; the k-th address
        /// reaches the k-th endpoint).
        #[arg(long = "address", value_name = "ADDR")]
        addresses: Vec<SocketAddr>,
        /// Another card of mine (another device: see `identity import
        /// --as-endpoint`): its endpoints and addresses are added, so one
        /// card invites every device.
        #[arg(long, value_name = "CARD")]
        merge: Vec<String>,
    },
    /// Manages contacts.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Manages applications.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Sets whom invitations are accepted from (prints it without an
    /// argument).
    Policy {
        /// anyone, trusted (trusted contacts only) or nobody.
        #[arg(value_enum)]
        policy: Option<PolicyName>,
    },
    /// Backs up or restores the identity.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Serves: shows each invitation and asks accept / decline / busy (or
    /// answers by itself); Ctrl-C stops.
    #[command(after_help = LISTEN_HELP)]
    Listen {
        /// Addresses to listen on.
        #[arg(long = "bind", value_name = "ADDR", default_value = "0.0.0.0:4000")]
        bind: Vec<SocketAddr>,
        /// Answer every invitation this way without asking.
        #[arg(long, value_enum)]
        auto: Option<AutoAnswer>,
    },
    /// Invites a contact (by name) or whoever answers at an address, shows
    /// the progress and exits with a code per outcome; Ctrl-C cancels.
    #[command(after_help = INVITE_HELP)]
    Invite {
        /// A contact's name, or an address (an endpoint invitation: whoever
        /// answers there is identified).
        to: String,
        /// The application: a registered name, any name (mapped to an id
        /// as `apps register` does) or 32 hex digits.
        #[arg(long)]
        app: String,
        /// A message shown to the invitee (up to 255 characters).
        #[arg(long, default_value = "")]
        message: String,
        /// A file whose bytes are the application data (at most 16 KiB).
        #[arg(long, value_name = "FILE")]
        data_file: Option<PathBuf>,
        /// Seconds the invitee has to answer.
        #[arg(long, value_name = "SECS", default_value_t = 300,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        expires: u64,
        /// Invite the contact at this address instead of its card's: ADDR
        /// for its endpoints in card order, or ID@ADDR (repeatable: several
        /// endpoints at once, the first to accept wins).
        #[arg(long = "endpoint", value_name = "[ID@]ADDR", value_parser = net::parse_endpoint)]
        endpoints: Vec<EndpointArg>,
        /// Local addresses to send from (default: an ephemeral port).
        #[arg(long = "bind", value_name = "ADDR")]
        bind: Vec<SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
enum ContactsCommand {
    /// Adds a contact from its card text, after its fingerprint is
    /// confirmed.
    Add {
        /// The card, as `peercollab card` prints it.
        card: String,
        /// Trust it (its invitations pass a trusted-only policy).
        #[arg(long)]
        trusted: bool,
        /// Do not ask to confirm the fingerprint (check it with its owner
        /// first!).
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
        /// Mark it untrusted (known) instead.
        #[arg(long)]
        untrusted: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AppsCommand {
    /// Registers (or re-registers) an application by name or 32-hex-digit
    /// id; a name maps to the first 16 bytes of SHA-256("peercollab
    /// app\0" ‖ name), so peers who register the same name agree.
    Register {
        /// The name or the id.
        app: String,
        /// Its display name (default: the name given).
        #[arg(long)]
        name: Option<String>,
        /// A command the shell runs when an invitation to it is accepted,
        /// with the launch information in PEERCOLLAB_* variables and the
        /// data on its standard input (see `listen --help`).
        #[arg(long, value_name = "COMMAND")]
        run: Option<String>,
        /// Its own policy, instead of the global one.
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
    /// Writes the identity (secret keys!) to FILE, owner-only, or to
    /// standard output.
    Export {
        /// Where to write it.
        file: Option<PathBuf>,
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
        /// Import the identity as another device: a fresh static key for
        /// endpoint N (each device of one identity needs its own).
        #[arg(long, value_name = "N")]
        as_endpoint: Option<u32>,
    },
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
        use peercollab_driver::Error as E;
        match self {
            CliError::Usage(_) | CliError::Net(E::Agent(_) | E::Card(_)) => 2,
            CliError::Store(_) => 3,
            CliError::Net(_) => 4,
            CliError::Refused(_) => 5,
            CliError::Io(_) => 6,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peercollab: cannot start: {e}");
            return ExitCode::from(6);
        }
    };
    let result = runtime.block_on(run(cli));
    // Launched commands and the standard-input thread are not waited for.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("peercollab: {e}");
            ExitCode::from(e.code())
        }
    }
}

async fn run(cli: Cli) -> Result<u8, CliError> {
    if let Command::Demo = cli.command {
        return Ok(if demo::run().await? { 0 } else { 1 });
    }
    let store = Store::locate(cli.home)?;
    match cli.command {
        Command::Demo => Ok(0),
        Command::Init { name, force } => {
            let identity = init(&store, name.as_deref(), force)?;
            println!(
                "identity {} created in {}",
                identity.identity().fingerprint(),
                store.dir().display()
            );
            Ok(0)
        }
        Command::Card { name, addresses, merge } => {
            let card = card(&store, name, &addresses, &merge)?;
            println!("{card}");
            eprintln!("fingerprint {}", card.fingerprint());
            Ok(0)
        }
        Command::Contacts(c) => contacts(&store, c),
        Command::Apps(c) => apps(&store, c),
        Command::Policy { policy: None } => {
            println!("{}", store.book()?.policy.word());
            Ok(0)
        }
        Command::Policy { policy: Some(policy) } => {
            set_policy(&store, policy)?;
            println!("policy: {}", policy.word());
            Ok(0)
        }
        Command::Identity(c) => identity(&store, c),
        Command::Listen { bind, auto } => net::listen(&store, &bind, auto).await,
        Command::Invite { to, app, message, data_file, expires, endpoints, bind } => {
            let args = InviteArgs { to, app, message, data_file, expires, endpoints, bind };
            net::invite(&store, args).await
        }
    }
}

/// Names are shown to people: the rules of contact-card names.
fn check_name(what: &str, name: &str) -> Result<(), CliError> {
    let bidi = |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || bidi(c)) {
        return Err(CliError::Usage(format!(
            "{what} {name:?}: a name has 1 to 64 bytes and no control characters"
        )));
    }
    Ok(())
}

/// `init`.
pub(crate) fn init(
    store: &Store,
    name: Option<&str>,
    force: bool,
) -> Result<LocalIdentity, CliError> {
    if let Some(name) = name {
        check_name("name", name)?;
    }
    Ok(store.init(force, name, peercollab_driver::os_seed()?)?)
}

/// `card`: my card, with `name` (else the stored one, else `$USER`, else
/// "me"), `addresses`, and the endpoints and addresses of `merge`.
pub(crate) fn card(
    store: &Store,
    name: Option<String>,
    addresses: &[SocketAddr],
    merge: &[String],
) -> Result<ContactCard, CliError> {
    let identity = store.identity()?;
    let name = name
        .or(store.book()?.name)
        .or_else(|| std::env::var("USER").ok().filter(|n| check_name("", n).is_ok()))
        .unwrap_or_else(|| "me".to_owned());
    check_name("name", &name)?;
    let mut certificates = vec![*identity.certificate()];
    let mut addresses = addresses.to_vec();
    for text in merge {
        let other = parse_card(text)
            .map_err(|e| CliError::Usage(format!("--merge: not a contact card: {e}")))?;
        if *other.identity() != identity.identity() {
            return Err(CliError::Usage("--merge: that card is another identity's".into()));
        }
        for c in other.certificates() {
            if certificates.iter().all(|mine| mine.endpoint() != c.endpoint()) {
                certificates.push(*c);
            }
        }
        for a in other.addresses() {
            if !addresses.contains(a) {
                addresses.push(*a);
            }
        }
    }
    ContactCard::issue(identity.secret(), &name, &certificates, &addresses)
        .map_err(|e| CliError::Usage(format!("cannot make a card: {e}")))
}

/// Adds a contact whose fingerprint was confirmed; its local name.
pub(crate) fn add_contact(
    store: &Store,
    card: &ContactCard,
    trusted: bool,
    name: Option<String>,
) -> Result<String, CliError> {
    let name = name.unwrap_or_else(|| card.display_name().to_owned());
    check_name("contact name", &name)?;
    if *card.identity() == store.identity()?.identity() {
        return Err(StoreError::OwnCard.into());
    }
    let text = card.to_string();
    store.update(|b| {
        if b.contacts.iter().any(|c| c.name == name) {
            return Err(StoreError::ContactExists(name.clone()));
        }
        if let Some(c) = b
            .contacts
            .iter()
            .find(|c| parse_card(&c.card).is_ok_and(|other| other.identity() == card.identity()))
        {
            return Err(StoreError::SameIdentity(c.name.clone()));
        }
        b.contacts.push(StoredContact { name: name.clone(), card: text, trusted });
        Ok(())
    })?;
    Ok(name)
}

/// Changes a contact's trust.
pub(crate) fn trust(store: &Store, name: &str, trusted: bool) -> Result<(), CliError> {
    store.update(|b| {
        let c = b
            .contacts
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| StoreError::NoContact(name.to_owned()))?;
        c.trusted = trusted;
        Ok(())
    })?;
    Ok(())
}

/// Removes a contact.
pub(crate) fn remove_contact(store: &Store, name: &str) -> Result<(), CliError> {
    store.update(|b| {
        let before = b.contacts.len();
        b.contacts.retain(|c| c.name != name);
        if b.contacts.len() == before {
            Err(StoreError::NoContact(name.to_owned()))
        } else {
            Ok(())
        }
    })?;
    Ok(())
}

/// `policy`.
pub(crate) fn set_policy(store: &Store, policy: PolicyName) -> Result<(), CliError> {
    store.update(|b| {
        b.policy = policy;
        Ok(())
    })?;
    Ok(())
}

/// `apps register`: the stored registration.
pub(crate) fn register_app(
    store: &Store,
    app: &str,
    name: Option<String>,
    run: Option<String>,
    policy: Option<PolicyName>,
) -> Result<StoredApp, CliError> {
    let id = hex(&app_id(app).0);
    let name = name.unwrap_or_else(|| app.to_owned());
    check_name("application name", &name)?;
    if run.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(CliError::Usage("--run needs a command".into()));
    }
    let registration = StoredApp { id: id.clone(), name, policy, run };
    store.update(|b| {
        b.apps.retain(|a| a.id != id);
        b.apps.push(registration.clone());
        Ok(())
    })?;
    Ok(registration)
}

fn contacts(store: &Store, command: ContactsCommand) -> Result<u8, CliError> {
    match command {
        ContactsCommand::Add { card, trusted, yes, name } => {
            let parsed = parse_card(&card).map_err(|e| {
                CliError::Usage(format!(
                    "not a contact card ({e}): paste the whole peercollab1:… text `peercollab \
                     card` printed, in quotes"
                ))
            })?;
            let shown = name.as_deref().unwrap_or(parsed.display_name());
            println!("{shown}: fingerprint {}", parsed.fingerprint());
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::Refused(
                        "standard input is not a terminal: check the fingerprint with its owner, \
                         then run again with --yes"
                            .into(),
                    ));
                }
                print!("Is this the fingerprint its owner sees? [y/N] ");
                std::io::stdout().flush()?;
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    return Err(CliError::Refused(
                        "fingerprint not confirmed; nothing added".into(),
                    ));
                }
            }
            let name = add_contact(store, &parsed, trusted, name)?;
            println!("added {name} ({})", if trusted { "trusted" } else { "known, not trusted" });
            Ok(0)
        }
        ContactsCommand::List => {
            for c in store.book()?.contacts {
                let (fp, addrs) = match parse_card(&c.card) {
                    Ok(card) => (
                        card.fingerprint().to_string(),
                        card.addresses().iter().map(ToString::to_string).collect::<Vec<_>>(),
                    ),
                    Err(e) => (format!("(damaged card: {e})"), Vec::new()),
                };
                println!(
                    "{:<20} {fp}  {:<8} {}",
                    c.name,
                    if c.trusted { "trusted" } else { "known" },
                    addrs.join(" ")
                );
            }
            Ok(0)
        }
        ContactsCommand::Remove { name } => {
            remove_contact(store, &name)?;
            println!("removed {name}");
            Ok(0)
        }
        ContactsCommand::Trust { name, untrusted } => {
            trust(store, &name, !untrusted)?;
            println!("{name} is {}", if untrusted { "known, not trusted" } else { "trusted" });
            Ok(0)
        }
    }
}

fn apps(store: &Store, command: AppsCommand) -> Result<u8, CliError> {
    match command {
        AppsCommand::Register { app, name, run, policy } => {
            let a = register_app(store, &app, name, run, policy)?;
            println!("registered {} ({})", a.name, a.id);
            Ok(0)
        }
        AppsCommand::List => {
            for a in store.book()?.apps {
                println!(
                    "{} {:<24} policy {:<8} {}",
                    a.id,
                    a.name,
                    a.policy.map_or("(global)", PolicyName::word),
                    a.run.map_or(String::new(), |r| format!("run {r:?}"))
                );
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
            println!("unregistered {app}");
            Ok(0)
        }
    }
}

fn identity(store: &Store, command: IdentityCommand) -> Result<u8, CliError> {
    match command {
        IdentityCommand::Export { file, force } => {
            let id = store.identity_file()?;
            let json = store::to_json(&id);
            match file {
                Some(file) => {
                    if file.exists() && !force {
                        return Err(StoreError::Exists(file).into());
                    }
                    store::write_atomic(&file, &json, true)?;
                    eprintln!("identity written to {} (secret keys: keep it safe)", file.display());
                }
                None => {
                    std::io::stdout().write_all(&json)?;
                    eprintln!("(secret keys: keep them safe)");
                }
            }
            Ok(0)
        }
        IdentityCommand::Import { file, force, as_endpoint } => {
            let bytes = std::fs::read(&file)
                .map_err(|source| StoreError::Io { path: file.clone(), source })?;
            let mut id: store::IdentityFile = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Damaged { path: file.clone(), detail: e.to_string() })?;
            if let Some(endpoint) = as_endpoint {
                id = id.another_endpoint(endpoint, peercollab_driver::os_seed()?);
            }
            store.import_identity(&id, force)?;
            let identity = store.identity()?;
            println!(
                "identity {} imported (endpoint {})",
                identity.identity().fingerprint(),
                identity.certificate().endpoint().0
            );
            Ok(0)
        }
    }
}
