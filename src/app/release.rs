//! What a release hands over: the credential's fields, with each TOTP seed
//! marked code-only replaced by its current code.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use super::{AppError, AppResult};

/// Fields released as codes: each TOTP seed named in `code_only` is
/// replaced by its code for the current step, so the seed never leaves the
/// service. Returns the fields so replaced and when their codes expire.
pub(crate) fn release_codes(
    fields: &mut BTreeMap<String, SecretString>,
    code_only: &[String],
    now_ms: i64,
) -> AppResult<(Vec<String>, Option<i64>)> {
    if code_only.is_empty() {
        return Ok((Vec::new(), None));
    }
    let unix = u64::try_from(now_ms / 1000).unwrap_or(0);
    for f in code_only {
        let Some(seed) = fields.get(f) else { continue };
        let code = crate::crypto::totp::code_of_base32_seed(seed.expose_secret(), unix)
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "field {f} is marked code-only but holds no TOTP seed"
                ))
            })?;
        fields.insert(f.clone(), SecretString::from(code.to_string()));
    }
    let step = crate::crypto::totp::STEP_SECS as i64 * 1000;
    Ok((
        code_only.to_vec(),
        Some((now_ms.div_euclid(step) + 1) * step),
    ))
}

/// The credential a request names, and its current version (what a release
/// hands over). Either missing is an internal error: the database lost a
/// row the request depends on.
pub(crate) async fn current_version_of(
    tx: &mut dyn crate::store::Tx,
    r: &crate::store::RequestRow,
) -> super::AppResult<(crate::store::CredentialRow, crate::store::VersionRow)> {
    use super::AppError;
    let Some(id) = r.credential_id.as_deref() else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "a root-session request names no credential"
        )));
    };
    let Some(c) = tx.credential_by_id(id).await? else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "request names a missing credential"
        )));
    };
    let Some(v) = tx.version(&c.id, c.current_version).await? else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "credential version {} is missing",
            c.current_version
        )));
    };
    Ok((c, v))
}
