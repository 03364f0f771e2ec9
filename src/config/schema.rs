//! Every setting of the configuration file, its type, default and meaning,
//! and the one rule that names it in the environment:
//!
//! `BREAKGLASS_` + the setting's path, upper-cased, with `_` between the
//! parts: `listen` is `BREAKGLASS_LISTEN`, `keys.service` is
//! `BREAKGLASS_KEYS_SERVICE`, `audit.sink.url` is
//! `BREAKGLASS_AUDIT_SINK_URL`. In a list of tables the index comes after
//! the list's name: `alerts.channel[0].url` is
//! `BREAKGLASS_ALERTS_CHANNEL_0_URL`; in a map the key comes last:
//! `oidc[0].roles.admin` is `BREAKGLASS_OIDC_0_ROLES_ADMIN`. Lists are
//! written with commas (`RS256,ES256`), booleans as `true` or `false`.
//!
//! The README's configuration tables are checked against this list, and
//! this list against the file's types (tests below), so a setting cannot
//! be documented and ignored, or read and undocumented.

use std::collections::BTreeMap;

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Path,
    Bool,
    Int,
    /// A `humantime` duration, e.g. `"15m"`.
    Duration,
    /// A list of strings (in the environment: comma-separated).
    List,
    /// A map of names to lists of strings (the last path part is the key).
    MapOfLists,
}

pub struct Setting {
    /// Dotted path; `[]` marks a list of tables, `*` a map's key.
    pub path: &'static str,
    pub kind: Kind,
}

const fn s(path: &'static str, kind: Kind) -> Setting {
    Setting { path, kind }
}

use Kind::*;

/// Every setting the file may hold.
pub const SETTINGS: &[Setting] = &[
    s("listen", Str),
    s("data_dir", Path),
    s("database_url", Str),
    s("database_url_file", Path),
    s("shutdown_timeout", Duration),
    s("policies_dir", Path),
    s("migrate_on_start", Bool),
    s("log_format", Str),
    s("allow_plain_http", Bool),
    s("tls.cert_file", Path),
    s("tls.key_file", Path),
    s("tls.reload_interval", Duration),
    s("limits.max_body_bytes", Int),
    s("limits.max_header_bytes", Int),
    s("limits.requests_per_minute_per_address", Int),
    s("limits.requests_per_minute_per_identity", Int),
    s("limits.totp_attempts_per_minute", Int),
    s("limits.totp_attempts_per_minute_per_address", Int),
    s("limits.request_timeout", Duration),
    s("limits.auth_refusal_events_per_minute", Int),
    s("database.max_connections", Int),
    s("database.acquire_timeout", Duration),
    s("tokens.issuer", Str),
    s("tokens.audience", Str),
    s("tokens.max_ttl", Duration),
    s("totp.max_failures", Int),
    s("totp.failure_window", Duration),
    s("totp.lockout", Duration),
    s("totp.issuer_label", Str),
    s("audit.checkpoint_every_events", Int),
    s("audit.checkpoint_interval", Duration),
    s("audit.verify_interval", Duration),
    s("audit.sink.url", Str),
    s("audit.sink.url_file", Path),
    s("audit.sink.format", Str),
    s("audit.sink.batch_size", Int),
    s("audit.sink.hmac_key_file", Path),
    s("audit.sink.timeout", Duration),
    s("aws.region", Str),
    s("aws.endpoint_url", Str),
    s("aws.call_timeout", Duration),
    s("keys.service", Str),
    s("keys.kms_key_id", Str),
    s("keys.signing_keys", Str),
    s("keys.local_key_file", Path),
    s("secrets.store", Str),
    s("secrets.name_prefix", Str),
    s("secrets.recovery_window_days", Int),
    s("oidc[].issuer", Str),
    s("oidc[].audience", Str),
    s("oidc[].algorithms", List),
    s("oidc[].subject_claim", Str),
    s("oidc[].roles_claim", Str),
    s("oidc[].roles.*", MapOfLists),
    s("oidc[].custodian_groups.*", MapOfLists),
    s("oidc[].timeout", Duration),
    s("oidc[].jwks_min_refresh", Duration),
    s("oidc[].client_id", Str),
    s("oidc[].client_secret_file", Path),
    s("alerts.public_url", Str),
    s("alerts.max_attempts", Int),
    s("alerts.channel[].name", Str),
    s("alerts.channel[].kind", Str),
    s("alerts.channel[].url", Str),
    s("alerts.channel[].url_file", Path),
    s("alerts.channel[].events", List),
    s("alerts.channel[].hmac_key_file", Path),
    s("alerts.channel[].routing_key_file", Path),
    s("org.enabled", Bool),
    s("org.broker_role_arn", Str),
    s("org.sync_interval", Duration),
    s("org.posture_concurrency", Int),
    s("root_watch.enabled", Bool),
    s("root_watch.bucket", Str),
    s("root_watch.prefix", Str),
    s("root_watch.queue_url", Str),
    s("root_watch.poll_interval", Duration),
    s("root_watch.release_window", Duration),
    s("review.aws", Bool),
    s("review.rotate_keys_after_release", Duration),
    s("review.reminder_interval", Duration),
    s("console.idle_timeout", Duration),
    s("console.session_lifetime", Duration),
    s("console.link_ttl", Duration),
    s("console.public_url", Str),
    s("webauthn.attestation_roots", Path),
];

/// `BREAKGLASS_*` variables that are not settings of the file: the client
/// commands', the command-line flags' own, and the test suite's.
pub const OTHER_VARIABLES: &[&str] = &[
    "BREAKGLASS_SERVER",
    "BREAKGLASS_TOKEN",
    "BREAKGLASS_TOKEN_FILE",
    "BREAKGLASS_OIDC_ISSUER",
    "BREAKGLASS_OIDC_CLIENT_ID",
    "BREAKGLASS_CONFIG",
    "BREAKGLASS_LOG",
    "BREAKGLASS_TLS_CERT",
    "BREAKGLASS_TLS_KEY",
    "BREAKGLASS_TEST_PG_URL",
    "BREAKGLASS_TEST_AWS_ENDPOINT",
    "BREAKGLASS_CONTRACT_EXAMPLES",
    "BREAKGLASS_AXE_JS",
    "BREAKGLASS_NPM_DIR",
    "BREAKGLASS_CONTRACT_VERBOSE",
    "BREAKGLASS_TOOLS_DIR",
    "BREAKGLASS_ADVISORY_DB",
    "BREAKGLASS_IMAGE",
    "BREAKGLASS_DEBIAN_MIRROR",
];

pub const PREFIX: &str = "BREAKGLASS_";

/// The environment variable of a setting, with `N` for a list index and
/// `KEY` for a map key.
pub fn env_name(path: &str) -> String {
    let mut out = String::from(PREFIX);
    out.push_str(
        &path
            .replace("[]", ".N")
            .replace('*', "KEY")
            .replace('.', "_")
            .to_ascii_uppercase(),
    );
    out
}

/// A setting's path in the file for an environment variable: the
/// setting, its list indices and its map key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub setting: &'static Setting,
    /// The table path with indices filled in, e.g. `["alerts", "channel",
    /// "0", "url"]` (an index is a numeric part).
    pub parts: Vec<String>,
}

impl PartialEq for Setting {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}
impl Eq for Setting {}
impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path)
    }
}

/// Which setting `var` (a full `BREAKGLASS_…` name) names, if any. A
/// setting's own name wins over a map key that would spell the same
/// (`BREAKGLASS_OIDC_0_ROLES_CLAIM` is `roles_claim`, not a role `claim`).
pub fn locate(var: &str) -> Option<Located> {
    let rest = var.strip_prefix(PREFIX)?;
    let (maps, plain): (Vec<&Setting>, Vec<&Setting>) =
        SETTINGS.iter().partition(|s| s.kind == Kind::MapOfLists);
    plain.into_iter().chain(maps).find_map(|s| {
        let parts = match_parts(s.path, rest)?;
        Some(Located { setting: s, parts })
    })
}

/// Match `rest` (e.g. `ALERTS_CHANNEL_0_URL`) against `path` (e.g.
/// `alerts.channel[].url`), filling indices and the map key.
fn match_parts(path: &str, rest: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut input = rest;
    let segments: Vec<&str> = path.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if *seg == "*" {
            // The map key: the rest of the name, lower-cased.
            if input.is_empty() || !last {
                return None;
            }
            parts.push(input.to_ascii_lowercase());
            input = "";
            break;
        }
        let (name, list) = match seg.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (*seg, false),
        };
        let upper = name.to_ascii_uppercase();
        input = input.strip_prefix(upper.as_str())?;
        parts.push(name.to_owned());
        if list {
            input = input.strip_prefix('_')?;
            let digits: String = input.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() || digits.len() > 3 {
                return None;
            }
            input = &input[digits.len()..];
            parts.push(digits);
        }
        if !last {
            input = input.strip_prefix('_')?;
        }
    }
    input.is_empty().then_some(parts)
}

/// The closest of `candidates` to `given`, if reasonably close. A name
/// that lacks only its section (`BREAKGLASS_KMS_KEY_ID` for
/// `BREAKGLASS_KEYS_KMS_KEY_ID`) is found first; otherwise the smallest
/// edit distance.
pub fn nearest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let body = given.strip_prefix(PREFIX).unwrap_or(given);
    let sectionless = candidates
        .iter()
        .filter(|c| body.len() > 3 && c.ends_with(&format!("_{body}")))
        .min_by_key(|c| c.len());
    if let Some(c) = sectionless {
        return Some(c);
    }
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(given, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Every variable name the rule gives, with `0` for indices (for
/// suggestions), and the others.
pub fn all_variable_names() -> Vec<String> {
    SETTINGS
        .iter()
        .map(|s| env_name(s.path).replace("_N_", "_0_"))
        .chain(OTHER_VARIABLES.iter().map(|v| v.to_string()))
        .collect()
}

/// The settings' paths one level below `prefix` (the keys a table of the
/// file may hold), for suggestions about a file's unknown key.
pub fn keys_under(prefix: &[&str]) -> Vec<String> {
    let mut out: BTreeMap<String, ()> = BTreeMap::new();
    for s in SETTINGS {
        let segs: Vec<&str> = s
            .path
            .split('.')
            .map(|p| p.trim_end_matches("[]"))
            .collect();
        if segs.len() > prefix.len() && segs[..prefix.len()] == *prefix {
            out.insert(segs[prefix.len()].to_owned(), ());
        }
    }
    out.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variable_names_exactly_one_setting() {
        for s in SETTINGS {
            let var = format!(
                "{PREFIX}{}",
                s.path
                    .replace("[]", ".3")
                    .replace('*', "sre_oncall")
                    .replace('.', "_")
                    .to_ascii_uppercase()
            );
            // Only a map key may spell like another setting, and then the
            // setting wins.
            let hits: Vec<_> = SETTINGS
                .iter()
                .filter(|o| match_parts(o.path, var.strip_prefix(PREFIX).unwrap()).is_some())
                .collect();
            assert!(
                hits.iter().filter(|h| h.kind != Kind::MapOfLists).count() <= 1,
                "{var}: {hits:?}"
            );
            assert_eq!(locate(&var).unwrap().setting, s, "{var}");
        }
        let l = locate("BREAKGLASS_ALERTS_CHANNEL_12_HMAC_KEY_FILE").unwrap();
        assert_eq!(l.parts, ["alerts", "channel", "12", "hmac_key_file"]);
        let l = locate("BREAKGLASS_OIDC_0_CUSTODIAN_GROUPS_SRE_ONCALL").unwrap();
        assert_eq!(l.parts, ["oidc", "0", "custodian_groups", "sre_oncall"]);
        assert!(locate("BREAKGLASS_KEY_SERVICE").is_none());
        assert!(locate("BREAKGLASS_AUDIT_SINK").is_none());
        assert_eq!(
            nearest(
                "BREAKGLASS_KEY_SERVICE",
                all_variable_names().iter().map(String::as_str)
            ),
            Some("BREAKGLASS_KEYS_SERVICE")
        );
    }

    /// The fields of one table of the file, as serde names them in its
    /// refusal of an unknown key.
    fn fields_of(toml_prefix: &str) -> Vec<String> {
        let text = format!("{toml_prefix}\nzz_probe = 1\n");
        let err = toml::from_str::<super::super::FileConfig>(&text)
            .err()
            .unwrap_or_else(|| panic!("{toml_prefix}: an unknown key was accepted"))
            .to_string();
        let list = err
            .split("zz_probe`, expected ")
            .nth(1)
            .unwrap_or_else(|| panic!("{err}"));
        regex::Regex::new("`([a-z_]+)`")
            .unwrap()
            .captures_iter(list)
            .map(|c| c[1].to_owned())
            .collect()
    }

    #[test]
    fn the_list_is_every_field_of_the_file_and_no_other() {
        for (prefix, table) in [
            (vec![], ""),
            (vec!["tls"], "[tls]"),
            (vec!["limits"], "[limits]"),
            (vec!["database"], "[database]"),
            (vec!["tokens"], "[tokens]"),
            (vec!["totp"], "[totp]"),
            (vec!["audit"], "[audit]"),
            (vec!["audit", "sink"], "[audit.sink]\nurl = \"https://x\""),
            (vec!["aws"], "[aws]"),
            (vec!["keys"], "[keys]"),
            (vec!["secrets"], "[secrets]"),
            (
                vec!["oidc"],
                "[[oidc]]\nissuer = \"https://x\"\naudience = \"a\"",
            ),
            (vec!["alerts"], "[alerts]"),
            (
                vec!["alerts", "channel"],
                "[[alerts.channel]]\nname = \"a\"\nkind = \"slack\"\nurl = \"https://x\"",
            ),
            (vec!["review"], "[review]"),
            (vec!["org"], "[org]"),
            (vec!["root_watch"], "[root_watch]"),
        ] {
            let mut fields = fields_of(table);
            fields.sort();
            let mut listed: Vec<String> = keys_under(&prefix)
                .into_iter()
                .filter(|k| k != "*")
                .collect();
            listed.sort();
            assert_eq!(fields, listed, "table {prefix:?}");
        }
    }

    #[test]
    fn every_setting_takes_a_value_of_its_kind() {
        for s in SETTINGS {
            let value = match s.kind {
                Str => "\"x\"".to_string(),
                Path => "\"/x\"".into(),
                Bool => "true".into(),
                Int => "7".into(),
                Duration => "\"5m\"".into(),
                List => "[\"a\"]".into(),
                MapOfLists => "[\"a\"]".into(),
            };
            let segs: Vec<&str> = s.path.split('.').collect();
            let (table, key) = segs.split_at(segs.len() - 1);
            let key = key[0].replace('*', "admin");
            let header = table.join(".");
            let text = if header.is_empty() {
                format!("{key} = {value}")
            } else if header.contains("[]") {
                let h = header.replace("[]", "");
                let h = h
                    .trim_end_matches(".roles")
                    .trim_end_matches(".custodian_groups");
                let inner = if s.kind == MapOfLists {
                    format!("[{}.{}]\n", h, table.last().unwrap())
                } else {
                    String::new()
                };
                let required = if h == "oidc" {
                    "issuer = \"https://x\"\naudience = \"a\"\n"
                } else {
                    "name = \"a\"\nkind = \"slack\"\nurl = \"https://x\"\n"
                };
                let mut t = format!("[[{h}]]\n{required}");
                if !required.contains(&format!("{key} =")) || s.kind == MapOfLists {
                    t.push_str(&format!("{inner}{key} = {value}\n"));
                }
                t
            } else {
                let extra = if header == "audit.sink" && key != "url" {
                    "url = \"https://x\"\n"
                } else {
                    ""
                };
                format!("[{header}]\n{extra}{key} = {value}")
            };
            toml::from_str::<super::super::FileConfig>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}\n{text}", s.path));
        }
    }
}
