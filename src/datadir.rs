//! The data directory of the embedded default: the SQLite database, the
//! local key-encryption key and the token signing key, created on first
//! start with owner-only permissions.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::crypto::private_file::{check_dir, open_file};

pub const DB_FILE: &str = "breakglass.db";
pub const KEY_FILE: &str = "local.key";
pub const SIGNING_KEY_FILE: &str = "signing.key";
const AUDIT_KEY_FILE: &str = "audit.key";

#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

/// What `ensure` created, for the first-start message.
#[derive(Debug, Default)]
pub struct Created {
    pub dir: bool,
    pub key_file: bool,
    pub signing_key: bool,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join(DB_FILE)
    }

    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.db_path().display())
    }

    pub fn key_file(&self) -> PathBuf {
        self.root.join(KEY_FILE)
    }

    pub fn signing_key_file(&self) -> PathBuf {
        self.root.join(SIGNING_KEY_FILE)
    }

    /// The key that signs audit checkpoints (Ed25519), apart from the
    /// token key so that either can be replaced alone.
    pub fn audit_key_file(&self) -> PathBuf {
        self.root.join(AUDIT_KEY_FILE)
    }

    /// The last signed audit checkpoint this service verified, kept
    /// outside the database.
    pub fn witness_file(&self) -> PathBuf {
        self.root.join(crate::app::witness::WITNESS_FILE)
    }

    /// Create the directory (0700) and any missing key file of the ones
    /// it holds: the local key file unless it is elsewhere, the signing
    /// keys unless the database keeps them.
    pub fn ensure(&self, local_key: bool, signing_keys: bool) -> anyhow::Result<Created> {
        let mut created = Created::default();
        if !self.root.exists() {
            std::fs::create_dir_all(&self.root).with_context(|| {
                format!("while creating the data directory {}", self.root.display())
            })?;
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
            created.dir = true;
        }
        if local_key && !self.key_file().exists() {
            crate::keys::local::LocalKeyService::create(&self.key_file())
                .with_context(|| format!("while creating {}", self.key_file().display()))?;
            created.key_file = true;
        }
        if signing_keys && !self.signing_key_file().exists() {
            crate::crypto::signing::SigningKey::create(&self.signing_key_file())
                .with_context(|| format!("while creating {}", self.signing_key_file().display()))?;
            created.signing_key = true;
        }
        if signing_keys && !self.audit_key_file().exists() {
            crate::crypto::signing::SigningKey::create(&self.audit_key_file())
                .with_context(|| format!("while creating {}", self.audit_key_file().display()))?;
        }
        Ok(created)
    }
}

/// Every problem with the data directory and its key files, for `doctor`
/// (the same rules that stop the start).
pub fn problems(root: &Path) -> Vec<String> {
    let dir = DataDir::new(root);
    let mut out = Vec::new();
    if let Err(e) = check_dir(root) {
        out.push(format!("{e:#}"));
    }
    for f in [
        dir.key_file(),
        dir.signing_key_file(),
        dir.audit_key_file(),
        dir.witness_file(),
    ] {
        let present = std::fs::symlink_metadata(&f).is_ok();
        if present {
            if let Err(e) = open_file(&f) {
                out.push(format!("{e:#}"));
            }
        }
    }
    out
}

/// The start's check of an existing data directory (and of every host
/// command's): the directory and every key file in it, whichever the
/// command reads. The first problem stops it.
pub fn check_all(root: &Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(root).is_err() {
        return Ok(()); // created owner-only on first start
    }
    match problems(root).into_iter().next() {
        Some(p) => Err(anyhow::anyhow!(p)),
        None => Ok(()),
    }
}
