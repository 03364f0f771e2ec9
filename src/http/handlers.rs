//! One function per operation; each is a thin call into `app`.

use crate::domain::Code;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, AppState, Body, Caller, ErrorBody, Path, Query};
use crate::app::key_resets::{KeyResetBody, KeyResetDecision, KeyResetView};
use crate::app::views::*;
use crate::app::webauthn::{
    CeremonyResponse, CeremonyView, DecisionCeremonyBody, KeyView, RegisterBody,
};
use crate::crypto::chain::{AuditEvent, Verdict};

type ApiResult<T> = Result<Json<T>, ApiError>;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        checks: vec![],
    })
}

/// Readiness: database, key service and secret store answer.
#[utoipa::path(get, path = "/readyz", security(()), responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    let check = |name: String, ok: bool| Check {
        name,
        ok,
        reason: None,
    };
    let chain = match app.chain_ready().await {
        Ok(Ok(())) => check("audit_chain".into(), true),
        Ok(Err(why)) => Check {
            name: "audit_chain".into(),
            ok: false,
            reason: Some(why),
        },
        Err(_) => check("audit_chain".into(), false),
    };
    let checks = vec![
        check("database".into(), app.store.ping().await.is_ok()),
        check(
            format!("key_service:{}", app.keys.kind()),
            app.keys.health().await.is_ok(),
        ),
        check(
            format!("secret_store:{}", app.secrets.kind()),
            app.secrets.health().await.is_ok(),
        ),
        chain,
    ];
    let ok = checks.iter().all(|c| c.ok);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if ok { "ready" } else { "not_ready" }.into(),
            checks,
        }),
    )
}

/// Prometheus metrics (OpenMetrics text): HTTP traffic, limit refusals,
/// requests by state, releases, lockouts, outbox backlog, audit chain length
/// and the last verification. No names or secrets, only counts.
#[utoipa::path(get, path = "/metrics", security(()), responses(
    (status = 200, description = "OpenMetrics text exposition", content_type = "application/openmetrics-text", body = String),
    (status = 503, description = "the database is unreachable", body = ErrorBody),
))]
pub async fn metrics(State(app): State<AppState>) -> Result<axum::response::Response, ApiError> {
    let gauges = app.custody_gauges().await?;
    let mut res =
        axum::response::Response::new(axum::body::Body::from(app.metrics.render(&gauges)));
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    Ok(res)
}

pub async fn openapi() -> Json<&'static serde_json::Value> {
    Json(super::document::document())
}

/// The caller's identity and roles.
#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(State(app): State<AppState>, Caller(who): Caller) -> ApiResult<WhoAmI> {
    Ok(Json(app.whoami(&who).await?))
}

/// Add a custodian (admin).
#[utoipa::path(post, path = "/v1/custodians", request_body = AddCustodian,
    responses((status = 200, body = CustodianView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_custodian(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<AddCustodian>,
) -> ApiResult<CustodianView> {
    Ok(Json(app.add_custodian(&who, b).await?))
}

/// List custodians (admin, auditor, custodian).
#[utoipa::path(get, path = "/v1/custodians",
    responses((status = 200, body = Vec<CustodianView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_custodians(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Vec<CustodianView>> {
    Ok(Json(app.list_custodians(&who).await?))
}

/// Start TOTP enrolment (the custodian themselves). The URI is shown once.
#[utoipa::path(post, path = "/v1/custodians/{name}/enroll", params(("name" = String, Path)),
    responses((status = 200, body = EnrollmentView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn enroll(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<EnrollmentView> {
    Ok(Json(app.enroll(&who, &name).await?))
}

/// Confirm TOTP enrolment with a first code.
#[utoipa::path(post, path = "/v1/custodians/{name}/confirm", params(("name" = String, Path)), request_body = TotpCode,
    responses((status = 200, body = CustodianView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn confirm(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Body(b): Body<TotpCode>,
) -> ApiResult<CustodianView> {
    Ok(Json(app.confirm(&who, &name, &b.code).await?))
}

/// Deposit a new credential (admin).
#[utoipa::path(post, path = "/v1/credentials", request_body = DepositBody,
    responses((status = 200, body = CredentialView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn deposit(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<DepositBody>,
) -> ApiResult<CredentialView> {
    Ok(Json(app.deposit(&who, b).await?))
}

/// Deposit a new version of a credential (admin); clears `exposed`.
#[utoipa::path(post, path = "/v1/credentials/{name}/versions", params(("name" = String, Path)), request_body = RotateBody,
    responses((status = 200, body = CredentialView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn rotate(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Body(b): Body<RotateBody>,
) -> ApiResult<CredentialView> {
    Ok(Json(app.rotate(&who, &name, b).await?))
}

/// Credential metadata (never values).
#[utoipa::path(get, path = "/v1/credentials", responses((status = 200, body = Vec<CredentialView>), (status = 401, body = ErrorBody)))]
pub async fn list_credentials(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Vec<CredentialView>> {
    Ok(Json(app.list_credentials(&who).await?))
}

/// One credential's metadata.
#[utoipa::path(get, path = "/v1/credentials/{name}", params(("name" = String, Path)),
    responses((status = 200, body = CredentialView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_credential(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<CredentialView> {
    Ok(Json(app.show_credential(&who, &name).await?))
}

/// Loaded policies, each explained against the enrolled custodians.
#[utoipa::path(get, path = "/v1/policies", responses((status = 200, body = Vec<PolicyView>), (status = 401, body = ErrorBody)))]
pub async fn list_policies(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Vec<PolicyView>> {
    Ok(Json(app.list_policies(&who).await?))
}

/// File a break-glass request (requester).
#[utoipa::path(post, path = "/v1/requests", request_body = CreateRequestBody,
    responses((status = 200, body = RequestView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_request(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<CreateRequestBody>,
) -> ApiResult<RequestView> {
    Ok(Json(app.create_request(&who, b).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many (1–500, default 50).
    pub limit: Option<i64>,
}

/// Requests, newest first (requesters see their own).
#[utoipa::path(get, path = "/v1/requests", params(ListQuery),
    responses((status = 200, body = Vec<RequestView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_requests(
    State(app): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<RequestView>> {
    Ok(Json(app.list_requests(&who, q.limit.unwrap_or(50)).await?))
}

/// One request.
#[utoipa::path(get, path = "/v1/requests/{id}", params(("id" = String, Path)),
    responses((status = 200, body = RequestView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_request(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<RequestView> {
    Ok(Json(app.show_request(&who, &id).await?))
}

/// Approve with a fresh TOTP code (custodian).
#[utoipa::path(post, path = "/v1/requests/{id}/approve", params(("id" = String, Path)), request_body = TotpCode,
    responses((status = 200, body = RequestView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 423, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn approve(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<TotpCode>,
) -> ApiResult<RequestView> {
    Ok(Json(app.approve(&who, &id, &b.code).await?))
}

/// Deny with a fresh TOTP code and a reason (custodian).
#[utoipa::path(post, path = "/v1/requests/{id}/deny", params(("id" = String, Path)), request_body = DenyBody,
    responses((status = 200, body = RequestView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 423, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn deny(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<DenyBody>,
) -> ApiResult<RequestView> {
    Ok(Json(app.deny(&who, &id, &b.code, &b.reason).await?))
}

/// Release the credential once (the requester, inside the release window).
#[utoipa::path(post, path = "/v1/requests/{id}/release", params(("id" = String, Path)),
    responses((status = 200, body = ReleaseView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn release(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<(axum::http::HeaderMap, Json<ReleaseView>), ApiError> {
    let view = app.release(&who, &id).await?;
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok((h, Json(view)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Cursor: return events with a sequence number above this (default 0);
    /// pass the last `seq` of a page to get the next one.
    pub after: Option<i64>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
    /// Events at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Events before this time (RFC 3339).
    pub until: Option<String>,
    /// Who acted (token subject).
    pub actor: Option<String>,
    /// What was attempted, e.g. `request.release`.
    pub action: Option<String>,
    /// `success`, `refused` or `error`.
    pub outcome: Option<String>,
    /// Events about this credential (by name).
    pub credential: Option<String>,
}

fn query_time(field: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) => crate::clock::parse_rfc3339(s).map(Some).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidQuery,
                format!("{field} must be an RFC 3339 time like 2026-11-28T10:00:00Z"),
            )
        }),
    }
}

fn query_word(field: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.is_empty() || s.len() > 200 || s.chars().any(char::is_control) => {
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidQuery,
                format!("{field} must be 1 to 200 printable characters"),
            ))
        }
        other => Ok(other.clone()),
    }
}

/// Audit events in chain order (auditor), filtered; cursor pagination by
/// `after`, stable while events are appended. Audited.
#[utoipa::path(get, path = "/v1/audit/events", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEvent>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn audit_events(
    State(app): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Vec<AuditEvent>> {
    let filter = audit_filter(&q)?;
    Ok(Json(
        app.audit_list(&who, &filter, q.after.unwrap_or(0), q.limit.unwrap_or(100))
            .await?,
    ))
}

/// The filter an audit query names, each field checked.
pub fn audit_filter(q: &AuditQuery) -> Result<crate::store::AuditFilter, ApiError> {
    if let Some(o) = &q.outcome {
        if !["success", "refused", "error"].contains(&o.as_str()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidQuery,
                "outcome is success, refused or error",
            ));
        }
    }
    Ok(crate::store::AuditFilter {
        since_ms: query_time("since", &q.since)?,
        until_ms: query_time("until", &q.until)?,
        actor: query_word("actor", &q.actor)?,
        action: query_word("action", &q.action)?,
        outcome: q.outcome.clone(),
        credential: query_word("credential", &q.credential)?,
        target: None,
    })
}

/// The public key that signs audit checkpoints (no token needed): keep a
/// copy outside the service to verify exports offline.
#[utoipa::path(get, path = "/.well-known/breakglass-audit-key", security(()),
    responses((status = 200, body = crate::crypto::chain::AuditKey)))]
pub async fn audit_key(State(app): State<AppState>) -> Json<crate::crypto::chain::AuditKey> {
    Json(app.audit_public_key())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointQuery {
    /// Checkpoints of events above this sequence number (default 0).
    pub after: Option<i64>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
}

/// Signed checkpoints of the chain (auditor).
#[utoipa::path(get, path = "/v1/audit/checkpoints", params(CheckpointQuery),
    responses((status = 200, body = Vec<crate::crypto::chain::Checkpoint>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit_checkpoints(
    State(app): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<CheckpointQuery>,
) -> ApiResult<Vec<crate::crypto::chain::Checkpoint>> {
    Ok(Json(
        app.audit_checkpoints(&who, q.after.unwrap_or(0), q.limit.unwrap_or(100))
            .await?,
    ))
}

/// Delivery state of the SIEM sink (auditor).
#[utoipa::path(get, path = "/v1/audit/sink",
    responses((status = 200, body = crate::app::audit_ship::SinkStatus), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn audit_sink(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<crate::app::audit_ship::SinkStatus> {
    Ok(Json(app.sink_status(&who).await?))
}

/// Sign a checkpoint of the chain head now (auditor or admin). Audited.
#[utoipa::path(post, path = "/v1/audit/checkpoints",
    responses((status = 200, body = crate::crypto::chain::Checkpoint), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn audit_checkpoint_now(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<crate::crypto::chain::Checkpoint> {
    Ok(Json(app.checkpoint_now(&who).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `jsonl` (verifiable: header, events, signed checkpoints, head) or
    /// `ocsf` (OCSF 1.1.0 API Activity records).
    pub format: Option<String>,
    /// Events after this sequence number.
    pub after: Option<i64>,
    /// Events from this time on (RFC 3339).
    pub since: Option<String>,
}

/// Export the log as JSON Lines (auditor), streamed from one consistent
/// snapshot. Audited before it starts.
#[utoipa::path(get, path = "/v1/audit/export", params(ExportQuery),
    responses((status = 200, description = "JSON Lines", content_type = "application/x-ndjson", body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn audit_export(
    State(app): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<ExportQuery>,
) -> Result<axum::response::Response, ApiError> {
    export_response(app, &who, q).await
}

/// The export as a streamed response (the API's and the console's).
pub async fn export_response(
    app: AppState,
    who: &crate::auth::Identity,
    q: ExportQuery,
) -> Result<axum::response::Response, ApiError> {
    use crate::app::audit::ExportFormat;
    let format = match q.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => ExportFormat::Jsonl,
        "ocsf" => ExportFormat::Ocsf,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidQuery,
                "format is jsonl or ocsf",
            ))
        }
    };
    let since = query_time("since", &q.since)?;
    let recv = crate::app::audit::audit_export(app.clone(), who, format, q.after, since).await?;
    let stream = futures_util::stream::unfold(recv, |mut r| async move {
        r.recv().await.map(|chunk| (chunk, r))
    });
    let mut res = axum::response::Response::new(axum::body::Body::from_stream(stream));
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-ndjson"),
    );
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// Verify the whole hash chain (auditor). Audited.
#[utoipa::path(post, path = "/v1/audit/verify",
    responses((status = 200, body = Verdict), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit_verify(State(app): State<AppState>, Caller(who): Caller) -> ApiResult<Verdict> {
    Ok(Json(app.audit_verify(&who).await?))
}

/// Check a recovery share against its recorded commitment (its custodian).
#[utoipa::path(post, path = "/v1/recovery/shares/check", request_body = ShareCheckBody,
    responses((status = 200, body = ShareCheckView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn share_check(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<ShareCheckBody>,
) -> ApiResult<ShareCheckView> {
    Ok(Json(app.share_check(&who, b).await?))
}

/// Revoke a token by its `jti` (admin).
#[utoipa::path(post, path = "/v1/tokens/revoke", request_body = RevokeBody,
    responses((status = 200, body = RevokedView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn revoke_token(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<RevokeBody>,
) -> ApiResult<RevokedView> {
    Ok(Json(app.revoke_token(&who, &b.jti).await?))
}

/// End every console session of a person (admin).
#[utoipa::path(post, path = "/v1/sessions/revoke", request_body = RevokeSessionsBody,
    responses((status = 200, body = RevokedSessionsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn revoke_sessions(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<RevokeSessionsBody>,
) -> ApiResult<RevokedSessionsView> {
    let ended = app.revoke_sessions(&who, &b.subject).await?;
    Ok(Json(RevokedSessionsView {
        subject: b.subject,
        sessions_ended: ended,
    }))
}

/// Open an online recovery session for your request (its requester). The
/// answer names the session's age recipient, to which each custodian seals
/// their share.
#[utoipa::path(post, path = "/v1/requests/{id}/recovery", params(("id" = String, Path)),
    responses((status = 200, body = RecoverySessionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn open_recovery_session(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<RecoverySessionView> {
    Ok(Json(app.open_recovery_session(&who, &id).await?))
}

/// A recovery session: its recipient and who has submitted so far.
#[utoipa::path(get, path = "/v1/recovery/sessions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = RecoverySessionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn show_recovery_session(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<RecoverySessionView> {
    Ok(Json(app.show_recovery_session(&who, &id).await?))
}

/// Submit your share, sealed to the session's recipient, with a TOTP code
/// (a custodian holding a share of the set).
#[utoipa::path(post, path = "/v1/recovery/sessions/{id}/shares", params(("id" = String, Path)), request_body = SubmitShareBody,
    responses((status = 200, body = RecoverySessionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn submit_share(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<SubmitShareBody>,
) -> ApiResult<RecoverySessionView> {
    Ok(Json(app.submit_share(&who, &id, b).await?))
}

/// Release the request's credential with the submitted shares, once (its
/// requester). Needs neither the key service nor the secret store.
#[utoipa::path(post, path = "/v1/recovery/sessions/{id}/release", params(("id" = String, Path)),
    responses((status = 200, body = ReleaseView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn release_recovery(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<(axum::http::HeaderMap, Json<ReleaseView>), ApiError> {
    let view = app.release_recovery(&who, &id).await?;
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok((h, Json(view)))
}

/// Propose a policy change (admin): it takes effect once the quorum of the
/// policy it changes approves.
#[utoipa::path(post, path = "/v1/policy-changes", request_body = ProposeBody,
    responses((status = 200, body = PolicyChangeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn propose_policy_change(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<ProposeBody>,
) -> ApiResult<PolicyChangeView> {
    Ok(Json(app.propose_policy_change(&who, b).await?))
}

/// Policy changes, newest first (admin, custodian, auditor).
#[utoipa::path(get, path = "/v1/policy-changes",
    responses((status = 200, body = Vec<PolicyChangeView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_policy_changes(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Vec<PolicyChangeView>> {
    Ok(Json(app.list_policy_changes(&who).await?))
}

/// Approve a policy change with a TOTP code (custodian in its quorum).
#[utoipa::path(post, path = "/v1/policy-changes/{id}/approve", params(("id" = String, Path)), request_body = DecideBody,
    responses((status = 200, body = PolicyChangeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 423, body = ErrorBody)))]
pub async fn approve_policy_change(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<DecideBody>,
) -> ApiResult<PolicyChangeView> {
    Ok(Json(
        app.decide_policy_change(&who, &id, &b.code, None).await?,
    ))
}

/// Deny a policy change with a TOTP code and a reason (custodian).
#[utoipa::path(post, path = "/v1/policy-changes/{id}/deny", params(("id" = String, Path)), request_body = DecideBody,
    responses((status = 200, body = PolicyChangeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 423, body = ErrorBody)))]
pub async fn deny_policy_change(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<DecideBody>,
) -> ApiResult<PolicyChangeView> {
    let reason = b.reason.unwrap_or_default();
    Ok(Json(
        app.decide_policy_change(&who, &id, &b.code, Some(&reason))
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// `pending`, `delivered` or `dead`.
    pub state: Option<String>,
}

/// Alert deliveries and their state, newest first (admin, auditor).
#[utoipa::path(get, path = "/v1/alerts", params(AlertQuery),
    responses((status = 200, body = Vec<crate::app::alerts::AlertView>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_alerts(
    State(app): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<AlertQuery>,
) -> ApiResult<Vec<crate::app::alerts::AlertView>> {
    Ok(Json(app.list_alerts(&who, q.state.as_deref()).await?))
}

/// Send a dead-lettered alert again (admin). Audited.
#[utoipa::path(post, path = "/v1/alerts/{id}/retry", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn retry_alert(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    Ok(Json(app.retry_alert(&who, &id).await?))
}

/// The security review of the service (auditor, admin). Audited.
#[utoipa::path(get, path = "/v1/hygiene",
    responses((status = 200, body = crate::app::hygiene::HygieneReport), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn hygiene(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<crate::app::hygiene::HygieneReport> {
    Ok(Json(app.hygiene(&who).await?))
}

/// Sync the AWS organisation now: its accounts, trusted access and the
/// centralized-root features, then every member account's root posture
/// through an audit-task root session (admin). Audited.
#[utoipa::path(post, path = "/v1/org/sync",
    responses((status = 200, body = crate::app::org::SyncReport), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn org_sync(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<crate::app::org::SyncReport> {
    Ok(Json(app.org_sync(&who).await?))
}

/// File a root-session request for a member account (requester): the
/// account, one of the five tasks, the duration and the bucket or queue of
/// an unlock task. The quorum approves exactly that; the release executes
/// it (or hands the session over, where the policy allows). Audited.
#[utoipa::path(post, path = "/v1/org/root-requests",
    request_body = crate::app::root_requests::CreateRootRequestBody,
    responses((status = 200, body = RequestView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_root_request(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<crate::app::root_requests::CreateRootRequestBody>,
) -> ApiResult<RequestView> {
    Ok(Json(app.create_root_request(&who, b).await?))
}

/// The organisation's inventory: every account with its root posture as
/// last read (admin or auditor). Audited.
#[utoipa::path(get, path = "/v1/org/accounts",
    responses((status = 200, body = crate::app::org::OrgInventory), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn org_accounts(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<crate::app::org::OrgInventory> {
    Ok(Json(app.org_inventory(&who).await?))
}

/// Read CloudTrail now (admin): the queue's notifications, then every log
/// prefix's new files, each root event matched to a release or a brokered
/// session, the rest raised as findings. Audited.
#[utoipa::path(post, path = "/v1/watch/run",
    responses((status = 200, body = crate::app::watch::WatchReport), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn watch_run(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<crate::app::watch::WatchReport> {
    Ok(Json(app.run_watch(&who).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// `true`: acknowledged findings too (default: open ones only).
    pub all: Option<bool>,
}

/// The root watch: files and events read, how far each log prefix is
/// read, the files rejected and the findings (admin, auditor). Audited.
#[utoipa::path(get, path = "/v1/watch", params(WatchQuery),
    responses((status = 200, body = crate::app::watch::WatchView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn watch_status(
    State(app): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<WatchQuery>,
) -> ApiResult<crate::app::watch::WatchView> {
    Ok(Json(app.watch_status(&who, q.all.unwrap_or(false)).await?))
}

/// Acknowledge a finding of unmatched root activity (admin), with the
/// reason it is accounted for. Audited.
#[utoipa::path(post, path = "/v1/watch/findings/{id}/acknowledge", params(("id" = String, Path)),
    request_body = crate::app::watch::AcknowledgeBody,
    responses((status = 200, body = crate::app::watch::FindingView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn acknowledge_finding(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<crate::app::watch::AcknowledgeBody>,
) -> ApiResult<crate::app::watch::FindingView> {
    Ok(Json(app.acknowledge_finding(&who, &id, b).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeysBody {
    /// Run at most this many steps (1 to 3; default all): for stepping
    /// through a rotation by hand.
    pub max_steps: Option<u8>,
}

/// Rotate (or resume rotating) the root access keys deposited in a
/// credential (admin): create, deposit, verify, delete the old one.
#[utoipa::path(post, path = "/v1/credentials/{name}/rotate-keys", params(("name" = String, Path)), request_body = RotateKeysBody,
    responses((status = 200, body = crate::app::rotation::RotationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn rotate_keys(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Body(b): Body<RotateKeysBody>,
) -> ApiResult<crate::app::rotation::RotationView> {
    let steps = b.max_steps.unwrap_or(3);
    Ok(Json(app.rotate_access_key(&who, &name, steps).await?))
}

/// Which custodian's keys (admin, auditor); the caller's own by default.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeysQuery {
    pub custodian: Option<String>,
}

/// Security keys and passkeys of a custodian (the custodian; admin or
/// auditor with `custodian`).
#[utoipa::path(get, path = "/v1/webauthn/keys", params(KeysQuery),
    responses((status = 200, body = Vec<KeyView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list_keys(
    State(app): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<KeysQuery>,
) -> ApiResult<Vec<KeyView>> {
    Ok(Json(app.list_keys(&who, q.custodian.as_deref()).await?))
}

/// Start registering a security key or passkey (custodian): a `confirm`
/// ceremony with an existing key, or, for a first key (with the TOTP code),
/// the `register` ceremony itself.
#[utoipa::path(post, path = "/v1/webauthn/keys", request_body = RegisterBody,
    responses((status = 200, body = CeremonyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn begin_key_registration(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<RegisterBody>,
) -> ApiResult<CeremonyView> {
    Ok(Json(app.begin_key_registration(&who, b).await?))
}

/// An existing key confirms a registration: the `register` ceremony follows.
#[utoipa::path(post, path = "/v1/webauthn/keys/confirm", request_body = CeremonyResponse,
    responses((status = 200, body = CeremonyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn confirm_key_registration(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<CeremonyResponse>,
) -> ApiResult<CeremonyView> {
    Ok(Json(app.confirm_key_registration(&who, b).await?))
}

/// Finish registering a key with the authenticator's response.
#[utoipa::path(post, path = "/v1/webauthn/keys/register", request_body = CeremonyResponse,
    responses((status = 200, body = KeyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn finish_key_registration(
    State(app): State<AppState>,
    Caller(who): Caller,
    Body(b): Body<CeremonyResponse>,
) -> ApiResult<KeyView> {
    Ok(Json(app.finish_key_registration(&who, b).await?))
}

/// Remove a key (its custodian, or an admin): it never signs again.
#[utoipa::path(post, path = "/v1/webauthn/keys/{id}/remove", params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn remove_key(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<KeyView> {
    Ok(Json(app.remove_key(&who, &id).await?))
}

/// Start a ceremony that approves or denies a request with a key
/// (custodian): its challenge binds the request, the decision and you.
#[utoipa::path(post, path = "/v1/requests/{id}/webauthn", params(("id" = String, Path)), request_body = DecisionCeremonyBody,
    responses((status = 200, body = CeremonyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 423, body = ErrorBody)))]
pub async fn begin_decision(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<DecisionCeremonyBody>,
) -> ApiResult<CeremonyView> {
    Ok(Json(app.begin_decision(&who, &id, b.decision).await?))
}

/// Approve with a security key's response to the request's ceremony.
#[utoipa::path(post, path = "/v1/requests/{id}/webauthn/approve", params(("id" = String, Path)), request_body = CeremonyResponse,
    responses((status = 200, body = RequestView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn approve_with_key(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<CeremonyResponse>,
) -> ApiResult<RequestView> {
    Ok(Json(
        app.decide_with_key(&who, &id, crate::domain::states::Decision::Approve, b)
            .await?,
    ))
}

/// Deny with a security key's response to the request's ceremony (and a
/// reason).
#[utoipa::path(post, path = "/v1/requests/{id}/webauthn/deny", params(("id" = String, Path)), request_body = CeremonyResponse,
    responses((status = 200, body = RequestView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn deny_with_key(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<CeremonyResponse>,
) -> ApiResult<RequestView> {
    Ok(Json(
        app.decide_with_key(&who, &id, crate::domain::states::Decision::Deny, b)
            .await?,
    ))
}

/// Propose a new security key for a custodian who has none left (the
/// custodian, or an admin): the quorum of their strictest policy decides.
#[utoipa::path(post, path = "/v1/custodians/{name}/key-reset", params(("name" = String, Path)), request_body = KeyResetBody,
    responses((status = 200, body = KeyResetView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn propose_key_reset(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Body(b): Body<KeyResetBody>,
) -> ApiResult<KeyResetView> {
    Ok(Json(app.propose_key_reset(&who, &name, b).await?))
}

/// Key resets, newest first (admin, custodian, auditor).
#[utoipa::path(get, path = "/v1/key-resets",
    responses((status = 200, body = Vec<KeyResetView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_key_resets(
    State(app): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Vec<KeyResetView>> {
    Ok(Json(app.list_key_resets(&who).await?))
}

/// Approve a key reset with a TOTP code (custodian in its quorum).
#[utoipa::path(post, path = "/v1/key-resets/{id}/approve", params(("id" = String, Path)), request_body = KeyResetDecision,
    responses((status = 200, body = KeyResetView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 423, body = ErrorBody)))]
pub async fn approve_key_reset(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<KeyResetDecision>,
) -> ApiResult<KeyResetView> {
    Ok(Json(app.decide_key_reset(&who, &id, &b.code, None).await?))
}

/// Deny a key reset with a TOTP code and a reason (custodian in its quorum).
#[utoipa::path(post, path = "/v1/key-resets/{id}/deny", params(("id" = String, Path)), request_body = KeyResetDecision,
    responses((status = 200, body = KeyResetView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 423, body = ErrorBody)))]
pub async fn deny_key_reset(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Body(b): Body<KeyResetDecision>,
) -> ApiResult<KeyResetView> {
    let reason = b.reason.as_deref().unwrap_or("");
    Ok(Json(
        app.decide_key_reset(&who, &id, &b.code, Some(reason))
            .await?,
    ))
}
