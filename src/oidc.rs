//! Bearer tokens from the organisation's OpenID Connect providers.
//!
//! Each configured issuer's discovery document and JWKS are fetched when
//! first needed and cached; a token whose `kid` is not in the cache makes
//! one refresh (at most every 10 seconds), so a provider that rotates its
//! key is followed without a restart. The accepted algorithms are the ones
//! configured (RS256, ES256, EdDSA), each only with a key of its own type;
//! `iss`, `aud`, `exp`, `nbf` and `iat` are checked against the service
//! clock with a small leeway. A claim (`groups` by default) maps to roles.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::auth::{Identity, TokenError, LEEWAY_SECS};
use crate::domain::Role;

/// How long fetched keys are used before they are fetched again.
const KEYS_TTL: Duration = Duration::from_secs(300);

/// The console's client at a provider.
#[derive(Clone)]
pub struct OidcClient {
    pub id: String,
    pub secret: Option<std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Where a provider signs people in and redeems codes.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
}

/// One trusted provider, as configured.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The console signs in through this provider when set.
    pub client: Option<OidcClient>,
    /// Exactly the `iss` its tokens carry (and its discovery document names).
    pub issuer: String,
    /// The `aud` tokens must carry for this service.
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    /// The claim whose value is the caller's name (custodian names match it).
    pub subject_claim: String,
    /// The claim listing the caller's groups.
    pub roles_claim: String,
    /// Role → provider groups that grant it.
    pub roles: BTreeMap<Role, Vec<String>>,
    /// Custodian group → provider groups that grant it. When set, a
    /// custodian approves only with the groups the provider still grants.
    pub custodian_groups: BTreeMap<String, Vec<String>>,
    pub timeout: Duration,
    /// An unknown `kid` refreshes the keys at most this often.
    pub min_refresh: Duration,
}

struct Keys {
    by_kid: HashMap<String, Jwk>,
    fetched: Instant,
}

pub struct OidcIssuer {
    pub config: OidcConfig,
    http: reqwest::Client,
    keys: tokio::sync::RwLock<Option<Keys>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

/// Why the provider could not be asked.
#[derive(Debug)]
struct Unreachable;

impl OidcIssuer {
    pub fn new(config: OidcConfig) -> anyhow::Result<OidcIssuer> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(OidcIssuer {
            config,
            http,
            keys: tokio::sync::RwLock::new(None),
            last_refresh: tokio::sync::Mutex::new(None),
        })
    }

    /// The provider's discovery document, which must name the issuer we
    /// trust, exactly.
    async fn discovery(&self) -> Result<Value, Unreachable> {
        discover(&self.http, &self.config.issuer)
            .await
            .map_err(|e| {
                if let DiscoveryError::OtherIssuer = e {
                    tracing::error!(issuer = %self.config.issuer, "{e}");
                }
                Unreachable
            })
    }

    /// Where the provider signs people in and redeems codes.
    pub async fn endpoints(&self) -> Result<Endpoints, TokenError> {
        let d = self
            .discovery()
            .await
            .map_err(|_| TokenError::IssuerUnreachable)?;
        endpoints_in(&d).ok_or_else(|| {
            tracing::error!(issuer = %self.config.issuer, "the provider's discovery document names no authorization or token endpoint");
            TokenError::IssuerUnreachable
        })
    }

    /// Redeem an authorization code for its ID token (the console's client,
    /// with its PKCE verifier). `None`: the provider refused the code.
    pub async fn redeem(
        &self,
        token_endpoint: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Option<String>, TokenError> {
        let Some(client) = &self.config.client else {
            return Ok(None);
        };
        let res = redeem_code(
            &self.http,
            token_endpoint,
            &CodeGrant {
                code,
                redirect_uri,
                client_id: &client.id,
                client_secret: client.secret.as_ref().map(|s| &s[..]),
                verifier,
            },
        )
        .await
        .map_err(|_| TokenError::IssuerUnreachable)?;
        if res.status().is_server_error() {
            return Err(TokenError::IssuerUnreachable);
        }
        if !res.status().is_success() {
            return Ok(None);
        }
        let v: Value = res.json().await.map_err(|_| TokenError::Malformed)?;
        Ok(v["id_token"].as_str().map(str::to_owned))
    }

    async fn fetch(&self) -> Result<Keys, Unreachable> {
        let discovery = self.discovery().await?;
        let jwks_uri = discovery["jwks_uri"].as_str().ok_or(Unreachable)?;
        let jwks: Value = self
            .http
            .get(jwks_uri)
            .send()
            .await
            .map_err(|_| Unreachable)?
            .error_for_status()
            .map_err(|_| Unreachable)?
            .json()
            .await
            .map_err(|_| Unreachable)?;
        let mut by_kid = HashMap::new();
        for k in jwks["keys"].as_array().into_iter().flatten() {
            // A key this service cannot use is skipped, not fatal.
            if let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) {
                if let Some(kid) = jwk.common.key_id.clone() {
                    by_kid.insert(kid, jwk);
                }
            }
        }
        Ok(Keys {
            by_kid,
            fetched: Instant::now(),
        })
    }

    /// The key for `kid`: from the cache while it is fresh, else fetched;
    /// an unknown `kid` refreshes once (rate-limited).
    async fn key(&self, kid: &str) -> Result<Option<Jwk>, Unreachable> {
        {
            let cache = self.keys.read().await;
            if let Some(k) = cache.as_ref() {
                if k.fetched.elapsed() < KEYS_TTL {
                    if let Some(j) = k.by_kid.get(kid) {
                        return Ok(Some(j.clone()));
                    }
                }
            }
        }
        let mut last = self.last_refresh.lock().await;
        let stale = self
            .keys
            .read()
            .await
            .as_ref()
            .is_none_or(|k| k.fetched.elapsed() >= KEYS_TTL);
        if stale || last.is_none_or(|t| t.elapsed() >= self.config.min_refresh) {
            *last = Some(Instant::now());
            match self.fetch().await {
                Ok(k) => *self.keys.write().await = Some(k),
                Err(e) => {
                    // Keys fetched before are used while fresh; after that
                    // the provider must answer.
                    if stale {
                        return Err(e);
                    }
                }
            }
        }
        Ok(self
            .keys
            .read()
            .await
            .as_ref()
            .and_then(|k| k.by_kid.get(kid).cloned()))
    }

    /// Verify an OIDC token of this issuer at `now_secs`.
    pub async fn verify(&self, token: &str, now_secs: i64) -> Result<Identity, TokenError> {
        let audience = self.config.audience.clone();
        Ok(self.verify_for(token, now_secs, &audience).await?.0)
    }

    /// Verify a token of this issuer issued for `audience` (the console's
    /// client, for an ID token), with its claims.
    pub async fn verify_for(
        &self,
        token: &str,
        now_secs: i64,
        audience: &str,
    ) -> Result<(Identity, Value), TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            if raw_alg(token).is_some_and(|a| a.eq_ignore_ascii_case("none")) {
                TokenError::WrongAlgorithm
            } else {
                TokenError::Malformed
            }
        })?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let jwk = self
            .key(kid)
            .await
            .map_err(|_| TokenError::IssuerUnreachable)?
            .ok_or(TokenError::UnknownKey)?;
        // Each algorithm only with a key of its own type (no RSA key used
        // as an HMAC secret, no curve confusion).
        let fits = match (&header.alg, &jwk.algorithm) {
            (Algorithm::RS256, AlgorithmParameters::RSA(_)) => true,
            (Algorithm::ES256, AlgorithmParameters::EllipticCurve(p)) => {
                p.curve == EllipticCurve::P256
            }
            (Algorithm::EdDSA, AlgorithmParameters::OctetKeyPair(p)) => {
                p.curve == EllipticCurve::Ed25519
            }
            _ => false,
        };
        if !fits {
            return Err(TokenError::WrongAlgorithm);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| TokenError::UnknownKey)?;
        let mut v = Validation::new(header.alg);
        v.validate_exp = false; // checked below against the service clock
        v.validate_nbf = false;
        v.leeway = 0;
        v.set_issuer(&[&self.config.issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                TokenError::WrongAlgorithm
            }
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            _ => TokenError::Malformed,
        })?;
        let c = data.claims;
        let exp = c["exp"].as_i64().ok_or(TokenError::Malformed)?;
        if exp <= now_secs - LEEWAY_SECS {
            return Err(TokenError::Expired);
        }
        if c["nbf"]
            .as_i64()
            .is_some_and(|nbf| nbf > now_secs + LEEWAY_SECS)
            || c["iat"]
                .as_i64()
                .is_some_and(|iat| iat > now_secs + LEEWAY_SECS)
        {
            return Err(TokenError::NotYetValid);
        }
        let subject = c[self.config.subject_claim.as_str()]
            .as_str()
            .filter(|s| crate::domain::CustodianName::parse_person(s).is_ok())
            .ok_or(TokenError::Malformed)?
            .to_owned();
        let groups: BTreeSet<&str> = match &c[self.config.roles_claim.as_str()] {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => s.split_whitespace().collect(),
            _ => BTreeSet::new(),
        };
        let roles: BTreeSet<Role> = self
            .config
            .roles
            .iter()
            .filter(|(_, gs)| gs.iter().any(|g| groups.contains(g.as_str())))
            .map(|(r, _)| *r)
            .collect();
        if roles.is_empty() {
            return Err(TokenError::NoRole);
        }
        // Revocation is keyed by `jti`; without one, by the token's hash.
        let jti = match c["jti"].as_str() {
            Some(j) if !j.is_empty() && j.len() <= 200 => format!("{}#{j}", self.config.issuer),
            _ => {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(token.as_bytes()))
            }
        };
        let custodian_groups = (!self.config.custodian_groups.is_empty()).then(|| {
            self.config
                .custodian_groups
                .iter()
                .filter(|(_, gs)| gs.iter().any(|g| groups.contains(g.as_str())))
                .map(|(c, _)| c.clone())
                .collect()
        });
        let who = Identity {
            subject,
            roles,
            jti,
            expires_at: exp,
            issuer: Some(self.config.issuer.clone()),
            custodian_groups,
        };
        Ok((who, c))
    }
}

/// Why a provider's discovery document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the provider cannot be reached, or its discovery document is not JSON")]
    Unreachable,
    #[error("the provider's discovery document names another issuer")]
    OtherIssuer,
}

/// The discovery document of `issuer`, which must name it exactly.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Value, DiscoveryError> {
    let base = issuer.trim_end_matches('/');
    let d: Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|_| DiscoveryError::Unreachable)?
        .json()
        .await
        .map_err(|_| DiscoveryError::Unreachable)?;
    if d["issuer"].as_str() != Some(issuer) {
        return Err(DiscoveryError::OtherIssuer);
    }
    Ok(d)
}

/// The authorization and token endpoints a discovery document names.
pub fn endpoints_in(d: &Value) -> Option<Endpoints> {
    Some(Endpoints {
        authorization: d["authorization_endpoint"].as_str()?.to_owned(),
        token: d["token_endpoint"].as_str()?.to_owned(),
    })
}

/// A sign-in's request to a provider (authorization code flow, RFC 6749
/// §4.1.1, with PKCE S256, RFC 7636): the console's and `breakglass
/// login`'s.
pub struct Authorize<'a> {
    pub endpoint: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    /// The PKCE verifier; the address carries only its S256 challenge.
    pub verifier: &'a str,
}

/// The address that sends the browser to the provider; `None` if the
/// provider's endpoint is not a URL.
pub fn authorize_url(a: &Authorize<'_>) -> Option<String> {
    use base64::Engine;
    use sha2::Digest;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(a.verifier.as_bytes()));
    let mut url = reqwest::Url::parse(a.endpoint).ok()?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", a.client_id)
        .append_pair("redirect_uri", a.redirect_uri)
        .append_pair("scope", "openid profile groups")
        .append_pair("state", a.state)
        .append_pair("nonce", a.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Some(url.into())
}

/// An authorization code, and what redeems it (RFC 6749 §4.1.3, RFC 7636).
pub struct CodeGrant<'a> {
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub client_id: &'a str,
    /// A confidential client's secret (`client_secret_post`).
    pub client_secret: Option<&'a [u8]>,
    pub verifier: &'a str,
}

/// Redeem a code at a provider's token endpoint (the console's and
/// `breakglass login`'s); the body, which holds the code, the verifier
/// and the client's secret, is zeroized when sent.
pub async fn redeem_code(
    http: &reqwest::Client,
    token_endpoint: &str,
    g: &CodeGrant<'_>,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", g.code),
        ("redirect_uri", g.redirect_uri),
        ("client_id", g.client_id),
        ("code_verifier", g.verifier),
    ];
    let secret = g
        .client_secret
        .map(|s| zeroize::Zeroizing::new(String::from_utf8_lossy(s).into_owned()));
    if let Some(s) = &secret {
        form.push(("client_secret", s.as_str()));
    }
    let body = zeroize::Zeroizing::new(serde_urlencoded::to_string(&form).unwrap_or_default());
    http.post(token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(bytes::Bytes::from_owner(zeroize::Zeroizing::new(
            body.as_bytes().to_vec(),
        )))
        .send()
        .await
}

/// The `alg` a token's header names, read without trusting it.
fn raw_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let h = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["alg"].as_str().map(str::to_owned)
}

/// The `iss` a token claims, read without trusting it (to pick the issuer
/// that will verify it).
pub fn claimed_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let p = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(p.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["iss"].as_str().map(str::to_owned)
}

/// The configured providers.
pub type Issuers = Vec<Arc<OidcIssuer>>;
