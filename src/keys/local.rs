//! The embedded default key service: one 256-bit key-encryption key in a
//! file (mode 0600) that wraps data keys with AES-256-GCM, binding the
//! encryption context as associated data exactly as KMS binds it.

use std::io::Write;
use std::path::Path;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{DataKey, EncryptionContext, KeyError, KeyService};
use crate::crypto::envelope::{open_with_key, seal_with_key};
use crate::crypto::random_bytes;

pub struct LocalKeyService {
    kek: Zeroizing<[u8; 32]>,
    key_id: String,
}

/// Write side of the key file; the file holds the key in hex on one line.
const FILE_HEADER: &str =
    "# breakglass local key-encryption key; keep this file secret and backed up\n";

impl LocalKeyService {
    pub fn from_key(kek: Zeroizing<[u8; 32]>) -> Self {
        let fp = Sha256::new()
            .chain_update(b"breakglass-local-key-id\0")
            .chain_update(&kek[..])
            .finalize();
        let key_id = format!("local:{}", hex::encode(&fp[..8]));
        Self { kek, key_id }
    }

    /// Create a key file with a new random key; refuses to overwrite.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let kek = random_bytes::<32>();
        let hexed = Zeroizing::new(hex::encode(&kek[..]));
        let mut f = crate::crypto::private_file::create_private_file(path)?;
        f.write_all(FILE_HEADER.as_bytes())?;
        f.write_all(hexed.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        Ok(Self::from_key(kek))
    }

    /// The data directory's key file (see `private_file::read_key_file`).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Self::parse(path, crate::crypto::private_file::read_key_file(path)?)
    }

    /// A key file named by the configuration, e.g. a mounted Kubernetes
    /// Secret (see `private_file::read_secret`).
    pub fn load_mounted(path: &Path) -> anyhow::Result<Self> {
        Self::parse(path, crate::crypto::private_file::read_secret(path)?)
    }

    fn parse(path: &Path, bytes: Zeroizing<Vec<u8>>) -> anyhow::Result<Self> {
        let text = Zeroizing::new(
            String::from_utf8(bytes.to_vec())
                .map_err(|_| anyhow::anyhow!("{} is not text", path.display()))?,
        );
        let line = text
            .lines()
            .find(|l| !l.starts_with('#') && !l.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("{} holds no key", path.display()))?;
        let mut kek = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(line.trim(), kek.as_mut())
            .map_err(|_| anyhow::anyhow!("{} does not hold a 64-hex-digit key", path.display()))?;
        Ok(Self::from_key(kek))
    }

    fn wrap(&self, dk: &[u8; 32], ctx: &EncryptionContext) -> Vec<u8> {
        let nonce = random_bytes::<12>();
        let mut out = nonce.to_vec();
        out.extend(seal_with_key(&self.kek, &nonce, &ctx.canonical_bytes(), dk));
        out
    }
}

#[async_trait]
impl KeyService for LocalKeyService {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, KeyError> {
        let plaintext = random_bytes::<32>();
        let wrapped = self.wrap(&plaintext, ctx);
        Ok(DataKey {
            plaintext,
            wrapped,
            key_id: self.key_id.clone(),
        })
    }

    async fn wrap_data_key(
        &self,
        key: &[u8; 32],
        ctx: &EncryptionContext,
    ) -> Result<(Vec<u8>, String), KeyError> {
        Ok((self.wrap(key, ctx), self.key_id.clone()))
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        if key_id != self.key_id {
            return Err(KeyError::UnknownKey(key_id.to_owned()));
        }
        if wrapped.len() != 12 + 32 + 16 {
            return Err(KeyError::InvalidCiphertext);
        }
        let nonce: [u8; 12] = wrapped[..12].try_into().expect("length checked above");
        let pt = open_with_key(&self.kek, &nonce, &ctx.canonical_bytes(), &wrapped[12..])
            .map_err(|_| KeyError::InvalidCiphertext)?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&pt);
        Ok(out)
    }

    async fn health(&self) -> Result<(), KeyError> {
        Ok(())
    }
}
