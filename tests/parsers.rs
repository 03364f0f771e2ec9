//! Property tests for every parser of untrusted input: policy files, share
//! files, backup files, audit exports and bearer tokens.
//!
//! Three kinds of property, each of which fails on a real defect:
//! - garbage in (arbitrary bytes, or a valid file with one edit) is refused
//!   with an error, never a panic, and never accepted as something valid;
//! - what the crate writes (or a writer that follows the documented format)
//!   parses back to the same value;
//! - a signed or hashed file with any one byte or any one field changed is
//!   refused, unless the change is one the format deliberately leaves
//!   unauthenticated, and then the result is the same as the original's.
//!
//! Case counts are small so the whole file runs in seconds in debug builds;
//! the fuzz targets (docs/fuzzing.md) search the same parsers for longer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use breakglass::app::audit::{sign_checkpoint, ExportHeader, EXPORT_FORMAT};
use breakglass::app::recovery::backup::{
    recover_from_backup, BackupBody, BackupCredential, BackupFile, BACKUP_FORMAT,
};
use breakglass::auth::{TokenError, TokenService};
use breakglass::crypto::chain::{
    canonical_json, kid_of, seal, verify_jsonl, AuditEvent, AuditKey, Checkpoint, ExportVerdict,
    GENESIS,
};
use breakglass::crypto::envelope::{credential_aad, Envelope};
use breakglass::crypto::recovery_wrap::wrap_for_recovery;
use breakglass::crypto::shamir::{self, CombineError, SetInfo, ShareData, SHARE_FORMAT};
use breakglass::crypto::signing::SigningKey;
use breakglass::domain::policy::{parse_file, HoursWindow, Presence};
use breakglass::domain::{Policy, PolicySet, Role};
use proptest::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Shared helpers: one-byte edits and one-field edits of JSON documents.

/// `bytes` with the byte at `at` (modulo the length) replaced by `to`, or
/// `None` when that would change nothing.
fn with_byte(bytes: &[u8], at: usize, to: u8) -> Option<Vec<u8>> {
    let at = at % bytes.len();
    (bytes[at] != to).then(|| {
        let mut out = bytes.to_vec();
        out[at] = to;
        out
    })
}

/// The JSON pointer of every leaf (scalar, empty array or empty object).
fn leaves(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Array(a) if !a.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{at}/{i}"), out);
                }
            }
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    walk(
                        x,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            _ => out.push(at),
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

/// Change one leaf of `v` to a different value of the same kind where
/// possible (one character of a string, a number by a small step, a
/// boolean flipped); returns the pointer of the leaf changed.
fn change_one_field(v: &mut Value, pick: usize, salt: u8) -> String {
    let all = leaves(v);
    let pointer = all[pick % all.len()].clone();
    let leaf = v
        .pointer_mut(&pointer)
        .expect("the pointer was just listed");
    *leaf = match leaf.take() {
        Value::String(s) => {
            let mut chars: Vec<char> = s.chars().collect();
            if chars.is_empty() {
                chars.push('a');
            } else {
                let i = usize::from(salt) % chars.len();
                chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
            }
            Value::String(chars.into_iter().collect())
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i.wrapping_add(1 + i64::from(salt))),
            (None, Some(u)) => Value::from(u.wrapping_sub(1 + u64::from(salt))),
            _ => Value::from(0),
        },
        Value::Bool(b) => Value::Bool(!b),
        Value::Null => Value::from("x"),
        Value::Array(_) => json!([null]),
        Value::Object(_) => json!({ "x": null }),
    };
    pointer
}

/// Arbitrary JSON without floating-point numbers (which the audit chain
/// refuses to hash), with any characters in strings and keys.
fn json_value() -> impl Strategy<Value = Value> {
    let text = || prop::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn slug() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_.-]{0,15}"
}

// ---------------------------------------------------------------------------
// Policy files.

/// A TOML string literal for `s` (the toml crate escapes it).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A policy file as an operator would write it: durations in seconds, one
/// `[[policy.require]]` table per group. Returns the text and the line
/// each policy starts on.
fn policy_toml(policies: &[Policy]) -> (String, Vec<usize>) {
    let mut out = String::from("# generated\n");
    let mut starts = Vec::new();
    for p in policies {
        out.push('\n');
        starts.push(out.lines().count() + 1);
        out.push_str("[[policy]]\n");
        out.push_str(&format!("name = {}\n", toml_str(p.name.as_str())));
        if let Some(d) = &p.description {
            out.push_str(&format!("description = {}\n", toml_str(d)));
        }
        out.push_str(&format!("deny_vetoes = {}\n", p.deny_vetoes));
        out.push_str(&format!("request_ttl = \"{}s\"\n", p.request_ttl_secs));
        out.push_str(&format!(
            "release_window = \"{}s\"\n",
            p.release_window_secs
        ));
        if let Some(t) = &p.ticket_pattern {
            out.push_str(&format!("ticket_pattern = {}\n", toml_str(t)));
        }
        if !p.release_hours.is_empty() {
            let hours: Vec<String> = p.release_hours.iter().map(|h| toml_str(h)).collect();
            out.push_str(&format!("release_hours = [{}]\n", hours.join(", ")));
        }
        if let Some(m) = p.max_open_releases {
            out.push_str(&format!("max_open_releases = {m}\n"));
        }
        if let Some(a) = p.max_age_secs {
            out.push_str(&format!("max_age = \"{a}s\"\n"));
        }
        if p.presence != Presence::Any {
            out.push_str(&format!("presence = \"{}\"\n", p.presence));
        }
        for r in &p.require {
            out.push_str(&format!(
                "\n[[policy.require]]\ngroup = {}\ncount = {}\n",
                toml_str(r.group.as_str()),
                r.count
            ));
            if let Some(pr) = r.presence {
                out.push_str(&format!("presence = \"{pr}\"\n"));
            }
        }
    }
    (out, starts)
}

/// "Mon-Fri 07:00-19:00", "Sat,sun 10:00-12:00", "* 00:00-24:00".
fn hours_window() -> impl Strategy<Value = String> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let day = (0usize..7, any::<bool>()).prop_map(|(d, lower)| {
        if lower {
            DAYS[d].to_lowercase()
        } else {
            DAYS[d].to_owned()
        }
    });
    let part = prop_oneof![
        day.clone(),
        (day.clone(), day).prop_map(|(a, b)| format!("{a}-{b}")),
    ];
    let days = prop_oneof![
        Just("*".to_owned()),
        prop::collection::vec(part, 1..3).prop_map(|p| p.join(",")),
    ];
    (days, 0u32..1440, 1u32..=1440).prop_map(|(days, a, len)| {
        let to = (a + len).min(1440).max(a + 1);
        format!(
            "{days} {:02}:{:02}-{:02}:{:02}",
            a / 60,
            a % 60,
            to / 60,
            to % 60
        )
    })
}

fn presence() -> impl Strategy<Value = Presence> {
    prop_oneof![
        Just(Presence::Totp),
        Just(Presence::Webauthn),
        Just(Presence::Any)
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    let require =
        prop::collection::btree_map(slug(), (1u32..=100, prop::option::of(presence())), 1..4)
            .prop_map(|m| {
                m.into_iter()
                    .map(|(g, (count, presence))| breakglass::domain::Requirement {
                        group: breakglass::domain::GroupName::parse(&g)
                            .expect("slug() is a group name"),
                        count,
                        presence,
                    })
                    .collect::<Vec<_>>()
            });
    let ticket = prop_oneof![
        Just(None),
        Just(Some("INC-[0-9]+".to_owned())),
        "[ -~]{1,30}".prop_map(|s| Some(regex::escape(&s))),
    ];
    (
        (
            slug(),
            prop::option::of(any::<String>()),
            require,
            any::<bool>(),
        ),
        (60u64..=7 * 86_400, 60u64..=86_400, ticket),
        (
            prop::collection::vec(hours_window(), 0..3),
            prop::option::of(1u32..=1000),
            prop::option::of(60u64..=3650 * 86_400),
            presence(),
        ),
    )
        .prop_map(
            |(
                (name, description, require, deny_vetoes),
                (ttl, window, ticket),
                (hours, open, age, presence),
            )| {
                Policy {
                    name: breakglass::domain::PolicyName::parse(&name)
                        .expect("slug() is a policy name"),
                    description,
                    require,
                    deny_vetoes,
                    request_ttl_secs: ttl,
                    release_window_secs: window,
                    ticket_pattern: ticket.filter(|t| t.len() <= 200),
                    release_hours: hours,
                    max_open_releases: open,
                    max_age_secs: age,
                    presence,
                    root_sessions: None,
                }
            },
        )
}

/// What every policy `parse_file` accepts must satisfy, whatever the text.
fn assert_policy_invariants(p: &Policy) -> Result<(), TestCaseError> {
    prop_assert!(!p.require.is_empty());
    let mut groups: Vec<_> = p.require.iter().map(|r| &r.group).collect();
    groups.sort();
    groups.dedup();
    prop_assert_eq!(groups.len(), p.require.len(), "a group appears twice");
    prop_assert!(p.require.iter().all(|r| (1..=100).contains(&r.count)));
    prop_assert!((60..=7 * 86_400).contains(&p.request_ttl_secs));
    prop_assert!((60..=86_400).contains(&p.release_window_secs));
    prop_assert!(p.ticket_pattern.as_ref().is_none_or(|t| t.len() <= 200));
    prop_assert!(p
        .release_hours
        .iter()
        .all(|h| HoursWindow::parse(h).is_ok()));
    prop_assert!(p.max_open_releases.is_none_or(|m| (1..=1000).contains(&m)));
    prop_assert!(p.max_age_secs.is_none_or(|a| a >= 60));
    Ok(())
}

/// The characters a one-character edit of a policy file draws from: TOML
/// punctuation and the letters and digits its values use.
const TOML_EDITS: &[u8] = b"[]{}=\"',.#\n -_0123456789abcdefghijklmnopqrstuvwxyzMSTWF:*";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_policy_file_of_arbitrary_text_is_refused_not_panicked_on(src in any::<String>()) {
        match parse_file(Path::new("p.toml"), &src) {
            // The empty file and comment-only files hold no policy at all.
            Ok(ps) => prop_assert!(ps.is_empty(), "{src:?} parsed to {ps:?}"),
            Err(e) => prop_assert!(e.line <= src.lines().count() + 1, "{e}"),
        }
    }

    #[test]
    fn a_policy_file_with_one_character_changed_is_refused_or_still_valid(
        ps in prop::collection::vec(policy(), 1..3),
        at in any::<usize>(),
        to in prop::sample::select(TOML_EDITS),
    ) {
        let (src, _) = policy_toml(&ps);
        let Some(edited) = with_byte(src.as_bytes(), at, to) else { return Ok(()) };
        let Ok(edited) = String::from_utf8(edited) else { return Ok(()) };
        match parse_file(Path::new("p.toml"), &edited) {
            Ok(parsed) => {
                for (p, line) in &parsed {
                    assert_policy_invariants(p)?;
                    prop_assert!(*line >= 1 && *line <= edited.lines().count());
                }
            }
            Err(e) => prop_assert!(e.line <= edited.lines().count() + 1, "{e}"),
        }
    }

    #[test]
    fn a_release_hours_window_of_arbitrary_text_is_refused_not_panicked_on(s in any::<String>()) {
        prop_assert!(HoursWindow::parse(&s).is_err());
    }

    #[test]
    fn every_well_formed_release_hours_window_parses(w in hours_window()) {
        prop_assert!(HoursWindow::parse(&w).is_ok(), "{w}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_policy_written_as_toml_parses_back_to_itself_on_the_line_it_starts(
        ps in prop::collection::vec(policy(), 1..4),
    ) {
        let (src, starts) = policy_toml(&ps);
        let parsed = parse_file(Path::new("p.toml"), &src)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        let (policies, lines): (Vec<Policy>, Vec<usize>) = parsed.into_iter().unzip();
        prop_assert_eq!(&policies, &ps);
        prop_assert_eq!(lines, starts);
        // Written again, the parsed policies give the same file.
        prop_assert_eq!(policy_toml(&policies).0, src);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_policy_directory_loads_exactly_its_files_policies_and_refuses_a_name_defined_twice(
        ps in prop::collection::btree_map(slug(), policy(), 1..4),
        twice in any::<prop::sample::Index>(),
    ) {
        let ps: Vec<Policy> = ps
            .into_iter()
            .map(|(name, mut p)| {
                p.name = breakglass::domain::PolicyName::parse(&name).expect("a slug");
                p
            })
            .collect();
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (i, p) in ps.iter().enumerate() {
            std::fs::write(dir.path().join(format!("{i}.toml")), policy_toml(std::slice::from_ref(p)).0)
                .expect("the temporary directory is writable");
        }
        // Files without the .toml extension are not policies.
        std::fs::write(dir.path().join("notes.txt"), "[[policy]]\nname = 3\n").expect("writable");
        let set = PolicySet::load_dir(dir.path()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(set.iter().cloned().collect::<Vec<_>>(), {
            let mut sorted = ps.clone();
            sorted.sort_by(|a, b| a.name.cmp(&b.name));
            sorted
        });

        let dup = twice.get(&ps);
        std::fs::write(dir.path().join("z-again.toml"), policy_toml(std::slice::from_ref(dup)).0)
            .expect("writable");
        let e = PolicySet::load_dir(dir.path()).unwrap_err();
        prop_assert!(e.file.ends_with("z-again.toml"), "{e}");
        prop_assert!(e.reason.contains("defined twice"), "{e}");
    }
}

// ---------------------------------------------------------------------------
// Share files (the decrypted JSON a custodian holds).

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("custodian-{i}")).collect()
}

/// A share file as `init` writes it (before age encryption).
fn share_file(s: &ShareData) -> Vec<u8> {
    serde_json::to_vec(s).expect("a share serialises")
}

/// What the CLI and the recovery session do with a decrypted share file.
fn read_share(bytes: &[u8]) -> Option<ShareData> {
    serde_json::from_slice(bytes).ok()
}

fn same_share(a: &ShareData, b: &ShareData) -> bool {
    a.format == b.format
        && a.set_id == b.set_id
        && a.index == b.index
        && a.threshold == b.threshold
        && a.custodian == b.custodian
        && B64.decode(&a.share).ok() == B64.decode(&b.share).ok()
}

/// A set of `n` shares of a random secret of `len` bytes, threshold `k`.
fn share_set(len: usize, k: u8, n: usize) -> (Vec<u8>, SetInfo, Vec<ShareData>) {
    let secret: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(37) ^ 0x5a)
        .collect();
    let (info, shares) = shamir::split(&secret, k, &names(n)).expect("2 <= k <= n");
    (secret, info, shares)
}

static SHARES: LazyLock<(Vec<u8>, SetInfo, Vec<ShareData>)> = LazyLock::new(|| share_set(33, 3, 5));

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_share_file_of_arbitrary_bytes_is_refused_not_panicked_on(bytes in any::<Vec<u8>>()) {
        let (_, info, _) = &*SHARES;
        if let Some(s) = read_share(&bytes) {
            let _ = shamir::share_commitment(&s);
            prop_assert!(shamir::check(info, &s).is_err());
            prop_assert!(shamir::combine(info, &[s]).is_err());
        }
    }

    #[test]
    fn a_share_file_of_arbitrary_fields_is_refused_not_panicked_on(
        format in prop_oneof![Just(SHARE_FORMAT.to_owned()), any::<String>()],
        set_id in prop_oneof![Just(SHARES.1.set_id.clone()), any::<String>()],
        index in any::<u8>(),
        threshold in any::<u8>(),
        share in prop_oneof![any::<Vec<u8>>().prop_map(|b| B64.encode(b)), any::<String>()],
    ) {
        let (_, info, _) = &*SHARES;
        let s = ShareData { format, set_id, index, threshold, custodian: "x".into(), share };
        let s = read_share(&share_file(&s)).expect("a share written by serde reads back");
        let _ = shamir::share_commitment(&s);
        prop_assert!(shamir::check(info, &s).is_err());
        prop_assert!(shamir::combine(info, &[s]).is_err());
    }

    #[test]
    fn any_single_byte_change_to_a_share_file_is_refused_or_changes_only_the_custodian_label(
        which in 0usize..5,
        at in any::<usize>(),
        to in any::<u8>(),
    ) {
        let (secret, info, shares) = &*SHARES;
        let original = &shares[which];
        let Some(edited) = with_byte(&share_file(original), at, to) else { return Ok(()) };
        let Some(s) = read_share(&edited) else { return Ok(()) };
        if shamir::check(info, &s).is_err() {
            return Ok(());
        }
        // Accepted: only the informative custodian name may differ, and
        // the share still combines to the secret.
        let mut relabelled = s.clone();
        relabelled.custodian = original.custodian.clone();
        prop_assert!(same_share(&relabelled, original), "accepted {s:?}");
        let others: Vec<ShareData> = shares.iter().filter(|x| x.index != s.index).take(2).cloned().collect();
        let combined = shamir::combine(info, &[vec![s], others].concat()).expect("three good shares");
        prop_assert_eq!(&combined[..], &secret[..]);
    }

    #[test]
    fn any_single_field_change_to_a_share_file_is_refused_unless_it_is_the_custodian_label(
        which in 0usize..5,
        pick in any::<usize>(),
        salt in any::<u8>(),
    ) {
        let (_, info, shares) = &*SHARES;
        let mut v = serde_json::to_value(&shares[which]).expect("a share serialises");
        let pointer = change_one_field(&mut v, pick, salt);
        let Ok(s) = serde_json::from_value::<ShareData>(v) else { return Ok(()) };
        let refused = shamir::check(info, &s).is_err();
        prop_assert_eq!(refused, pointer != "/custodian", "{} changed: {:?}", pointer, s);
    }

    #[test]
    fn any_corrupted_share_byte_is_named_as_corrupted(
        which in 0usize..5,
        at in any::<usize>(),
        flip in 1u8..=255,
    ) {
        let (_, info, shares) = &*SHARES;
        let mut s = shares[which].clone();
        let mut raw = B64.decode(&s.share).expect("split writes base64");
        let at = at % raw.len();
        raw[at] ^= flip;
        s.share = B64.encode(&raw);
        prop_assert_eq!(
            shamir::check(info, &s).unwrap_err(),
            CombineError::Corrupted { index: shares[which].index }
        );
        let rest: Vec<ShareData> = shares.iter().filter(|x| x.index != shares[which].index).take(2).cloned().collect();
        prop_assert!(shamir::combine(info, &[vec![s], rest].concat()).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_k_of_n_share_files_recover_the_secret_and_fewer_are_refused(
        len in 1usize..=80,
        n in 2usize..=12,
        k_seed in any::<u8>(),
        order in any::<u64>(),
        extra in any::<u8>(),
    ) {
        let k = 2 + usize::from(k_seed) % (n - 1);
        let (secret, info, shares) = share_set(len, k as u8, n);
        // Through the file format: written, read back, then combined.
        let mut files: Vec<ShareData> = shares
            .iter()
            .map(|s| read_share(&share_file(s)).expect("a share file reads back"))
            .collect();
        let mut state = order;
        for i in (1..n).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            files.swap(i, (state >> 33) as usize % (i + 1));
        }
        let m = k + usize::from(extra) % (n - k + 1);
        prop_assert_eq!(&shamir::combine(&info, &files[..m]).expect("k or more good shares")[..], &secret[..]);
        prop_assert_eq!(
            shamir::combine(&info, &files[..k - 1]).unwrap_err(),
            CombineError::NotEnough { have: k - 1, need: 1, threshold: k as u8 }
        );
    }

    #[test]
    fn a_share_from_another_set_is_refused_even_when_relabelled(
        n in 3usize..=8,
        swap in any::<prop::sample::Index>(),
    ) {
        let (_, info, shares) = share_set(32, 2, n);
        let (_, _, foreign) = share_set(32, 2, n);
        let i = swap.index(n);
        let mut mixed = shares[..2].to_vec();
        mixed.push(foreign[i].clone());
        let foreign_refused = matches!(
            shamir::combine(&info, &mixed),
            Err(CombineError::Foreign { .. })
        );
        prop_assert!(foreign_refused);
        // The foreign share claims this set: its commitment gives it away.
        let mut relabelled = foreign[i].clone();
        relabelled.set_id = info.set_id.clone();
        let other = shares.iter().find(|s| s.index != relabelled.index).expect("n >= 3").clone();
        prop_assert_eq!(
            shamir::combine(&info, &[other, relabelled.clone()]).unwrap_err(),
            CombineError::Corrupted { index: relabelled.index }
        );
    }
}

// ---------------------------------------------------------------------------
// Backup files.

struct Backup {
    file: BackupFile,
    json: Vec<u8>,
    shares: Vec<ShareData>,
    fields: BTreeMap<String, String>,
}

const CREDENTIAL: &str = "aws-prod-root";

/// A backup as `backup export` makes it: the recovery key split into
/// shares, one credential wrapped to it, and the body signed over its
/// canonical JSON (the format documented beside `BackupFile`).
fn make_backup(k: u8, n: usize, fields: BTreeMap<String, String>) -> Backup {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let custodians = names(n);
    let (set, shares) = shamir::split(
        identity.to_string().expose_secret().as_bytes(),
        k,
        &custodians,
    )
    .expect("2 <= k <= n");
    let credential_id = uuid::Uuid::new_v4().to_string();
    let version = 3;
    let data_key = breakglass::crypto::random_bytes::<32>();
    let nonce = breakglass::crypto::random_bytes::<12>();
    let envelope = Envelope::assemble(
        &data_key,
        "local:test",
        b"the data key, wrapped by the key service",
        &nonce,
        &credential_aad(&credential_id, version),
        &serde_json::to_vec(&json!({ "fields": fields })).expect("a payload serialises"),
    );
    let wrap = wrap_for_recovery(&recipient, &credential_id, version, &data_key)
        .expect("a fresh recipient parses");
    let body = BackupBody {
        format: BACKUP_FORMAT.into(),
        created_at: "2026-01-02T03:04:05Z".into(),
        set,
        recovery_recipient: recipient,
        custodians,
        audit_head: (42, hex::encode(Sha256::digest(b"head"))),
        credentials: vec![BackupCredential {
            credential_id,
            name: CREDENTIAL.into(),
            account_id: "123456789012".into(),
            policy: "default".into(),
            version,
            recovery_wrap: B64.encode(wrap),
            envelope: B64.encode(envelope.to_bytes()),
        }],
        not_recoverable: vec!["legacy-root".into()],
    };
    let mut signed = String::new();
    canonical_json(
        &serde_json::to_value(&body).expect("a body serialises"),
        &mut signed,
    )
    .expect("a backup body has no floating-point numbers");
    let signer = SigningKey::generate();
    let file = BackupFile {
        signer_kid: signer.kid(),
        signer_public_key: B64.encode(signer.public_key()),
        signature: B64.encode(signer.sign(signed.as_bytes())),
        body,
    };
    let json = serde_json::to_vec_pretty(&file).expect("a backup serialises");
    Backup {
        file,
        json,
        shares,
        fields,
    }
}

static BACKUP: LazyLock<Backup> = LazyLock::new(|| {
    make_backup(
        2,
        3,
        BTreeMap::from([
            (
                "password".to_owned(),
                "correct horse battery staple".to_owned(),
            ),
            ("mfa_seed".to_owned(), "JBSWY3DPEHPK3PXP".to_owned()),
        ]),
    )
});

/// What `recover --backup` does with the file's bytes: parse, then verify
/// and recover. The recovered fields, or why not.
fn recover(bytes: &[u8], shares: &[ShareData]) -> Result<BTreeMap<String, String>, String> {
    let file: BackupFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let r = recover_from_backup(&file, CREDENTIAL, shares).map_err(|e| e.to_string())?;
    Ok(r.fields
        .iter()
        .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
        .collect())
}

#[test]
fn a_backup_naming_another_signing_key_than_the_one_that_signed_it_is_refused() {
    // `recover --backup` prints `signer_kid` for the operator to compare
    // with the service's key id; a file re-signed with another key must not
    // be able to show the service's id.
    let b = &*BACKUP;
    assert!(recover(&b.json, &b.shares[..2]).is_ok());
    let mut file = b.file.clone();
    file.signer_kid = kid_of(b"the service's real public key");
    let e = recover(&serde_json::to_vec(&file).unwrap(), &b.shares[..2]).unwrap_err();
    assert!(e.contains("key id"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_backup_file_of_arbitrary_bytes_is_refused_not_panicked_on(bytes in any::<Vec<u8>>()) {
        prop_assert!(recover(&bytes, &BACKUP.shares[..2]).is_err());
    }

    #[test]
    fn any_single_byte_change_to_a_signed_backup_is_refused_or_changes_nothing(
        at in any::<usize>(),
        to in any::<u8>(),
    ) {
        let b = &*BACKUP;
        let Some(edited) = with_byte(&b.json, at, to) else { return Ok(()) };
        if let Ok(fields) = recover(&edited, &b.shares[..2]) {
            // Accepted: only whitespace changed, so the file means the same.
            let parsed: BackupFile = serde_json::from_slice(&edited).expect("it was just parsed");
            prop_assert_eq!(
                serde_json::to_value(&parsed).unwrap(),
                serde_json::to_value(&b.file).unwrap()
            );
            prop_assert_eq!(fields, b.fields.clone());
        }
    }

    #[test]
    fn any_single_field_change_to_a_signed_backup_is_refused(
        pick in any::<usize>(),
        salt in any::<u8>(),
    ) {
        let b = &*BACKUP;
        let mut v = serde_json::to_value(&b.file).unwrap();
        let pointer = change_one_field(&mut v, pick, salt);
        let edited = serde_json::to_vec(&v).unwrap();
        prop_assert!(recover(&edited, &b.shares[..2]).is_err(), "{} changed and accepted", pointer);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn a_backup_file_round_trips_and_recovers_its_credential_with_any_k_shares(
        n in 2usize..=5,
        k_seed in any::<u8>(),
        skip in any::<prop::sample::Index>(),
        fields in prop::collection::btree_map("[a-z_]{1,12}", any::<String>(), 1..4),
    ) {
        let k = 2 + usize::from(k_seed) % (n - 1);
        let b = make_backup(k as u8, n, fields);
        let parsed: BackupFile = serde_json::from_slice(&b.json).expect("a backup reads back");
        prop_assert_eq!(serde_json::to_vec_pretty(&parsed).unwrap(), b.json.clone());
        // Any k of the shares: all but one, when k < n, else all of them.
        let s = skip.index(n);
        let chosen: Vec<ShareData> = if k < n {
            b.shares.iter().enumerate().filter(|(i, _)| *i != s).map(|(_, x)| x.clone()).take(k).collect()
        } else {
            b.shares.clone()
        };
        prop_assert_eq!(recover(&b.json, &chosen).map_err(TestCaseError::fail)?, b.fields.clone());
        prop_assert!(recover(&b.json, &chosen[..k - 1]).is_err());
    }
}

// ---------------------------------------------------------------------------
// Audit exports (JSON Lines).

#[derive(Debug)]
struct Export {
    text: String,
    verdict: ExportVerdict,
}

type EventSpec = (i64, String, String, String, String, Option<String>, Value);

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let text = || prop::collection::vec(any::<char>(), 0..10).prop_map(String::from_iter);
    (
        any::<i64>(),
        text(),
        text(),
        text(),
        prop_oneof![
            Just("success".to_owned()),
            Just("refused".to_owned()),
            text()
        ],
        prop::option::of(text()),
        json_value(),
    )
}

fn sealed_chain(specs: Vec<EventSpec>) -> Vec<AuditEvent> {
    let mut out: Vec<AuditEvent> = Vec::new();
    for (i, (ts_ms, actor, action, target, outcome, code, details)) in specs.into_iter().enumerate()
    {
        let prev = out.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
        let e = AuditEvent {
            seq: i as i64 + 1,
            ts_ms,
            actor,
            action,
            target,
            outcome,
            code,
            details,
            prev_hash: String::new(),
            hash: String::new(),
        };
        out.push(seal(e, &prev).expect("no floating-point numbers in generated details"));
    }
    out
}

/// An export as the service writes one: header, each event followed by its
/// checkpoint if it has one, the head record (docs/audit-format.md).
fn export_lines(events: &[AuditEvent], checkpointed: &[bool], key: &SigningKey) -> Vec<Value> {
    let header = ExportHeader {
        record: "header".into(),
        format: EXPORT_FORMAT.into(),
        exported_at: "2026-01-02T03:04:05Z".into(),
        after_seq: 0,
        prev_hash: GENESIS.into(),
        audit_keys: vec![AuditKey::new(key.public_key())],
    };
    let mut lines = vec![serde_json::to_value(header).unwrap()];
    for (e, &signed) in events.iter().zip(checkpointed) {
        let mut v = serde_json::to_value(e).unwrap();
        v["record"] = json!("event");
        lines.push(v);
        if signed {
            let mut c =
                serde_json::to_value(sign_checkpoint(key, e.seq, &e.hash, e.ts_ms)).unwrap();
            c["record"] = json!("checkpoint");
            lines.push(c);
        }
    }
    let head = events.last().expect("at least one event");
    lines.push(json!({ "record": "head", "seq": head.seq, "hash": head.hash }));
    lines
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn verify(text: &[u8]) -> Result<ExportVerdict, String> {
    verify_jsonl(text, None, |_| {})
}

static AUDIT_KEY: LazyLock<SigningKey> = LazyLock::new(SigningKey::generate);

/// A chain of 1 to 6 events; the last always carries a checkpoint, so the
/// header's key is in use.
fn export() -> impl Strategy<Value = Export> {
    prop::collection::vec((event_spec(), any::<bool>()), 1..6).prop_map(|specs| {
        let (specs, mut signed): (Vec<EventSpec>, Vec<bool>) = specs.into_iter().unzip();
        *signed.last_mut().expect("one event at least") = true;
        let events = sealed_chain(specs);
        let text = jsonl(&export_lines(&events, &signed, &AUDIT_KEY));
        let verdict = verify(text.as_bytes()).expect("a fresh export reads");
        assert!(
            verdict.verdict.ok,
            "a fresh export verifies: {:?}",
            verdict.verdict
        );
        Export { text, verdict }
    })
}

/// What each record after the header says, as the verifier reads it:
/// fields it does not read (and the hash does not cover) are left out.
fn body_lines(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("an accepted line is JSON");
            match v["record"].as_str() {
                Some("event") => format!("{:?}", serde_json::from_value::<AuditEvent>(v).ok()),
                Some("checkpoint") => format!("{:?}", serde_json::from_value::<Checkpoint>(v).ok()),
                _ => format!("{} {} {}", v["record"], v["seq"], v["hash"]),
            }
        })
        .collect()
}

/// A header that means what `original`'s does: the fields the verifier
/// reads are the same (the export time is informative).
fn same_header(a: &str, original: &str) -> bool {
    let fields = |s: &str| -> Option<Vec<Option<Value>>> {
        let v: Value = serde_json::from_str(s.lines().next()?).ok()?;
        let read = ["record", "format", "after_seq", "prev_hash", "audit_keys"];
        Some(read.iter().map(|k| v.get(*k).cloned()).collect())
    };
    fields(a).is_some() && fields(a) == fields(original)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn an_audit_export_of_arbitrary_bytes_is_refused_not_panicked_on(bytes in any::<Vec<u8>>()) {
        if let Ok(v) = verify(&bytes) {
            prop_assert!(!v.verdict.ok, "{:?}", v.verdict);
        }
    }

    #[test]
    fn an_audit_export_of_arbitrary_json_lines_is_refused_not_panicked_on(
        lines in prop::collection::vec(json_value(), 0..5),
        header in any::<bool>(),
    ) {
        let mut text = String::new();
        if header {
            text.push_str(&format!(
                "{{\"record\":\"header\",\"format\":\"{EXPORT_FORMAT}\",\"after_seq\":0,\"prev_hash\":\"{GENESIS}\",\"audit_keys\":[]}}\n"
            ));
        }
        text.push_str(&jsonl(&lines));
        if let Ok(v) = verify(text.as_bytes()) {
            prop_assert!(!v.verdict.ok || v.verdict.events_checked == 0, "{:?}\n{text}", v.verdict);
        }
    }

    #[test]
    fn canonical_json_reads_back_to_the_same_value_and_the_same_bytes(v in json_value()) {
        let mut once = String::new();
        canonical_json(&v, &mut once).expect("no floating-point numbers");
        let back: Value = serde_json::from_str(&once).expect("canonical JSON is JSON");
        prop_assert_eq!(&back, &v);
        let mut twice = String::new();
        canonical_json(&back, &mut twice).unwrap();
        prop_assert_eq!(twice, once);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_sealed_chain_exported_as_json_lines_verifies_to_its_head(
        specs in prop::collection::vec((event_spec(), any::<bool>()), 1..8),
    ) {
        let (specs, signed): (Vec<EventSpec>, Vec<bool>) = specs.into_iter().unzip();
        let events = sealed_chain(specs);
        let text = jsonl(&export_lines(&events, &signed, &AUDIT_KEY));
        // Each event line reads back to the event that was sealed.
        for (line, e) in text.lines().filter(|l| l.contains("\"record\":\"event\"")).zip(&events) {
            prop_assert_eq!(&serde_json::from_str::<AuditEvent>(line).unwrap(), e);
        }
        let v = verify(text.as_bytes()).map_err(TestCaseError::fail)?.verdict;
        let last = events.last().unwrap();
        prop_assert!(v.ok, "{:?}", v.first_break);
        prop_assert_eq!(v.events_checked, events.len() as i64);
        prop_assert_eq!((v.head_seq, v.head_hash), (last.seq, last.hash.clone()));
        prop_assert_eq!(v.checkpoints_checked, signed.iter().filter(|s| **s).count() as i64);
        let signed_through = signed.iter().rposition(|s| *s).map(|i| i as i64 + 1);
        prop_assert_eq!(v.signed_through, signed_through);
    }

    #[test]
    fn an_audit_export_reformatted_with_insignificant_whitespace_verifies_the_same(x in export()) {
        // Spaced-out lines miss the verifier's fast path: the general path
        // must come to the same verdict.
        let spaced: String = x
            .text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                format!(" {} \n", serde_json::to_string_pretty(&v).unwrap().replace('\n', " "))
            })
            .collect();
        let v = verify(spaced.as_bytes()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(v.verdict, x.verdict.verdict);
    }

    #[test]
    fn any_single_byte_change_to_an_audit_export_is_detected_or_changes_nothing(
        x in export(),
        at in any::<usize>(),
        to in any::<u8>(),
    ) {
        let Some(edited) = with_byte(x.text.as_bytes(), at, to) else { return Ok(()) };
        let Ok(v) = verify(&edited) else { return Ok(()) };
        if !v.verdict.ok {
            return Ok(());
        }
        // Accepted: the same verdict, records that read the same, and the
        // same header fields (the export time is informative).
        let edited = String::from_utf8(edited).expect("lines() read it as UTF-8");
        prop_assert_eq!(&v.verdict, &x.verdict.verdict);
        prop_assert_eq!(body_lines(&edited), body_lines(&x.text), "accepted:\n{}", edited);
        prop_assert!(same_header(&edited, &x.text), "accepted:\n{}", edited);
    }

    #[test]
    fn any_single_field_change_to_an_audit_export_is_detected_unless_it_is_the_export_time(
        x in export(),
        line in any::<prop::sample::Index>(),
        pick in any::<usize>(),
        salt in any::<u8>(),
    ) {
        let mut lines: Vec<Value> = x.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let i = line.index(lines.len());
        let pointer = change_one_field(&mut lines[i], pick, salt);
        let neutral = i == 0 && pointer == "/exported_at";
        let accepted = verify(jsonl(&lines).as_bytes()).is_ok_and(|v| v.verdict.ok);
        prop_assert_eq!(accepted, neutral, "line {} field {}", i + 1, pointer);
    }

    #[test]
    fn dropping_any_event_or_the_head_from_an_audit_export_is_detected(
        x in export(),
        line in any::<prop::sample::Index>(),
    ) {
        let mut lines: Vec<&str> = x.text.lines().collect();
        let candidates: Vec<usize> = (1..lines.len())
            .filter(|&i| !lines[i].contains("\"record\":\"checkpoint\""))
            .collect();
        lines.remove(*line.get(&candidates));
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        prop_assert!(!verify(text.as_bytes()).map_err(TestCaseError::fail)?.verdict.ok);
    }

    #[test]
    #[ignore = "known defect: the verifier's fast path takes a line's bytes as canonical when they reproduce its hash"]
    fn an_event_hashed_over_a_non_canonical_encoding_is_refused(
        spec in event_spec(),
        form in 0usize..4,
    ) {
        // The hash covers the canonical encoding (docs/audit-format.md); a
        // line whose hash was computed over the bytes as written, when those
        // are not canonical, must fail as an independent verifier would.
        let e = sealed_chain(vec![spec]).remove(0);
        let canonical = serde_json::to_string(&e.details).unwrap();
        let (details, ts_ms, actor) = match form {
            // Whitespace inside the details.
            0 => (serde_json::to_string_pretty(&e.details).unwrap().replace('\n', " "), e.ts_ms.to_string(), serde_json::to_string(&e.actor).unwrap()),
            // A number written as a float.
            1 => (canonical, format!("{}.0", e.ts_ms), serde_json::to_string(&e.actor).unwrap()),
            // A character escaped that need not be.
            2 => (canonical, e.ts_ms.to_string(), format!("\"\\u0041{}", &serde_json::to_string(&e.actor).unwrap()[1..])),
            // Keys out of order.
            _ => (
                match &e.details {
                    Value::Object(m) if m.len() > 1 => {
                        let parts: Vec<String> = m.iter().rev().map(|(k, v)| format!("{}:{v}", Value::from(k.clone()))).collect();
                        format!("{{{}}}", parts.join(","))
                    }
                    _ => serde_json::to_string_pretty(&e.details).unwrap().replace('\n', " "),
                },
                e.ts_ms.to_string(),
                serde_json::to_string(&e.actor).unwrap(),
            ),
        };
        let written = format!(
            "{{\"action\":{},\"actor\":{actor},\"code\":{},\"details\":{details},\"outcome\":{},\"prev_hash\":\"{GENESIS}\",\"seq\":1,\"target\":{},\"ts_ms\":{ts_ms},\"v\":1}}",
            Value::from(e.action.clone()),
            serde_json::to_string(&e.code).unwrap(),
            Value::from(e.outcome.clone()),
            Value::from(e.target.clone()),
        );
        let hash = hex::encode(Sha256::digest(written.as_bytes()));
        prop_assume!(hash != e.hash, "this rendering happens to be canonical");
        let line = format!(
            "{},\"hash\":\"{hash}\",\"record\":\"event\"}}",
            written.strip_suffix(",\"v\":1}").unwrap()
        );
        let key = &*AUDIT_KEY;
        let header = serde_json::to_string(&ExportHeader {
            record: "header".into(),
            format: EXPORT_FORMAT.into(),
            exported_at: String::new(),
            after_seq: 0,
            prev_hash: GENESIS.into(),
            audit_keys: vec![AuditKey::new(key.public_key())],
        }).unwrap();
        let text = format!("{header}\n{line}\n{}\n", json!({ "record": "head", "seq": 1, "hash": hash }));
        let v = verify(text.as_bytes()).map_err(TestCaseError::fail)?.verdict;
        prop_assert!(!v.ok, "accepted:\n{}", text);
    }
}

// ---------------------------------------------------------------------------
// Bearer tokens.

const ISSUER: &str = "breakglass";
const AUDIENCE: &str = "breakglass-api";
const MAX_TTL: i64 = 30 * 86_400;
const NOW: i64 = 1_800_000_000;

static TOKENS: LazyLock<TokenService> =
    LazyLock::new(|| TokenService::new(&SigningKey::generate(), ISSUER, AUDIENCE, MAX_TTL));

/// A token the service issued a moment ago.
static TOKEN: LazyLock<String> = LazyLock::new(|| {
    TOKENS
        .issue("alice", &[Role::Custodian, Role::Auditor], 3600, NOW)
        .expect("a valid subject, roles and lifetime")
        .0
});

fn roles() -> impl Strategy<Value = Vec<Role>> {
    prop::sample::subsequence(Role::ALL.to_vec(), 1..=4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_bearer_token_of_arbitrary_text_is_refused_not_panicked_on(t in any::<String>()) {
        prop_assert!(TOKENS.verify(&t, NOW).is_err());
        let _ = breakglass::oidc::claimed_issuer(&t);
    }

    #[test]
    fn a_bearer_token_of_three_arbitrary_parts_is_refused_not_panicked_on(
        header in prop_oneof![
            json_value(),
            Just(json!({ "alg": "EdDSA", "typ": "JWT" })),
            Just(json!({ "alg": "none" })),
            Just(json!({ "alg": "HS256" })),
        ],
        claims in prop_oneof![
            json_value(),
            (any::<i64>(), any::<i64>(), roles()).prop_map(|(iat, exp, roles)| json!({
                "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": iat, "exp": exp,
                "jti": uuid::Uuid::nil().to_string(), "roles": roles,
            })),
        ],
        signature in prop::collection::vec(any::<u8>(), 0..70),
    ) {
        let t = format!(
            "{}.{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string()),
            B64URL.encode(&signature)
        );
        prop_assert!(TOKENS.verify(&t, NOW).is_err());
        prop_assert_eq!(
            breakglass::oidc::claimed_issuer(&t),
            claims.get("iss").and_then(Value::as_str).map(str::to_owned)
        );
    }

    #[test]
    fn any_single_character_change_to_a_token_is_refused(
        at in any::<usize>(),
        to in 0x20u8..0x7f,
    ) {
        let Some(edited) = with_byte(TOKEN.as_bytes(), at, to) else { return Ok(()) };
        let edited = String::from_utf8(edited).expect("ASCII in, ASCII out");
        prop_assert!(TOKENS.verify(&edited, NOW).is_err(), "accepted {}", edited);
    }

    #[test]
    fn a_token_with_any_claim_or_header_field_changed_is_refused(
        in_header in any::<bool>(),
        pick in any::<usize>(),
        salt in any::<u8>(),
    ) {
        let parts: Vec<&str> = TOKEN.split('.').collect();
        let part = usize::from(!in_header);
        let mut v: Value = serde_json::from_slice(&B64URL.decode(parts[part]).unwrap()).unwrap();
        let pointer = change_one_field(&mut v, pick, salt);
        let mut edited: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        edited[part] = B64URL.encode(v.to_string());
        let r = TOKENS.verify(&edited.join("."), NOW);
        prop_assert!(r.is_err(), "{} changed and accepted", pointer);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_freshly_issued_token_verifies_to_the_identity_it_was_issued_for(
        subject in slug(),
        roles in roles(),
        ttl in 1i64..=MAX_TTL,
        age in any::<prop::sample::Index>(),
    ) {
        let (token, claims) = TOKENS.issue(&subject, &roles, ttl, NOW).expect("valid inputs");
        let at = NOW + age.index(ttl as usize) as i64;
        let id = TOKENS.verify(&token, at).expect("a fresh token verifies");
        prop_assert_eq!(&id.subject, &subject);
        prop_assert_eq!(id.roles.iter().copied().collect::<Vec<_>>(), roles);
        prop_assert_eq!(id.expires_at, NOW + ttl);
        prop_assert_eq!(&id.jti, &claims.jti);
        prop_assert_eq!(breakglass::oidc::claimed_issuer(&token), Some(ISSUER.to_owned()));
        // Another service's key never accepts it.
        let other = TokenService::new(&SigningKey::generate(), ISSUER, AUDIENCE, MAX_TTL);
        prop_assert_eq!(other.verify(&token, at).unwrap_err(), TokenError::BadSignature);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A field the hash does not cover, added to or renamed in any record
    /// after the header, is refused: it could say anything to a reader.
    #[test]
    fn a_record_with_a_field_more_or_less_is_refused(
        x in export(),
        pick in any::<prop::sample::Index>(),
        rename in any::<bool>(),
    ) {
        let mut lines: Vec<Value> = x
            .text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let i = 1 + pick.index(lines.len() - 1);
        let obj = lines[i].as_object_mut().unwrap();
        if rename {
            // e.g. an event's `"code": null` renamed to a note.
            let key = obj.keys().find(|k| *k != "record").unwrap().clone();
            obj.remove(&key);
        }
        obj.insert("note".into(), json!("approved by the CISO"));
        let v = verify(jsonl(&lines).as_bytes());
        prop_assert!(v.is_err() || !v.unwrap().verdict.ok, "line {i} was accepted with a field it should not have");
    }
}
