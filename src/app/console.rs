//! The web console's sign-in: sessions opened with a local token or a
//! one-time link, kept in the database (so any replica serves them), ended
//! by sign-out, an admin's revocation or their deadlines. Every opening and
//! ending is audited; a refused sign-in is audited as a refused token is.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{refuse, App, AppError, AppResult, Done, Event};
use crate::auth::Identity;
use crate::crypto::session::SessionSecret;
use crate::domain::states::SignInMethod;
use crate::domain::{Action, Code, CustodianName, Role};
use crate::store::{ConsoleSessionRow, SignInLinkRow};

/// A session is used often; its idle deadline is moved (a write) at most
/// this often.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The identity a session signs in as, as its row keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct StoredIdentity {
    subject: String,
    roles: BTreeSet<Role>,
    jti: String,
    issuer: Option<String>,
    custodian_groups: Option<BTreeSet<String>>,
}

/// A session as a page sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Identity,
    pub method: SignInMethod,
    /// When it ends at the latest (ms).
    pub expires_at: i64,
}

/// A sign-in link, printed once on the host.
#[derive(Debug)]
pub struct SignInLink {
    pub secret: SessionSecret,
    pub jti: String,
    pub expires_at: i64,
}

fn session_target(id_hash: &str) -> String {
    // Enough of the hash to tell sessions apart in the log, not to find one.
    format!("session:{}", &id_hash[..16])
}

impl App {
    fn console_deadlines(&self, now: i64, cap: Option<i64>) -> (i64, i64) {
        let c = &self.settings.console;
        let mut expires = now + c.session_lifetime.as_millis() as i64;
        if let Some(cap) = cap {
            expires = expires.min(cap);
        }
        let idle = (now + c.idle_timeout.as_millis() as i64).min(expires);
        (idle, expires)
    }

    async fn open_session(
        &self,
        who: &Identity,
        method: SignInMethod,
        cap: Option<i64>,
        mut events: Vec<Event>,
    ) -> AppResult<(SessionSecret, Session)> {
        let now = self.now_ms();
        let (idle_until, expires_at) = self.console_deadlines(now, cap);
        if expires_at <= now {
            return refuse(Code::TokenExpired, "the token has expired");
        }
        let secret = SessionSecret::generate();
        let stored = StoredIdentity {
            subject: who.subject.clone(),
            roles: who.roles.clone(),
            jti: who.jti.clone(),
            issuer: who.issuer.clone(),
            custodian_groups: who.custodian_groups.clone(),
        };
        let row = ConsoleSessionRow {
            id_hash: secret.id_hash(),
            subject: who.subject.clone(),
            identity: serde_json::to_string(&stored).map_err(anyhow::Error::from)?,
            method,
            created_at: now,
            last_seen_at: now,
            idle_until,
            expires_at,
            ended_at: None,
            ended_by: None,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_console_session(&row).await?;
        events.push(Event::new(
            Action::SessionOpen,
            session_target(&row.id_hash),
            json!({
                "subject": who.subject,
                "method": method.as_str(),
                "token_id": who.jti,
                "roles": who.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                "issuer": who.issuer,
                "expires_at": crate::clock::rfc3339(expires_at),
            }),
        ));
        let session = Session {
            identity: Identity {
                expires_at: expires_at / 1000,
                ..who.clone()
            },
            method,
            expires_at,
        };
        self.finish(
            tx,
            Some(who),
            Action::SessionOpen,
            "console",
            Ok(Done::with_events((secret, session), events)),
        )
        .await
    }

    /// Sign in with a token pasted once (a local break-glass token, or an
    /// ID token of a trusted provider). The token is checked and audited
    /// as the API checks a bearer token; the session lives no longer than
    /// the token.
    #[tracing::instrument(skip_all)]
    pub async fn open_session_with_token(
        &self,
        token: &str,
    ) -> AppResult<(SessionSecret, Session)> {
        let who = self.authenticate(Some(token.trim())).await?;
        let cap = who.expires_at.saturating_mul(1000);
        self.open_session(&who, SignInMethod::Token, Some(cap), vec![])
            .await
    }

    /// Sign in with a one-time link from `token issue --link`.
    #[tracing::instrument(skip_all)]
    pub async fn open_session_with_link(&self, link: &str) -> AppResult<(SessionSecret, Session)> {
        let now = self.now_ms();
        let secret = SessionSecret::parse(link.trim());
        let taken = match &secret {
            None => None,
            Some(s) => {
                let mut tx = self.store.begin().await?;
                let taken = tx.take_sign_in_link(&s.id_hash(), now).await?;
                tx.commit().await?;
                taken
            }
        };
        let Some(link) = taken else {
            let known = match &secret {
                None => None,
                Some(s) => {
                    let mut tx = self.store.begin_read().await?;
                    let l = tx.sign_in_link(&s.id_hash()).await?;
                    tx.rollback().await?;
                    l
                }
            };
            let target = known
                .as_ref()
                .map_or_else(|| "console".to_string(), |l| format!("token:{}", l.jti));
            let err = match known {
                None => refused(
                    Code::LinkUnknown,
                    "this sign-in link is not one this service issued: mint one on the host with `breakglass token issue --link`",
                ),
                Some(l) if l.used_at.is_some() => refused(
                    Code::LinkUsed,
                    "this sign-in link has been used: a link signs in once; mint a new one on the host",
                ),
                Some(_) => refused(
                    Code::LinkExpired,
                    "this sign-in link has expired: mint a new one on the host",
                ),
            };
            self.record_refusal("anonymous", Action::SessionOpen, &target, &err)
                .await?;
            return Err(err);
        };
        let roles: BTreeSet<Role> = serde_json::from_str(&link.roles)
            .map_err(|e| anyhow::anyhow!("corrupt roles of a sign-in link: {e}"))?;
        let who = Identity {
            subject: link.subject.clone(),
            roles,
            jti: link.jti.clone(),
            expires_at: 0,
            issuer: None,
            custodian_groups: None,
        };
        if self.token_revoked(&link.jti).await? {
            let err = refused(Code::TokenRevoked, "this sign-in link has been revoked");
            self.record_refusal(
                "anonymous",
                Action::SessionOpen,
                &format!("token:{}", link.jti),
                &err,
            )
            .await?;
            return Err(err);
        }
        // Each link signs in once, so each use is its own fallback event.
        let events = match self.oidc.is_empty() {
            true => vec![],
            false => vec![self.fallback_event(&who, "console sign-in link")],
        };
        self.open_session(&who, SignInMethod::Link, None, events)
            .await
    }

    /// The session a cookie names, if it is live: its use moves the idle
    /// deadline. A session whose token has since been revoked is ended.
    pub async fn console_session(&self, secret: &SessionSecret) -> AppResult<Option<Session>> {
        let now = self.now_ms();
        let id_hash = secret.id_hash();
        let mut tx = self.store.begin_read().await?;
        let row = tx.console_session(&id_hash).await?;
        let row = match row {
            Some(r) if r.is_live(now) => r,
            _ => {
                tx.rollback().await?;
                return Ok(None);
            }
        };
        let stored: StoredIdentity = serde_json::from_str(&row.identity)
            .map_err(|e| anyhow::anyhow!("corrupt identity of a console session: {e}"))?;
        let revoked = tx.is_token_revoked(&stored.jti).await?;
        tx.rollback().await?;
        if revoked {
            let mut tx = self.store.begin().await?;
            tx.end_console_session(&id_hash, now, "revoked token")
                .await?;
            tx.commit().await?;
            return Ok(None);
        }
        if now - row.last_seen_at >= TOUCH_EVERY_MS {
            let idle = now + self.settings.console.idle_timeout.as_millis() as i64;
            let mut tx = self.store.begin().await?;
            let live = tx.touch_console_session(&id_hash, now, idle).await?;
            tx.commit().await?;
            if !live {
                return Ok(None);
            }
        }
        Ok(Some(Session {
            identity: Identity {
                subject: stored.subject,
                roles: stored.roles,
                jti: stored.jti,
                expires_at: row.expires_at / 1000,
                issuer: stored.issuer,
                custodian_groups: stored.custodian_groups,
            },
            method: row.method,
            expires_at: row.expires_at,
        }))
    }

    /// Sign out: end this session.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn close_session(&self, who: &Identity, secret: &SessionSecret) -> AppResult<()> {
        let id_hash = secret.id_hash();
        let mut tx = self.store.begin().await?;
        let ended = tx
            .end_console_session(&id_hash, self.now_ms(), &who.subject)
            .await;
        let res = match ended {
            Ok(_) => Ok(Done::new(
                (),
                Event::new(Action::SessionClose, session_target(&id_hash), json!({})),
            )),
            Err(e) => Err(e.into()),
        };
        self.finish(
            tx,
            Some(who),
            Action::SessionClose,
            &session_target(&id_hash),
            res,
        )
        .await
    }

    /// End every console session of `subject` (admin).
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn revoke_sessions(&self, who: &Identity, subject: &str) -> AppResult<u64> {
        let target = format!("person:{subject}");
        let mut tx = self.store.begin().await?;
        let res = async {
            self.require(who, Role::Admin)?;
            CustodianName::parse_person(subject).or_else(|e| refuse(Code::InvalidName, e.0))?;
            let ended = tx
                .end_console_sessions_of(subject, self.now_ms(), &who.subject)
                .await?;
            Ok(Done::new(
                ended,
                Event::new(
                    Action::SessionRevoke,
                    target.clone(),
                    json!({ "subject": subject, "sessions_ended": ended }),
                ),
            ))
        }
        .await;
        self.finish(tx, Some(who), Action::SessionRevoke, &target, res)
            .await
    }

    /// Mint a one-time sign-in link on the host, audited as a token is.
    #[tracing::instrument(skip_all, fields(subject))]
    pub async fn issue_sign_in_link(
        &self,
        actor: &str,
        subject: &str,
        roles: &[Role],
    ) -> anyhow::Result<SignInLink> {
        anyhow::ensure!(!roles.is_empty(), "a sign-in link needs at least one role");
        CustodianName::parse_person(subject).map_err(|e| anyhow::anyhow!("subject: {e}"))?;
        let roles: BTreeSet<Role> = roles.iter().copied().collect();
        let now = self.now_ms();
        let secret = SessionSecret::generate();
        let row = SignInLinkRow {
            id_hash: secret.id_hash(),
            jti: uuid::Uuid::new_v4().to_string(),
            subject: subject.into(),
            roles: serde_json::to_string(&roles)?,
            created_at: now,
            created_by: actor.into(),
            expires_at: now + self.settings.console.link_ttl.as_millis() as i64,
            used_at: None,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_sign_in_link(&row).await?;
        let ev = Event::new(
            Action::TokenIssue,
            format!("token:{}", row.jti),
            json!({
                "subject": subject,
                "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                "expires_at": crate::clock::rfc3339(row.expires_at),
                "kind": "console sign-in link, one use",
            }),
        );
        self.append(tx.as_mut(), actor, "success", None, ev).await?;
        tx.commit().await?;
        Ok(SignInLink {
            secret,
            jti: row.jti,
            expires_at: row.expires_at,
        })
    }
}

/// Where the browser goes to sign in through a provider, and the cookie
/// that binds the sign-in to it.
#[derive(Debug)]
pub struct OidcStart {
    pub authorize_url: String,
    pub binder: SessionSecret,
    pub max_age_secs: i64,
}

/// A sign-in through a provider has this long between the redirect and the
/// return.
const OIDC_LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

const PKCE_LABEL: &str = "breakglass oidc pkce verifier v1";
const STATE_LABEL: &str = "breakglass oidc state v1";

/// The console's return address at a provider.
fn callback_of(origin: &str) -> String {
    format!("{origin}/console/signin/oidc/callback")
}
const NONCE_LABEL: &str = "breakglass oidc nonce v1";

fn refused(code: Code, message: impl Into<String>) -> AppError {
    AppError::Refused(super::Refusal::new(code, message))
}

/// The provider could not be asked: say so, and name the fallback.
fn provider_unreachable(e: crate::auth::TokenError) -> AppError {
    refused(
        e.code(),
        "the identity provider cannot be reached: sign in with a local token or a sign-in link from the host",
    )
}

impl App {
    /// The providers people sign in to the console through, by issuer.
    pub fn console_providers(&self) -> Vec<String> {
        self.oidc
            .iter()
            .filter(|i| i.config.client.is_some())
            .map(|i| i.config.issuer.clone())
            .collect()
    }

    /// Start a sign-in through `issuer`: the provider's authorization
    /// address with PKCE (S256), state and nonce, and the cookie that binds
    /// them to this browser. Nothing is written: the state is authenticated
    /// by the cookie's secret (and says which provider, where to go next,
    /// and when it began), so fetching this address changes nothing.
    /// `origin` is the console's public origin.
    #[tracing::instrument(skip_all)]
    pub async fn start_oidc_sign_in(
        &self,
        issuer: &str,
        origin: &str,
        next: &str,
    ) -> AppResult<OidcStart> {
        let Some(provider) = self
            .oidc
            .iter()
            .find(|i| i.config.issuer == issuer && i.config.client.is_some())
        else {
            return refuse(
                Code::NoProviderClient,
                format!("{issuer} is not a provider the console signs in through"),
            );
        };
        let client = provider
            .config
            .client
            .as_ref()
            .map_or("", |c| c.id.as_str());
        let endpoints = provider.endpoints().await.map_err(provider_unreachable)?;
        let binder = SessionSecret::generate();
        let state = {
            use base64::Engine;
            let payload = serde_json::json!({ "i": issuer, "n": next, "t": self.now_ms() });
            let payload =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
            let mac = binder.derive(&format!("{STATE_LABEL}:{payload}"));
            format!("{payload}.{mac}")
        };
        let authorize_url = crate::oidc::authorize_url(&crate::oidc::Authorize {
            endpoint: &endpoints.authorization,
            client_id: client,
            redirect_uri: &callback_of(origin),
            state: &state,
            nonce: &binder.derive(NONCE_LABEL),
            verifier: &binder.derive(PKCE_LABEL),
        })
        .ok_or_else(|| {
            refused(
                Code::TokenIssuerUnreachable,
                "the identity provider names an authorization endpoint that is not a URL",
            )
        })?;
        Ok(OidcStart {
            authorize_url,
            binder,
            max_age_secs: OIDC_LOGIN_TTL_MS / 1000,
        })
    }

    /// The provider's return: check it is this browser's sign-in, use it
    /// once, redeem the code with the PKCE verifier, verify the ID
    /// token (audience: the console's client; nonce: this sign-in's) and
    /// open a session. A refusal is audited as a refused token is.
    #[tracing::instrument(skip_all)]
    pub async fn finish_oidc_sign_in(
        &self,
        state: &str,
        code: &str,
        origin: &str,
        binder: Option<&SessionSecret>,
    ) -> AppResult<(SessionSecret, Session, String)> {
        let res = self.finish_oidc(state, code, origin, binder).await;
        match res {
            Ok((who, next)) => {
                let (secret, session) = self
                    .open_session(&who, SignInMethod::Oidc, None, vec![])
                    .await?;
                Ok((secret, session, next))
            }
            Err(e) => {
                if let AppError::Refused(_) = &e {
                    self.record_refusal("anonymous", Action::SessionOpen, "console", &e)
                        .await?;
                }
                Err(e)
            }
        }
    }

    async fn finish_oidc(
        &self,
        state: &str,
        code: &str,
        origin: &str,
        binder: Option<&SessionSecret>,
    ) -> AppResult<(Identity, String)> {
        use base64::Engine;
        let now = self.now_ms();
        let unknown = |why: &str| {
            refused(
                Code::SignInUnknown,
                format!("this sign-in {why}: start it again from the sign-in page"),
            )
        };
        let other_browser = || {
            refused(
                Code::SignInOtherBrowser,
                "this sign-in was started in another browser (or its cookie is gone): start it again here",
            )
        };
        let (payload, mac) = state
            .split_once('.')
            .ok_or_else(|| unknown("is not one this service began"))?;
        let binder = binder.ok_or_else(other_browser)?;
        {
            use subtle::ConstantTimeEq;
            let expected = binder.derive(&format!("{STATE_LABEL}:{payload}"));
            if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
                return Err(other_browser());
            }
        }
        let claims: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| unknown("is not one this service began"))?;
        let (Some(issuer), Some(next), Some(began)) = (
            claims["i"].as_str(),
            claims["n"].as_str(),
            claims["t"].as_i64(),
        ) else {
            return Err(unknown("is not one this service began"));
        };
        if now - began >= OIDC_LOGIN_TTL_MS {
            return Err(unknown("has expired"));
        }
        let provider = self
            .oidc
            .iter()
            .find(|i| i.config.issuer == issuer)
            .ok_or_else(|| unknown("names a provider this service no longer trusts"))?;
        let client = provider
            .config
            .client
            .as_ref()
            .map(|c| c.id.clone())
            .ok_or_else(|| unknown("names a provider the console no longer signs in through"))?;
        let state_hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(state.as_bytes()))
        };
        let mut tx = self.store.begin().await?;
        let first = tx
            .use_oidc_return(&state_hash, issuer, now, began + OIDC_LOGIN_TTL_MS)
            .await?;
        tx.commit().await?;
        if !first {
            return Err(unknown("has been used: a sign-in's return is used once"));
        }
        let endpoints = provider.endpoints().await.map_err(provider_unreachable)?;
        let id_token = provider
            .redeem(
                &endpoints.token,
                code,
                &callback_of(origin),
                &binder.derive(PKCE_LABEL),
            )
            .await
            .map_err(provider_unreachable)?
            .ok_or_else(|| {
                refused(
                    Code::ProviderRefused,
                    "the identity provider did not accept the sign-in's code: start it again",
                )
            })?;
        let (who, claims) = provider
            .verify_for(&id_token, now / 1000, &client)
            .await
            .map_err(|e| refused(e.code(), format!("the provider's ID token is refused: {e}")))?;
        let nonce = binder.derive(NONCE_LABEL);
        if claims["nonce"].as_str() != Some(nonce.as_str()) {
            return Err(refused(
                Code::ProviderRefused,
                "the provider's ID token is not for this sign-in (its nonce differs)",
            ));
        }
        if self.token_revoked(&who.jti).await? {
            return Err(refused(Code::TokenRevoked, "the token has been revoked"));
        }
        Ok((who, next.to_owned()))
    }
}
