//! Recovery wraps: a data key or a TOTP seed encrypted (age, X25519) to the
//! recovery recipient, bound to what it belongs to (a credential version,
//! a custodian's enrolment), so that the rebuilt recovery key opens it
//! without the key service and a wrap moved elsewhere is refused.

use std::str::FromStr;

const WRAP_FORMAT: &str = "breakglass-recovery-wrap-v1";

#[derive(serde::Serialize, serde::Deserialize)]
struct WrapPlain {
    format: String,
    credential_id: String,
    version: i64,
    data_key: String,
}

impl Drop for WrapPlain {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.data_key);
    }
}

/// The JSON of `plain`, encrypted to the recovery recipient; `what` names
/// it in errors.
fn seal_to_recovery(
    recipient: &str,
    plain: &impl serde::Serialize,
    what: &str,
) -> anyhow::Result<Vec<u8>> {
    let r = age::x25519::Recipient::from_str(recipient)
        .map_err(|e| anyhow::anyhow!("recovery recipient: {e}"))?;
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec(plain)?);
    age::encrypt(&r, &bytes).map_err(|e| anyhow::anyhow!("while wrapping {what} for recovery: {e}"))
}

/// Decrypt a wrap with the rebuilt recovery identity and parse its JSON.
fn open_from_recovery<T: serde::de::DeserializeOwned>(
    identity: &age::x25519::Identity,
    wrap: &[u8],
    what: &str,
) -> anyhow::Result<T> {
    let bytes =
        zeroize::Zeroizing::new(age::decrypt(identity, wrap).map_err(|_| {
            anyhow::anyhow!("the {what} wrap does not open with this recovery key")
        })?);
    Ok(serde_json::from_slice(&bytes)?)
}

/// Wrap a data key to the recovery recipient, bound to its credential
/// version (a wrap moved to another version is refused at recovery).
pub fn wrap_for_recovery(
    recipient: &str,
    credential_id: &str,
    version: i64,
    key: &[u8; 32],
) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let plain = WrapPlain {
        format: WRAP_FORMAT.into(),
        credential_id: credential_id.into(),
        version,
        data_key: base64::engine::general_purpose::STANDARD.encode(key),
    };
    seal_to_recovery(recipient, &plain, "a data key")
}

/// Unwrap with the rebuilt recovery identity and check the binding.
pub fn unwrap_for_recovery(
    identity: &age::x25519::Identity,
    wrap: &[u8],
    credential_id: &str,
    version: i64,
) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    use base64::Engine;
    let plain: WrapPlain = open_from_recovery(identity, wrap, "recovery")?;
    anyhow::ensure!(
        plain.format == WRAP_FORMAT
            && plain.credential_id == credential_id
            && plain.version == version,
        "the recovery wrap is bound to another credential version"
    );
    let raw =
        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(&plain.data_key)?);
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    anyhow::ensure!(raw.len() == 32, "the recovered data key is not 256 bits");
    key.copy_from_slice(&raw);
    Ok(key)
}

const SEED_WRAP_FORMAT: &str = "breakglass-recovery-totp-v1";

#[derive(serde::Serialize, serde::Deserialize)]
struct SeedPlain {
    format: String,
    custodian: String,
    enrollment: String,
    seed: String,
}

impl Drop for SeedPlain {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

/// Wrap a custodian's TOTP seed to the recovery recipient, bound to the
/// custodian and enrolment, so the rebuilt recovery key can check their
/// codes while the key service is down.
pub fn wrap_seed_for_recovery(
    recipient: &str,
    custodian: &str,
    enrollment: &str,
    seed: &crate::crypto::totp::Seed,
) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let plain = SeedPlain {
        format: SEED_WRAP_FORMAT.into(),
        custodian: custodian.into(),
        enrollment: enrollment.into(),
        seed: base64::engine::general_purpose::STANDARD.encode(seed.expose_bytes()),
    };
    seal_to_recovery(recipient, &plain, "a seed")
}

/// Unwrap a TOTP seed with the rebuilt recovery key and check its binding.
pub fn unwrap_seed_for_recovery(
    identity: &age::x25519::Identity,
    wrap: &[u8],
    custodian: &str,
    enrollment: &str,
) -> anyhow::Result<crate::crypto::totp::Seed> {
    use base64::Engine;
    let plain: SeedPlain = open_from_recovery(identity, wrap, "TOTP seed")?;
    anyhow::ensure!(
        plain.format == SEED_WRAP_FORMAT
            && plain.custodian == custodian
            && plain.enrollment == enrollment,
        "the TOTP seed wrap is bound to another custodian or enrolment"
    );
    let raw =
        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(&plain.seed)?);
    crate::crypto::totp::Seed::from_bytes(&raw)
        .ok_or_else(|| anyhow::anyhow!("the recovered TOTP seed has the wrong length"))
}
