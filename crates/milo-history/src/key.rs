//! The journal key and the MAC chain built with it.
//!
//! Every journal entry is chained with HMAC-SHA256 under a per-user secret key
//! ([`JournalKey`], 32 random bytes in a 0600 file outside the project, see [`key_path`]), so
//! someone who can write the database but cannot read the key cannot rewrite a run and
//! recompute the chain (docs/SECURITY.md says what this does and does not protect against).
//! A run records which chain it uses in `runs.chain`: `hmac-sha256:<key id>`; NULL for runs
//! written by milo before the key existed, chained with plain SHA-256 ([`Chain::Unkeyed`]),
//! which anyone can recompute: such runs are read, checked for accidental damage, but
//! reported as unverifiable, never as intact.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::HistoryError;

type HmacSha256 = Hmac<Sha256>;

/// The environment variable naming the key file (instead of the default place).
pub const KEY_ENV: &str = "MILO_JOURNAL_KEY";

/// The `runs.chain` value's prefix for keyed runs.
pub const KEYED: &str = "hmac-sha256:";

/// Where the journal key is: `$MILO_JOURNAL_KEY`, else `$XDG_DATA_HOME/milo/journal.key`,
/// else `~/.local/share/milo/journal.key`; `None` when none of these variables is set.
pub fn key_path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var(KEY_ENV) {
        return Some(p);
    }
    if let Some(data) = var("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return Some(data.join("milo").join("journal.key"));
    }
    var("HOME").map(|h| h.join(".local").join("share").join("milo").join("journal.key"))
}

/// The per-user secret key of the journal MAC.
#[derive(Clone)]
pub struct JournalKey {
    /// HMAC keyed with the key's 32 bytes, before any input: cloned for each MAC, so the key
    /// schedule is computed once.
    keyed: HmacSha256,
    path: PathBuf,
}

impl std::fmt::Debug for JournalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("JournalKey")
            .field("path", &self.path)
            .field("id", &self.id())
            .finish()
    }
}

impl JournalKey {
    /// The key at `path`, or `None` if there is no file.
    pub fn load_from(path: &Path) -> Result<Option<Self>, HistoryError> {
        let bad = |reason: String| HistoryError::Key {
            path: path.to_owned(),
            reason,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(e.to_string())),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| bad(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "it is readable by other users (mode {:o}); anyone who reads it can forge the journal: `chmod 600` it, or delete it to start a new key (the runs recorded with it then cannot be verified)",
                    mode & 0o777
                )));
            }
        }
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            bad(format!(
                "it holds {} bytes, not 32: it was damaged or is not a milo key",
                b.len()
            ))
        })?;
        // HMAC takes a key of any length: this cannot fail.
        let keyed = <HmacSha256 as Mac>::new_from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        Ok(Some(Self {
            keyed,
            path: path.to_owned(),
        }))
    }

    /// The key at `path`, created (32 random bytes, mode 0600, its directory 0700) if there is
    /// none. Two processes creating it at once end up with the same key.
    pub fn load_or_create_at(path: &Path) -> Result<Self, HistoryError> {
        if let Some(key) = Self::load_from(path)? {
            return Ok(key);
        }
        let bad = |reason: String| HistoryError::Key {
            path: path.to_owned(),
            reason,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            crate::private::create_dir(dir).map_err(|e| bad(format!("could not create its directory: {e}")))?;
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| bad(format!("no random bytes from the OS: {e}")))?;
        // Written whole under another name, then linked into place: a reader never sees a
        // partial key, and of two racing writers the first link wins.
        let tmp = tempfile::Builder::new()
            .prefix(".journal.key.")
            .tempfile_in(dir)
            .map_err(|e| bad(format!("could not create it: {e}")))?;
        crate::private::restrict(tmp.path()).map_err(|e| bad(e.to_string()))?;
        tmp.as_file()
            .write_all(&bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| bad(format!("could not write it: {e}")))?;
        match std::fs::hard_link(tmp.path(), path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(bad(format!("could not create it: {e}"))),
        }
        drop(tmp);
        Self::load_from(path)?.ok_or_else(|| bad("it vanished right after it was created".into()))
    }

    /// The key at [`key_path`], created if missing (for recording).
    pub fn load_or_create() -> Result<Self, HistoryError> {
        Self::load_or_create_at(&key_path().ok_or(HistoryError::NoKeyPath)?)
    }

    /// The key at [`key_path`], if it exists (for verifying).
    pub fn load() -> Result<Option<Self>, HistoryError> {
        match key_path() {
            Some(p) => Self::load_from(&p),
            None => Ok(None),
        }
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A public name of the key (16 hex digits of a MAC of a constant): says which key a run
    /// was recorded with, without revealing it.
    pub fn id(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"milo journal key id");
        crate::def::hex(&mac.finalize().into_bytes()[..8])
    }

    /// The `runs.chain` value of runs recorded with this key.
    pub fn chain_name(&self) -> String {
        format!("{KEYED}{}", self.id())
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

/// How a run's journal is chained.
#[derive(Clone, Debug)]
pub enum Chain {
    /// HMAC-SHA256 under the journal key.
    Keyed(JournalKey),
    /// Plain SHA-256 (runs recorded before the key): checks for damage only.
    Unkeyed,
}

impl Chain {
    /// The chain head before the first entry. Keyed: a MAC of the run row's fixed facts, so
    /// they cannot be changed (or a journal moved to another run) without breaking the chain.
    pub fn genesis(&self, facts: &RunFacts<'_>) -> [u8; 32] {
        match self {
            Chain::Keyed(_) => {
                // Encoding plain numbers and strings cannot fail.
                let json = serde_json::to_vec(facts).unwrap_or_default();
                let mut h = self.hasher(b"genesis");
                h.update(&json);
                h.finish()
            }
            Chain::Unkeyed => [0; 32],
        }
    }

    /// The next head after an entry whose bytes are `input`.
    pub fn link(&self, prev: &[u8; 32], input: &[u8]) -> [u8; 32] {
        match self {
            Chain::Keyed(key) => {
                let mut mac = key.mac();
                mac.update(prev);
                mac.update(input);
                mac.finalize().into_bytes().into()
            }
            Chain::Unkeyed => {
                let mut h = Sha256::new();
                h.update(prev);
                h.update(input);
                h.finalize().into()
            }
        }
    }

    /// A running hash that starts with `label` (see [`chunk`](crate::chunk) for the lines).
    pub fn hasher(&self, label: &[u8]) -> Hasher {
        let mut h = match self {
            Chain::Keyed(key) => Hasher::Keyed(Box::new(key.mac())),
            Chain::Unkeyed => Hasher::Unkeyed(Sha256::new()),
        };
        h.update(label);
        h
    }

    /// The MAC of how the run ended, stored in `runs.seal` (keyed runs only).
    pub fn seal(&self, head: &[u8; 32], status: &str, exit_code: Option<i32>, ended_at: f64) -> Option<Vec<u8>> {
        match self {
            Chain::Keyed(_) => {
                let json = serde_json::to_vec(&(status, exit_code, ended_at.to_bits())).unwrap_or_default();
                let mut h = self.hasher(b"seal");
                h.update(head);
                h.update(&json);
                Some(h.finish().to_vec())
            }
            Chain::Unkeyed => None,
        }
    }
}

/// A running hash of the chain's kind.
pub enum Hasher {
    /// HMAC-SHA256.
    Keyed(Box<HmacSha256>),
    /// SHA-256.
    Unkeyed(Sha256),
}

impl Hasher {
    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Keyed(m) => m.update(data),
            Hasher::Unkeyed(h) => h.update(data),
        }
    }

    /// The digest.
    pub fn finish(self) -> [u8; 32] {
        match self {
            Hasher::Keyed(m) => m.finalize().into_bytes().into(),
            Hasher::Unkeyed(h) => h.finalize().into(),
        }
    }
}

/// The facts of a run row fixed when it starts, covered by the keyed chain's genesis.
#[derive(Debug, serde::Serialize)]
pub struct RunFacts<'a> {
    /// The run's number.
    pub run: i64,
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// The hash of its recorded definition.
    pub def_hash: &'a str,
    /// The pipeline file.
    pub pipeline_file: Option<&'a str>,
    /// Wall-clock start (its bits: exact).
    pub started_at: u64,
    /// The run it resumes.
    pub resumed_from: Option<i64>,
    /// Its parameter values (the `params` column's JSON); left out when there are none, so
    /// runs recorded before parameters were recorded verify as they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<&'a str>,
    /// What started it (the `trigger` column's JSON: a watch cycle); left out for a plain
    /// run, so runs recorded before triggers were recorded verify as they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<&'a str>,
}
