//! The console's pages and the forms they post.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::{ExposeSecret, SecretString};

use super::{page, safe_next, shown, Chrome, ConsoleForm, PageError, Signed};
use crate::app::console::Session;
use crate::app::views::{CreateRequestBody, CredentialView, ReleaseView, RequestView};
use crate::crypto::session::{clear_cookie, SessionSecret};
use crate::domain::states::Decision;
use crate::domain::{Factor, RequestState, Role};
use crate::http::{ApiError, AppState, Query};

type PageResult = Result<Response, PageError>;

#[derive(Template)]
#[template(path = "bounce.html")]
pub struct Bounce {
    pub to: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    chrome: Chrome,
    next: String,
    /// The OIDC providers the console signs in through.
    providers: Vec<String>,
}

#[derive(Template)]
#[template(path = "link.html")]
struct LinkPage {
    chrome: Chrome,
    link: String,
    next: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    chrome: Chrome,
    awaiting: Vec<Row>,
    recent: Vec<Row>,
    /// Key resets the custodian may decide on.
    resets: Vec<crate::app::key_resets::KeyResetView>,
}

/// A request in a list.
struct Row {
    id: String,
    credential: String,
    requester: String,
    reason: String,
    approvals: usize,
    approvals_needed: u32,
    state: &'static str,
    created_at: String,
}

impl From<&RequestView> for Row {
    fn from(r: &RequestView) -> Row {
        Row {
            id: r.id.clone(),
            credential: r.credential.clone(),
            requester: r.requester.clone(),
            reason: r.reason.clone(),
            approvals: r.approvals,
            approvals_needed: r.approvals_needed,
            state: r.state.as_str(),
            created_at: r.created_at.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    chrome: Chrome,
    r: RequestView,
    state: &'static str,
    state_text: String,
    left: String,
    can_decide: bool,
    can_release: bool,
}

#[derive(Template)]
#[template(path = "new_request.html")]
struct NewRequest {
    chrome: Chrome,
    credentials: Vec<CredentialView>,
}

#[derive(Template)]
#[template(path = "released.html")]
struct Released {
    chrome: Chrome,
    v: ReleaseView,
}

#[derive(Debug, serde::Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    /// A sign-in link's secret (`/console/signin/link?s=...`).
    s: Option<String>,
}

fn state_text(r: &RequestView) -> String {
    match r.state {
        RequestState::Pending => format!(
            "Waiting for approvals: {} of {}",
            r.approvals, r.approvals_needed
        ),
        RequestState::Approved => "Approved: the requester may release it once".into(),
        RequestState::Denied => "Denied".into(),
        RequestState::Released => match &r.released_at {
            Some(at) => format!("Released at {at}: it cannot be released again"),
            None => "Released".into(),
        },
        RequestState::Expired => "Expired before the quorum was met".into(),
        RequestState::ReleaseWindowClosed => "The release window closed unused".into(),
    }
}

/// "1 h 12 min left", from the server's clock.
fn time_left(until: &str, now_ms: i64) -> String {
    let Some(at) = crate::clock::parse_rfc3339(until) else {
        return until.to_owned();
    };
    let s = (at - now_ms) / 1000;
    if s <= 0 {
        return "no time left".into();
    }
    let (h, m) = (s / 3600, (s % 3600) / 60);
    if h > 0 {
        format!("{h} h {m} min left")
    } else if m > 0 {
        format!("{m} min {} s left", s % 60)
    } else {
        format!("{s} s left")
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Sign in: set the session's cookie and go where the person was going.
fn signed_in(secret: &SessionSecret, s: &Session, now_ms: i64, next: &str) -> Response {
    let mut res = see_other(&safe_next(next));
    let max_age = (s.expires_at - now_ms) / 1000;
    if let Ok(v) = HeaderValue::from_str(&secret.set_cookie(max_age)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

fn signin_page_of(app: &AppState, next: &str) -> SignInPage {
    SignInPage {
        chrome: Chrome::default(),
        next: safe_next(next),
        providers: app.console_providers(),
    }
}

/// A refused sign-in: the sign-in page again, with the refusal above its
/// other ways in (the local fallback when the provider is down).
fn signin_refused(app: &AppState, next: &str, e: ApiError) -> PageError {
    let mut p = signin_page_of(app, next);
    p.chrome.error = Some(shown(&e));
    PageError::page(page(e.status, &p))
}

pub async fn signin_page(State(app): State<AppState>, Query(q): Query<NextQuery>) -> Response {
    page(
        StatusCode::OK,
        &signin_page_of(&app, q.next.as_deref().unwrap_or("/console/")),
    )
}

/// The console's origin for a sign-in's return address: the configured
/// public address, else the request's own host when it is a loopback one
/// (a development or test server). Anything else would trust a `Host` an
/// attacker can set.
fn console_origin(app: &AppState, headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    if let Some(u) = &app.settings.console.public_url {
        return Ok(u.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    if matches!(name, "localhost" | "127.0.0.1" | "[::1]") {
        return Ok(format!("http://{host}"));
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::domain::Code::ConsoleAddressUnknown,
        "the console does not know its public address: an operator sets [console] public_url",
    ))
}

#[derive(Debug, serde::Deserialize)]
pub struct OidcQuery {
    issuer: String,
    next: Option<String>,
}

/// Start a sign-in through a provider: a cookie binding it to this
/// browser, and the redirect to the provider. A link, not a form: the CSP's
/// `form-action 'self'` would stop a form's redirect to the provider, and
/// it writes nothing, so a GET is safe.
pub async fn signin_oidc(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<OidcQuery>,
) -> PageResult {
    let next = safe_next(q.next.as_deref().unwrap_or("/console/"));
    let fail = |e: ApiError| signin_refused(&app, &next, e);
    let issuer = q.issuer.as_str();
    let origin = console_origin(&app, &headers).map_err(fail)?;
    let start = app
        .start_oidc_sign_in(issuer, &origin, &next)
        .await
        .map_err(|e| fail(e.into()))?;
    let mut res = see_other(&start.authorize_url);
    if let Ok(v) = HeaderValue::from_str(&start.binder.set_login_cookie(start.max_age_secs)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[derive(Debug, serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider's return. (A GET, as the protocol has it: it signs in only
/// with a state taken once and the cookie of the browser that started it,
/// so a link scanner fetching it changes nothing.)
pub async fn signin_oidc_callback(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> PageResult {
    let fail = |e: ApiError| signin_refused(&app, "/console/", e);
    if let Some(err) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return Err(fail(ApiError::new(
            StatusCode::UNAUTHORIZED,
            crate::domain::Code::ProviderRefused,
            format!(
                "the identity provider refused the sign-in ({}{}{})",
                crate::domain::text::escape(&err),
                if detail.is_empty() { "" } else { ": " },
                crate::domain::text::escape(&detail)
            ),
        )));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(fail(ApiError::new(
            StatusCode::BAD_REQUEST,
            crate::domain::Code::InvalidQuery,
            "the provider's return carries no code or state: start the sign-in again",
        )));
    };
    let binder = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(SessionSecret::login_from_cookie_header);
    let origin = console_origin(&app, &headers).map_err(fail)?;
    let (secret, s, next) = app
        .finish_oidc_sign_in(&state, &code, &origin, binder.as_ref())
        .await
        .map_err(|e| fail(e.into()))?;
    let mut res = signed_in(&secret, &s, app.now_ms(), &next);
    if let Ok(v) = HeaderValue::from_str(&crate::crypto::session::clear_login_cookie()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

pub async fn signin_token(State(app): State<AppState>, form: ConsoleForm) -> PageResult {
    let next = form.field("next").unwrap_or("/console/").to_owned();
    let token = form
        .required("token")
        .map_err(|e| signin_refused(&app, &next, e))?;
    let (secret, s) = app
        .open_session_with_token(token)
        .await
        .map_err(|e| signin_refused(&app, &next, e.into()))?;
    Ok(signed_in(&secret, &s, app.now_ms(), &next))
}

/// A sign-in link, opened: a page with a button, so that a link scanner
/// that fetches it uses nothing.
pub async fn link_page(Query(q): Query<NextQuery>) -> Response {
    page(
        StatusCode::OK,
        &LinkPage {
            chrome: Chrome::default(),
            link: q.s.unwrap_or_default(),
            next: safe_next(q.next.as_deref().unwrap_or("/console/")),
        },
    )
}

pub async fn signin_link(State(app): State<AppState>, form: ConsoleForm) -> PageResult {
    let next = form.field("next").unwrap_or("/console/").to_owned();
    let link = form
        .required("link")
        .map_err(|e| signin_refused(&app, &next, e))?;
    let (secret, s) = app
        .open_session_with_link(link)
        .await
        .map_err(|e| signin_refused(&app, &next, e.into()))?;
    Ok(signed_in(&secret, &s, app.now_ms(), &next))
}

pub async fn signout(State(app): State<AppState>, me: Signed, form: ConsoleForm) -> PageResult {
    form.check_token(&me.secret)
        .map_err(|e| PageError::new(e, Chrome::of(&me), "/console/"))?;
    app.close_session(&me.session.identity, &me.secret)
        .await
        .map_err(|e| PageError::new(e, Chrome::of(&me), "/console/"))?;
    let mut res = see_other("/console/signin");
    if let Ok(v) = HeaderValue::from_str(&clear_cookie()) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

pub async fn home(State(app): State<AppState>, me: Signed) -> PageResult {
    home_view(&app, &me, StatusCode::OK, None, None).await
}

/// The home page, with a refusal or notice shown above it.
async fn home_view(
    app: &AppState,
    me: &Signed,
    status: StatusCode,
    error: Option<&ApiError>,
    notice: Option<String>,
) -> PageResult {
    let who = &me.session.identity;
    let fail = |e: crate::app::AppError| PageError::new(e, Chrome::of(me), "/console/");
    let all = app.list_requests(who, 50).await.map_err(fail)?;
    let awaiting = all
        .iter()
        .filter(|r| {
            who.has(Role::Custodian)
                && r.state == RequestState::Pending
                && r.requester != who.subject
                && !r.decisions.iter().any(|d| d.custodian == who.subject)
        })
        .map(Row::from)
        .collect();
    let recent = all.iter().map(Row::from).collect();
    let resets = match who.has(Role::Custodian) {
        false => Vec::new(),
        true => app
            .list_key_resets(who)
            .await
            .map_err(fail)?
            .into_iter()
            .filter(|k| {
                k.state == "pending"
                    && k.custodian != who.subject
                    && !k.decisions.iter().any(|d| d.custodian == who.subject)
            })
            .collect(),
    };
    let mut chrome = Chrome::of(me);
    chrome.error = error.map(shown);
    chrome.notice = notice;
    Ok(page(
        status,
        &Home {
            chrome,
            awaiting,
            recent,
            resets,
        },
    ))
}

async fn reset_decided(
    app: &AppState,
    me: &Signed,
    id: &str,
    form: &ConsoleForm,
    deny: bool,
) -> PageResult {
    let res = async {
        form.check_token(&me.secret)?;
        let code = SecretString::from(form.required("code")?.to_owned());
        let reason = match deny {
            true => Some(form.required("reason")?),
            false => None,
        };
        Ok::<_, ApiError>(
            app.decide_key_reset(&me.session.identity, id, &code, reason)
                .await?,
        )
    }
    .await;
    match res {
        Ok(k) => {
            let notice = format!(
                "Your decision on {}'s new key is recorded: the reset is {}.",
                k.custodian, k.state
            );
            home_view(app, me, StatusCode::OK, None, Some(notice)).await
        }
        Err(e) => home_view(app, me, e.status, Some(&e), None).await,
    }
}

pub async fn approve_reset(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
    form: ConsoleForm,
) -> PageResult {
    reset_decided(&app, &me, &id, &form, false).await
}

pub async fn deny_reset(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
    form: ConsoleForm,
) -> PageResult {
    reset_decided(&app, &me, &id, &form, true).await
}

/// The request page, with a refusal or notice shown above it.
async fn request_view(
    app: &AppState,
    me: &Signed,
    id: &str,
    status: StatusCode,
    error: Option<&ApiError>,
    notice: Option<String>,
) -> PageResult {
    let who = &me.session.identity;
    let r = app
        .show_request(who, id)
        .await
        .map_err(|e| PageError::new(e, Chrome::of(me), "/console/"))?;
    let mut chrome = Chrome::of(me);
    chrome.error = error.map(shown);
    chrome.notice = notice;
    let pending = r.state == RequestState::Pending;
    let p = RequestPage {
        state: r.state.as_str(),
        state_text: state_text(&r),
        left: time_left(&r.expires_at, app.now_ms()),
        // The use case decides; the page offers the form to whoever might.
        can_decide: pending
            && who.has(Role::Custodian)
            && !r.decisions.iter().any(|d| d.custodian == who.subject),
        can_release: r.state == RequestState::Approved && r.requester == who.subject,
        chrome,
        r,
    };
    Ok(page(status, &p))
}

pub async fn request_page(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
) -> PageResult {
    request_view(&app, &me, &id, StatusCode::OK, None, None).await
}

/// A decision's outcome: the request page again, with the refusal (and
/// its status) or a notice.
async fn decided(
    app: &AppState,
    me: &Signed,
    id: &str,
    res: Result<RequestView, ApiError>,
    done: &str,
) -> PageResult {
    match res {
        Ok(_) => request_view(app, me, id, StatusCode::OK, None, Some(done.into())).await,
        Err(e) => request_view(app, me, id, e.status, Some(&e), None).await,
    }
}

pub async fn approve(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
    form: ConsoleForm,
) -> PageResult {
    let res = async {
        form.check_token(&me.secret)?;
        let code = SecretString::from(form.required("code")?.to_owned());
        Ok(app.approve(&me.session.identity, &id, &code).await?)
    }
    .await;
    decided(&app, &me, &id, res, "Your approval is recorded.").await
}

pub async fn deny(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
    form: ConsoleForm,
) -> PageResult {
    let res = async {
        form.check_token(&me.secret)?;
        let code = SecretString::from(form.required("code")?.to_owned());
        let reason = form.required("reason")?;
        Ok(app.deny(&me.session.identity, &id, &code, reason).await?)
    }
    .await;
    decided(&app, &me, &id, res, "Your denial is recorded.").await
}

/// Start deciding with a security key: the ceremony's page, or the
/// request page with the refusal.
pub async fn key_decision(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
    form: ConsoleForm,
) -> PageResult {
    let res = async {
        form.check_token(&me.secret)?;
        let decision = decision_in(form.required("decision")?)?;
        let reason = match decision {
            Decision::Deny => Some(form.required("reason")?.to_owned()),
            Decision::Approve => None,
        };
        let c = app
            .begin_decision(&me.session.identity, &id, decision)
            .await?;
        Ok::<_, ApiError>((c, decision, reason))
    }
    .await;
    match res {
        Ok((c, decision, reason)) => {
            let p = super::keys::CeremonyPage::of(
                &me,
                &c,
                format!("/console/requests/{id}/key/{decision}"),
                format!("/console/requests/{id}"),
                reason,
            );
            Ok(page(StatusCode::OK, &p))
        }
        Err(e) => request_view(&app, &me, &id, e.status, Some(&e), None).await,
    }
}

fn decision_in(v: &str) -> Result<Decision, ApiError> {
    v.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::domain::Code::InvalidBody,
            "decision is approve or deny",
        )
    })
}

async fn key_decided(
    app: &AppState,
    me: &Signed,
    id: &str,
    decision: Decision,
    form: &ConsoleForm,
) -> PageResult {
    let res = async {
        let body = super::keys::answer(form, me)?;
        Ok(app
            .decide_with_key(&me.session.identity, id, decision, body)
            .await?)
    }
    .await;
    let done = match decision {
        Decision::Approve => "Your approval is recorded, signed by your security key.",
        Decision::Deny => "Your denial is recorded, signed by your security key.",
    };
    decided(app, me, id, res, done).await
}

pub async fn key_approve(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
    form: ConsoleForm,
) -> PageResult {
    key_decided(&app, &me, &id, Decision::Approve, &form).await
}

pub async fn key_deny(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
    form: ConsoleForm,
) -> PageResult {
    key_decided(&app, &me, &id, Decision::Deny, &form).await
}

pub async fn new_request(State(app): State<AppState>, me: Signed) -> PageResult {
    let credentials = app
        .list_credentials(&me.session.identity)
        .await
        .map_err(|e| PageError::new(e, Chrome::of(&me), "/console/"))?;
    Ok(page(
        StatusCode::OK,
        &NewRequest {
            chrome: Chrome::of(&me),
            credentials,
        },
    ))
}

pub async fn file_request(
    State(app): State<AppState>,
    me: Signed,
    form: ConsoleForm,
) -> PageResult {
    let back = "/console/requests/new";
    let res = async {
        form.check_token(&me.secret)?;
        let body = CreateRequestBody {
            credential: form.required("credential")?.to_owned(),
            reason: form.required("reason")?.to_owned(),
            ticket: form
                .field("ticket")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        };
        Ok::<_, ApiError>(app.create_request(&me.session.identity, body).await?)
    }
    .await;
    match res {
        Ok(r) => Ok(see_other(&format!("/console/requests/{}", r.id))),
        Err(e) => Err(PageError::new(e, Chrome::of(&me), back)),
    }
}

pub async fn release(
    State(app): State<AppState>,
    me: Signed,
    crate::http::Path(id): crate::http::Path<String>,
    form: ConsoleForm,
) -> PageResult {
    let res = async {
        form.check_token(&me.secret)?;
        Ok::<_, ApiError>(app.release(&me.session.identity, &id).await?)
    }
    .await;
    match res {
        Ok(v) => {
            // The values go from the view (zeroized when it drops) straight
            // into the page.
            let mut res = page(
                StatusCode::OK,
                &Released {
                    chrome: Chrome::of(&me),
                    v,
                },
            );
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(res)
        }
        Err(e) => request_view(&app, &me, &id, e.status, Some(&e), None).await,
    }
}

/// An enrolment as its page shows it once: the QR code (an SVG in a
/// `data:` address) and the secret for typing.
struct Shown2fa {
    qr: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage {
    chrome: Chrome,
    me: crate::app::views::CustodianView,
    enrollment: Option<Shown2fa>,
}

/// The custodian record of the signed-in person.
async fn me_as_custodian(
    app: &AppState,
    me: &Signed,
) -> Result<crate::app::views::CustodianView, PageError> {
    let who = &me.session.identity;
    let view = app
        .whoami(who)
        .await
        .map_err(|e| PageError::new(e, Chrome::of(me), "/console/"))?;
    view.custodian.ok_or_else(|| {
        PageError::new(
            ApiError::new(
                StatusCode::NOT_FOUND,
                crate::domain::Code::CustodianNotFound,
                format!(
                    "{} is not a custodian: an admin adds custodians",
                    who.subject
                ),
            ),
            Chrome::of(me),
            "/console/",
        )
    })
}

pub async fn enroll_page(State(app): State<AppState>, me: Signed) -> PageResult {
    let custodian = me_as_custodian(&app, &me).await?;
    Ok(page(
        StatusCode::OK,
        &EnrollPage {
            chrome: Chrome::of(&me),
            me: custodian,
            enrollment: None,
        },
    ))
}

pub async fn enroll(State(app): State<AppState>, me: Signed, form: ConsoleForm) -> PageResult {
    let fail = |e: ApiError| PageError::new(e, Chrome::of(&me), "/console/enroll");
    form.check_token(&me.secret).map_err(fail)?;
    let custodian = me_as_custodian(&app, &me).await?;
    let who = &me.session.identity;
    let e = app
        .enroll(who, &who.subject)
        .await
        .map_err(|e| fail(e.into()))?;
    let uri = e.otpauth_uri.expose_secret();
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map(|c| {
            use base64::Engine;
            let svg = c
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .build();
            format!(
                "data:image/svg+xml;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(svg)
            )
        })
        .unwrap_or_default();
    let secret = reqwest::Url::parse(uri)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "secret")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    let mut res = page(
        StatusCode::OK,
        &EnrollPage {
            chrome: Chrome::of(&me),
            me: custodian,
            enrollment: Some(Shown2fa { qr, secret }),
        },
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

pub async fn confirm(State(app): State<AppState>, me: Signed, form: ConsoleForm) -> PageResult {
    let fail = |e: ApiError| PageError::new(e, Chrome::of(&me), "/console/enroll");
    form.check_token(&me.secret).map_err(fail)?;
    let code = SecretString::from(form.required("code").map_err(fail)?.to_owned());
    let who = &me.session.identity;
    let view = app
        .confirm(who, &who.subject, &code)
        .await
        .map_err(|e| fail(e.into()))?;
    let mut chrome = Chrome::of(&me);
    chrome.notice =
        Some("Your authenticator is confirmed: you can approve and deny with its codes.".into());
    Ok(page(
        StatusCode::OK,
        &EnrollPage {
            chrome,
            me: view,
            enrollment: None,
        },
    ))
}
