//! Bearer tokens signed by the service's own Ed25519 key (EdDSA JWTs).
//!
//! Checked on every call: signature and algorithm, `iss`, `aud`, `exp`,
//! `iat` (not in the future, lifetime not above the maximum), `jti` (a UUID,
//! not revoked), a subject and at least one role. Times come from the
//! service clock, not the system clock, so tests can move time.

use crate::domain::Code;
use std::collections::BTreeSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::crypto::signing::SigningKey;
use crate::domain::Role;

/// Tolerated clock difference between minting and checking hosts.
pub const LEEWAY_SECS: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub roles: Vec<Role>,
}

/// Who is calling, once their token has been checked.
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: String,
    pub roles: BTreeSet<Role>,
    pub jti: String,
    pub expires_at: i64,
    /// The OIDC issuer that vouched for it; `None` for the service's own
    /// (fallback) tokens.
    pub issuer: Option<String>,
    /// Custodian groups the provider still grants (when the issuer maps
    /// them): a custodian approves only with groups both their record and
    /// the provider give them. `None`: the record alone decides.
    pub custodian_groups: Option<BTreeSet<String>>,
}

impl Identity {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Why a token was refused; each maps to its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not verify with this service's key")]
    BadSignature,
    #[error("the token is signed with an algorithm this service does not accept for its issuer")]
    WrongAlgorithm,
    #[error("the token names a signing key (kid) its issuer does not publish")]
    UnknownKey,
    #[error("the token's identity provider cannot be reached to check its key: use a break-glass local token")]
    IssuerUnreachable,
    #[error("the token was issued for another issuer")]
    WrongIssuer,
    #[error("the token was issued for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is issued in the future")]
    NotYetValid,
    #[error("the token's lifetime is longer than this service allows")]
    LifetimeTooLong,
    #[error("the token carries no role")]
    NoRole,
    #[error("the token has been revoked")]
    Revoked,
}

impl TokenError {
    pub fn code(self) -> Code {
        match self {
            TokenError::Missing => Code::TokenMissing,
            TokenError::Malformed => Code::TokenMalformed,
            TokenError::BadSignature => Code::TokenBadSignature,
            TokenError::WrongAlgorithm => Code::TokenWrongAlgorithm,
            TokenError::UnknownKey => Code::TokenUnknownKey,
            TokenError::IssuerUnreachable => Code::TokenIssuerUnreachable,
            TokenError::WrongIssuer => Code::TokenWrongIssuer,
            TokenError::WrongAudience => Code::TokenWrongAudience,
            TokenError::Expired => Code::TokenExpired,
            TokenError::NotYetValid => Code::TokenNotYetValid,
            TokenError::LifetimeTooLong => Code::TokenLifetimeTooLong,
            TokenError::NoRole => Code::TokenNoRole,
            TokenError::Revoked => Code::TokenRevoked,
        }
    }
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    pub issuer: String,
    pub audience: String,
    pub max_ttl_secs: i64,
}

impl TokenService {
    pub fn new(key: &SigningKey, issuer: &str, audience: &str, max_ttl_secs: i64) -> TokenService {
        TokenService {
            encoding: EncodingKey::from_ed_der(key.pkcs8_der()),
            decoding: DecodingKey::from_ed_der(key.public_key()),
            kid: key.kid(),
            issuer: issuer.into(),
            audience: audience.into(),
            max_ttl_secs,
        }
    }

    /// Mint a token for `subject` with `roles`, valid `ttl_secs` from `now`.
    pub fn issue(
        &self,
        subject: &str,
        roles: &[Role],
        ttl_secs: i64,
        now_secs: i64,
    ) -> anyhow::Result<(String, Claims)> {
        anyhow::ensure!(!roles.is_empty(), "a token needs at least one role");
        anyhow::ensure!(
            ttl_secs > 0 && ttl_secs <= self.max_ttl_secs,
            "the token lifetime must be between 1 second and {}",
            humantime::format_duration(std::time::Duration::from_secs(self.max_ttl_secs as u64))
        );
        crate::domain::CustodianName::parse_person(subject)
            .map_err(|e| anyhow::anyhow!("subject: {e}"))?;
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.into(),
            iat: now_secs,
            exp: now_secs + ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
            roles,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Check everything but revocation (which needs the database).
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Identity, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::WrongAlgorithm);
        }
        if header.kid.as_deref().is_some_and(|k| k != self.kid) {
            return Err(TokenError::BadSignature);
        }
        let mut v = Validation::new(Algorithm::EdDSA);
        v.validate_exp = false; // checked below against the service clock
        v.validate_nbf = false;
        v.leeway = 0;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
                match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        TokenError::WrongAlgorithm
                    }
                    ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                    ErrorKind::InvalidAudience => TokenError::WrongAudience,
                    _ => TokenError::Malformed,
                }
            })?;
        let c = data.claims;
        if c.exp <= now_secs - LEEWAY_SECS {
            return Err(TokenError::Expired);
        }
        if c.iat > now_secs + LEEWAY_SECS {
            return Err(TokenError::NotYetValid);
        }
        // iat must lie in [exp - max_ttl, now + leeway]; checked arithmetic,
        // since both are whatever the token says.
        match c.exp.checked_sub(self.max_ttl_secs) {
            Some(oldest) if c.iat >= oldest => {}
            _ => return Err(TokenError::LifetimeTooLong),
        }
        if c.iat > c.exp {
            return Err(TokenError::Malformed);
        }
        if uuid::Uuid::parse_str(&c.jti).is_err()
            || crate::domain::CustodianName::parse_person(&c.sub).is_err()
        {
            return Err(TokenError::Malformed);
        }
        if c.roles.is_empty() {
            return Err(TokenError::NoRole);
        }
        Ok(Identity {
            subject: c.sub,
            roles: c.roles.into_iter().collect(),
            jti: c.jti,
            expires_at: c.exp,
            issuer: None,
            custodian_groups: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn svc() -> TokenService {
        TokenService::new(
            &SigningKey::generate(),
            "breakglass",
            "breakglass-api",
            30 * 86400,
        )
    }

    #[test]
    fn a_token_verifies_with_its_roles() {
        let s = svc();
        let (t, _) = s
            .issue("alice", &[Role::Admin, Role::Auditor], 3600, 1_700_000_000)
            .unwrap();
        let id = s.verify(&t, 1_700_000_100).unwrap();
        assert_eq!(id.subject, "alice");
        assert!(id.has(Role::Admin) && id.has(Role::Auditor) && !id.has(Role::Custodian));
    }

    #[test]
    fn tokens_are_refused_for_each_reason() {
        let s = svc();
        let (t, _) = s
            .issue("alice", &[Role::Admin], 3600, 1_700_000_000)
            .unwrap();
        assert_eq!(
            s.verify(&t, 1_700_000_000 + 3600 + LEEWAY_SECS)
                .unwrap_err(),
            TokenError::Expired
        );
        assert_eq!(
            s.verify(&t, 1_700_000_000 - 3600).unwrap_err(),
            TokenError::NotYetValid
        );

        let other = svc();
        assert_eq!(
            other.verify(&t, 1_700_000_000).unwrap_err(),
            TokenError::BadSignature
        );

        let key = SigningKey::generate();
        let ours = TokenService::new(&key, "breakglass", "breakglass-api", 86400);
        let other_aud = TokenService::new(&key, "breakglass", "another-api", 86400);
        let other_iss = TokenService::new(&key, "someone-else", "breakglass-api", 86400);
        let (t2, _) = other_aud
            .issue("alice", &[Role::Admin], 60, 1_700_000_000)
            .unwrap();
        assert_eq!(
            ours.verify(&t2, 1_700_000_000).unwrap_err(),
            TokenError::WrongAudience
        );
        let (t3, _) = other_iss
            .issue("alice", &[Role::Admin], 60, 1_700_000_000)
            .unwrap();
        assert_eq!(
            ours.verify(&t3, 1_700_000_000).unwrap_err(),
            TokenError::WrongIssuer
        );

        // Tampered payload: swap the role claim.
        let parts: Vec<&str> = t.split('.').collect();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap();
        let forged = String::from_utf8(payload)
            .unwrap()
            .replace("admin", "auditor");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged),
            parts[2]
        );
        assert_eq!(
            s.verify(&forged, 1_700_000_000).unwrap_err(),
            TokenError::BadSignature
        );

        // alg: none
        let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(matches!(
            s.verify(&unsigned, 1_700_000_000).unwrap_err(),
            TokenError::Malformed | TokenError::WrongAlgorithm
        ));
        assert_eq!(
            s.verify("not a token", 1_700_000_000).unwrap_err(),
            TokenError::Malformed
        );
    }

    /// A token signed with the service key but with hand-picked times.
    fn signed_with_times(s: &TokenService, sub: &str, iat: i64, exp: i64) -> String {
        let claims = Claims {
            iss: s.issuer.clone(),
            aud: s.audience.clone(),
            sub: sub.into(),
            iat,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
            roles: vec![Role::Admin],
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(s.kid.clone());
        jsonwebtoken::encode(&header, &claims, &s.encoding).unwrap()
    }

    #[test]
    fn token_times_that_would_overflow_are_refused() {
        let s = svc();
        let now = 1_700_000_000;
        // exp - iat wraps around for an iat of i64::MIN.
        let t = signed_with_times(&s, "alice", i64::MIN, now + 60);
        assert_eq!(s.verify(&t, now).unwrap_err(), TokenError::LifetimeTooLong);
        // An iat before exp - max_ttl: a lifetime above the maximum.
        let t = signed_with_times(&s, "alice", now - 31 * 86400, now + 60);
        assert_eq!(s.verify(&t, now).unwrap_err(), TokenError::LifetimeTooLong);
        // exp far in the future with an iat in the future too.
        let t = signed_with_times(&s, "alice", i64::MAX - 10, i64::MAX);
        assert_eq!(s.verify(&t, now).unwrap_err(), TokenError::NotYetValid);
        // (A negative exp does not even parse as a JWT time.)
        let t = signed_with_times(&s, "alice", i64::MIN, i64::MIN + 5);
        assert!(matches!(
            s.verify(&t, now).unwrap_err(),
            TokenError::Expired | TokenError::Malformed
        ));
        // Inside the bounds it verifies.
        let t = signed_with_times(&s, "alice", now - 10, now + 60);
        assert!(s.verify(&t, now).is_ok());
    }

    #[test]
    fn the_service_own_actor_names_are_not_token_subjects() {
        let s = svc();
        let now = 1_700_000_000;
        for reserved in ["anonymous", "breakglass", "host-operator:root"] {
            assert!(
                s.issue(reserved, &[Role::Admin], 60, now).is_err(),
                "{reserved} issued"
            );
            let t = signed_with_times(&s, reserved, now, now + 60);
            assert_eq!(
                s.verify(&t, now).unwrap_err(),
                TokenError::Malformed,
                "{reserved}"
            );
        }
    }

    #[test]
    fn lifetimes_above_the_maximum_are_refused_at_issue() {
        let s = svc();
        assert!(s.issue("alice", &[Role::Admin], 31 * 86400, 0).is_err());
        assert!(s.issue("alice", &[], 60, 0).is_err());
    }
}
