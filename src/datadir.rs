//! The data directory of the embedded default: the SQLite database, the
//! local key-encryption key and the token signing key, created on first
//! start with owner-only permissions.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

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

    /// Create the directory (0700) and any missing key file.
    pub fn ensure(&self) -> anyhow::Result<Created> {
        let mut created = Created::default();
        if !self.root.exists() {
            std::fs::create_dir_all(&self.root).with_context(|| {
                format!("while creating the data directory {}", self.root.display())
            })?;
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
            created.dir = true;
        }
        if !self.key_file().exists() {
            crate::keys::local::LocalKeyService::create(&self.key_file())
                .with_context(|| format!("while creating {}", self.key_file().display()))?;
            created.key_file = true;
        }
        if !self.signing_key_file().exists() {
            crate::auth::SigningKey::create(&self.signing_key_file())
                .with_context(|| format!("while creating {}", self.signing_key_file().display()))?;
            created.signing_key = true;
        }
        if !self.audit_key_file().exists() {
            crate::auth::SigningKey::create(&self.audit_key_file())
                .with_context(|| format!("while creating {}", self.audit_key_file().display()))?;
        }
        Ok(created)
    }
}

/// Create a new file only the owner can read; refuses to overwrite.
pub fn create_private_file(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("while creating {}", path.display()))
}

/// Refuse a key file that others can read: fail closed, say how to fix it.
pub fn check_private(path: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("while reading {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} is readable by others (mode {mode:o}); run `chmod 600 {}` and start again",
            path.display(),
            path.display()
        );
    }
    Ok(())
}
