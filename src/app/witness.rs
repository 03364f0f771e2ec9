//! The witness of the audit chain: the last signed checkpoint this service
//! reached through a chain it verified itself, kept outside the database.
//!
//! A database writer can delete checkpoints, rewrite events and recompute
//! every hash after them; nothing in the database then disagrees. The
//! witness does: it lives in memory, in a file of the data directory
//! (`audit.witness`), in `/metrics`, and in every alert and SIEM batch, so
//! the receivers hold it too. The server never signs over a chain that
//! does not verify from its witness, and `audit verify` checks the database
//! against it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use crate::crypto::chain::{AuditKey, Checkpoint};

pub const WITNESS_FILE: &str = "audit.witness";

pub struct Witness {
    file: Option<PathBuf>,
    last: Mutex<Option<Checkpoint>>,
}

impl Witness {
    /// A witness kept in memory only (host commands, which sign nothing
    /// the server relies on).
    pub fn in_memory() -> Witness {
        Witness {
            file: None,
            last: Mutex::new(None),
        }
    }

    /// The witness recorded in `file`, if any. A file that does not hold a
    /// checkpoint validly signed by `key` stops the start: it was damaged
    /// or replaced, and the chain cannot be trusted without it.
    pub fn load(file: &Path, key: &AuditKey) -> anyhow::Result<Witness> {
        let last = if std::fs::symlink_metadata(file).is_ok() {
            let bytes = crate::crypto::private_file::read_key_file(file)?;
            let c: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not an audit checkpoint ({e}); it records the last checkpoint this service signed, so restore it from a backup",
                    file.display()
                )
            })?;
            let valid = c.kid == key.kid && key.raw().is_some_and(|k| c.signature_valid(&k));
            anyhow::ensure!(
                valid,
                "{} holds a checkpoint that the audit key ({}) did not sign: it was altered or belongs to another service; restore it from a backup",
                file.display(),
                key.kid
            );
            Some(c)
        } else {
            None
        };
        Ok(Witness {
            file: Some(file.to_owned()),
            last: Mutex::new(last),
        })
    }

    pub fn current(&self) -> Option<Checkpoint> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Move the witness forward to `c` (a checkpoint whose chain was just
    /// verified from the current witness); an older one is ignored. The
    /// file is replaced atomically.
    pub fn advance(&self, c: &Checkpoint) -> anyhow::Result<()> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref().is_some_and(|l| l.seq >= c.seq) {
            return Ok(());
        }
        if let Some(file) = &self.file {
            let tmp = file.with_extension("witness.tmp");
            let _ = std::fs::remove_file(&tmp);
            {
                use std::io::Write;
                let mut f = crate::crypto::private_file::create_private_file(&tmp)?;
                f.write_all(&serde_json::to_vec(c)?)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, file)
                .with_context(|| format!("while writing {}", file.display()))?;
        }
        *last = Some(c.clone());
        Ok(())
    }
}

/// `seq`, `hash`, `ts_ms`, `kid` and `signature` of the witness, for a
/// header or a payload.
pub fn compact(c: &Checkpoint) -> String {
    serde_json::to_string(c).expect("a checkpoint always serialises")
}
