//! The web console: pages rendered on the server from templates compiled
//! into the binary, one stylesheet and one small script. Every page calls
//! the same use cases as the API, so it writes the same audit events and
//! answers with the same refusal codes.
//!
//! Its rules, each enforced in one place here:
//! - a session is an opaque `__Host-` cookie naming a row of the database;
//! - a GET never changes state (link scanners and chat unfurlers follow
//!   links): every change is a POST ([`ConsoleForm`]) from this origin
//!   carrying the session's form token;
//! - a link followed from another site arrives without the `SameSite=Strict`
//!   cookie and is bounced once through a same-origin page that carries it.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::{ApiError, AppState};
use crate::app::console::Session;
use crate::crypto::session::SessionSecret;
use crate::domain::{Code, Role};

mod keys;
mod oversight;
mod pages;

/// The console's Content-Security-Policy: only this origin's script and
/// style, never inline; images from here or `data:` (the QR code).
pub const CSP: &str = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; img-src 'self' data:";

const CSS: &[u8] = include_bytes!("static/console.css");
const JS: &[u8] = include_bytes!("static/console.js");

/// Whether a path is the console's (its responses get [`CSP`]).
pub fn is_console_path(path: &str) -> bool {
    path == "/" || path == "/console" || path.starts_with("/console/")
}

pub fn router() -> Router<AppState> {
    use pages::*;
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route("/console/signin", get(signin_page))
        .route("/console/signin/token", post(signin_token))
        .route("/console/signin/oidc", get(signin_oidc))
        .route("/console/signin/oidc/callback", get(signin_oidc_callback))
        .route("/console/signin/link", get(link_page).post(signin_link))
        .route("/console/signout", post(signout))
        .route("/console/requests", post(file_request))
        .route("/console/requests/new", get(new_request))
        .route("/console/requests/{id}", get(request_page))
        .route("/console/requests/{id}/approve", post(approve))
        .route("/console/requests/{id}/deny", post(deny))
        .route("/console/requests/{id}/release", post(release))
        .route("/console/requests/{id}/key", post(key_decision))
        .route("/console/requests/{id}/key/approve", post(key_approve))
        .route("/console/requests/{id}/key/deny", post(key_deny))
        .route("/console/keys", get(keys::keys_page).post(keys::add_key))
        .route("/console/keys/confirm", post(keys::confirm_key))
        .route("/console/keys/register", post(keys::register_key))
        .route("/console/keys/{id}/remove", post(keys::remove_key))
        .route("/console/keys/reset", post(keys::ask_reset))
        .route("/console/key-resets/{id}/approve", post(approve_reset))
        .route("/console/key-resets/{id}/deny", post(deny_reset))
        .route("/console/enroll", get(enroll_page).post(enroll))
        .route("/console/enroll/confirm", post(confirm))
        .route("/console/audit", get(oversight::audit))
        .route("/console/audit/verify", post(oversight::verify))
        .route("/console/audit/export", get(oversight::export))
        .route("/console/hygiene", get(oversight::hygiene))
        .route("/console/admin", get(oversight::admin))
        .route(
            "/console/admin/sessions/revoke",
            post(oversight::revoke_sessions),
        )
}

async fn css() -> impl IntoResponse {
    static_file("text/css; charset=utf-8", CSS)
}

async fn js() -> impl IntoResponse {
    static_file("text/javascript; charset=utf-8", JS)
}

fn static_file(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Compiled in: it changes only with the binary.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    res
}

/// What every page's frame shows: who is signed in, what their roles let
/// them reach, this session's form token, and a refusal or notice.
#[derive(Default)]
pub struct Chrome {
    pub me: Option<String>,
    pub form_token: String,
    pub requester: bool,
    pub custodian: bool,
    pub auditor: bool,
    pub admin: bool,
    pub sees_all: bool,
    pub error: Option<Shown>,
    pub notice: Option<String>,
}

/// A refusal as a page shows it: the code and its message.
pub struct Shown {
    pub code: String,
    pub message: String,
}

impl Chrome {
    pub fn of(s: &Signed) -> Chrome {
        let who = &s.session.identity;
        Chrome {
            me: Some(who.subject.clone()),
            form_token: s.secret.form_token(),
            requester: who.has(Role::Requester),
            custodian: who.has(Role::Custodian),
            auditor: who.has(Role::Auditor),
            admin: who.has(Role::Admin),
            sees_all: [Role::Admin, Role::Auditor, Role::Custodian]
                .iter()
                .any(|r| who.has(*r)),
            ..Chrome::default()
        }
    }
}

/// A page, rendered, with its status.
pub fn page(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut res = (status, html).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the operators have the details",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    back: String,
}

/// A refusal as a page: the status and code of the API's answer, its
/// message, and a way back.
pub struct PageError(Refused);

enum Refused {
    /// The error page: the refusal and a way back.
    Plain {
        err: ApiError,
        chrome: Chrome,
        back: String,
    },
    /// A page of its own that shows the refusal.
    Page(Response),
}

impl PageError {
    /// A refusal shown on a page of its own.
    pub fn page(res: Response) -> PageError {
        PageError(Refused::Page(res))
    }

    pub fn new(err: impl Into<ApiError>, chrome: Chrome, back: impl Into<String>) -> PageError {
        PageError(Refused::Plain {
            err: err.into(),
            chrome,
            back: back.into(),
        })
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self.0 {
            Refused::Page(res) => res,
            Refused::Plain {
                err,
                mut chrome,
                back,
            } => {
                chrome.error = Some(shown(&err));
                page(err.status, &ErrorPage { chrome, back })
            }
        }
    }
}

pub fn shown(e: &ApiError) -> Shown {
    Shown {
        code: e.code.as_str().to_owned(),
        message: e.message.clone(),
    }
}

/// The signed-in person of a page: a live session, or (for a GET) a
/// redirect to sign in, after a same-origin bounce when the link came from
/// another site.
pub struct Signed {
    pub session: Session,
    pub secret: SessionSecret,
}

fn session_secret(headers: &HeaderMap) -> Option<SessionSecret> {
    let mut found = None;
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { return None };
        if let Some(s) = SessionSecret::from_cookie_header(v) {
            if found.is_some() {
                return None;
            }
            found = Some(s);
        }
    }
    found
}

/// Where to go back to after signing in: only a path of the console, never
/// another site (`//evil.example` and `/\evil` included).
pub fn safe_next(next: &str) -> String {
    let ok = next.starts_with("/console/")
        && !next.contains("//")
        && !next.contains('\\')
        && next.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        next.to_owned()
    } else {
        "/console/".to_owned()
    }
}

fn fetch_site(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let reads = matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        // A change from another site is refused before anything else, with
        // its reason (its SameSite=Strict cookie is not even sent).
        if !reads {
            same_origin(parts)
                .map_err(|e| PageError::new(e, Chrome::default(), "/console/").into_response())?;
        }
        let here = parts
            .uri
            .path_and_query()
            .map_or("/console/", |p| p.as_str())
            .to_owned();
        let session = match session_secret(&parts.headers) {
            Some(secret) => match app.console_session(&secret).await {
                Ok(Some(s)) => Some((s, secret)),
                Ok(None) => None,
                Err(e) => return Err(ApiError::from(e).into_response()),
            },
            None => None,
        };
        let Some((session, secret)) = session else {
            if !reads {
                return Err(PageError::new(
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        Code::TokenMissing,
                        "your session has ended: sign in again",
                    ),
                    Chrome::default(),
                    signin_at(&here),
                )
                .into_response());
            }
            // A link followed from another site (a chat, a pager) comes
            // without the SameSite=Strict cookie: bounce once through this
            // origin, which sends it.
            if matches!(fetch_site(parts), Some("cross-site" | "same-site")) {
                return Err(page(
                    StatusCode::OK,
                    &pages::Bounce {
                        to: safe_next(&here),
                    },
                ));
            }
            return Err(Redirect::to(&signin_at(&here)).into_response());
        };
        if let Err(wait) = app.limiters.identity(&session.identity.subject) {
            return Err(ApiError::rate_limited(
                app,
                Code::RateLimitedIdentity,
                "for this identity",
                wait,
            )
            .into_response());
        }
        parts.extensions.insert(session.identity.clone());
        Ok(Signed { session, secret })
    }
}

/// `path` with `pairs` as its query, encoded.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    match serde_urlencoded::to_string(pairs) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

/// The sign-in page, coming back to `next` (one of the console's paths).
pub fn signin_at(next: &str) -> String {
    with_query("/console/signin", &[("next", &safe_next(next))])
}

/// Refuse a state change that did not come from a page of this origin:
/// `Sec-Fetch-Site` must say `same-origin`, or, from a browser that does not
/// send it, `Origin` must be this origin.
fn same_origin(parts: &Parts) -> Result<(), ApiError> {
    let refused = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            Code::CrossSiteRequest,
            format!("{why}: the console accepts a change only from its own pages"),
        )
    };
    match fetch_site(parts) {
        Some("same-origin") => return Ok(()),
        Some(other) => return Err(refused(&format!("the form came from a {other} page"))),
        None => {}
    }
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refused("the form carries neither Sec-Fetch-Site nor Origin"))?;
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bare = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    if bare == Some(host) && !host.is_empty() {
        Ok(())
    } else {
        Err(refused("the form came from another origin"))
    }
}

/// A form POST of the console: same-origin, within the body limit, and
/// read as its fields, in order, each checked as the API checks text.
pub struct ConsoleForm {
    fields: Vec<(String, String)>,
}

impl ConsoleForm {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A required field, with the problem named if it is missing.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.field(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidBody,
                format!("the form's field {name} is missing: fill it in"),
            )),
        }
    }

    /// Refuse unless the form carries the session's form token.
    pub fn check_token(&self, secret: &SessionSecret) -> Result<(), ApiError> {
        match self.field("form_token") {
            Some(t) if secret.form_token_matches(t) => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                Code::FormTokenInvalid,
                "the form's token is missing or belongs to another session: reload the page and try again",
            )),
        }
    }
}

impl FromRequest<AppState> for ConsoleForm {
    type Rejection = PageError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, PageError> {
        let (parts, body) = req.into_parts();
        let back = "/console/".to_owned();
        same_origin(&parts).map_err(|e| PageError::new(e, Chrome::default(), back.clone()))?;
        let req = Request::from_parts(parts, body);
        let bytes = axum::body::Bytes::from_request(req, app)
            .await
            .map_err(|rej| {
                let status = rej.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Code::BodyTooLarge
                } else {
                    Code::InvalidBody
                };
                PageError::new(
                    ApiError::new(status, code, rej.body_text()),
                    Chrome::default(),
                    back.clone(),
                )
            })?;
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                .map(|f| {
                    f.into_iter()
                        .map(|(k, v)| (k, v.trim().to_owned()))
                        .collect()
                })
                .map_err(|e| {
                    PageError::new(
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            Code::InvalidBody,
                            format!("the form could not be read: {e}"),
                        ),
                        Chrome::default(),
                        back.clone(),
                    )
                })?;
        let mut seen = BTreeMap::new();
        for (k, v) in &fields {
            if seen.insert(k.as_str(), ()).is_some() {
                return Err(PageError::new(
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Code::DuplicateKey,
                        format!("field {k} is given twice: give each field once"),
                    ),
                    Chrome::default(),
                    back,
                ));
            }
            if let Some(f) = super::input::check_text(&format!("form field {k}"), v) {
                let (status, code, message) = super::finding_problem(f);
                return Err(PageError::new(
                    ApiError::new(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                        code,
                        message,
                    ),
                    Chrome::default(),
                    back,
                ));
            }
        }
        Ok(ConsoleForm { fields })
    }
}
