//! Quorum policies, loaded from `policies/*.toml`.
//!
//! A policy names groups and counts that must all be met ("2 of `sre` AND 1 of
//! `security`"). A custodian counts once, even when they belong to several of
//! the named groups: approvals are assigned to requirements by a maximum
//! bipartite matching, so "2 of sre AND 1 of security" needs three distinct
//! people whatever their group memberships.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::names::{GroupName, PolicyName};
use crate::org::RootTask;

/// The smallest and largest lifetimes a policy may set; outside these a
/// typo ("1s", "10y") is more likely than intent.
const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_REQUEST_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_RELEASE_WINDOW: Duration = Duration::from_secs(24 * 3600);
const MAX_COUNT: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Requirement {
    #[schema(value_type = String)]
    pub group: GroupName,
    pub count: u32,
    /// The proof of presence this group's approvals need, when it differs
    /// from the policy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Presence>,
}

/// The proof of presence a policy (or one of its groups) accepts from an
/// approval.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::Display,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Presence {
    /// A TOTP code from the custodian's authenticator app.
    Totp,
    /// A security key or passkey (WebAuthn, user verified), whose signature
    /// binds the request and the decision.
    Webauthn,
    /// Either.
    #[default]
    Any,
}

/// The proof an approval was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Factor {
    Totp,
    Webauthn,
}

impl Presence {
    pub fn accepts(self, f: Factor) -> bool {
        matches!(
            (self, f),
            (Presence::Any, _)
                | (Presence::Totp, Factor::Totp)
                | (Presence::Webauthn, Factor::Webauthn)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Policy {
    #[schema(value_type = String)]
    pub name: PolicyName,
    pub description: Option<String>,
    /// Every requirement must be met, each by distinct custodians.
    pub require: Vec<Requirement>,
    /// One denial ends the request.
    pub deny_vetoes: bool,
    /// How long a request waits for its quorum, in seconds.
    pub request_ttl_secs: u64,
    /// How long an approved request may be released, in seconds.
    pub release_window_secs: u64,
    /// Requests must carry a ticket matching this regular expression (the
    /// whole ticket): releases only while an incident is declared.
    #[serde(default)]
    pub ticket_pattern: Option<String>,
    /// When releases are allowed (UTC), e.g. "Mon-Fri 07:00-19:00"; empty:
    /// always.
    #[serde(default)]
    pub release_hours: Vec<String>,
    /// At most this many requests of this policy open at once (waiting for
    /// approvals, or approved and not yet released).
    #[serde(default)]
    pub max_open_releases: Option<u32>,
    /// A credential under this policy should be rotated at least this
    /// often, in seconds (root access keys are rotated automatically).
    #[serde(default)]
    pub max_age_secs: Option<u64>,
    /// The proof of presence approvals need (a group may set its own).
    #[serde(default)]
    pub presence: Presence,
    /// The member-account root sessions this policy governs (AWS
    /// Organizations' centralized root access); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_sessions: Option<RootSessions>,
}

/// Which root tasks in which member accounts a policy's quorum approves,
/// and whether the session may be handed to the requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RootSessions {
    /// The task policies, by AWS's names.
    #[schema(value_type = Vec<String>)]
    pub tasks: Vec<RootTask>,
    /// Member account ids, or `["*"]` for every member account. A policy
    /// naming an account wins over one with `*` for the same task.
    pub accounts: Vec<String>,
    /// Whether the requester may take the session's credentials (once)
    /// instead of the service executing the task. Off by default.
    #[serde(default)]
    pub hand_over: bool,
}

impl RootSessions {
    /// Whether this covers `task` in `account`, and how specifically: 2
    /// when the account is named, 1 through `*`, 0 not at all.
    pub fn covers(&self, account: &str, task: RootTask) -> u8 {
        if !self.tasks.contains(&task) {
            return 0;
        }
        if self.accounts.iter().any(|a| a == account) {
            2
        } else if self.accounts.iter().any(|a| a == "*") {
            1
        } else {
            0
        }
    }
}

/// The policy that governs `task` in `account`: the one naming the
/// account, else the one covering every account. Loading refuses two
/// policies that would tie, so there is at most one.
pub fn root_policy_for<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
    account: &str,
    task: RootTask,
) -> Option<&'a Policy> {
    policies
        .into_iter()
        .filter_map(|p| {
            let n = p.root_sessions.as_ref()?.covers(account, task);
            (n > 0).then_some((n, p))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

/// Two policies that would govern the same task in the same account with
/// the same specificity: which and where, or `None`.
pub fn root_overlap<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Option<String> {
    let with: Vec<(&Policy, &RootSessions)> = policies
        .into_iter()
        .filter_map(|p| Some((p, p.root_sessions.as_ref()?)))
        .collect();
    for (i, (a, ra)) in with.iter().enumerate() {
        for (b, rb) in &with[i + 1..] {
            let Some(task) = ra.tasks.iter().find(|t| rb.tasks.contains(t)) else {
                continue;
            };
            let shared = ra
                .accounts
                .iter()
                .find(|x| rb.accounts.contains(x))
                .cloned();
            if let Some(account) = shared {
                return Some(format!(
                    "policies {} and {} both govern {} in {}: name each account in one policy only",
                    a.name,
                    b.name,
                    task.as_str(),
                    if account == "*" {
                        "every account".to_string()
                    } else {
                        format!("account {account}")
                    }
                ));
            }
        }
    }
    None
}

/// Whether the enrolled custodians can meet a policy, and why.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Satisfiability {
    pub satisfiable: bool,
    pub explanation: String,
}

impl Policy {
    /// The total number of distinct approvals the policy needs.
    pub fn approvals_needed(&self) -> u32 {
        self.require.iter().map(|r| r.count).sum()
    }

    pub fn groups(&self) -> BTreeSet<&GroupName> {
        self.require.iter().map(|r| &r.group).collect()
    }

    /// Whether someone with these groups could count toward this policy.
    pub fn is_eligible(&self, groups: &[GroupName]) -> bool {
        self.require.iter().any(|r| groups.contains(&r.group))
    }

    /// "2 of sre AND 1 of security (security key)".
    pub fn describe(&self) -> String {
        self.require
            .iter()
            .map(|r| match self.presence_of(r) {
                Presence::Any => format!("{} of {}", r.count, r.group),
                Presence::Totp => format!("{} of {} (TOTP)", r.count, r.group),
                Presence::Webauthn => format!("{} of {} (security key)", r.count, r.group),
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The proof of presence a requirement needs.
    pub fn presence_of(&self, r: &Requirement) -> Presence {
        r.presence.unwrap_or(self.presence)
    }

    /// Of `groups`, those whose requirement accepts an approval made with
    /// `factor`: what such an approval counts for.
    pub fn counting(&self, groups: &[GroupName], factor: Factor) -> Vec<GroupName> {
        groups
            .iter()
            .filter(|g| {
                self.require
                    .iter()
                    .any(|r| &r.group == *g && self.presence_of(r).accepts(factor))
            })
            .cloned()
            .collect()
    }

    /// Whether any of the groups' requirements accepts `factor`.
    pub fn accepts(&self, groups: &[GroupName], factor: Factor) -> bool {
        !self.counting(groups, factor).is_empty()
    }

    /// The conditions beyond the quorum, in words (empty when none).
    pub fn conditions(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.ticket_pattern {
            out.push(format!("a ticket matching {p}"));
        }
        if !self.release_hours.is_empty() {
            out.push(format!(
                "releases only {} (UTC)",
                self.release_hours.join(" or ")
            ));
        }
        if let Some(n) = self.max_open_releases {
            out.push(format!("at most {n} open at once"));
        }
        if let Some(a) = self.max_age_secs {
            out.push(format!(
                "rotated at least every {}",
                humantime::format_duration(Duration::from_secs(a))
            ));
        }
        out
    }

    /// Whether `ticket` satisfies the policy's ticket pattern.
    pub fn ticket_allowed(&self, ticket: Option<&str>) -> bool {
        match &self.ticket_pattern {
            None => true,
            Some(p) => match (anchored(p), ticket) {
                (Ok(re), Some(t)) => re.is_match(t),
                _ => false,
            },
        }
    }

    /// Whether a release is allowed at `unix_ms` by the release hours.
    pub fn release_allowed_at(&self, unix_ms: i64) -> bool {
        self.release_hours.is_empty()
            || self
                .release_hours
                .iter()
                .filter_map(|w| HoursWindow::parse(w).ok())
                .any(|w| w.contains(unix_ms))
    }

    /// Whether the given approvers (each with their groups, each counted
    /// once) meet every requirement.
    pub fn is_met(&self, approvers: &[Vec<GroupName>]) -> bool {
        matched_slots(&self.require, approvers) == self.approvals_needed() as usize
    }

    /// Whether one more approver with `candidate` groups brings the quorum
    /// closer. Approvals that cannot count (their groups are already
    /// covered) are refused, so the approvals recorded are exactly those the
    /// policy needed.
    pub fn contributes(&self, approvers: &[Vec<GroupName>], candidate: &[GroupName]) -> bool {
        let mut with = approvers.to_vec();
        with.push(candidate.to_vec());
        matched_slots(&self.require, &with) > matched_slots(&self.require, approvers)
    }

    /// Which requirements are still open, e.g. "1 of security".
    pub fn missing(&self, approvers: &[Vec<GroupName>]) -> String {
        let open: Vec<String> = self
            .require
            .iter()
            .filter_map(|r| {
                // A requirement is open when adding a member of only its
                // group would still help.
                let member = vec![r.group.clone()];
                self.contributes(approvers, &member)
                    .then(|| r.group.to_string())
            })
            .collect();
        if open.is_empty() {
            "nothing".into()
        } else {
            format!("a custodian of {}", open.join(" or "))
        }
    }

    /// Whether the custodians who could approve (enrolled, not counting the
    /// requester) can ever meet the policy, with a sentence that says why.
    pub fn satisfiability(&self, enrolled: &[Vec<GroupName>]) -> Satisfiability {
        let satisfiable = self.is_met(enrolled);
        let counts = self
            .groups()
            .into_iter()
            .map(|g| {
                let n = enrolled.iter().filter(|gs| gs.contains(g)).count();
                format!("{g} {n}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let verdict = if satisfiable {
            "satisfiable"
        } else {
            "NOT satisfiable (a custodian counts once, whatever their groups)"
        };
        Satisfiability {
            satisfiable,
            explanation: format!(
                "policy {} needs {}; enrolled: {counts}: {verdict}",
                self.name,
                self.describe()
            ),
        }
    }
}

/// A ticket pattern, matching the whole ticket.
fn anchored(p: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{p})$"))
        .size_limit(1 << 16)
        .build()
}

/// "Mon-Fri 07:00-19:00", "Sat,Sun 10:00-12:00", "* 00:00-24:00" (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursWindow {
    /// Days allowed, Monday = 0.
    days: [bool; 7],
    from_min: u32,
    to_min: u32,
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl HoursWindow {
    pub fn parse(s: &str) -> Result<HoursWindow, String> {
        let bad = || format!("{s:?} is not like \"Mon-Fri 07:00-19:00\" (days, then UTC hours)");
        let (days_s, hours_s) = s.trim().split_once(' ').ok_or_else(bad)?;
        let day = |d: &str| DAYS.iter().position(|x| x.eq_ignore_ascii_case(d.trim()));
        let mut days = [false; 7];
        if days_s.trim() == "*" {
            days = [true; 7];
        } else {
            for part in days_s.split(',') {
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day(a).ok_or_else(bad)?, day(b).ok_or_else(bad)?);
                        let mut i = a;
                        loop {
                            days[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => days[day(part).ok_or_else(bad)?] = true,
                }
            }
        }
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
        };
        let (from, to) = hours_s.trim().split_once('-').ok_or_else(bad)?;
        let (from_min, to_min) = (minutes(from).ok_or_else(bad)?, minutes(to).ok_or_else(bad)?);
        if from_min >= to_min {
            return Err(format!(
                "{s:?}: the window must end after it starts (use two windows across midnight)"
            ));
        }
        Ok(HoursWindow {
            days,
            from_min,
            to_min,
        })
    }

    pub fn contains(&self, unix_ms: i64) -> bool {
        let secs = unix_ms.div_euclid(1000);
        let days_since_epoch = secs.div_euclid(86_400);
        // 1970-01-01 was a Thursday (index 3, Monday = 0).
        let weekday = (days_since_epoch + 3).rem_euclid(7) as usize;
        let minute = (secs.rem_euclid(86_400) / 60) as u32;
        self.days[weekday] && minute >= self.from_min && minute < self.to_min
    }
}

/// Size of a maximum matching between approvers and requirement slots (one
/// slot per required approval), by augmenting paths (Kuhn's algorithm; the
/// graphs here have at most a few hundred edges).
fn matched_slots(require: &[Requirement], approvers: &[Vec<GroupName>]) -> usize {
    let slots: Vec<&GroupName> = require
        .iter()
        .flat_map(|r| std::iter::repeat_n(&r.group, r.count as usize))
        .collect();
    let mut slot_owner: Vec<Option<usize>> = vec![None; slots.len()];

    fn augment(
        a: usize,
        approvers: &[Vec<GroupName>],
        slots: &[&GroupName],
        owner: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for (s, group) in slots.iter().enumerate() {
            if seen[s] || !approvers[a].contains(group) {
                continue;
            }
            seen[s] = true;
            let free = match owner[s] {
                None => true,
                Some(other) => augment(other, approvers, slots, owner, seen),
            };
            if free {
                owner[s] = Some(a);
                return true;
            }
        }
        false
    }

    let mut matched = 0;
    for a in 0..approvers.len() {
        let mut seen = vec![false; slots.len()];
        if augment(a, approvers, &slots, &mut slot_owner, &mut seen) {
            matched += 1;
        }
    }
    matched
}

/// The policies in force, by name.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: BTreeMap<PolicyName, Policy>,
}

/// A policy file that cannot be used: which file, which line, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    policy: Vec<toml::Spanned<RawPolicy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: toml::Spanned<String>,
    description: Option<String>,
    require: toml::Spanned<Vec<toml::Spanned<RawRequirement>>>,
    #[serde(default = "default_true")]
    deny_vetoes: bool,
    request_ttl: Option<toml::Spanned<String>>,
    release_window: Option<toml::Spanned<String>>,
    ticket_pattern: Option<toml::Spanned<String>>,
    #[serde(default)]
    release_hours: Vec<toml::Spanned<String>>,
    max_open_releases: Option<toml::Spanned<i64>>,
    max_age: Option<toml::Spanned<String>>,
    presence: Option<toml::Spanned<String>>,
    root_sessions: Option<toml::Spanned<RawRootSessions>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRootSessions {
    tasks: Vec<toml::Spanned<String>>,
    accounts: Vec<toml::Spanned<String>>,
    #[serde(default)]
    hand_over: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    group: toml::Spanned<String>,
    count: toml::Spanned<i64>,
    presence: Option<toml::Spanned<String>>,
}

fn presence_in(v: &toml::Spanned<String>) -> Result<Presence, String> {
    v.get_ref().parse().map_err(|_| {
        format!(
            "presence {:?} is not one of \"totp\", \"webauthn\" or \"any\"",
            v.get_ref()
        )
    })
}

fn default_true() -> bool {
    true
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

impl PolicySet {
    pub fn get(&self, name: &str) -> Option<&Policy> {
        PolicyName::parse(name)
            .ok()
            .and_then(|n| self.policies.get(&n))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values()
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Load every `*.toml` file of a directory. Any invalid file, a duplicate
    /// name or an empty directory is an error: the server does not start on a
    /// policy set it does not fully understand.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
        let dir_err = |reason: String| PolicyError {
            file: dir.to_owned(),
            line: 0,
            reason,
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| dir_err(format!("cannot read the policy directory: {e}")))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut set = PolicySet::default();
        for file in files {
            let src = std::fs::read_to_string(&file).map_err(|e| PolicyError {
                file: file.clone(),
                line: 0,
                reason: format!("cannot read: {e}"),
            })?;
            for policy in parse_file(&file, &src)? {
                if set.policies.contains_key(&policy.0.name) {
                    return Err(PolicyError {
                        file: file.clone(),
                        line: policy.1,
                        reason: format!("policy {:?} is defined twice", policy.0.name.as_str()),
                    });
                }
                set.policies.insert(policy.0.name.clone(), policy.0);
            }
        }
        if set.is_empty() {
            return Err(dir_err(
                "no policy found: add at least one policies/*.toml with a [[policy]] table".into(),
            ));
        }
        if let Some(why) = root_overlap(set.iter()) {
            return Err(dir_err(why));
        }
        Ok(set)
    }

    /// A set from policies built in code (tests, tools).
    pub fn from_policies(policies: impl IntoIterator<Item = Policy>) -> PolicySet {
        PolicySet {
            policies: policies.into_iter().map(|p| (p.name.clone(), p)).collect(),
        }
    }
}

fn parse_duration(
    file: &Path,
    src: &str,
    field: &str,
    v: &Option<toml::Spanned<String>>,
    default: Duration,
    max: Duration,
) -> Result<Duration, PolicyError> {
    let Some(v) = v else { return Ok(default) };
    let err = |reason: String| PolicyError {
        file: file.to_owned(),
        line: line_of(src, v.span().start),
        reason,
    };
    let d = humantime::parse_duration(v.get_ref()).map_err(|e| {
        err(format!(
            "{field} {:?} is not a duration like \"15m\" or \"1h\": {e}",
            v.get_ref()
        ))
    })?;
    if d < MIN_TTL || d > max {
        return Err(err(format!(
            "{field} {:?} is out of range: between {} and {}",
            v.get_ref(),
            humantime::format_duration(MIN_TTL),
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

/// Parse one policy file; returns each policy with the line it starts on.
pub fn parse_file(file: &Path, src: &str) -> Result<Vec<(Policy, usize)>, PolicyError> {
    let raw: RawFile = toml::from_str(src).map_err(|e| PolicyError {
        file: file.to_owned(),
        line: e.span().map(|s| line_of(src, s.start)).unwrap_or(0),
        reason: e.message().to_owned(),
    })?;
    let mut out = Vec::new();
    for p in raw.policy {
        let start = line_of(src, p.span().start);
        let p = p.into_inner();
        let at = |span: std::ops::Range<usize>, reason: String| PolicyError {
            file: file.to_owned(),
            line: line_of(src, span.start),
            reason,
        };
        let name = PolicyName::parse(p.name.get_ref()).map_err(|e| at(p.name.span(), e.0))?;
        if p.require.get_ref().is_empty() {
            return Err(at(
                p.require.span(),
                format!("policy {name} requires nobody: add at least one [[policy.require]]"),
            ));
        }
        let mut require = Vec::new();
        let mut seen = BTreeSet::new();
        for r in p.require.get_ref() {
            let r = r.get_ref();
            let group = GroupName::parse(r.group.get_ref()).map_err(|e| at(r.group.span(), e.0))?;
            if !seen.insert(group.clone()) {
                return Err(at(
                    r.group.span(),
                    format!("group {group} appears twice in policy {name}: give it one requirement with the total count"),
                ));
            }
            let count = *r.count.get_ref();
            if !(1..=i64::from(MAX_COUNT)).contains(&count) {
                return Err(at(
                    r.count.span(),
                    format!("count {count} is out of range: between 1 and {MAX_COUNT}"),
                ));
            }
            let presence = r
                .presence
                .as_ref()
                .map(|v| presence_in(v).map_err(|e| at(v.span(), e)))
                .transpose()?;
            require.push(Requirement {
                group,
                count: count as u32,
                presence,
            });
        }
        let request_ttl = parse_duration(
            file,
            src,
            "request_ttl",
            &p.request_ttl,
            Duration::from_secs(3600),
            MAX_REQUEST_TTL,
        )?;
        let release_window = parse_duration(
            file,
            src,
            "release_window",
            &p.release_window,
            Duration::from_secs(15 * 60),
            MAX_RELEASE_WINDOW,
        )?;
        if let Some(t) = &p.ticket_pattern {
            if t.get_ref().len() > 200 {
                return Err(at(
                    t.span(),
                    "ticket_pattern is longer than 200 characters".into(),
                ));
            }
            anchored(t.get_ref()).map_err(|e| {
                at(
                    t.span(),
                    format!(
                        "ticket_pattern {:?} is not a regular expression: {e}",
                        t.get_ref()
                    ),
                )
            })?;
        }
        for w in &p.release_hours {
            HoursWindow::parse(w.get_ref())
                .map_err(|e| at(w.span(), format!("release_hours: {e}")))?;
        }
        if let Some(m) = &p.max_open_releases {
            if !(1..=1000).contains(m.get_ref()) {
                return Err(at(
                    m.span(),
                    format!(
                        "max_open_releases {} is out of range: between 1 and 1000",
                        m.get_ref()
                    ),
                ));
            }
        }
        let max_age = match &p.max_age {
            None => None,
            Some(_) => Some(parse_duration(
                file,
                src,
                "max_age",
                &p.max_age,
                Duration::ZERO,
                Duration::from_secs(3650 * 86_400),
            )?),
        };
        let presence = match &p.presence {
            None => Presence::Any,
            Some(v) => presence_in(v).map_err(|e| at(v.span(), e))?,
        };
        let root_sessions = match p.root_sessions {
            None => None,
            Some(r) => {
                let span = r.span();
                let r = r.into_inner();
                let mut tasks = Vec::new();
                for t in &r.tasks {
                    let task: RootTask = t.get_ref().parse().map_err(|_| {
                        at(
                            t.span(),
                            format!(
                                "root_sessions: {:?} is not a root task: one of {}",
                                t.get_ref(),
                                RootTask::names().join(", ")
                            ),
                        )
                    })?;
                    if !tasks.contains(&task) {
                        tasks.push(task);
                    }
                }
                let mut accounts = Vec::new();
                for a in &r.accounts {
                    let v = a.get_ref();
                    let ok = v == "*" || (v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()));
                    if !ok {
                        return Err(at(
                            a.span(),
                            format!("root_sessions: account {v:?} is neither a 12-digit account id nor \"*\""),
                        ));
                    }
                    if !accounts.contains(v) {
                        accounts.push(v.clone());
                    }
                }
                if tasks.is_empty() || accounts.is_empty() {
                    return Err(at(
                        span,
                        format!("policy {name}: root_sessions names no task or no account: name at least one of each, or remove it"),
                    ));
                }
                Some(RootSessions {
                    tasks,
                    accounts,
                    hand_over: r.hand_over,
                })
            }
        };
        out.push((
            Policy {
                name,
                presence,
                description: p.description,
                require,
                deny_vetoes: p.deny_vetoes,
                request_ttl_secs: request_ttl.as_secs(),
                release_window_secs: release_window.as_secs(),
                ticket_pattern: p.ticket_pattern.map(|t| t.into_inner()),
                release_hours: p
                    .release_hours
                    .into_iter()
                    .map(|w| w.into_inner())
                    .collect(),
                max_open_releases: p.max_open_releases.map(|m| *m.get_ref() as u32),
                max_age_secs: max_age.map(|d| d.as_secs()),
                root_sessions,
            },
            start,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(names: &[&str]) -> Vec<GroupName> {
        names.iter().map(|n| GroupName::parse(n).unwrap()).collect()
    }

    fn default_policy() -> Policy {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/default.toml"
        ))
        .unwrap();
        parse_file(Path::new("default.toml"), &src)
            .unwrap()
            .remove(0)
            .0
    }

    #[test]
    fn the_member_root_examples_parse_and_pick_the_most_specific_policy() {
        let src = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/examples/member-root.toml"
        ))
        .unwrap();
        let set = PolicySet::from_policies(
            parse_file(Path::new("member-root.toml"), &src)
                .unwrap()
                .into_iter()
                .map(|(p, _)| p),
        );
        assert!(root_overlap(set.iter()).is_none());
        let pick = |account: &str, task: RootTask| {
            root_policy_for(set.iter(), account, task).map(|p| p.name.to_string())
        };
        assert_eq!(
            pick("111122223333", RootTask::IAMDeleteRootUserCredentials).as_deref(),
            Some("member-root-change")
        );
        assert_eq!(
            pick("444455556666", RootTask::IAMDeleteRootUserCredentials).as_deref(),
            Some("payments-root"),
            "the account named wins over *"
        );
        assert_eq!(
            pick("111122223333", RootTask::S3UnlockBucketPolicy).as_deref(),
            Some("member-root-unlock")
        );
        // No policy for the task, or none with root sessions at all.
        let plain = PolicySet::from_policies([default_policy()]);
        assert!(root_policy_for(
            plain.iter(),
            "111122223333",
            RootTask::IAMAuditRootUserCredentials
        )
        .is_none());
    }

    #[test]
    fn root_sessions_refuse_unknown_tasks_bad_accounts_and_ties() {
        let bad_task = "[[policy]]\nname = \"x\"\nrequire = [{ group = \"sre\", count = 1 }]\nroot_sessions = { tasks = [\"AdministratorAccess\"], accounts = [\"*\"] }\n";
        let e = parse_file(Path::new("p.toml"), bad_task).unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.reason.contains("not a root task"), "{e}");
        let bad_account = bad_task
            .replace("AdministratorAccess", "IAMAuditRootUserCredentials")
            .replace("\"*\"", "\"1234\"");
        let e = parse_file(Path::new("p.toml"), &bad_account).unwrap_err();
        assert!(e.reason.contains("12-digit"), "{e}");
        let empty = bad_task.replace("\"AdministratorAccess\"", "");
        let e = parse_file(Path::new("p.toml"), &empty).unwrap_err();
        assert!(e.reason.contains("names no task"), "{e}");
        let tie = "[[policy]]\nname = \"a\"\nrequire = [{ group = \"sre\", count = 1 }]\nroot_sessions = { tasks = [\"IAMAuditRootUserCredentials\"], accounts = [\"*\"] }\n[[policy]]\nname = \"b\"\nrequire = [{ group = \"sre\", count = 2 }]\nroot_sessions = { tasks = [\"IAMAuditRootUserCredentials\"], accounts = [\"*\"] }\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), tie).unwrap();
        let e = PolicySet::load_dir(dir.path()).unwrap_err();
        assert!(
            e.reason
                .contains("both govern IAMAuditRootUserCredentials in every account"),
            "{e}"
        );
    }

    #[test]
    fn the_shipped_default_policy_needs_two_sre_and_one_security() {
        let p = default_policy();
        assert_eq!(p.name.as_str(), "default");
        assert_eq!(p.describe(), "2 of sre AND 1 of security");
        assert!(p.deny_vetoes);
        assert_eq!(p.request_ttl_secs, 3600);
        assert_eq!(p.release_window_secs, 900);
    }

    #[test]
    fn a_custodian_in_two_groups_counts_once() {
        let p = default_policy();
        // Two people, one in both groups: three approvals are needed.
        assert!(!p.is_met(&[g(&["sre", "security"]), g(&["sre"])]));
        assert!(p.is_met(&[g(&["sre", "security"]), g(&["sre"]), g(&["sre"])]));
        // The matching finds the assignment a greedy pass would miss.
        assert!(p.is_met(&[g(&["sre", "security"]), g(&["sre"]), g(&["security"])]));
        assert!(p.is_met(&[g(&["sre"]), g(&["sre", "security"]), g(&["sre"])]));
        assert!(!p.is_met(&[g(&["sre"]), g(&["sre"]), g(&["sre"])]));
        assert!(!p.is_met(&[g(&["security"]), g(&["other"]), g(&["sre"])]));
    }

    #[test]
    fn an_approval_that_cannot_count_does_not_contribute() {
        let p = default_policy();
        let two_sre = [g(&["sre"]), g(&["sre"])];
        assert!(!p.contributes(&two_sre, &g(&["sre"])));
        assert!(p.contributes(&two_sre, &g(&["security"])));
        assert!(p.contributes(&two_sre, &g(&["sre", "security"])));
        assert!(!p.contributes(&two_sre, &g(&["dba"])));
        assert_eq!(p.missing(&two_sre), "a custodian of security");
        assert_eq!(p.missing(&[]), "a custodian of sre or security");
    }

    #[test]
    fn satisfiability_explains_itself() {
        let p = default_policy();
        let s = p.satisfiability(&[g(&["sre"]), g(&["security"])]);
        assert!(!s.satisfiable);
        assert!(
            s.explanation
                .contains("needs 2 of sre AND 1 of security; enrolled: security 1, sre 1"),
            "{}",
            s.explanation
        );
    }

    #[test]
    fn an_invalid_file_is_named_with_line_and_reason() {
        let src = "[[policy]]\nname = \"x\"\nrequire = [{ group = \"sre\", count = 0 }]\n";
        let e = parse_file(Path::new("p.toml"), src).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("count 0 is out of range"), "{e}");

        let src = "[[policy]]\nname = \"x\"\nrequire = [{ group = \"sre\", count = 1 }]\nrequest_ttl = \"soon\"\n";
        let e = parse_file(Path::new("p.toml"), src).unwrap_err();
        assert_eq!(e.line, 4, "{e}");

        let src =
            "[[policy]]\nname = \"x\"\nrequire = [{ group = \"sre\", count = 1 }]\nquorum = 3\n";
        let e = parse_file(Path::new("p.toml"), src).unwrap_err();
        assert!(e.reason.contains("unknown field"), "{e}");
    }

    #[test]
    fn a_group_that_needs_a_key_counts_only_key_approvals() {
        let src = "[[policy]]\nname = \"k\"\npresence = \"totp\"\nrequire = [{ group = \"sre\", count = 1 }, { group = \"security\", count = 1, presence = \"webauthn\" }]\n";
        let p = parse_file(Path::new("k.toml"), src).unwrap().remove(0).0;
        assert_eq!(
            p.describe(),
            "1 of sre (TOTP) AND 1 of security (security key)"
        );
        let both = g(&["sre", "security"]);
        assert_eq!(p.counting(&both, Factor::Totp), g(&["sre"]));
        assert_eq!(p.counting(&both, Factor::Webauthn), g(&["security"]));
        assert!(!p.accepts(&g(&["security"]), Factor::Totp));
        // A TOTP approval from someone in both groups meets only sre.
        let approvers = vec![p.counting(&both, Factor::Totp)];
        assert!(!p.is_met(&approvers));
        assert!(p.is_met(&[
            p.counting(&both, Factor::Totp),
            p.counting(&g(&["security"]), Factor::Webauthn),
        ]));
        let e = parse_file(
            Path::new("k.toml"),
            "[[policy]]\nname = \"k\"\npresence = \"sms\"\nrequire = [{ group = \"sre\", count = 1 }]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("\"sms\" is not one of"), "{e}");
    }
}
