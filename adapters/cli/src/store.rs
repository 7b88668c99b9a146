//! The data directory: one identity, its contacts, applications and policy.
//!
//! Layout (`--home`, else `$PEERCOLLAB_HOME`, else `$XDG_DATA_HOME/peercollab`,
//! else `~/.local/share/peercollab`):
//!
//! - `identity.json` — the private key file, created owner-only (0600):
//!   the ed25519 identity secret, the x25519 static secret (hex), the
//!   endpoint id and the certificate serial;
//! - `store.json` — contacts (card text, trust, name), applications (id,
//!   display name, policy, command to run on accept) and the global policy;
//! - `lock` — an advisory lock held around every read-modify-write, so a
//!   running `listen` and a `contacts add` never lose each other's writes.
//!
//! Every write is atomic: a temporary file in the same directory is
//! written, synced and renamed over the old one, and the directory is
//! synced, so a crash leaves the old file or the new one, never half of
//! one. `listen` re-reads `store.json` before each invitation it screens.

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
    #[error("{path} is damaged: {detail}")]
    Damaged { path: PathBuf, detail: String },
    #[error("no contact named {0:?}")]
    NoContact(String),
    #[error("a contact named {0:?} already exists")]
    ContactExists(String),
    #[error("no application {0}")]
    NoApplication(String),
    #[error("{0} exists: use --force to overwrite it")]
    Exists(PathBuf),
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
#[derive(Clone, Serialize, Deserialize)]
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
    pub(crate) policy: PolicyName,
    pub(crate) contacts: Vec<StoredContact>,
    pub(crate) apps: Vec<StoredApp>,
}

impl Default for Book {
    fn default() -> Self {
        Book { policy: PolicyName::Anyone, contacts: Vec::new(), apps: Vec::new() }
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
            .ok_or_else(|| StoreError::Damaged {
                path: PathBuf::from("~"),
                detail: "no home directory: pass --home".into(),
            })?;
        Ok(Store { dir })
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
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
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

    /// Creates a fresh identity (refused if one exists, unless `force`).
    pub(crate) fn init(&self, force: bool, seed: [u8; 32]) -> Result<LocalIdentity, StoreError> {
        let _lock = self.lock()?;
        let path = self.identity_path();
        if path.exists() && !force {
            return Err(StoreError::IdentityExists(self.dir.clone()));
        }
        let file = IdentityFile::generate(seed);
        write_atomic(&path, &to_json(&file), true)?;
        if !self.book_path().exists() {
            write_atomic(&self.book_path(), &to_json(&Book::default()), false)?;
        }
        file.load(&path)
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
        let path = self.book_path();
        if !path.exists() {
            return Ok(Book::default());
        }
        read_json(&path)
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

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
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
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
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
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
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
        let made = store.init(false, [7; 32]).unwrap();
        assert_eq!(store.identity().unwrap().identity(), made.identity());
        assert!(matches!(store.init(false, [8; 32]), Err(StoreError::IdentityExists(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("identity.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
        let _ = std::fs::remove_dir_all(dir);
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
