//! Envelope encryption: a fresh 256-bit data key per payload, from the key
//! service; AES-256-GCM over the payload with associated data that binds it to
//! one credential version. Format documented in `docs/design.md`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::{EncryptionContext, KeyError, KeyService};

pub const ALG: &str = "A256GCM";
pub const FORMAT_VERSION: u8 = 1;

/// What rests in the secret store: the wrapped data key and the ciphertext.
/// Nothing in it is secret without the key service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version (1).
    pub v: u8,
    /// Payload cipher, always `A256GCM` in version 1.
    pub alg: String,
    /// The key service's id of the key that wrapped the data key.
    pub kid: String,
    /// The data key, wrapped by the key service (base64).
    pub wk: String,
    /// AES-GCM nonce, 12 bytes (base64).
    pub n: String,
    /// Ciphertext with the 16-byte tag appended (base64).
    pub ct: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("key service: {0}")]
    Key(#[from] KeyError),
    /// Deliberately coarse: wrong key, wrong associated data and corruption
    /// look alike to the caller.
    #[error("the envelope cannot be opened (corrupted, or bound to another credential version)")]
    Open,
    #[error("the envelope is malformed: {0}")]
    Malformed(&'static str),
}

/// Associated data for a credential payload: the credential id and version.
pub fn credential_aad(credential_id: &str, version: i64) -> Vec<u8> {
    format!("breakglass/credential/v1\0{credential_id}\0{version}").into_bytes()
}

/// Associated data for a custodian's TOTP seed.
pub fn totp_aad(custodian: &str, enrollment_id: &str) -> Vec<u8> {
    format!("breakglass/totp-seed/v1\0{custodian}\0{enrollment_id}").into_bytes()
}

/// Associated data for one of the service's signing keys.
pub fn service_key_aad(name: &str) -> Vec<u8> {
    format!("breakglass/service-key/v1\0{name}").into_bytes()
}

/// AES-256-GCM with an explicit nonce; the known-answer tests pin this.
pub fn seal_with_key(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("a 32-byte key is a valid AES-256 key");
    cipher
        .encrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail")
}

pub fn open_with_key(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("a 32-byte key is a valid AES-256 key");
    cipher
        .decrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Open)
}

impl Envelope {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serialises")
    }

    pub fn from_bytes(b: &[u8]) -> Result<Envelope, EnvelopeError> {
        let e: Envelope =
            serde_json::from_slice(b).map_err(|_| EnvelopeError::Malformed("not an envelope"))?;
        if e.v != FORMAT_VERSION || e.alg != ALG {
            return Err(EnvelopeError::Malformed(
                "unsupported envelope version or algorithm",
            ));
        }
        Ok(e)
    }

    /// Build an envelope from its parts with a given nonce (for the
    /// known-answer tests; `seal` draws a random one).
    pub fn assemble(
        key: &[u8; 32],
        kid: &str,
        wrapped: &[u8],
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Envelope {
        Envelope {
            v: FORMAT_VERSION,
            alg: ALG.into(),
            kid: kid.into(),
            wk: B64.encode(wrapped),
            n: B64.encode(nonce),
            ct: B64.encode(seal_with_key(key, nonce, aad, plaintext)),
        }
    }

    /// Encrypt `plaintext` under a fresh data key from `keys`.
    pub async fn seal(
        keys: &dyn KeyService,
        ctx: &EncryptionContext,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Envelope, EnvelopeError> {
        Ok(Self::seal_keeping_key(keys, ctx, aad, plaintext).await?.0)
    }

    /// As `seal`, also returning the data key (for the recovery wrap).
    pub async fn seal_keeping_key(
        keys: &dyn KeyService,
        ctx: &EncryptionContext,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Envelope, Zeroizing<[u8; 32]>), EnvelopeError> {
        let dk = keys.generate_data_key(ctx).await?;
        let nonce = super::random_bytes::<12>();
        let env = Envelope::assemble(
            &dk.plaintext,
            &dk.key_id,
            &dk.wrapped,
            &nonce,
            aad,
            plaintext,
        );
        Ok((env, dk.plaintext))
    }

    /// Decrypt with a data key already in hand (Shamir recovery).
    pub fn open_with_data_key(
        &self,
        key: &[u8; 32],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let nonce: [u8; 12] = B64
            .decode(&self.n)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(EnvelopeError::Malformed("nonce is not 12 bytes of base64"))?;
        let ct = B64
            .decode(&self.ct)
            .map_err(|_| EnvelopeError::Malformed("ciphertext is not base64"))?;
        open_with_key(key, &nonce, aad, &ct)
    }

    /// Decrypt with the data key unwrapped by `keys` under `ctx`.
    pub async fn open(
        &self,
        keys: &dyn KeyService,
        ctx: &EncryptionContext,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let wrapped = B64
            .decode(&self.wk)
            .map_err(|_| EnvelopeError::Malformed("wrapped key is not base64"))?;
        let key = keys.decrypt_data_key(&self.kid, &wrapped, ctx).await?;
        self.open_with_data_key(&key, aad)
    }
}
