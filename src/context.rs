//! What is known about the HTTP request a piece of work serves: its id
//! (echoed as `X-Request-Id`, written into the audit events it causes and
//! into its log lines) and the client's address (for the TOTP limit).
//! Work outside a request (the background ticker, host commands) has none.

use std::future::Future;
use std::net::IpAddr;

tokio::task_local! {
    static REQUEST: RequestContext;
}

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub id: String,
    pub peer: Option<IpAddr>,
}

/// Run `f` as the work of the request `ctx`.
pub async fn scope<F: Future>(ctx: RequestContext, f: F) -> F::Output {
    REQUEST.scope(ctx, f).await
}

pub fn current() -> Option<RequestContext> {
    REQUEST.try_with(Clone::clone).ok()
}

/// A caller's `X-Request-Id`, if it is one we can carry safely into logs
/// and the audit log: 1 to 64 letters, digits, `.`, `_` or `-`. Otherwise
/// the server makes its own.
pub fn accept_request_id(given: Option<&str>) -> String {
    match given {
        Some(id)
            if (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
        {
            id.to_owned()
        }
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}
