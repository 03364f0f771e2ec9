//! The break-glass request state machine.
//!
//! Stored states are `pending`, `approved`, `denied` and `released`; `expired`
//! is derived from the clock, so a request expires at its deadline even if
//! nothing touches it.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::domain::states::StoredRequestState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for approvals.
    Pending,
    /// Quorum met; the requester may release once before the window closes.
    Approved,
    /// Vetoed by a custodian.
    Denied,
    /// Released once; no further release is possible.
    Released,
    /// The quorum was not met before the request's deadline.
    Expired,
    /// Approved, but the release window closed without a release.
    ReleaseWindowClosed,
}

/// The columns that decide a request's state.
#[derive(Debug, Clone, Copy)]
pub struct StoredState {
    pub state: StoredRequestState,
    pub expires_at: Millis,
    pub release_deadline: Option<Millis>,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Released => "released",
            RequestState::Expired => "expired",
            RequestState::ReleaseWindowClosed => "release_window_closed",
        }
    }

    /// The state as of `now`. (A stored value outside the closed set is
    /// refused when the row is read, so a corrupted row never gets here.)
    pub fn effective(s: StoredState, now: Millis) -> RequestState {
        match s.state {
            StoredRequestState::Pending if now >= s.expires_at => RequestState::Expired,
            StoredRequestState::Pending => RequestState::Pending,
            StoredRequestState::Approved => match s.release_deadline {
                Some(d) if now < d => RequestState::Approved,
                _ => RequestState::ReleaseWindowClosed,
            },
            StoredRequestState::Released => RequestState::Released,
            StoredRequestState::Denied => RequestState::Denied,
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, RequestState::Pending | RequestState::Approved)
    }
}

/// How the audit log names a request (`request:ID`).
pub fn request_target(id: &str) -> String {
    format!("request:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: &str, release_deadline: Option<Millis>) -> StoredState {
        StoredState {
            state: state.parse().unwrap(),
            expires_at: 1000,
            release_deadline,
        }
    }

    #[test]
    fn a_pending_request_expires_at_its_deadline() {
        assert_eq!(
            RequestState::effective(st("pending", None), 999),
            RequestState::Pending
        );
        assert_eq!(
            RequestState::effective(st("pending", None), 1000),
            RequestState::Expired
        );
    }

    #[test]
    fn an_approved_request_can_only_be_released_inside_its_window() {
        assert_eq!(
            RequestState::effective(st("approved", Some(5000)), 4999),
            RequestState::Approved
        );
        assert_eq!(
            RequestState::effective(st("approved", Some(5000)), 5000),
            RequestState::ReleaseWindowClosed
        );
        assert_eq!(
            RequestState::effective(st("approved", None), 0),
            RequestState::ReleaseWindowClosed
        );
    }

    #[test]
    fn an_unknown_stored_state_is_not_a_state() {
        // The row holding it is refused when read (`store::rows`).
        assert!("garbage".parse::<StoredRequestState>().is_err());
        assert_eq!(
            RequestState::effective(st("denied", Some(9999)), 0),
            RequestState::Denied
        );
    }
}
