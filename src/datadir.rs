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

/// The user this process runs as.
fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Refuse a data directory that another user could enter, list or write
/// (and so swap a key in): fail closed, say how to fix it.
pub fn check_dir(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(root)
        .with_context(|| format!("while reading the data directory {}", root.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "the data directory {} is accessible to group or others (mode {mode:o}): another user could read or replace its keys; run `chmod 700 {}` and start again",
            root.display(),
            root.display()
        );
    }
    let me = euid();
    if meta.uid() != me {
        anyhow::bail!(
            "the data directory {} is owned by uid {}, not by the user this service runs as (uid {me}): run `chown -R {me} {}` or run the service as its owner",
            root.display(),
            meta.uid(),
            root.display()
        );
    }
    Ok(())
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

/// Open a key file of the data directory: never through a symbolic link
/// (`O_NOFOLLOW`), a regular file, owner-only and owned by this user, in a
/// directory that passes `check_dir`.
fn open_key_file(path: &Path) -> anyhow::Result<File> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    check_dir(parent)?;
    open_file(path)
}

/// `open_key_file` without the directory's check.
fn open_file(path: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::MetadataExt;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                anyhow::anyhow!(
                    "{} is a symbolic link: a key file must be the file itself, so that nobody can point it elsewhere; replace the link with the file (`cp --remove-destination \"$(readlink -f {})\" {}`)",
                    path.display(),
                    path.display(),
                    path.display()
                )
            } else {
                anyhow::anyhow!("while opening {}: {e}", path.display())
            }
        })?;
    let meta = f.metadata()?;
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", path.display());
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} is readable by others (mode {mode:o}); run `chmod 600 {}` and start again",
            path.display(),
            path.display()
        );
    }
    let me = euid();
    if meta.uid() != me {
        anyhow::bail!(
            "{} is owned by uid {}, not by the user this service runs as (uid {me}): another user put it there; check it, then `chown {me} {}`",
            path.display(),
            meta.uid(),
            path.display()
        );
    }
    Ok(f)
}

/// Read a key file of the data directory (see `open_key_file`), into
/// memory that is zeroized when dropped.
pub fn read_key_file(path: &Path) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let mut f = open_key_file(path)?;
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(256));
    f.read_to_end(&mut buf)
        .with_context(|| format!("while reading {}", path.display()))?;
    Ok(buf)
}

/// Refuse a secret file (outside the data directory: a TLS key, an HMAC
/// key) that others can read: fail closed, say how to fix it.
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
