//! The HTTP edge: routing, bearer authentication, one error type, and the
//! OpenAPI document generated from the handlers.

use crate::domain::Action;
use crate::domain::Code;
use std::sync::Arc;
use tracing::Instrument;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::app::{App, AppError};
use crate::auth::Identity;

pub mod codes;
pub mod console;
pub mod document;
pub mod handlers;
pub mod input;

pub type AppState = Arc<App>;

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, e.g. `totp_replayed`.
    pub code: String,
    /// For people; never contains a secret or an internal cause.
    pub message: String,
}

/// The one error type at the edge.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    /// Seconds for `Retry-After` (rate limits).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A refusal by one of the limits: counted for `/metrics`.
    fn limited(app: &App, status: StatusCode, code: Code, message: String) -> Self {
        app.metrics.limit_refused(code);
        ApiError::new(status, code, message)
    }

    fn rate_limited(app: &App, code: Code, what: &str, wait: std::time::Duration) -> Self {
        let secs = crate::limits::retry_after_secs(wait);
        ApiError {
            retry_after: Some(secs),
            ..ApiError::limited(
                app,
                StatusCode::TOO_MANY_REQUESTS,
                code,
                format!("too many requests {what}; try again in {secs} s"),
            )
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Refused(r) => ApiError::new(
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
                r.code,
                r.message,
            ),
            AppError::Unavailable { code, message } => {
                tracing::warn!(%code, %message, "dependency unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "a dependency of the service is unavailable; try again shortly",
                )
            }
            AppError::Internal(e) => {
                let request_id = crate::context::current().map_or_else(|| "-".into(), |c| c.id);
                tracing::error!(%request_id, error = %format!("{e:#}"), "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Code::Internal,
                    "internal error; the operators have the details",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message,
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// The authenticated caller. Extracting it checks the bearer token and
/// audits a refusal.
pub struct Caller(pub Identity);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = header.and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let who = app.authenticate(token).await?;
        // For the extractors after this one: a refused path, query or body
        // is audited as this caller.
        parts.extensions.insert(who.clone());
        if let Err(wait) = app.limiters.identity(&who.subject) {
            tracing::warn!(subject = %who.subject, "identity over its request rate");
            return Err(ApiError::rate_limited(
                app,
                Code::RateLimitedIdentity,
                "for this identity",
                wait,
            ));
        }
        Ok(Caller(who))
    }
}

/// The operation a request was routed to, as the audit log names it
/// (`POST /v1/requests/{id}/approve`).
fn route_of(method: &axum::http::Method, ext: &axum::http::Extensions) -> String {
    let path = ext
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str());
    format!("{method} {path}")
}

/// Refuse input at the edge. A body that is not JSON or not of the
/// operation's shape never reached a use case and is not an action; input
/// shaped like an attack (a control or bidirectional character, a key given
/// twice) is audited as the caller, whose token was checked before the
/// input was read. If even that cannot be written, the caller gets the
/// audit failure instead.
async fn refuse_input(
    app: &App,
    who: Option<&Identity>,
    route: &str,
    (status, code, message): InputProblem,
) -> ApiError {
    let message = crate::domain::text::escape(&message).into_owned();
    let err = AppError::Refused(crate::app::Refusal {
        status,
        code,
        message,
        totp_failure_of: None,
    });
    if !matches!(code, Code::InvalidCharacters | Code::DuplicateKey) {
        return err.into();
    }
    let actor = crate::app::actor_of(who);
    if let Err(e) = app
        .record_refusal(&actor, Action::HttpInput, &format!("route:{route}"), &err)
        .await
    {
        return e.into();
    }
    err.into()
}

type InputProblem = (u16, Code, String);

fn finding_problem(f: input::Finding) -> InputProblem {
    match f {
        input::Finding::DuplicateKey { path } => (
            422,
            Code::DuplicateKey,
            format!("field {path} is given twice: give each key once"),
        ),
        input::Finding::RefusedCharacter { message } => (422, Code::InvalidCharacters, message),
    }
}

/// `application/json`, or `application/*+json`.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// JSON body extractor: the body must be JSON with no key named twice and
/// no control character in any name, id or text (tests/hostile_input.rs);
/// every rejection uses the error body and is audited.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let who = req.extensions().get::<Identity>().cloned();
        let route = route_of(req.method(), req.extensions());
        match read_body::<T>(req, app).await {
            Ok(v) => Ok(Body(v)),
            Err(p) => Err(refuse_input(app, who.as_ref(), &route, p).await),
        }
    }
}

async fn read_body<T: serde::de::DeserializeOwned + Send>(
    req: Request,
    app: &AppState,
) -> Result<T, InputProblem> {
    if !json_content_type(req.headers()) {
        return Err((
            415,
            Code::UnsupportedMediaType,
            "Expected request with `Content-Type: application/json`".into(),
        ));
    }
    let bytes = match axum::body::Bytes::from_request(req, app).await {
        Ok(b) => b,
        Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err((413, Code::BodyTooLarge, rej.body_text()))
        }
        Err(rej) => return Err((400, Code::InvalidBody, rej.body_text())),
    };
    match input::check_json(&bytes) {
        Err(e) => {
            return Err((
                400,
                Code::MalformedJson,
                format!("Failed to parse the request body as JSON: {e}"),
            ))
        }
        Ok(Some(f)) => return Err(finding_problem(f)),
        Ok(None) => {}
    }
    // The error text of serde names fields and types, never secret values
    // (secrets are strings, and any string is a valid secret).
    serde_json::from_slice::<T>(&bytes).map_err(|e| {
        (
            422,
            Code::InvalidBody,
            format!("Failed to deserialize the JSON body into the target type: {e}"),
        )
    })
}

/// Path parameters, each percent-decoded and checked for refused
/// characters before the handler sees it.
pub struct Path<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<AppState> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        use axum::extract::Path as Raw;
        let raw = Raw::<Vec<(String, String)>>::from_request_parts(parts, app).await;
        let problem = match raw {
            Err(rej) => Some((400, Code::InvalidPath, rej.body_text())),
            Ok(Raw(pairs)) => pairs
                .iter()
                .find_map(|(k, v)| input::check_text(&format!("path segment {{{k}}}"), v))
                .map(finding_problem),
        };
        let problem = match problem {
            Some(p) => p,
            None => match Raw::<T>::from_request_parts(parts, app).await {
                Ok(Raw(v)) => return Ok(Path(v)),
                Err(rej) => (400, Code::InvalidPath, rej.body_text()),
            },
        };
        let who = parts.extensions.get::<Identity>().cloned();
        let route = route_of(&parts.method, &parts.extensions);
        Err(refuse_input(app, who.as_ref(), &route, problem).await)
    }
}

/// Query parameters, each percent-decoded and checked for refused
/// characters; a parameter of the wrong type is `invalid_query`.
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<AppState> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        use axum::extract::Query as Raw;
        let raw = Raw::<Vec<(String, String)>>::from_request_parts(parts, app).await;
        let problem = match raw {
            Err(rej) => Some((400, Code::InvalidQuery, rej.body_text())),
            Ok(Raw(pairs)) => pairs
                .iter()
                .find_map(|(k, v)| {
                    input::check_text("a query parameter name", k)
                        .or_else(|| input::check_text(&format!("query parameter {k}"), v))
                })
                .map(finding_problem),
        };
        let problem = match problem {
            Some(p) => p,
            None => match Raw::<T>::from_request_parts(parts, app).await {
                Ok(Raw(v)) => return Ok(Query(v)),
                Err(rej) => (400, Code::InvalidQuery, rej.body_text()),
            },
        };
        let who = parts.extensions.get::<Identity>().cloned();
        let route = route_of(&parts.method, &parts.extensions);
        Err(refuse_input(app, who.as_ref(), &route, problem).await)
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "breakglass", description = "Break-glass custody of cloud root credentials: TOTP quorum, one-time release, tamper-evident audit."),
    paths(
        handlers::healthz, handlers::readyz, handlers::metrics, handlers::whoami,
        handlers::add_custodian, handlers::list_custodians, handlers::enroll, handlers::confirm,
        handlers::deposit, handlers::rotate, handlers::list_credentials, handlers::show_credential,
        handlers::list_policies,
        handlers::create_request, handlers::list_requests, handlers::show_request,
        handlers::approve, handlers::deny, handlers::release,
        handlers::audit_events, handlers::audit_verify, handlers::audit_key,
        handlers::audit_checkpoints, handlers::audit_checkpoint_now, handlers::audit_export, handlers::audit_sink,
        handlers::revoke_token, handlers::revoke_sessions,
        handlers::share_check,
        handlers::list_alerts, handlers::retry_alert, handlers::hygiene, handlers::rotate_keys,
        handlers::org_sync, handlers::org_accounts, handlers::create_root_request,
        handlers::watch_run, handlers::watch_status, handlers::acknowledge_finding,
        handlers::propose_policy_change, handlers::list_policy_changes,
        handlers::approve_policy_change, handlers::deny_policy_change,
        handlers::open_recovery_session, handlers::show_recovery_session,
        handlers::submit_share, handlers::release_recovery,
        handlers::list_keys, handlers::begin_key_registration, handlers::confirm_key_registration,
        handlers::finish_key_registration, handlers::remove_key,
        handlers::begin_decision, handlers::approve_with_key, handlers::deny_with_key,
        handlers::propose_key_reset, handlers::list_key_resets, handlers::approve_key_reset,
        handlers::deny_key_reset,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

pub fn router(app: AppState) -> Router {
    use handlers::*;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/whoami", get(whoami))
        .route("/v1/custodians", post(add_custodian).get(list_custodians))
        .route("/v1/custodians/{name}/enroll", post(enroll))
        .route("/v1/custodians/{name}/confirm", post(confirm))
        .route("/v1/credentials", post(deposit).get(list_credentials))
        .route("/v1/credentials/{name}", get(show_credential))
        .route("/v1/credentials/{name}/versions", post(rotate))
        .route("/v1/credentials/{name}/rotate-keys", post(rotate_keys))
        .route("/v1/policies", get(list_policies))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/hygiene", get(hygiene))
        .route("/v1/org/sync", post(org_sync))
        .route("/v1/org/accounts", get(org_accounts))
        .route("/v1/org/root-requests", post(create_root_request))
        .route("/v1/watch", get(watch_status))
        .route("/v1/watch/run", post(watch_run))
        .route(
            "/v1/watch/findings/{id}/acknowledge",
            post(acknowledge_finding),
        )
        .route("/v1/alerts/{id}/retry", post(retry_alert))
        .route(
            "/v1/policy-changes",
            post(propose_policy_change).get(list_policy_changes),
        )
        .route(
            "/v1/policy-changes/{id}/approve",
            post(approve_policy_change),
        )
        .route("/v1/policy-changes/{id}/deny", post(deny_policy_change))
        .route("/v1/requests", post(create_request).get(list_requests))
        .route("/v1/requests/{id}", get(show_request))
        .route("/v1/requests/{id}/approve", post(approve))
        .route("/v1/requests/{id}/deny", post(deny))
        .route("/v1/requests/{id}/release", post(release))
        .route("/v1/requests/{id}/webauthn", post(begin_decision))
        .route("/v1/requests/{id}/webauthn/approve", post(approve_with_key))
        .route("/v1/requests/{id}/webauthn/deny", post(deny_with_key))
        .route(
            "/v1/webauthn/keys",
            post(begin_key_registration).get(list_keys),
        )
        .route("/v1/webauthn/keys/confirm", post(confirm_key_registration))
        .route("/v1/webauthn/keys/register", post(finish_key_registration))
        .route("/v1/webauthn/keys/{id}/remove", post(remove_key))
        .route("/v1/custodians/{name}/key-reset", post(propose_key_reset))
        .route("/v1/key-resets", get(list_key_resets))
        .route("/v1/key-resets/{id}/approve", post(approve_key_reset))
        .route("/v1/key-resets/{id}/deny", post(deny_key_reset))
        .route("/v1/audit/events", get(audit_events))
        .route("/v1/audit/verify", post(audit_verify))
        .route("/.well-known/breakglass-audit-key", get(audit_key))
        .route(
            "/v1/audit/checkpoints",
            get(audit_checkpoints).post(audit_checkpoint_now),
        )
        .route("/v1/audit/export", get(audit_export))
        .route("/v1/audit/sink", get(audit_sink))
        .route("/v1/tokens/revoke", post(revoke_token))
        .route("/v1/sessions/revoke", post(revoke_sessions))
        .route("/v1/recovery/shares/check", post(share_check))
        .route("/v1/requests/{id}/recovery", post(open_recovery_session))
        .route("/v1/recovery/sessions/{id}", get(show_recovery_session))
        .route("/v1/recovery/sessions/{id}/shares", post(submit_share))
        .route("/v1/recovery/sessions/{id}/release", post(release_recovery))
        .merge(console::router())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, Code::NotFound, "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::MethodNotAllowed,
                "this endpoint does not accept that method",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(
            app.settings.limits.max_body_bytes,
        ))
        .layer(axum::middleware::from_fn_with_state(app.clone(), edge))
        .with_state(app)
}

/// The size of a request's head as sent: request line and headers.
fn head_bytes(req: &Request) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}

/// Headers every response carries: this is an API that returns secrets,
/// so nothing may cache, frame, sniff or leak it onward.
fn secure(headers: &mut axum::http::HeaderMap, console: bool) {
    use axum::http::header;
    for (name, value) in [
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            if console {
                console::CSP
            } else {
                "default-src 'none'; frame-ancestors 'none'"
            },
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The edge of every request: its id, the head-size and per-address limits,
/// the request timeout, security headers, metrics, and one log line
/// (method, route, status, time; never headers or bodies, which carry
/// tokens and codes).
async fn edge(
    axum::extract::State(app): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let id = crate::context::accept_request_id(
        req.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    let limits = &app.settings.limits;
    let mut res = if head_bytes(&req) > limits.max_header_bytes {
        ApiError::limited(
            &app,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Code::HeadersTooLarge,
            format!(
                "the request line and headers exceed {} bytes",
                limits.max_header_bytes
            ),
        )
        .into_response()
    } else if let Some(wait) = peer.and_then(|ip| app.limiters.address(ip).err()) {
        tracing::warn!(peer = ?peer, "address over its request rate");
        ApiError::rate_limited(&app, Code::RateLimitedAddress, "from this address", wait)
            .into_response()
    } else {
        let ctx = crate::context::RequestContext {
            id: id.clone(),
            peer,
        };
        // Every log line of the work carries the request's id, internal
        // errors included.
        let span = tracing::info_span!("request", request_id = %id, %method, %route);
        let work = crate::context::scope(ctx, next.run(req).instrument(span));
        match tokio::time::timeout(limits.request_timeout, work).await {
            Ok(res) => res,
            // Dropping the work rolls back its open transaction: a timed-out
            // request changes nothing.
            Err(_) => {
                tracing::warn!(request_id = %id, %method, %route, "request timed out");
                ApiError::limited(
                    &app,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Code::RequestTimeout,
                    format!(
                        "the request took longer than {} and was abandoned; its transaction was rolled back unless it had committed",
                        humantime::format_duration(limits.request_timeout)
                    ),
                )
                .into_response()
            }
        }
    };
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        app.metrics.limit_refused(Code::BodyTooLarge);
    }
    secure(res.headers_mut(), console::is_console_path(&path));
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let status = res.status().as_u16();
    let took = start.elapsed();
    app.metrics
        .observe_http(&route, method.as_str(), status, took);
    tracing::info!(request_id = %id, %method, %route, status, ms = took.as_millis() as u64, "request");
    res
}
