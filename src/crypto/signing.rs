//! The service's Ed25519 signing keys (tokens, audit checkpoints, signed
//! backups): created owner-only, read through the private-file rules.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The service's token signing key. No `Debug`: it holds a private key.
pub struct SigningKey {
    pkcs8: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl SigningKey {
    pub fn generate() -> SigningKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .expect("Ed25519 key generation needs only the system CSPRNG");
        Self::from_pkcs8(doc.as_ref()).expect("a freshly generated PKCS#8 document parses")
    }

    pub fn from_pkcs8(der: &[u8]) -> anyhow::Result<SigningKey> {
        let kp = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|_| anyhow::anyhow!("not an Ed25519 PKCS#8 private key"))?;
        Ok(SigningKey {
            pkcs8: Zeroizing::new(der.to_vec()),
            public: kp.public_key().as_ref().to_vec(),
        })
    }

    /// Write a new key as PEM (PKCS#8), owner-only.
    pub fn create(path: &Path) -> anyhow::Result<SigningKey> {
        let key = Self::generate();
        let pem = Zeroizing::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            B64.encode(key.pkcs8.as_slice())
        ));
        let mut f = crate::crypto::private_file::create_private_file(path)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        Ok(key)
    }

    pub fn load(path: &Path) -> anyhow::Result<SigningKey> {
        let bytes = crate::crypto::private_file::read_key_file(path)?;
        let text = Zeroizing::new(
            String::from_utf8(bytes.to_vec())
                .map_err(|_| anyhow::anyhow!("{} is not a PEM private key", path.display()))?,
        );
        let body: Zeroizing<String> =
            Zeroizing::new(text.lines().filter(|l| !l.starts_with("-----")).collect());
        let der = Zeroizing::new(
            B64.decode(body.trim())
                .map_err(|_| anyhow::anyhow!("{} is not a PEM private key", path.display()))?,
        );
        Self::from_pkcs8(&der)
    }

    /// Key id: the first 16 hex digits of SHA-256 of the public key.
    pub fn kid(&self) -> String {
        hex::encode(&Sha256::digest(&self.public)[..8])
    }

    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The private key as PKCS#8 DER, for the token encoder.
    pub(crate) fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Ed25519 signature (for signed backups).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        Ed25519KeyPair::from_pkcs8(&self.pkcs8)
            .expect("the key parsed when it was loaded")
            .sign(msg)
            .as_ref()
            .to_vec()
    }
}
