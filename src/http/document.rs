//! The OpenAPI document, completed from the code: the handlers' own
//! annotations, plus what the edge adds to every operation (the limits'
//! errors), the table of error codes as an enum, and links between
//! operations (the id one returns is the path parameter of the next), which
//! stateful API testing follows.

use std::sync::OnceLock;

use serde_json::{json, Value};
use utoipa::OpenApi;

use super::ApiDoc;

/// Responses the edge can give to any operation, whatever the handler does.
const EDGE: &[(&str, &str)] = &[
    ("429", "a rate limit (`rate_limited_address`, `rate_limited_identity`, `totp_rate_limited`); see Retry-After"),
    ("431", "the request head is too large (`headers_too_large`)"),
    ("503", "a dependency is unavailable or busy, or the request timed out (`database_busy`, `database_unavailable`, `key_service_unavailable`, `secret_store_unavailable`, `request_timeout`, `audit_chain_broken`)"),
];

/// Responses of an operation that reads a JSON body.
const WITH_BODY: &[(&str, &str)] = &[
    ("400", "the body is not JSON (`malformed_json`)"),
    ("413", "the body is too large (`body_too_large`)"),
    (
        "415",
        "the body is not `application/json` (`unsupported_media_type`)",
    ),
    (
        "422",
        "the body does not have the documented shape (`invalid_body`), names a key twice (`duplicate_key`), holds a control character (`invalid_characters`) or a value is invalid",
    ),
];

/// Responses of an operation with query parameters.
const WITH_QUERY: &[(&str, &str)] = &[
    ("400", "a query parameter is malformed (`invalid_query`)"),
    (
        "422",
        "a query parameter is invalid (`invalid_query`, `invalid_limit`) or holds a control character (`invalid_characters`)",
    ),
];

/// Responses of an operation with path parameters.
const WITH_PATH: &[(&str, &str)] = &[
    (
        "400",
        "a path segment is not valid percent-encoded UTF-8 (`invalid_path`)",
    ),
    (
        "422",
        "a path segment holds a control or bidirectional character (`invalid_characters`)",
    ),
];

/// (operation, status, link name, target operation, parameter, where the
/// value is in the response).
const LINKS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "create_request",
        "ShowRequest",
        "show_request",
        "id",
        "$response.body#/id",
    ),
    (
        "create_request",
        "Approve",
        "approve",
        "id",
        "$response.body#/id",
    ),
    ("create_request", "Deny", "deny", "id", "$response.body#/id"),
    (
        "create_request",
        "Release",
        "release",
        "id",
        "$response.body#/id",
    ),
    (
        "create_request",
        "OpenRecovery",
        "open_recovery_session",
        "id",
        "$response.body#/id",
    ),
    (
        "add_custodian",
        "Enroll",
        "enroll",
        "name",
        "$response.body#/name",
    ),
    (
        "add_custodian",
        "Confirm",
        "confirm",
        "name",
        "$response.body#/name",
    ),
    (
        "deposit",
        "ShowCredential",
        "show_credential",
        "name",
        "$response.body#/name",
    ),
    (
        "deposit",
        "Rotate",
        "rotate",
        "name",
        "$response.body#/name",
    ),
    (
        "deposit",
        "RotateKeys",
        "rotate_keys",
        "name",
        "$response.body#/name",
    ),
    (
        "propose_policy_change",
        "ApproveChange",
        "approve_policy_change",
        "id",
        "$response.body#/id",
    ),
    (
        "propose_policy_change",
        "DenyChange",
        "deny_policy_change",
        "id",
        "$response.body#/id",
    ),
    (
        "open_recovery_session",
        "ShowSession",
        "show_recovery_session",
        "id",
        "$response.body#/id",
    ),
    (
        "open_recovery_session",
        "SubmitShare",
        "submit_share",
        "id",
        "$response.body#/id",
    ),
    (
        "open_recovery_session",
        "ReleaseRecovery",
        "release_recovery",
        "id",
        "$response.body#/id",
    ),
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn complete(mut doc: Value) -> Value {
    let codes = super::codes::names();
    let table = super::codes::described();
    if let Some(code) = doc.pointer_mut("/components/schemas/ErrorDetail/properties/code") {
        code["enum"] = json!(codes);
        code["description"] = json!(format!("Stable, machine-readable; one of:\n\n{table}"));
    }
    let global_security = doc.get("security").cloned().unwrap_or(json!([]));
    let mut ops: Vec<(String, String)> = vec![];
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            for (method, op) in item.as_object_mut().into_iter().flatten() {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                let secured = op
                    .get("security")
                    .unwrap_or(&global_security)
                    .as_array()
                    .is_some_and(|s| {
                        s.iter()
                            .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                    });
                let has_body = op.contains_key("requestBody");
                let has_param = |place: &str| {
                    op.get("parameters")
                        .and_then(Value::as_array)
                        .is_some_and(|ps| ps.iter().any(|p| p["in"] == place))
                };
                let (has_query, has_path) = (has_param("query"), has_param("path"));
                let responses = op
                    .entry("responses")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("responses is an object");
                let mut add = |extra: &[(&str, &str)]| {
                    for (status, why) in extra {
                        responses
                            .entry(status.to_string())
                            .or_insert_with(|| error_response(why));
                    }
                };
                add(EDGE);
                if secured {
                    add(&[("401", "no valid bearer token (`token_*`)")]);
                }
                if has_body {
                    add(WITH_BODY);
                }
                if has_query {
                    add(WITH_QUERY);
                }
                if has_path {
                    add(WITH_PATH);
                }
                if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                    ops.push((id.to_owned(), format!("{method} {path}")));
                }
            }
        }
        for (from, name, to, param, value) in LINKS {
            assert!(
                ops.iter().any(|(id, _)| id == to),
                "a link names operation {to}, which is not in the document"
            );
            for item in paths.values_mut() {
                for op in item.as_object_mut().into_iter().flatten().map(|(_, op)| op) {
                    if op["operationId"] != json!(from) {
                        continue;
                    }
                    if let Some(ok) = op.pointer_mut("/responses/200") {
                        ok["links"][name] = json!({
                            "operationId": to,
                            "parameters": { *param: value },
                        });
                    }
                }
            }
        }
    }
    doc
}

/// The document `/openapi.json` serves (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        complete(serde_json::to_value(ApiDoc::openapi()).expect("the document serialises"))
    })
}

#[cfg(test)]
mod tests {
    /// The document is the one recorded in `tests/vectors/openapi.json`:
    /// the same operations, schemas, statuses and codes. A change to the
    /// API shows up here as a diff to review; run with
    /// `BREAKGLASS_WRITE_OPENAPI=1` to record it.
    #[test]
    fn the_document_is_the_recorded_one() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/openapi.json");
        let now = super::document();
        if std::env::var_os("BREAKGLASS_WRITE_OPENAPI").is_some() {
            let text = serde_json::to_string_pretty(now).unwrap();
            std::fs::write(&path, text + "\n").unwrap();
            return;
        }
        let recorded: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (mut ops_now, mut ops_then) = (vec![], vec![]);
        for (doc, ops) in [(now, &mut ops_now), (&recorded, &mut ops_then)] {
            for (p, item) in doc["paths"].as_object().unwrap() {
                for m in item.as_object().unwrap().keys() {
                    ops.push(format!("{m} {p}"));
                }
            }
        }
        let hint = "record it with BREAKGLASS_WRITE_OPENAPI=1 and review the diff";
        assert_eq!(ops_now, ops_then, "the operations differ: {hint}");
        for (p, item) in now["paths"].as_object().unwrap() {
            assert!(
                item == &recorded["paths"][p],
                "operation {p} differs: {hint}"
            );
        }
        let schemas = now["components"]["schemas"].as_object().unwrap();
        for (name, s) in schemas {
            let then = &recorded["components"]["schemas"][name];
            assert!(s == then, "schema {name} differs: {hint}");
        }
        assert!(
            now == &recorded,
            "the document differs outside its operations and schemas: {hint}"
        );
    }
}
