//! The auditor's and the admin's pages: the audit log with its filters,
//! pages, verification and export; the hygiene report; custodians,
//! credentials, policies and pending policy changes; ending a person's
//! sessions.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use super::{page, with_query, Chrome, ConsoleForm, PageError, Signed};
use crate::app::hygiene::HygieneReport;
use crate::app::views::{CredentialView, CustodianView, PolicyChangeView, PolicyView};
use crate::crypto::chain::Verdict;
use crate::http::handlers::{audit_filter, export_response, AuditQuery, ExportQuery};
use crate::http::{ApiError, AppState, Query};

type PageResult = Result<Response, PageError>;

/// Events on one page of the log.
const PAGE: i64 = 50;

/// An event as a row of the log.
struct Line {
    seq: i64,
    time: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    code: Option<String>,
}

/// The filters as the form shows them again.
#[derive(Default)]
struct Filters {
    actor: String,
    action: String,
    outcome: String,
    credential: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    f: Filters,
    events: Vec<Line>,
    next_page: Option<String>,
    verdict: Option<Verdict>,
}

#[derive(Template)]
#[template(path = "hygiene.html")]
struct HygienePage {
    chrome: Chrome,
    r: HygieneReport,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    chrome: Chrome,
    custodians: Vec<CustodianView>,
    credentials: Vec<CredentialView>,
    policies: Vec<PolicyView>,
    changes: Vec<PolicyChangeView>,
}

fn failed<'a>(me: &'a Signed, back: &str) -> impl Fn(ApiError) -> PageError + 'a {
    let back = back.to_owned();
    move |e| PageError::new(e, Chrome::of(me), back.clone())
}

async fn audit_page(
    app: &AppState,
    me: &Signed,
    q: AuditQuery,
    verdict: Option<Verdict>,
) -> PageResult {
    let fail = failed(me, "/console/audit");
    let filter = audit_filter(&q).map_err(&fail)?;
    let limit = q.limit.unwrap_or(PAGE);
    let events = app
        .audit_list(&me.session.identity, &filter, q.after.unwrap_or(0), limit)
        .await
        .map_err(|e| fail(e.into()))?;
    let f = Filters {
        actor: q.actor.clone().unwrap_or_default(),
        action: q.action.clone().unwrap_or_default(),
        outcome: q.outcome.clone().unwrap_or_default(),
        credential: q.credential.clone().unwrap_or_default(),
    };
    // A full page may have a next one: the cursor is its last event.
    let next_page = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.seq))
        .flatten()
        .map(|after| {
            let (after, limit) = (after.to_string(), limit.to_string());
            let mut pairs = vec![("after", after.as_str()), ("limit", limit.as_str())];
            for (k, v) in [
                ("actor", &f.actor),
                ("action", &f.action),
                ("outcome", &f.outcome),
                ("credential", &f.credential),
            ] {
                if !v.is_empty() {
                    pairs.push((k, v.as_str()));
                }
            }
            with_query("/console/audit", &pairs)
        });
    let events = events
        .into_iter()
        .map(|e| Line {
            seq: e.seq,
            time: crate::clock::rfc3339(e.ts_ms),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            code: e.code,
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        &AuditPage {
            chrome: Chrome::of(me),
            f,
            events,
            next_page,
            verdict,
        },
    ))
}

/// The log, newest last, filtered and paged by its cursor (an empty field
/// of the filter form is no filter).
pub async fn audit(
    State(app): State<AppState>,
    me: Signed,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let q = AuditQuery {
        actor: blank(q.actor),
        action: blank(q.action),
        outcome: blank(q.outcome),
        credential: blank(q.credential),
        since: blank(q.since),
        until: blank(q.until),
        ..q
    };
    audit_page(&app, &me, q, None).await
}

/// Verify the whole chain, and show the verdict above the log.
pub async fn verify(State(app): State<AppState>, me: Signed, form: ConsoleForm) -> PageResult {
    let fail = failed(&me, "/console/audit");
    form.check_token(&me.secret).map_err(&fail)?;
    let v = app
        .audit_verify(&me.session.identity)
        .await
        .map_err(|e| fail(e.into()))?;
    audit_page(&app, &me, AuditQuery::default(), Some(v)).await
}

/// The export, downloaded as a file.
pub async fn export(
    State(app): State<AppState>,
    me: Signed,
    Query(q): Query<ExportQuery>,
) -> PageResult {
    let fail = failed(&me, "/console/audit");
    let name = match q.format.as_deref() {
        Some("ocsf") => "breakglass-audit.ocsf.jsonl",
        _ => "breakglass-audit.jsonl",
    };
    let mut res = export_response(app.clone(), &me.session.identity, q)
        .await
        .map_err(&fail)?;
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

pub async fn hygiene(State(app): State<AppState>, me: Signed) -> PageResult {
    let r = app
        .hygiene(&me.session.identity)
        .await
        .map_err(|e| failed(&me, "/console/")(e.into()))?;
    Ok(page(
        StatusCode::OK,
        &HygienePage {
            chrome: Chrome::of(&me),
            r,
        },
    ))
}

async fn admin_page(app: &AppState, me: &Signed, notice: Option<String>) -> PageResult {
    let who = &me.session.identity;
    let fail = failed(me, "/console/");
    app.require(who, crate::domain::Role::Admin)
        .map_err(|e| fail(e.into()))?;
    let custodians = app.list_custodians(who).await.map_err(|e| fail(e.into()))?;
    let credentials = app
        .list_credentials(who)
        .await
        .map_err(|e| fail(e.into()))?;
    let policies = app.list_policies(who).await.map_err(|e| fail(e.into()))?;
    let changes = app
        .list_policy_changes(who)
        .await
        .map_err(|e| fail(e.into()))?
        .into_iter()
        .filter(|c| c.state == "pending")
        .collect();
    let mut chrome = Chrome::of(me);
    chrome.notice = notice;
    Ok(page(
        StatusCode::OK,
        &AdminPage {
            chrome,
            custodians,
            credentials,
            policies,
            changes,
        },
    ))
}

pub async fn admin(State(app): State<AppState>, me: Signed) -> PageResult {
    admin_page(&app, &me, None).await
}

pub async fn revoke_sessions(
    State(app): State<AppState>,
    me: Signed,
    form: ConsoleForm,
) -> PageResult {
    let fail = failed(&me, "/console/admin");
    form.check_token(&me.secret).map_err(&fail)?;
    let subject = form.required("subject").map_err(&fail)?;
    let ended = app
        .revoke_sessions(&me.session.identity, subject)
        .await
        .map_err(|e| fail(e.into()))?;
    admin_page(
        &app,
        &me,
        Some(format!("{ended} console session(s) of {subject} ended.")),
    )
    .await
}
