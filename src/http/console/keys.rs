//! Security keys in the console: the keys page (add, remove), and the
//! ceremony page every WebAuthn ceremony goes through. The options travel
//! in a JSON data block, read by the one script, which sends the
//! authenticator's answer back as an ordinary form.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::SecretString;

use super::{page, shown, Chrome, ConsoleForm, PageError, Signed};
use crate::app::key_resets::{KeyResetBody, KeyResetView};
use crate::app::webauthn::{CeremonyKind, CeremonyResponse, CeremonyView, KeyView, RegisterBody};
use crate::domain::Code;
use crate::http::{ApiError, AppState};

type PageResult = Result<Response, PageError>;

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyView>,
    /// No key ever: the first needs a TOTP code.
    first: bool,
    /// Keys once, none left: a new one needs the quorum.
    reset_needed: bool,
    /// The custodian's own reset, pending or approved.
    reset: Option<KeyResetView>,
}

#[derive(Template)]
#[template(path = "ceremony.html")]
pub struct CeremonyPage {
    chrome: Chrome,
    title: String,
    explain: String,
    button: String,
    action: String,
    back: String,
    kind: &'static str,
    ceremony: String,
    expires_at: String,
    /// The options, as JSON that cannot end the data block.
    options: String,
    reason: Option<String>,
}

/// JSON safe inside a `<script type="application/json">` block: `<`, `>`
/// and `&` escaped at the JSON level (they occur only inside strings).
fn data_block(v: &serde_json::Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

impl CeremonyPage {
    /// The page of ceremony `c`, whose answer is posted to `action`.
    pub fn of(
        me: &Signed,
        c: &CeremonyView,
        action: String,
        back: String,
        reason: Option<String>,
    ) -> CeremonyPage {
        let (title, explain, button) = match c.kind {
            CeremonyKind::Confirm => (
                "Confirm with a key you have",
                "A new key is added only with one of your registered keys: touch it (and unlock it) first.",
                "Use a registered key",
            ),
            CeremonyKind::Register => (
                "Register the new key",
                "Touch the new security key, or choose the passkey, and unlock it with its PIN or biometric.",
                "Register the key",
            ),
            CeremonyKind::Approve => (
                "Approve with your security key",
                "Your key signs this request and your approval: touch it and unlock it with its PIN or biometric.",
                "Approve with my key",
            ),
            CeremonyKind::Deny => (
                "Deny with your security key",
                "Your key signs this request and your denial: touch it and unlock it with its PIN or biometric.",
                "Deny with my key",
            ),
        };
        CeremonyPage {
            chrome: Chrome::of(me),
            title: title.into(),
            explain: explain.into(),
            button: button.into(),
            action,
            back,
            kind: c.kind.as_str(),
            ceremony: c.ceremony.clone(),
            expires_at: c.expires_at.clone(),
            options: data_block(&c.options),
            reason,
        }
    }
}

/// The authenticator's answer a ceremony page posted.
pub fn answer(form: &ConsoleForm, me: &Signed) -> Result<CeremonyResponse, ApiError> {
    form.check_token(&me.secret)?;
    let ceremony = form.required("ceremony")?.to_owned();
    let credential = serde_json::from_str(form.required("credential")?).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::AssertionMalformed,
            "the security key's answer is not JSON: try again",
        )
    })?;
    Ok(CeremonyResponse {
        ceremony,
        credential,
        reason: form.field("reason").map(str::to_owned),
    })
}

async fn keys_view(
    app: &AppState,
    me: &Signed,
    status: StatusCode,
    error: Option<&ApiError>,
    notice: Option<String>,
) -> PageResult {
    let who = &me.session.identity;
    let all = app
        .list_keys(who, None)
        .await
        .map_err(|e| PageError::new(e, Chrome::of(me), "/console/"))?;
    let ever = !all.is_empty();
    let keys: Vec<KeyView> = all.into_iter().filter(|k| k.removed_at.is_none()).collect();
    let reset = match keys.is_empty() && ever {
        false => None,
        true => app
            .list_key_resets(who)
            .await
            .map_err(|e| PageError::new(e, Chrome::of(me), "/console/"))?
            .into_iter()
            .find(|r| {
                r.custodian == who.subject && matches!(r.state.as_str(), "pending" | "approved")
            }),
    };
    let granted = reset.as_ref().is_some_and(|r| r.state == "approved");
    let mut chrome = Chrome::of(me);
    chrome.error = error.map(shown);
    chrome.notice = notice;
    Ok(page(
        status,
        &KeysPage {
            chrome,
            first: !ever || granted,
            reset_needed: ever && keys.is_empty() && !granted,
            keys,
            reset,
        },
    ))
}

pub async fn keys_page(State(app): State<AppState>, me: Signed) -> PageResult {
    keys_view(&app, &me, StatusCode::OK, None, None).await
}

/// A ceremony's page, or the keys page with the refusal.
async fn next_step(app: &AppState, me: &Signed, res: Result<CeremonyView, ApiError>) -> PageResult {
    match res {
        Ok(c) => {
            let action = match c.kind {
                CeremonyKind::Confirm => "/console/keys/confirm",
                _ => "/console/keys/register",
            };
            let p = CeremonyPage::of(me, &c, action.into(), "/console/keys".into(), None);
            Ok(page(StatusCode::OK, &p))
        }
        Err(e) => keys_view(app, me, e.status, Some(&e), None).await,
    }
}

pub async fn add_key(State(app): State<AppState>, me: Signed, form: ConsoleForm) -> PageResult {
    let res = async {
        form.check_token(&me.secret)?;
        let body = RegisterBody {
            name: form.required("name")?.to_owned(),
            code: form
                .field("code")
                .filter(|c| !c.trim().is_empty())
                .map(|c| SecretString::from(c.to_owned())),
        };
        Ok(app
            .begin_key_registration(&me.session.identity, body)
            .await?)
    }
    .await;
    next_step(&app, &me, res).await
}

pub async fn confirm_key(State(app): State<AppState>, me: Signed, form: ConsoleForm) -> PageResult {
    let res = async {
        let body = answer(&form, &me)?;
        Ok(app
            .confirm_key_registration(&me.session.identity, body)
            .await?)
    }
    .await;
    next_step(&app, &me, res).await
}

pub async fn register_key(
    State(app): State<AppState>,
    me: Signed,
    form: ConsoleForm,
) -> PageResult {
    let res: Result<KeyView, ApiError> = async {
        let body = answer(&form, &me)?;
        Ok(app
            .finish_key_registration(&me.session.identity, body)
            .await?)
    }
    .await;
    match res {
        Ok(k) => {
            let notice = format!("Your key {} is registered.", k.name);
            keys_view(&app, &me, StatusCode::OK, None, Some(notice)).await
        }
        Err(e) => keys_view(&app, &me, e.status, Some(&e), None).await,
    }
}

pub async fn remove_key(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
    form: ConsoleForm,
) -> PageResult {
    let res: Result<KeyView, ApiError> = async {
        form.check_token(&me.secret)?;
        Ok(app.remove_key(&me.session.identity, &id).await?)
    }
    .await;
    match res {
        Ok(k) => {
            let notice = format!("Your key {} is removed: it never signs again.", k.name);
            keys_view(&app, &me, StatusCode::OK, None, Some(notice)).await
        }
        Err(e) => keys_view(&app, &me, e.status, Some(&e), None).await,
    }
}

pub async fn ask_reset(State(app): State<AppState>, me: Signed, form: ConsoleForm) -> PageResult {
    let res: Result<KeyResetView, ApiError> = async {
        form.check_token(&me.secret)?;
        let body = KeyResetBody {
            reason: form.required("reason")?.to_owned(),
        };
        let who = &me.session.identity;
        Ok(app.propose_key_reset(who, &who.subject, body).await?)
    }
    .await;
    match res {
        Ok(r) => {
            let notice = format!(
                "Your key reset is proposed: it waits for {} ({}).",
                r.quorum, r.policy
            );
            keys_view(&app, &me, StatusCode::OK, None, Some(notice)).await
        }
        Err(e) => keys_view(&app, &me, e.status, Some(&e), None).await,
    }
}
