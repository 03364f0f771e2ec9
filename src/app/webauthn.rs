//! Security keys and passkeys (WebAuthn): registration, removal, and the
//! ceremonies that approve or deny one request.
//!
//! A ceremony is a row (`webauthn_ceremonies`) that any replica finishes:
//! what it is for (the request, the decision, the custodian, the session),
//! the library's state, and a lifetime of a few minutes. It is taken once,
//! in its own transaction, before its response is even looked at, so a
//! response is never checked twice against the same ceremony.
//!
//! The challenge of an approval is not random: it is the SHA-256 of what it
//! approves (`decision_purpose`: the request, the decision, the custodian
//! and a random nonce). The authenticator signs its hash inside
//! clientDataJSON, so the signature itself says which request was approved
//! or denied, by whom: a release re-verifies it, and so does an auditor
//! offline, from the audit log alone.
//!
//! Counters: an authenticator that keeps a signature counter must show a
//! higher one at every use. One that goes backwards is refused, audited as
//! `webauthn.counter_regressed` and alerted (the key may be cloned).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use webauthn_rs::prelude::{
    AttestationCa, AttestationCaList, AttestedPasskeyRegistration, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use super::{refuse, App, AppError, AppResult, Done, Event};
use crate::auth::Identity;
use crate::domain::request::request_target;
use crate::domain::states::Decision;
use crate::domain::{Action, Code, Role};
use crate::store::{CeremonyRow, CustodianRow, RequestRow, StoreError, Tx, WebauthnKeyRow};

/// How long a ceremony waits for the authenticator.
pub const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;
/// The longest name of a key.
pub const MAX_KEY_NAME: usize = 64;

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CeremonyKind {
    /// An existing key confirms the registration of another.
    Confirm,
    /// A new key is registered.
    Register,
    /// A request is approved.
    Approve,
    /// A request is denied.
    Deny,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Confirm => "confirm",
            CeremonyKind::Register => "register",
            CeremonyKind::Approve => "approve",
            CeremonyKind::Deny => "deny",
        }
    }

    pub(crate) fn of(decision: Decision) -> CeremonyKind {
        match decision {
            Decision::Approve => CeremonyKind::Approve,
            Decision::Deny => CeremonyKind::Deny,
        }
    }
}

/// A ceremony started: what the browser (or another WebAuthn client)
/// passes to `navigator.credentials.create` (`register`) or `.get` (the
/// others), and the id to send the response back with.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyView {
    pub ceremony: String,
    pub kind: CeremonyKind,
    pub expires_at: String,
    /// `{"publicKey": {...}}`, binary values in base64url.
    #[schema(value_type = Object)]
    pub options: Value,
}

/// A registered key, as its owner and admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub credential_id: String,
    pub custodian: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub removed_at: Option<String>,
    /// The highest signature counter seen (0: the authenticator keeps none).
    pub counter: i64,
}

impl KeyView {
    fn of(k: &WebauthnKeyRow) -> KeyView {
        KeyView {
            credential_id: k.credential_id.clone(),
            custodian: k.custodian.clone(),
            name: k.name.clone(),
            created_at: crate::clock::rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(crate::clock::rfc3339),
            removed_at: k.removed_at.map(crate::clock::rfc3339),
            counter: k.counter,
        }
    }
}

/// Start registering a key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// What the custodian calls it ("yubikey-blue", "laptop").
    pub name: String,
    /// The custodian's current TOTP code: needed for a first key, which no
    /// other key can confirm.
    #[schema(value_type = Option<String>, example = "123456")]
    #[serde(default)]
    pub code: Option<SecretString>,
}

/// The response of the authenticator to a ceremony.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CeremonyResponse {
    pub ceremony: String,
    /// The `PublicKeyCredential` as JSON (binary values in base64url).
    #[schema(value_type = Object)]
    pub credential: Value,
    /// A denial's reason.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Start a ceremony that approves or denies a request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionCeremonyBody {
    #[schema(value_type = String, example = "approve")]
    pub decision: Decision,
}

/// The assertion kept with a decision made with a key, and in its audit
/// event: all an auditor needs (with the key's registration event) to
/// verify the approval offline. Binary values in base64url.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assertion {
    pub credential_id: String,
    pub client_data_json: String,
    pub authenticator_data: String,
    pub signature: String,
    /// The random part of the challenge (`decision_purpose`).
    pub nonce: String,
    /// The signature counter the authenticator reported.
    pub counter: u32,
}

impl Assertion {
    fn of(c: &PublicKeyCredential, nonce: &str, counter: u32) -> Assertion {
        Assertion {
            credential_id: B64URL.encode(&c.raw_id),
            client_data_json: B64URL.encode(&c.response.client_data_json),
            authenticator_data: B64URL.encode(&c.response.authenticator_data),
            signature: B64URL.encode(&c.response.signature),
            nonce: nonce.to_owned(),
            counter,
        }
    }

    /// The credential as the browser sent it (what the library verifies).
    pub(crate) fn credential(&self) -> Option<PublicKeyCredential> {
        serde_json::from_value(json!({
            "id": self.credential_id,
            "rawId": self.credential_id,
            "response": {
                "authenticatorData": self.authenticator_data,
                "clientDataJSON": self.client_data_json,
                "signature": self.signature,
                "userHandle": null,
            },
            "extensions": {},
            "type": "public-key",
        }))
        .ok()
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an assertion serialises")
    }

    pub(crate) fn from_json(s: &str) -> Option<Assertion> {
        serde_json::from_str(s).ok()
    }
}

/// What an approval's challenge binds, as canonical JSON: its SHA-256 is
/// the challenge. `docs/design.md` and the offline verifier recompute it.
pub fn decision_purpose(request: &str, decision: Decision, custodian: &str, nonce: &str) -> Value {
    json!({
        "type": "breakglass-decision",
        "v": 1,
        "request": request,
        "decision": decision.as_str(),
        "custodian": custodian,
        "nonce": nonce,
    })
}

fn confirm_purpose(custodian: &str, key_name: &str, nonce: &str) -> Value {
    json!({
        "type": "breakglass-key-confirm",
        "v": 1,
        "custodian": custodian,
        "key_name": key_name,
        "nonce": nonce,
    })
}

/// The challenge for a purpose: SHA-256 of its canonical JSON.
pub fn challenge_of(purpose: &Value) -> Vec<u8> {
    let mut out = String::new();
    crate::crypto::chain::canonical_json(purpose, &mut out)
        .expect("purposes hold strings and integers only");
    Sha256::digest(out.as_bytes()).to_vec()
}

fn nonce() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system's random source");
    B64URL.encode(b)
}

use super::custodians::custodian_target;

/// The custodian's stable WebAuthn user handle (no personal data in it).
fn user_handle(custodian: &str) -> uuid::Uuid {
    let d = Sha256::digest(format!("breakglass-custodian:{custodian}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

fn internal(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("{what}: {e}"))
}

/// A stored passkey (the library's JSON) with its counter at `counter`.
fn passkey_at(passkey: &str, counter: i64) -> AppResult<Passkey> {
    let mut v: Value = serde_json::from_str(passkey).map_err(|e| internal("stored passkey", e))?;
    let Some(slot) = v.pointer_mut("/cred/counter") else {
        return Err(internal("stored passkey", "no counter"));
    };
    *slot = json!(counter);
    serde_json::from_value(v).map_err(|e| internal("stored passkey", e))
}

/// The passkeys of live keys, each at its highest counter seen.
fn live_passkeys<'a>(
    keys: impl IntoIterator<Item = &'a WebauthnKeyRow>,
) -> AppResult<Vec<Passkey>> {
    keys.into_iter()
        .filter(|k| k.removed_at.is_none())
        .map(|k| passkey_at(&k.passkey, k.counter))
        .collect()
}

/// SHA-256 (hex) of a stored passkey, as its registration event records it.
pub(crate) fn passkey_digest(passkey: &str) -> String {
    hex::encode(Sha256::digest(passkey.as_bytes()))
}

/// An authentication by one of `passkeys`, whose challenge is
/// `challenge_of(purpose)` in place of the library's random one: its
/// options and its state. Refuses (internal) if the library's format is not
/// the one this was written for: nothing is signed over a challenge this
/// service did not choose.
fn bound_authentication(
    wa: &Webauthn,
    passkeys: &[Passkey],
    purpose: &Value,
) -> AppResult<(Value, String)> {
    let (rcr, state) = wa
        .start_passkey_authentication(passkeys)
        .map_err(|e| internal("WebAuthn authentication", e))?;
    let c = Value::String(B64URL.encode(challenge_of(purpose)));
    let mut options = serde_json::to_value(&rcr).map_err(|e| internal("options", e))?;
    let mut st = serde_json::to_value(&state).map_err(|e| internal("ceremony state", e))?;
    match (
        options.pointer_mut("/publicKey/challenge"),
        st.pointer_mut("/ast/challenge"),
    ) {
        (Some(a), Some(b)) => {
            *a = c.clone();
            *b = c;
        }
        _ => return Err(internal("ceremony state", "no challenge to bind")),
    }
    // Read back: the state must carry exactly this challenge.
    let back: PasskeyAuthentication =
        serde_json::from_value(st.clone()).map_err(|e| internal("ceremony state", e))?;
    let back = serde_json::to_value(&back).map_err(|e| internal("ceremony state", e))?;
    if back.pointer("/ast/challenge") != st.pointer("/ast/challenge") {
        return Err(internal("ceremony state", "the challenge did not bind"));
    }
    Ok((options, st.to_string()))
}

/// The refusal for an assertion the library did not accept.
fn assertion_refused<T>(e: WebauthnError) -> AppResult<T> {
    match e {
        WebauthnError::UserNotVerified => refuse(
            Code::UserNotVerified,
            "the authenticator did not verify you (PIN, fingerprint or face): approvals need user verification; try again and unlock the key",
        ),
        WebauthnError::MismatchedChallenge => refuse(
            Code::AssertionNotBound,
            "this signature was made for another ceremony (another request, decision or registration): it is not accepted here",
        ),
        WebauthnError::CredentialNotFound => refuse(
            Code::KeyNotFound,
            "the key that signed is not one of yours that this ceremony allowed",
        ),
        other => {
            tracing::warn!(error = %other, "a WebAuthn assertion did not verify");
            refuse(
                Code::AssertionInvalid,
                format!("the security key's signature does not verify ({other}): try again from the console"),
            )
        }
    }
}

/// A verified response to an approval or denial ceremony.
pub(crate) struct Verified {
    pub assertion: Assertion,
    pub key: WebauthnKeyRow,
}

impl App {
    /// The allowed attestation roots, when the configuration restricts
    /// registrations to them.
    fn attestation_roots(&self) -> AppResult<Option<AttestationCaList>> {
        let roots = &self.settings.webauthn_attestation_roots;
        if roots.is_empty() {
            return Ok(None);
        }
        let mut list = AttestationCaList::default();
        for der in roots {
            // Any authenticator whose chain ends at this root.
            let ca: AttestationCa = serde_json::from_value(json!({
                "ca": B64URL.encode(der),
                "aaguids": {},
                "blanket_allow": true,
            }))
            .map_err(|e| internal("webauthn.attestation_roots", e))?;
            list.insert(ca)
                .map_err(|e| internal("webauthn.attestation_roots", format!("{e:?}")))?;
        }
        Ok(Some(list))
    }

    /// The relying party: the console's public address is the origin, its
    /// host the relying party id.
    pub(crate) fn webauthn(&self) -> AppResult<Webauthn> {
        let Some(origin) = self.settings.console.public_url.as_deref() else {
            return refuse(
                Code::WebauthnUnavailable,
                "security keys are not set up on this server: it needs [console] public_url (the address people reach the console at) as the WebAuthn origin",
            );
        };
        let url = Url::parse(origin).map_err(|e| internal("console.public_url", e))?;
        let rp_id = url
            .host_str()
            .ok_or_else(|| internal("console.public_url", "no host"))?
            .to_owned();
        WebauthnBuilder::new(&rp_id, &url)
            .and_then(|b| b.rp_name("breakglass").build())
            .map_err(|e| internal("WebAuthn relying party", e))
    }

    /// A ceremony, taken once in its own transaction (a refused response
    /// still uses it up), checked against what the caller meant it for.
    pub(crate) async fn take(
        &self,
        who: &Identity,
        id: &str,
        kind: CeremonyKind,
        request: Option<&str>,
    ) -> AppResult<CeremonyRow> {
        if uuid::Uuid::parse_str(id).is_err() {
            return refuse(
                Code::CeremonyUnknown,
                format!("no WebAuthn ceremony {id:?}"),
            );
        }
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        let taken = tx.take_ceremony(id, now).await?;
        let seen = match &taken {
            Some(_) => None,
            None => tx.ceremony(id).await?,
        };
        tx.commit().await?;
        let c = match (taken, seen) {
            (Some(c), _) => c,
            (None, Some(_)) => return refuse(
                Code::CeremonyUsed,
                "this WebAuthn ceremony was used already (a ceremony is taken once): start again",
            ),
            (None, None) => {
                return refuse(
                    Code::CeremonyUnknown,
                    format!("no WebAuthn ceremony {id}: start again"),
                )
            }
        };
        if c.custodian != who.subject || c.session != who.jti {
            return refuse(
                Code::CeremonyOtherSession,
                "this WebAuthn ceremony was started by another custodian or in another session",
            );
        }
        if c.expires_at <= now {
            return refuse(
                Code::CeremonyExpired,
                "this WebAuthn ceremony expired (it lasts 5 minutes): start again",
            );
        }
        let decisions = [CeremonyKind::Approve, CeremonyKind::Deny];
        if c.kind != kind.as_str() {
            if decisions.contains(&kind) && decisions.iter().any(|k| k.as_str() == c.kind) {
                return refuse(
                    Code::CeremonyWrongDecision,
                    format!(
                        "this WebAuthn ceremony was started to {}, not to {}",
                        c.kind,
                        kind.as_str()
                    ),
                );
            }
            return refuse(
                Code::CeremonyWrongKind,
                format!(
                    "this WebAuthn ceremony is a {}, not a {}",
                    c.kind,
                    kind.as_str()
                ),
            );
        }
        if c.request_id.as_deref() != request {
            return refuse(
                Code::CeremonyWrongRequest,
                "this WebAuthn ceremony was started for another request",
            );
        }
        Ok(c)
    }

    fn ceremony_row(
        &self,
        who: &Identity,
        kind: CeremonyKind,
        state: String,
        extra: (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
    ) -> CeremonyRow {
        let (request_id, key_name, nonce, authorized_by) = extra;
        let now = self.now_ms();
        CeremonyRow {
            id: uuid::Uuid::new_v4().to_string(),
            kind: kind.as_str().into(),
            custodian: who.subject.clone(),
            session: who.jti.clone(),
            request_id,
            key_name,
            nonce,
            authorized_by,
            state,
            created_at: now,
            expires_at: now + CEREMONY_TTL_MS,
            used_at: None,
        }
    }

    fn view_of(c: &CeremonyRow, kind: CeremonyKind, options: Value) -> CeremonyView {
        CeremonyView {
            ceremony: c.id.clone(),
            kind,
            expires_at: crate::clock::rfc3339(c.expires_at),
            options,
        }
    }

    /// A key name as given: trimmed, 1 to `MAX_KEY_NAME` characters.
    fn key_name(raw: &str) -> AppResult<String> {
        let n = raw.trim();
        if n.is_empty() || n.chars().count() > MAX_KEY_NAME {
            return refuse(
                Code::InvalidName,
                format!("name the key in 1 to {MAX_KEY_NAME} characters"),
            );
        }
        if let Some(why) = crate::domain::text::check("the key's name", n, false) {
            return refuse(Code::InvalidCharacters, why);
        }
        Ok(n.to_owned())
    }

    /// Start registering a key: with an existing key's confirmation when
    /// the custodian has one, with a TOTP code for a first key, and never
    /// for a custodian whose keys were all removed (that needs the quorum).
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn begin_key_registration(
        &self,
        who: &Identity,
        body: RegisterBody,
    ) -> AppResult<CeremonyView> {
        let code = body.code.clone();
        let opened = match &code {
            Some(code) => self.open_presence(&who.subject, code).await,
            None => Ok(None),
        };
        let mut tx = self.store.begin().await?;
        let res = match opened {
            Ok(o) => {
                self.begin_registration_tx(tx.as_mut(), who, body, o.as_ref())
                    .await
            }
            Err(e) => Err(e),
        };
        self.finish(
            tx,
            Some(who),
            Action::WebauthnChallenge,
            &custodian_target(&who.subject),
            res,
        )
        .await
    }

    async fn begin_registration_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        body: RegisterBody,
        opened: Option<&super::custodians::OpenedSeed>,
    ) -> AppResult<Done<CeremonyView>> {
        self.require(who, Role::Custodian)?;
        let wa = self.webauthn()?;
        let name = Self::key_name(&body.name)?;
        let c = super::custodians::active_custodian(tx, who).await?;
        super::custodians::refuse_if_locked(&c, self.now_ms())?;
        let keys = tx.webauthn_keys_of(&c.name).await?;
        if keys
            .iter()
            .any(|k| k.removed_at.is_none() && k.name == name)
        {
            return refuse(
                Code::KeyNameTaken,
                format!("you already have a key named {name:?}: choose another name"),
            );
        }
        let live = live_passkeys(&keys)?;
        let details = json!({ "ceremony": "confirm", "key_name": name });
        if !live.is_empty() {
            // An existing key confirms the new one.
            let n = nonce();
            let (options, state) =
                bound_authentication(&wa, &live, &confirm_purpose(&c.name, &name, &n))?;
            let row = self.ceremony_row(
                who,
                CeremonyKind::Confirm,
                state,
                (None, Some(name), Some(n), None),
            );
            tx.insert_ceremony(&row).await?;
            let view = Self::view_of(&row, CeremonyKind::Confirm, options);
            return Ok(Done::new(
                view,
                Event::new(
                    Action::WebauthnChallenge,
                    custodian_target(&c.name),
                    details,
                ),
            ));
        }
        // A first key, or one the quorum allowed: a TOTP code shows the
        // custodian is present.
        let authorized_by = match keys.is_empty() {
            true => "first".to_owned(),
            false => match self.granted_reset(tx, &c.name).await? {
                Some(g) => format!("reset:{}", g.id),
                None => {
                    return refuse(
                        Code::KeyResetRequired,
                        format!(
                            "custodian {} had security keys and has none left: a new key cannot be confirmed by one; it needs the quorum's approval (POST /v1/custodians/{}/key-reset)",
                            c.name, c.name
                        ),
                    )
                }
            },
        };
        let Some(code) = &body.code else {
            return refuse(
                Code::InvalidTotpFormat,
                "this security key needs your current TOTP code (`code`)",
            );
        };
        self.check_presence(tx, &c, code, opened).await?;
        let (options, row) = self.registration(&wa, who, &c, &keys, name, &authorized_by)?;
        tx.insert_ceremony(&row).await?;
        Ok(Done::new(
            Self::view_of(&row, CeremonyKind::Register, options),
            Event::new(
                Action::WebauthnChallenge,
                custodian_target(&c.name),
                json!({ "ceremony": "register", "key_name": row.key_name, "authorized_by": row.authorized_by }),
            ),
        ))
    }

    fn registration(
        &self,
        wa: &Webauthn,
        who: &Identity,
        c: &CustodianRow,
        keys: &[WebauthnKeyRow],
        name: String,
        authorized_by: &str,
    ) -> AppResult<(Value, CeremonyRow)> {
        let exclude = keys
            .iter()
            .filter_map(|k| B64URL.decode(&k.credential_id).ok())
            .collect::<Vec<_>>();
        let roots = self.attestation_roots()?;
        let (options, state) = match roots {
            None => {
                let (ccr, state) = wa
                    .start_passkey_registration(
                        user_handle(&c.name),
                        &c.name,
                        &c.name,
                        Some(exclude),
                    )
                    .map_err(|e| internal("WebAuthn registration", e))?;
                (
                    serde_json::to_value(&ccr).map_err(|e| internal("options", e))?,
                    json!({ "attested": false, "state": state }),
                )
            }
            Some(roots) => {
                let (ccr, state) = wa
                    .start_attested_passkey_registration(
                        user_handle(&c.name),
                        &c.name,
                        &c.name,
                        Some(exclude),
                        roots,
                        None,
                    )
                    .map_err(|e| internal("WebAuthn registration", e))?;
                (
                    serde_json::to_value(&ccr).map_err(|e| internal("options", e))?,
                    json!({ "attested": true, "state": state }),
                )
            }
        };
        let state = state.to_string();
        let row = self.ceremony_row(
            who,
            CeremonyKind::Register,
            state,
            (None, Some(name), None, Some(authorized_by.to_owned())),
        );
        Ok((options, row))
    }

    /// An existing key confirms: the registration ceremony follows.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn confirm_key_registration(
        &self,
        who: &Identity,
        body: CeremonyResponse,
    ) -> AppResult<CeremonyView> {
        let target = custodian_target(&who.subject);
        let taken = self
            .take(who, &body.ceremony, CeremonyKind::Confirm, None)
            .await;
        let mut tx = self.store.begin().await?;
        let res = match taken {
            Ok(c) => {
                self.key_confirm_tx(tx.as_mut(), who, c, &body.credential)
                    .await
            }
            Err(e) => Err(e),
        };
        self.finish(tx, Some(who), Action::WebauthnChallenge, &target, res)
            .await
    }

    async fn key_confirm_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        ceremony: CeremonyRow,
        credential: &Value,
    ) -> AppResult<Done<CeremonyView>> {
        self.require(who, Role::Custodian)?;
        let wa = self.webauthn()?;
        let c = super::custodians::active_custodian(tx, who).await?;
        let credential: PublicKeyCredential = parse_credential(credential)?;
        let verified = self
            .verify_assertion(tx, &wa, &c, &ceremony, &credential)
            .await?;
        let keys = tx.webauthn_keys_of(&c.name).await?;
        let name = ceremony.key_name.clone().unwrap_or_default();
        let by = format!("key:{}", verified.key.credential_id);
        let (options, row) = self.registration(&wa, who, &c, &keys, name, &by)?;
        tx.insert_ceremony(&row).await?;
        Ok(Done::new(
            Self::view_of(&row, CeremonyKind::Register, options),
            Event::new(
                Action::WebauthnChallenge,
                custodian_target(&c.name),
                json!({ "ceremony": "register", "key_name": row.key_name, "authorized_by": by, "counter": verified.assertion.counter }),
            ),
        ))
    }

    /// Finish registering a key.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn finish_key_registration(
        &self,
        who: &Identity,
        body: CeremonyResponse,
    ) -> AppResult<KeyView> {
        let target = custodian_target(&who.subject);
        let taken = self
            .take(who, &body.ceremony, CeremonyKind::Register, None)
            .await;
        let mut tx = self.store.begin().await?;
        let res = match taken {
            Ok(c) => {
                self.register_tx(tx.as_mut(), who, c, &body.credential)
                    .await
            }
            Err(e) => Err(e),
        };
        self.finish(tx, Some(who), Action::WebauthnRegister, &target, res)
            .await
    }

    async fn register_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        ceremony: CeremonyRow,
        credential: &Value,
    ) -> AppResult<Done<KeyView>> {
        self.require(who, Role::Custodian)?;
        let wa = self.webauthn()?;
        let c = super::custodians::active_custodian(tx, who).await?;
        let reg: RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| {
                AppError::Refused(super::Refusal::new(
                    Code::AssertionMalformed,
                    format!("the registration is not a public-key credential: {e}"),
                ))
            })?;
        let state: Value =
            serde_json::from_str(&ceremony.state).map_err(|e| internal("ceremony state", e))?;
        let finished = if state["attested"] == json!(true) {
            let st: AttestedPasskeyRegistration = serde_json::from_value(state["state"].clone())
                .map_err(|e| internal("ceremony state", e))?;
            wa.finish_attested_passkey_registration(&reg, &st)
                .map(Passkey::from)
        } else {
            let st: PasskeyRegistration = serde_json::from_value(state["state"].clone())
                .map_err(|e| internal("ceremony state", e))?;
            wa.finish_passkey_registration(&reg, &st)
        };
        let passkey = match finished {
            Ok(p) => p,
            Err(
                WebauthnError::AttestationChainNotTrusted(_)
                | WebauthnError::AttestationTrustFailure
                | WebauthnError::AttestationNotVerifiable
                | WebauthnError::MissingAttestationCaList
                | WebauthnError::AttestationUntrustedAaguid
                | WebauthnError::AttestationFormatMissingAaguid
                | WebauthnError::AttestationStatementX5CMissing,
            ) => {
                return refuse(
                    Code::AttestationUntrusted,
                    "this authenticator's attestation does not chain to one of the roots this server allows (webauthn.attestation_roots): use an approved security key",
                )
            }
            Err(WebauthnError::UserNotVerified) => {
                return refuse(
                    Code::UserNotVerified,
                    "the authenticator did not verify you (PIN, fingerprint or face): a key is registered only with user verification",
                )
            }
            Err(e) => {
                return refuse(
                    Code::RegistrationInvalid,
                    format!("the key's registration does not verify ({e}): try again"),
                )
            }
        };
        if let Some(reset) = ceremony
            .authorized_by
            .as_deref()
            .and_then(|a| a.strip_prefix("reset:"))
        {
            self.use_reset(tx, reset).await?;
        }
        let credential_id = B64URL.encode(passkey.cred_id());
        let stored = serde_json::to_string(&passkey).map_err(|e| internal("passkey", e))?;
        let now = self.now_ms();
        let name = ceremony.key_name.clone().unwrap_or_default();
        let row = WebauthnKeyRow {
            credential_id: credential_id.clone(),
            custodian: c.name.clone(),
            name: name.clone(),
            passkey: stored.clone(),
            counter: 0,
            aaguid: None,
            created_at: now,
            last_used_at: None,
            removed_at: None,
        };
        match tx.insert_webauthn_key(&row).await {
            Err(StoreError::Conflict(what)) if what.contains("name") => {
                return refuse(
                    Code::KeyNameTaken,
                    format!("you already have a key named {name:?}: choose another name"),
                )
            }
            Err(StoreError::Conflict(_)) => {
                return refuse(
                    Code::KeyAlreadyRegistered,
                    "that security key is registered already",
                )
            }
            other => other?,
        }
        let ev = Event::new(
            Action::WebauthnRegister,
            custodian_target(&c.name),
            json!({
                "credential_id": credential_id,
                "name": name,
                "authorized_by": ceremony.authorized_by,
                // What a release checks the stored key against, and what an
                // auditor reads the public key from.
                "passkey_sha256": passkey_digest(&stored),
                "attestation_object": B64URL.encode(&reg.response.attestation_object),
                "client_data_json": B64URL.encode(&reg.response.client_data_json),
            }),
        );
        // Signed at once: a release proves each key by this checkpoint.
        Ok(Done::new(KeyView::of(&row), ev).checkpointed())
    }

    /// The caller's keys, or (admin, auditor) another custodian's.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn list_keys(
        &self,
        who: &Identity,
        custodian: Option<&str>,
    ) -> AppResult<Vec<KeyView>> {
        let name = custodian.unwrap_or(&who.subject).to_owned();
        let mut tx = self.store.begin_read().await?;
        let res = async {
            if name != who.subject {
                self.require_any(who, &[Role::Admin, Role::Auditor])?;
            } else {
                self.require_any(who, &[Role::Custodian, Role::Admin, Role::Auditor])?;
            }
            Ok(tx
                .webauthn_keys_of(&name)
                .await?
                .iter()
                .map(KeyView::of)
                .collect())
        }
        .await;
        self.finish_read(tx, who, Action::WebauthnList, &custodian_target(&name), res)
            .await
    }

    /// Remove a key (its custodian, or an admin): it never signs again.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn remove_key(&self, who: &Identity, credential_id: &str) -> AppResult<KeyView> {
        let mut tx = self.store.begin().await?;
        let res = self.remove_tx(tx.as_mut(), who, credential_id).await;
        let target = match &res {
            Ok(d) => custodian_target(&d.value.custodian),
            Err(_) => format!("webauthn-key:{credential_id}"),
        };
        self.finish(tx, Some(who), Action::WebauthnRemove, &target, res)
            .await
    }

    async fn remove_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        credential_id: &str,
    ) -> AppResult<Done<KeyView>> {
        self.require_any(who, &[Role::Custodian, Role::Admin])?;
        let k = match tx.webauthn_key(credential_id).await? {
            Some(k) if k.custodian == who.subject || who.has(Role::Admin) => k,
            _ => {
                return refuse(
                    Code::KeyNotFound,
                    format!("no security key {credential_id:?} of yours"),
                )
            }
        };
        let now = self.now_ms();
        if !tx.remove_webauthn_key(&k.credential_id, now).await? {
            return refuse(Code::KeyRemoved, "that security key was removed already");
        }
        let mut k = k;
        k.removed_at = Some(now);
        let ev = Event::new(
            Action::WebauthnRemove,
            custodian_target(&k.custodian),
            json!({ "credential_id": k.credential_id, "name": k.name }),
        );
        Ok(Done::new(KeyView::of(&k), ev).checkpointed())
    }

    /// The ceremony that approves or denies request `r` (its rules already
    /// checked: `App::begin_decision`).
    pub(crate) async fn decision_ceremony(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        r: &RequestRow,
        c: &CustodianRow,
        decision: Decision,
    ) -> AppResult<Done<CeremonyView>> {
        let wa = self.webauthn()?;
        let passkeys = live_passkeys(&tx.webauthn_keys_of(&c.name).await?)?;
        if passkeys.is_empty() {
            return refuse(
                Code::NoSecurityKey,
                format!(
                    "custodian {} has no security key: register one on the console's keys page first",
                    c.name
                ),
            );
        }
        let n = nonce();
        let (options, state) = bound_authentication(
            &wa,
            &passkeys,
            &decision_purpose(&r.id, decision, &c.name, &n),
        )?;
        let kind = CeremonyKind::of(decision);
        let row = self.ceremony_row(who, kind, state, (Some(r.id.clone()), None, Some(n), None));
        tx.insert_ceremony(&row).await?;
        Ok(Done::new(
            Self::view_of(&row, kind, options),
            Event::new(
                Action::WebauthnChallenge,
                request_target(&r.id),
                json!({ "ceremony": kind, "credential": r.credential_name }),
            ),
        ))
    }

    /// Audit (and so alert) a counter that went backwards.
    pub(crate) async fn counter_regressed(&self, who: &Identity, message: String) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        let ev = Event::new(
            Action::WebauthnCounterRegressed,
            custodian_target(&who.subject),
            json!({ "message": message }),
        );
        self.append(tx.as_mut(), &who.subject, "success", None, ev)
            .await?;
        tx.commit().await?;
        self.metrics.lockout();
        tracing::warn!(custodian = %who.subject, "a security key's signature counter went backwards");
        Ok(())
    }

    /// Verify a response to an approval, denial or confirmation ceremony:
    /// the signature over the ceremony's challenge, user verification, a
    /// live key of this custodian, and a counter that moves forward (then
    /// recorded).
    pub(crate) async fn verify_assertion(
        &self,
        tx: &mut dyn Tx,
        wa: &Webauthn,
        c: &CustodianRow,
        ceremony: &CeremonyRow,
        credential: &PublicKeyCredential,
    ) -> AppResult<Verified> {
        let credential_id = B64URL.encode(&credential.raw_id);
        let key = match tx.webauthn_key(&credential_id).await? {
            Some(k) if k.custodian == c.name => k,
            _ => {
                return refuse(
                    Code::KeyNotFound,
                    "the key that signed is not registered to you",
                )
            }
        };
        if key.removed_at.is_some() {
            return refuse(
                Code::KeyRemoved,
                format!("your key {:?} was removed and never signs again", key.name),
            );
        }
        let state: PasskeyAuthentication =
            serde_json::from_str(&ceremony.state).map_err(|e| internal("ceremony state", e))?;
        let result = match wa.finish_passkey_authentication(credential, &state) {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return refuse(
                    Code::CounterRegressed,
                    format!(
                        "the signature counter of key {:?} went backwards (it was at {}): the key may be cloned; it is refused and the security team is alerted",
                        key.name, key.counter
                    ),
                )
            }
            Err(e) => return assertion_refused(e),
        };
        if !result.user_verified() {
            return assertion_refused(WebauthnError::UserNotVerified);
        }
        let counter = result.counter();
        if !tx
            .use_webauthn_key(&key.credential_id, i64::from(counter), self.now_ms())
            .await?
        {
            return refuse(
                Code::CounterRegressed,
                format!(
                    "the signature counter of key {:?} did not move forward ({counter}, was {}): the key may be cloned; it is refused and the security team is alerted",
                    key.name, key.counter
                ),
            );
        }
        Ok(Verified {
            assertion: Assertion::of(credential, ceremony.nonce.as_deref().unwrap_or(""), counter),
            key,
        })
    }

    /// Re-verify a kept assertion against the key as registered (a
    /// release's proof): the challenge must be the one its request, its
    /// decision and its custodian give, and the user verified.
    pub(crate) fn reverify(
        &self,
        key_passkey: &str,
        a: &Assertion,
        purpose: &Value,
    ) -> Result<(), String> {
        let wa = self.webauthn().map_err(|e| e.to_string())?;
        // At counter 0: it was signed when the key's counter was lower
        // than it may be now.
        let passkey = passkey_at(key_passkey, 0).map_err(|e| e.to_string())?;
        let (_, state) =
            bound_authentication(&wa, &[passkey], purpose).map_err(|e| e.to_string())?;
        let state: PasskeyAuthentication =
            serde_json::from_str(&state).map_err(|e| e.to_string())?;
        let credential = a
            .credential()
            .ok_or_else(|| "its assertion is malformed".to_string())?;
        let r = wa
            .finish_passkey_authentication(&credential, &state)
            .map_err(|e| format!("its signature does not verify ({e})"))?;
        if !r.user_verified() {
            return Err("its authenticator did not verify the user".into());
        }
        if r.counter() != a.counter {
            return Err("its recorded counter is not the one signed".into());
        }
        Ok(())
    }
}

/// A `PublicKeyCredential` as JSON, or the refusal that names the problem.
pub(crate) fn parse_credential(v: &Value) -> AppResult<PublicKeyCredential> {
    serde_json::from_value(v.clone()).map_err(|e| {
        AppError::Refused(super::Refusal::new(
            Code::AssertionMalformed,
            format!("the response is not a public-key credential: {e}"),
        ))
    })
}
