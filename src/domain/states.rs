//! The states stored rows move through. Each is a closed set: a row whose
//! column holds anything else is refused when it is read (`store::rows`),
//! so a corrupted row never takes a transition it should not.

macro_rules! state_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            strum::EnumIter,
            strum::EnumString,
            strum::IntoStaticStr,
            strum::Display,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

state_enum! {
    /// Where a custodian is in enrolment.
    CustodianStatus {
        /// Created; no TOTP seed yet.
        New,
        /// A seed was issued and is not confirmed yet.
        Pending,
        /// Enrolled: may approve and hold a recovery share.
        Active,
    }
}

state_enum! {
    /// A request's stored state; `RequestState` adds what the clock decides.
    StoredRequestState {
        Pending,
        Approved,
        Denied,
        Released,
    }
}

state_enum! {
    /// A custodian's decision on a request or a policy change.
    Decision {
        Approve,
        Deny,
    }
}

state_enum! {
    /// A recovery share set.
    RecoverySetState {
        /// The set the recovery key is split into now.
        Active,
        /// Replaced by a newer set.
        Retired,
    }
}

state_enum! {
    /// An online recovery session.
    SessionState {
        /// Collecting shares.
        Open,
        /// The credential was released from it.
        Released,
        /// Closed because a newer session opened for the same request.
        Superseded,
    }
}

state_enum! {
    /// A rotation of a credential's root access keys.
    RotationState {
        /// Opened: a new key is created and deposited next.
        Started,
        /// The new key is deposited as the credential's next version.
        Deposited,
        /// The new key was shown to work; the old one is deleted next.
        Verified,
        /// The old key is deleted.
        Done,
    }
}

state_enum! {
    /// One alert in the outbox.
    AlertState {
        Pending,
        Delivered,
        /// Given up after its last attempt; an operator may retry it.
        Dead,
    }
}

state_enum! {
    /// A policy change.
    PolicyChangeState {
        Pending,
        Applied,
        Denied,
        /// Another change to the same policy was applied first.
        Superseded,
    }
}

state_enum! {
    /// What a policy change does.
    PolicyChangeKind {
        /// A new version of the policy.
        Update,
        /// A credential moved to another policy.
        Move,
    }
}

state_enum! {
    /// How a person signed in to the console.
    SignInMethod {
        /// The organisation's OIDC provider (authorization code with PKCE).
        Oidc,
        /// A one-time sign-in link minted on the host.
        Link,
        /// A local API token, pasted once.
        Token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn every_state_reads_back_from_its_stored_name() {
        for s in CustodianStatus::iter() {
            assert_eq!(s.as_str().parse::<CustodianStatus>().unwrap(), s);
        }
        for s in StoredRequestState::iter() {
            assert_eq!(s.as_str().parse::<StoredRequestState>().unwrap(), s);
        }
        assert_eq!(RotationState::Done.as_str(), "done");
        assert_eq!(PolicyChangeKind::Move.to_string(), "move");
        assert!("garbage".parse::<Decision>().is_err());
        assert!("Active".parse::<RecoverySetState>().is_err());
    }
}
