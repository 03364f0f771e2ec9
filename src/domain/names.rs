//! Validated names: parsed once at the edge, valid forever after.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name was refused; the message names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

fn check_slug(kind: &str, s: &str, max: usize) -> Result<(), NameError> {
    let ok_first = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if s.is_empty() || s.len() > max || !ok_first || !ok_rest {
        return Err(NameError(format!(
            "{kind} {s:?} is not valid: use 1 to {max} characters a-z, 0-9, '-', '_' or '.', starting with a letter or digit"
        )));
    }
    Ok(())
}

macro_rules! slug_type {
    ($(#[$m:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, NameError> {
                check_slug($kind, s, $max)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }
    };
}

slug_type!(
    /// A custodian's name; also the `sub` of their tokens.
    CustodianName,
    "custodian name",
    64
);

/// Actor names the service writes into the audit log itself: nobody may
/// hold them, or their actions would read as the service's own.
pub const RESERVED_ACTORS: [&str; 2] = ["anonymous", "breakglass"];
/// The prefix of the host operator's actor names (`host-operator:USER`).
pub const HOST_OPERATOR_PREFIX: &str = "host-operator:";

impl CustodianName {
    /// A name a person may hold: a valid slug that is not one of the
    /// service's own actor names.
    pub fn parse_person(s: &str) -> Result<Self, NameError> {
        if RESERVED_ACTORS.contains(&s) || s.starts_with(HOST_OPERATOR_PREFIX) {
            return Err(NameError(format!(
                "{s:?} is reserved: the service names itself and unauthenticated callers so in the audit log; choose another name"
            )));
        }
        Self::parse(s)
    }
}
slug_type!(
    /// A credential's name, e.g. `aws-prod-root`.
    CredentialName,
    "credential name",
    64
);
slug_type!(
    /// A custodian group, e.g. `sre`.
    GroupName,
    "group name",
    64
);
slug_type!(
    /// A policy's name, e.g. `default`.
    PolicyName,
    "policy name",
    64
);
slug_type!(
    /// The key of one credential field, e.g. `password`, `mfa_seed`.
    FieldName,
    "field name",
    64
);

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError(format!(
                "account id {s:?} is not valid: an AWS account id is exactly 12 digits"
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for AccountId {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}
impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}
impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_what_could_confuse_a_reader_or_a_path() {
        for bad in ["", "Upper", "-lead", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(CustodianName::parse(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["alice", "sre-1", "a.b_c", "0day"] {
            assert!(CustodianName::parse(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn the_service_own_actor_names_are_reserved() {
        for reserved in ["anonymous", "breakglass", "host-operator:root"] {
            assert!(CustodianName::parse_person(reserved).is_err(), "{reserved}");
        }
        assert!(CustodianName::parse_person("anonymous2").is_ok());
    }

    #[test]
    fn an_account_id_is_twelve_digits() {
        assert!(AccountId::parse("123456789012").is_ok());
        assert!(AccountId::parse("12345678901").is_err());
        assert!(AccountId::parse("12345678901a").is_err());
    }
}
