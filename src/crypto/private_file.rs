//! Files that hold keys: created owner-only and never overwritten; read
//! never through a symbolic link (`O_NOFOLLOW`), only when they are the
//! user's own and nobody else can reach them, into zeroizing memory.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

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

/// The mode of a file or directory that group or others may use, to name
/// in the refusal; `None` when it is owner-only.
fn shared_mode(meta: &std::fs::Metadata) -> Option<u32> {
    let mode = meta.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// The owner of a file or directory and this process's user, when they
/// differ.
fn foreign_owner(meta: &std::fs::Metadata) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let me = euid();
    (meta.uid() != me).then_some((meta.uid(), me))
}

/// Refuse a data directory that another user could enter, list or write
/// (and so swap a key in): fail closed, say how to fix it.
pub fn check_dir(root: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(root)
        .with_context(|| format!("while reading the data directory {}", root.display()))?;
    if let Some(mode) = shared_mode(&meta) {
        anyhow::bail!(
            "the data directory {} is accessible to group or others (mode {mode:o}): another user could read or replace its keys; run `chmod 700 {}` and start again",
            root.display(),
            root.display()
        );
    }
    if let Some((owner, me)) = foreign_owner(&meta) {
        anyhow::bail!(
            "the data directory {} is owned by uid {owner}, not by the user this service runs as (uid {me}): run `chown -R {me} {}` or run the service as its owner",
            root.display(),
            root.display()
        );
    }
    Ok(())
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
pub fn open_file(path: &Path) -> anyhow::Result<File> {
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
    if let Some(mode) = shared_mode(&meta) {
        anyhow::bail!(
            "{} is readable by others (mode {mode:o}); run `chmod 600 {}` and start again",
            path.display(),
            path.display()
        );
    }
    if let Some((owner, me)) = foreign_owner(&meta) {
        anyhow::bail!(
            "{} is owned by uid {owner}, not by the user this service runs as (uid {me}): another user put it there; check it, then `chown {me} {}`",
            path.display(),
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

/// The mode of a secret file that someone else could read or change, to
/// name in the refusal; `None` when only this user, or this user's own
/// group reading a file owned by root or this user, can reach it. The
/// group allowance is a Kubernetes Secret mounted with `fsGroup`: root
/// owns the file, the pod's group may read it (mode 0440).
fn exposed_secret_mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.permissions().mode() & 0o777;
    let own_group = meta.gid() == rustix::process::getegid().as_raw()
        && (meta.uid() == 0 || meta.uid() == euid());
    let exposed = if own_group { 0o027 } else { 0o077 };
    (mode & exposed != 0).then_some(mode)
}

/// Refuse a secret file (outside the data directory: a TLS key, an HMAC
/// key, a database URL, a mounted key) that others can read or change:
/// fail closed, say how to fix it.
pub fn check_private(path: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("while reading {}", path.display()))?;
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", path.display());
    if let Some(mode) = exposed_secret_mode(&meta) {
        anyhow::bail!(
            "{} is readable or writable by others (mode {mode:o}); run `chmod 600 {}` (or 0440 with this service's group, as a mounted Kubernetes Secret is) and start again",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Read a secret file named by the configuration (see `check_private`;
/// it may be a link, as a mounted Kubernetes Secret's files are), into
/// memory that is zeroized when dropped.
pub fn read_secret(path: &Path) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    check_private(path)?;
    Ok(zeroize::Zeroizing::new(std::fs::read(path).with_context(
        || format!("while reading {}", path.display()),
    )?))
}
