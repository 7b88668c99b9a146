//! The data directory: one identity, its contacts, applications and policy.
//!
//! Layout (`--home`, else `$PEERCOLLAB_HOME`, else `$XDG_DATA_HOME/peercollab`,
//! else `~/.local/share/peercollab`):
//!
//! - the directory itself is created owner-only (0700 on Unix);
//! - `identity.json` — the private key file, created owner-only (0600, set
//!   by the `open` call that creates it, never widened): JSON with
//!   `identity_secret` (the ed25519 secret, 64 hex digits),
//!   `static_secret` (the x25519 secret, 64 hex digits), `endpoint` (this
//!   device's endpoint id, a `u32`) and `serial` (its certificate's serial);
//! - `store.json` — JSON with `name` (my display name on cards, optional),
//!   `policy` (`"anyone"`, `"trusted"` or `"nobody"`), `contacts` (each
//!   `name`, `card` — the card text as `peercollab card` prints it —
//!   and `trusted`) and `apps` (each `id` — 32 hex digits —, `name`,
//!   `policy` — `null` for the global one — and `run` — `null` or a
//!   command line);
//! - `lock` — an empty file; an exclusive advisory lock on it (`flock` on
//!   Unix, `LockFileEx` on Windows, by `fs4`) is held around every
//!   read-modify-write of either file.
//!
//! **Atomic writes.** A write goes to a fresh temporary file in the same
//! directory (`.store.json.tmp-PID-N`), which is written, synced, and
//! renamed over the old file; then the directory is synced. A crash
//! leaves the old file or the new one, never half of one; a failed write
//! removes its temporary file.
//!
//! **Locking.** Writers (every command that changes the store) take the
//! lock, read the current file, change it and write it back before
//! releasing it, so two writers never lose each other's changes. Readers
//! do not lock: a rename is atomic, so they see a whole old or whole new
//! file. `listen` never writes the store; it re-reads `store.json` every
//! half second and applies what changed (contacts added, removed or
//! re-trusted, applications, policy) to the running endpoint, so
//! `contacts add` or `policy trusted` in another terminal takes effect
//! within half a second, without a restart.
//!
//! **Application ids.** An application is named by 32 hex digits (its
//! 16-byte id, taken as is) or by any other name, which maps to the first
//! 16 bytes of SHA-256(`"peercollab app\0"` ‖ name): two peers who
//! register the same name agree on the id.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use peercollab_core::HashDrbg;
use peercollab_core::agent::{Policy, Trust};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{EndpointId, IdentitySecret, LocalIdentity};
use peercollab_core::invite::AppId;
use peercollab_core::noise::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("no identity in {0}: run `peercollab init` first")]
    NoIdentity(PathBuf),
    #[error("an identity already exists in {0}: use --force to replace it")]
    IdentityExists(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is damaged ({detail}): nothing was changed; repair it or move it away")]
    Damaged { path: PathBuf, detail: String },
    #[error("no contact named {0:?}")]
    NoContact(String),
    #[error("a contact named {0:?} already exists")]
    ContactExists(String),
    #[error("no application {0}")]
    NoApplication(String),
    #[error("{0} exists: use --force to overwrite it")]
    Exists(PathBuf),
    #[error("no data directory: pass --home DIR or set PEERCOLLAB_HOME")]
    NoHome,
    #[error("this identity is already a contact, named {0:?}")]
    SameIdentity(String),
    #[error("that card is my own")]
    OwnCard,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// The stored identity (hex), in `identity.json`.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct IdentityFile {
    pub(crate) identity_secret: String,
    pub(crate) static_secret: String,
    pub(crate) endpoint: u32,
    pub(crate) serial: u64,
}

impl IdentityFile {
    fn generate(seed: [u8; 32]) -> Self {
        let mut rng = HashDrbg::new(seed);
        let secret = IdentitySecret::generate(&mut rng);
        let static_keys = KeyPair::generate(&mut rng);
        IdentityFile {
            identity_secret: hex(&secret.to_bytes()),
            static_secret: hex(&static_keys.secret_bytes()),
            endpoint: 1,
            serial: 1,
        }
    }

    /// The same identity on another device: a fresh static key for
    /// `endpoint`, certified by the identity.
    pub(crate) fn another_endpoint(&self, endpoint: u32, seed: [u8; 32]) -> Self {
        let static_keys = KeyPair::generate(&mut HashDrbg::new(seed));
        IdentityFile {
            identity_secret: self.identity_secret.clone(),
            static_secret: hex(&static_keys.secret_bytes()),
            endpoint,
            serial: 1,
        }
    }

    pub(crate) fn load(&self, path: &Path) -> Result<LocalIdentity, StoreError> {
        let damaged =
            |detail: &str| StoreError::Damaged { path: path.to_owned(), detail: detail.into() };
        let secret = unhex32(&self.identity_secret).ok_or_else(|| damaged("identity secret"))?;
        let static_secret = unhex32(&self.static_secret).ok_or_else(|| damaged("static secret"))?;
        let secret =
            IdentitySecret::from_bytes(&secret).ok_or_else(|| damaged("identity secret"))?;
        Ok(LocalIdentity::new(
            secret,
            KeyPair::from_secret_bytes(static_secret),
            EndpointId(self.endpoint),
            self.serial,
        ))
    }
}

/// A contact, as stored.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredContact {
    pub(crate) name: String,
    pub(crate) card: String,
    pub(crate) trusted: bool,
}

impl StoredContact {
    pub(crate) fn trust(&self) -> Trust {
        if self.trusted { Trust::Trusted } else { Trust::Known }
    }
}

/// An application, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredApp {
    /// 32 hex characters.
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) policy: Option<PolicyName>,
    /// Run with the launch information when an invitation is accepted.
    pub(crate) run: Option<String>,
}

/// A policy, by the name the command line uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PolicyName {
    /// Invitations from anyone.
    Anyone,
    /// Only from trusted contacts.
    Trusted,
    /// From nobody.
    Nobody,
}

impl PolicyName {
    /// As the command line spells it.
    pub(crate) fn word(self) -> &'static str {
        match self {
            PolicyName::Anyone => "anyone",
            PolicyName::Trusted => "trusted",
            PolicyName::Nobody => "nobody",
        }
    }
}

impl From<PolicyName> for Policy {
    fn from(p: PolicyName) -> Policy {
        match p {
            PolicyName::Anyone => Policy::Anyone,
            PolicyName::Trusted => Policy::TrustedOnly,
            PolicyName::Nobody => Policy::Nobody,
        }
    }
}

/// `store.json`.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Book {
    /// My display name on cards.
    #[serde(default)]
    pub(crate) name: Option<String>,
    pub(crate) policy: PolicyName,
    #[serde(default)]
    pub(crate) contacts: Vec<StoredContact>,
    #[serde(default)]
    pub(crate) apps: Vec<StoredApp>,
}

impl Default for Book {
    fn default() -> Self {
        Book { name: None, policy: PolicyName::Anyone, contacts: Vec::new(), apps: Vec::new() }
    }
}

impl Book {
    /// The application registered under `name_or_id` (its id, or the name
    /// it was registered by or displays).
    pub(crate) fn app(&self, name_or_id: &str) -> Option<&StoredApp> {
        let id = hex(&app_id(name_or_id).0);
        self.apps
            .iter()
            .find(|a| a.id == id)
            .or_else(|| self.apps.iter().find(|a| a.name == name_or_id))
    }

    /// The display name of an application id: its registration's, else hex.
    pub(crate) fn app_name(&self, id: &AppId) -> String {
        let hex = hex(&id.0);
        self.apps.iter().find(|a| a.id == hex).map_or(hex, |a| a.name.clone())
    }
}

/// The application id for a name or a 32-hex-digit id: a name maps to the
/// first 16 bytes of SHA-256("peercollab app\0" ‖ name), so two peers that
/// register the same name agree on the id.
pub(crate) fn app_id(name_or_hex: &str) -> AppId {
    if name_or_hex.len() == 32
        && let Some(bytes) = unhex(name_or_hex)
        && let Ok(id) = <[u8; 16]>::try_from(bytes.as_slice())
    {
        return AppId(id);
    }
    let digest = Sha256::new()
        .chain_update(b"peercollab app\0")
        .chain_update(name_or_hex.as_bytes())
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    AppId(id)
}

/// The data directory.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// The directory named by `--home`, the environment, or the platform.
    pub(crate) fn locate(home: Option<PathBuf>) -> Result<Store, StoreError> {
        let dir = home
            .or_else(|| std::env::var_os("PEERCOLLAB_HOME").map(PathBuf::from))
            .or_else(|| {
                std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("peercollab"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/peercollab"))
            })
            .ok_or(StoreError::NoHome)?;
        Ok(Store { dir })
    }

    /// The store in `dir`.
    pub(crate) fn at(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn identity_path(&self) -> PathBuf {
        self.dir.join("identity.json")
    }

    fn book_path(&self) -> PathBuf {
        self.dir.join("store.json")
    }

    /// Holds the store's lock until dropped.
    pub(crate) fn lock(&self) -> Result<File, StoreError> {
        create_private_dir(&self.dir)?;
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock_exclusive().map_err(io(&path))?;
        Ok(file)
    }

    /// Creates a fresh identity (refused if one exists, unless `force`),
    /// with my display name if given.
    pub(crate) fn init(
        &self,
        force: bool,
        name: Option<&str>,
        seed: [u8; 32],
    ) -> Result<LocalIdentity, StoreError> {
        let _lock = self.lock()?;
        let path = self.identity_path();
        if path.exists() && !force {
            return Err(StoreError::IdentityExists(self.dir.clone()));
        }
        let file = IdentityFile::generate(seed);
        let identity = file.load(&path)?;
        write_atomic(&path, &to_json(&file), true)?;
        let mut book = self.book()?;
        if name.is_some() {
            book.name = name.map(str::to_owned);
        }
        write_atomic(&self.book_path(), &to_json(&book), false)?;
        Ok(identity)
    }

    pub(crate) fn identity_file(&self) -> Result<IdentityFile, StoreError> {
        let path = self.identity_path();
        if !path.exists() {
            return Err(StoreError::NoIdentity(self.dir.clone()));
        }
        read_json(&path)
    }

    pub(crate) fn identity(&self) -> Result<LocalIdentity, StoreError> {
        self.identity_file()?.load(&self.identity_path())
    }

    /// Replaces the identity with `file` (refused if one exists, unless
    /// `force`).
    pub(crate) fn import_identity(
        &self,
        file: &IdentityFile,
        force: bool,
    ) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let path = self.identity_path();
        file.load(&path)?;
        if path.exists() && !force {
            return Err(StoreError::IdentityExists(self.dir.clone()));
        }
        write_atomic(&path, &to_json(file), true)
    }

    pub(crate) fn book(&self) -> Result<Book, StoreError> {
        Ok(self.book_and_bytes()?.0)
    }

    /// The book and the bytes it was read from (empty if there is no file).
    pub(crate) fn book_and_bytes(&self) -> Result<(Book, Vec<u8>), StoreError> {
        let path = self.book_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Book::default(), Vec::new()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let book = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Damaged { path: path.clone(), detail: e.to_string() })?;
        Ok((book, bytes))
    }

    /// Reads, changes and writes the book under the lock.
    pub(crate) fn update<R>(
        &self,
        f: impl FnOnce(&mut Book) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _lock = self.lock()?;
        let mut book = self.book()?;
        let r = f(&mut book)?;
        write_atomic(&self.book_path(), &to_json(&book), false)?;
        Ok(r)
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Creates `dir` (and its parents), owner-only on Unix.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io(dir))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StoreError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Damaged { path: path.to_owned(), detail: e.to_string() })
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced,
/// renamed over it, the directory synced. `private`: owner-only from the
/// moment the file exists.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), StoreError> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let _ = std::fs::remove_file(&tmp);
    let mut file = options.open(&tmp).map_err(io(&tmp))?;
    let result = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    sync_dir(dir).map_err(io(dir))
}

/// Makes a rename in `dir` durable (Unix; elsewhere the rename is).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    return File::open(dir)?.sync_all();
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    unhex(s)?.try_into().ok()
}

/// The card's text if it parses.
pub(crate) fn parse_card(text: &str) -> Result<ContactCard, peercollab_core::card::CardError> {
    ContactCard::parse(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("peercollab-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn an_identity_round_trips_and_is_owner_only() {
        let dir = temp("identity");
        let store = Store { dir: dir.clone() };
        let made = store.init(false, Some("me"), [7; 32]).unwrap();
        assert_eq!(store.identity().unwrap().identity(), made.identity());
        assert!(matches!(store.init(false, None, [8; 32]), Err(StoreError::IdentityExists(_))));
        assert_eq!(store.book().unwrap().name.as_deref(), Some("me"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("identity.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(leftovers(&dir), 0, "temporary files left behind");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn leftovers(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .count()
    }

    #[test]
    fn an_atomic_write_replaces_the_whole_file_or_leaves_it_alone() {
        let dir = temp("atomic");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        write_atomic(&file, b"old", true).unwrap();
        write_atomic(&file, b"new and longer", true).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"new and longer");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "a rewrite stays owner-only");
        }
        // A rename that fails (over a non-empty directory) leaves the
        // target as it was and no temporary file.
        let blocked = dir.join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(matches!(write_atomic(&blocked, b"x", false), Err(StoreError::Io { .. })));
        assert!(blocked.join("inside").is_dir());
        assert_eq!(leftovers(&dir), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_damaged_store_is_reported_and_left_as_it_is() {
        let dir = temp("damaged");
        let store = Store { dir: dir.clone() };
        store.init(false, None, [1; 32]).unwrap();
        std::fs::write(dir.join("store.json"), b"{ not json").unwrap();
        assert!(matches!(store.book(), Err(StoreError::Damaged { .. })));
        assert!(matches!(store.update(|_| Ok(())), Err(StoreError::Damaged { .. })));
        assert_eq!(std::fs::read(dir.join("store.json")).unwrap(), b"{ not json");
        std::fs::write(dir.join("identity.json"), b"{}").unwrap();
        assert!(matches!(store.identity(), Err(StoreError::Damaged { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_older_store_without_a_name_still_reads_and_apps_are_found_by_name_or_id() {
        let book: Book = serde_json::from_str(
            r#"{"policy":"trusted","contacts":[],"apps":[{"id":"00000000000000000000000000000000","name":"zero","policy":null,"run":null}]}"#,
        )
        .unwrap();
        assert_eq!(book.name, None);
        assert_eq!(book.policy, PolicyName::Trusted);
        assert!(book.app("zero").is_some());
        assert!(book.app("00000000000000000000000000000000").is_some());
        assert_eq!(book.app_name(&AppId([0; 16])), "zero");
        assert!(book.app("chess").is_none());
    }

    #[test]
    fn another_endpoint_keeps_the_identity_with_a_new_static_key() {
        let first = IdentityFile::generate([3; 32]);
        let second = first.another_endpoint(2, [4; 32]);
        let p = Path::new("x");
        let (a, b) = (first.load(p).unwrap(), second.load(p).unwrap());
        assert_eq!(a.identity(), b.identity());
        assert_ne!(a.certificate().static_key(), b.certificate().static_key());
        assert_eq!(b.certificate().endpoint(), EndpointId(2));
    }

    #[test]
    fn an_application_name_maps_to_the_same_id_everywhere_and_hex_is_taken_as_is() {
        assert_eq!(app_id("chess"), app_id("chess"));
        assert_ne!(app_id("chess"), app_id("go"));
        assert_eq!(app_id("000102030405060708090a0b0c0d0e0f").0, core::array::from_fn(|i| i as u8));
    }

    #[test]
    fn updates_under_the_lock_keep_every_write() {
        let dir = temp("update");
        let store = Store { dir: dir.clone() };
        let threads: Vec<_> = (0..4)
            .map(|k| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let store = Store { dir };
                    for i in 0..5 {
                        store
                            .update(|b| {
                                b.apps.push(StoredApp {
                                    id: hex(&[k; 16]),
                                    name: format!("{k}-{i}"),
                                    policy: None,
                                    run: None,
                                });
                                Ok(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.book().unwrap().apps.len(), 20, "no write lost");
        let _ = std::fs::remove_dir_all(dir);
    }
}
