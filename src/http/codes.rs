//! Every error code the API answers with, and what it means. The OpenAPI
//! document's `ErrorDetail.code` is an enum of these, so a response with a
//! code missing here violates the document (the contract test finds it),
//! and a unit test finds codes in the source that are missing here.

pub const ERROR_CODES: &[(&str, &str)] = &[
    // The edge: parsing and limits.
    ("malformed_json", "400: the body is not JSON"),
    ("invalid_body", "422: the JSON body does not have the documented shape"),
    ("invalid_query", "400/422: a query parameter is malformed"),
    ("unsupported_media_type", "415: a body without `Content-Type: application/json`"),
    ("invalid_characters", "422: a name, id, reason, ticket, path segment or query parameter holds a control, bidirectional-override or line-separator character (audited)"),
    ("duplicate_key", "422: a JSON object names the same key twice (audited)"),
    ("invalid_path", "400: a path segment is not valid percent-encoded UTF-8"),
    ("invalid_limit", "422: `limit` is outside the operation's page range"),
    ("invalid_max_steps", "422: `max_steps` of a key rotation is 1 to 3"),
    ("body_too_large", "413: the body exceeds `limits.max_body_bytes`"),
    ("headers_too_large", "431: the request line and headers exceed `limits.max_header_bytes`"),
    ("rate_limited_address", "429: this client address exceeded `limits.requests_per_minute_per_address`; see Retry-After"),
    ("rate_limited_identity", "429: this identity exceeded `limits.requests_per_minute_per_identity`; see Retry-After"),
    ("totp_rate_limited", "429: more than `limits.totp_attempts_per_minute` TOTP codes for one custodian, or `limits.totp_attempts_per_minute_per_address` from one address"),
    ("request_timeout", "503: the request exceeded `limits.request_timeout` and was abandoned"),
    ("not_found", "404: no such endpoint"),
    ("method_not_allowed", "405: the endpoint does not accept this method"),
    ("internal", "500: an internal error; the operators have the details"),
    // Dependencies.
    ("database_busy", "503: no free database connection within `database.acquire_timeout`"),
    ("database_unavailable", "503: the database does not answer"),
    ("audit_chain_broken", "503: the audit log is broken (an event appended outside the service, or history that disagrees with the witness): nothing that must be audited can happen, and no checkpoint is signed; `audit verify` and `/readyz` say where"),
    ("key_service_unavailable", "503: the key service (KMS) does not answer"),
    ("key_service_refused", "503: the key service refused the operation"),
    ("secret_store_unavailable", "503: the secret store does not answer"),
    ("secret_store_refused", "503: the secret store refused the operation"),
    ("aws_unavailable", "503: AWS refused or did not answer during a key rotation"),
    ("aws_not_configured", "409: the operation needs AWS, and the service has no AWS configuration"),
    // Authentication and roles.
    ("token_missing", "401: no bearer token"),
    ("token_malformed", "401: the bearer token is not a JWT"),
    ("token_bad_signature", "401: the token's signature does not verify"),
    ("token_wrong_algorithm", "401: the token's algorithm is not the one its key allows"),
    ("token_unknown_key", "401: no trusted key has the token's `kid`"),
    ("token_issuer_unreachable", "401: the token's OIDC issuer could not be reached to fetch its keys"),
    ("token_wrong_issuer", "401: the token's issuer is not trusted"),
    ("token_wrong_audience", "401: the token was issued for another audience"),
    ("token_expired", "401: the token has expired"),
    ("token_not_yet_valid", "401: the token is issued in the future"),
    ("token_lifetime_too_long", "401: the token lives longer than `tokens.max_ttl`"),
    ("token_no_role", "401: the token carries no role of this service"),
    ("token_revoked", "401: the token has been revoked"),
    ("forbidden_role", "403: the caller's roles do not allow this"),
    ("invalid_jti", "422: not a token id"),
    // Custodians and TOTP.
    ("custodian_exists", "409: a custodian of that name exists"),
    ("custodian_not_found", "404: no such custodian"),
    ("custodian_locked", "423: the custodian is locked out after repeated wrong codes"),
    ("already_enrolled", "409: the custodian has already enrolled"),
    ("not_enrolled", "409: the custodian has not enrolled TOTP"),
    ("not_a_custodian", "403: the caller is not an active custodian"),
    ("not_self", "403: custodians enrol and confirm only themselves"),
    ("enrollment_changed", "409: the custodian's TOTP enrolment changed while the code was being checked; send a new code"),
    ("policy_unproven", "409: a credential's policy assignment or a policy version does not carry the audit key's seal (written around the service): nothing is decided under it"),
    ("quorum_unproven", "409: a release could not re-prove its quorum from what the database does not hold (the signed audit chain, the custodians' seeds): the stored request or decisions were changed; audited"),
    ("request_changed", "409: the request or its decisions changed between the proof of its quorum and the release; release again"),
    ("invalid_totp", "401: the TOTP code is wrong or outside the accepted window (counts toward lockout; the message says how many tries are left)"),
    ("invalid_totp_format", "422: a TOTP code is exactly 6 digits (never counts toward lockout)"),
    ("totp_replayed", "409: this code, or a later one, was already used"),
    ("invalid_name", "422: not a valid custodian or credential name"),
    ("invalid_groups", "422: at least one group, each a valid group name"),
    ("invalid_fields", "422: the credential's fields do not match its kind"),
    ("invalid_account", "422: not a 12-digit AWS account id"),
    ("invalid_access_key_id", "422: not an AWS access key id"),
    // Credentials.
    ("credential_exists", "409: a credential of that name exists"),
    ("credential_not_found", "404: no such credential"),
    ("unknown_policy", "404/422: no such policy"),
    ("policy_missing", "409: the credential's policy is not loaded"),
    ("not_recoverable", "409: this version cannot be recovered"),
    ("no_access_key", "409: the credential holds no AWS access key"),
    ("rotation_in_progress", "409: a key rotation of this credential is open"),
    ("concurrent_rotation", "409: another run took this rotation step"),
    // Requests and release.
    ("request_not_found", "404: no such request"),
    ("invalid_reason", "422: a reason is required, within its maximum length"),
    ("invalid_ticket", "422: the ticket does not match the policy's pattern"),
    ("ticket_required", "422: the policy releases only against a declared incident ticket"),
    ("too_many_open_requests", "409: the policy's `max_open_releases` is reached"),
    ("not_eligible", "403: the custodian's groups do not count toward this policy"),
    ("self_approval", "403: a requester never approves their own request"),
    ("already_decided", "409: the custodian has already decided this request"),
    ("approval_not_needed", "409: the approvals so far already cover this custodian's groups"),
    ("request_already_approved", "409: the request is approved already"),
    ("request_denied", "409: the request was denied"),
    ("request_expired", "409: the request expired before its quorum"),
    ("request_not_approved", "409: the request has no quorum yet"),
    ("request_released", "409: the credential of this request was already released"),
    ("release_window_closed", "409: the approved request's release window has passed"),
    ("outside_release_hours", "409: the policy allows releases only in its `release_hours`"),
    ("not_requester", "403: only the requester releases"),
    ("quorum_not_met", "409: not enough valid approvals"),
    // Policies.
    ("invalid_policy", "422: the proposed policy is invalid"),
    ("policy_unsatisfiable", "422: the enrolled custodians could never meet the proposed policy"),
    ("no_change", "422: the proposal changes nothing"),
    ("policy_change_not_found", "404: no such policy change"),
    ("policy_change_closed", "409: the policy change was applied or denied"),
    ("policy_change_expired", "409: the policy change expired"),
    // Recovery.
    ("no_recovery_set", "409: no recovery set has been made"),
    ("recovery_in_progress", "409: a recovery ceremony is under way"),
    ("recovery_session_not_found", "404: no such recovery session"),
    ("recovery_session_closed", "409: the recovery session is closed"),
    ("recovery_session_expired", "409: the recovery session expired"),
    ("recovery_session_elsewhere", "409: the session's key lives in another server process"),
    ("not_a_shareholder", "403: the custodian holds no share of the set"),
    ("not_your_share", "403: the share was made for another custodian"),
    ("share_already_submitted", "409: the custodian already submitted a share to this session"),
    ("share_too_large", "413: the sealed share is too large"),
    ("share_unreadable", "422: the sealed share does not open with the session's key"),
    ("share_malformed", "422: not a share file"),
    ("share_foreign", "422: a share of another set"),
    ("share_corrupted", "422: the share does not match its commitment"),
    ("share_invalid", "422: the share is not part of this set"),
    ("share_duplicate", "409: the same share twice"),
    ("share_key_check", "422: the combined key does not match the set"),
    ("shares_not_enough", "409: fewer shares than the threshold"),
    ("share_set_retired", "409: the share's set was replaced"),
    // Audit and alerts.
    ("audit_log_empty", "409: the audit log has no events to sign"),
    ("alert_not_dead", "409: only a dead-lettered alert is retried"),
];

#[cfg(test)]
mod tests {
    use super::ERROR_CODES;

    /// Every code a refusal in the source uses is in the table, and every
    /// code in the table is used somewhere.
    #[test]
    fn the_error_code_table_matches_the_source() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut text = String::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    // The CLI's own client-side codes are not the API's.
                    if !path.ends_with("cli") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("codes.rs")
                {
                    text.push_str(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let patterns = [
            r#"refuse\(\s*\d{3},\s*"([a-z0-9_]+)""#,
            r#"code:\s*"([a-z0-9_]+)""#,
            r#"StatusCode::[A-Z_]+,\s*"([a-z0-9_]+)""#,
            r#"\(\d{3},\s*"([a-z0-9_]+)"\)"#,
            r#"=>\s*"(token_[a-z_]+)""#,
            r#""((?:rate_limited|totp_rate)_[a-z_]+)""#,
        ];
        let mut used = std::collections::BTreeSet::new();
        for p in patterns {
            let re = regex::Regex::new(p).unwrap();
            used.extend(re.captures_iter(&text).map(|c| c[1].to_owned()));
        }
        let table: std::collections::BTreeSet<String> =
            ERROR_CODES.iter().map(|(c, _)| c.to_string()).collect();
        let missing: Vec<_> = used.difference(&table).collect();
        assert!(
            missing.is_empty(),
            "codes used but not in the table: {missing:?}"
        );
        let unused: Vec<_> = table
            .iter()
            .filter(|c| !text.contains(&format!("\"{c}\"")))
            .collect();
        assert!(
            unused.is_empty(),
            "codes in the table no longer used: {unused:?}"
        );
        assert_eq!(table.len(), ERROR_CODES.len(), "a code is listed twice");
    }
}
