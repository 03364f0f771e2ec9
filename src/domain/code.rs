//! Every error code the API answers with: its HTTP status and what it
//! means. The README's table, the OpenAPI document's `ErrorDetail.code`
//! enum and its descriptions are generated from this one list
//! (`http/codes.rs`), so a code cannot be answered without being
//! documented.

use std::fmt;

use strum::IntoEnumIterator;

/// A stable, machine-readable reason for a refusal or an error.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
pub enum Code {
    // The edge: parsing and limits.
    MalformedJson,
    InvalidBody,
    InvalidQuery,
    UnsupportedMediaType,
    InvalidCharacters,
    DuplicateKey,
    InvalidPath,
    InvalidLimit,
    InvalidMaxSteps,
    BodyTooLarge,
    HeadersTooLarge,
    RateLimitedAddress,
    RateLimitedIdentity,
    TotpRateLimited,
    RequestTimeout,
    NotFound,
    MethodNotAllowed,
    Internal,
    // Dependencies.
    DatabaseBusy,
    DatabaseUnavailable,
    AuditChainBroken,
    KeyServiceUnavailable,
    KeyServiceRefused,
    SecretStoreUnavailable,
    SecretStoreRefused,
    AwsUnavailable,
    AwsNotConfigured,
    // Authentication and roles.
    TokenMissing,
    TokenMalformed,
    TokenBadSignature,
    TokenWrongAlgorithm,
    TokenUnknownKey,
    TokenIssuerUnreachable,
    TokenWrongIssuer,
    TokenWrongAudience,
    TokenExpired,
    TokenNotYetValid,
    TokenLifetimeTooLong,
    TokenNoRole,
    TokenRevoked,
    ForbiddenRole,
    InvalidJti,
    // The console's sign-in and forms.
    LinkUnknown,
    LinkUsed,
    LinkExpired,
    CrossSiteRequest,
    FormTokenInvalid,
    SignInUnknown,
    SignInOtherBrowser,
    ProviderRefused,
    NoProviderClient,
    ConsoleAddressUnknown,
    // Custodians and TOTP.
    CustodianExists,
    CustodianNotFound,
    CustodianLocked,
    AlreadyEnrolled,
    NotEnrolled,
    NotACustodian,
    NotSelf,
    EnrollmentChanged,
    PolicyUnproven,
    QuorumUnproven,
    RequestChanged,
    InvalidTotp,
    InvalidTotpFormat,
    TotpReplayed,
    InvalidName,
    InvalidGroups,
    InvalidFields,
    InvalidAccount,
    InvalidAccessKeyId,
    // Credentials.
    CredentialExists,
    CredentialNotFound,
    UnknownPolicy,
    PolicyMissing,
    NotRecoverable,
    NoAccessKey,
    RotationInProgress,
    ConcurrentRotation,
    // Requests and release.
    RequestNotFound,
    InvalidReason,
    InvalidTicket,
    TicketRequired,
    TooManyOpenRequests,
    NotEligible,
    SelfApproval,
    AlreadyDecided,
    ApprovalNotNeeded,
    RequestAlreadyApproved,
    RequestDenied,
    RequestExpired,
    RequestNotApproved,
    RequestReleased,
    ReleaseWindowClosed,
    OutsideReleaseHours,
    NotRequester,
    QuorumNotMet,
    // Policies.
    InvalidPolicy,
    PolicyUnsatisfiable,
    NoChange,
    PolicyChangeNotFound,
    PolicyChangeClosed,
    PolicyChangeExpired,
    PolicyChangedMeanwhile,
    // Recovery.
    NoRecoverySet,
    RecoveryInProgress,
    RecoverySessionNotFound,
    RecoverySessionClosed,
    RecoverySessionExpired,
    RecoverySessionElsewhere,
    NotAShareholder,
    NotYourShare,
    ShareAlreadySubmitted,
    ShareTooLarge,
    ShareUnreadable,
    ShareMalformed,
    ShareForeign,
    ShareCorrupted,
    ShareInvalid,
    ShareDuplicate,
    ShareKeyCheck,
    SharesNotEnough,
    ShareSetRetired,
    // Audit and alerts.
    AuditLogEmpty,
    AlertNotDead,
}

impl Code {
    /// Every code, in the order of the documentation.
    pub fn all() -> impl Iterator<Item = Code> {
        Code::iter()
    }

    /// The code as the API writes it (`snake_case`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The status it is answered with.
    pub fn status(self) -> u16 {
        self.statuses()[0]
    }

    /// Every status it can be answered with: the first is the usual one;
    /// a few codes also come with another (a malformed body or query is a
    /// 400 before it is read and a 422 after; an unknown policy is a 404
    /// in a path and a 422 in a body).
    pub fn statuses(self) -> &'static [u16] {
        self.describe().0
    }

    /// What it means, for people.
    pub fn meaning(self) -> &'static str {
        self.describe().1
    }

    fn describe(self) -> (&'static [u16], &'static str) {
        match self {
            Code::MalformedJson => (&[400], "the body is not JSON"),
            Code::InvalidBody => (&[422, 400], "the JSON body does not have the documented shape"),
            Code::InvalidQuery => (&[400, 422], "a query parameter is malformed"),
            Code::UnsupportedMediaType => (&[415], "a body without `Content-Type: application/json`"),
            Code::InvalidCharacters => (&[422], "a name, id, reason, ticket, path segment or query parameter holds a control, bidirectional-override or line-separator character (audited)"),
            Code::DuplicateKey => (&[422], "a JSON object names the same key twice (audited)"),
            Code::InvalidPath => (&[400], "a path segment is not valid percent-encoded UTF-8"),
            Code::InvalidLimit => (&[422], "`limit` is outside the operation's page range"),
            Code::InvalidMaxSteps => (&[422], "`max_steps` of a key rotation is 1 to 3"),
            Code::BodyTooLarge => (&[413], "the body exceeds `limits.max_body_bytes`"),
            Code::HeadersTooLarge => (&[431], "the request line and headers exceed `limits.max_header_bytes`"),
            Code::RateLimitedAddress => (&[429], "this client address exceeded `limits.requests_per_minute_per_address`; see Retry-After"),
            Code::RateLimitedIdentity => (&[429], "this identity exceeded `limits.requests_per_minute_per_identity`; see Retry-After"),
            Code::TotpRateLimited => (&[429], "more than `limits.totp_attempts_per_minute` TOTP codes for one custodian, or `limits.totp_attempts_per_minute_per_address` from one address"),
            Code::RequestTimeout => (&[503], "the request exceeded `limits.request_timeout` and was abandoned"),
            Code::NotFound => (&[404], "no such endpoint"),
            Code::MethodNotAllowed => (&[405], "the endpoint does not accept this method"),
            Code::Internal => (&[500], "an internal error; the operators have the details"),
            Code::DatabaseBusy => (&[503], "no free database connection within `database.acquire_timeout`"),
            Code::DatabaseUnavailable => (&[503], "the database does not answer"),
            Code::AuditChainBroken => (&[503], "the audit log is broken (an event appended outside the service, or history that disagrees with the witness): nothing that must be audited can happen, and no checkpoint is signed; `audit verify` and `/readyz` say where"),
            Code::KeyServiceUnavailable => (&[503], "the key service (KMS) does not answer"),
            Code::KeyServiceRefused => (&[503], "the key service refused the operation"),
            Code::SecretStoreUnavailable => (&[503], "the secret store does not answer"),
            Code::SecretStoreRefused => (&[503], "the secret store refused the operation"),
            Code::AwsUnavailable => (&[503], "AWS refused or did not answer during a key rotation"),
            Code::AwsNotConfigured => (&[409], "the operation needs AWS, and the service has no AWS configuration"),
            Code::TokenMissing => (&[401], "no bearer token"),
            Code::TokenMalformed => (&[401], "the bearer token is not a JWT"),
            Code::TokenBadSignature => (&[401], "the token's signature does not verify"),
            Code::TokenWrongAlgorithm => (&[401], "the token's algorithm is not the one its key allows"),
            Code::TokenUnknownKey => (&[401], "no trusted key has the token's `kid`"),
            Code::TokenIssuerUnreachable => (&[401], "the token's OIDC issuer could not be reached to fetch its keys"),
            Code::TokenWrongIssuer => (&[401], "the token's issuer is not trusted"),
            Code::TokenWrongAudience => (&[401], "the token was issued for another audience"),
            Code::TokenExpired => (&[401], "the token has expired"),
            Code::TokenNotYetValid => (&[401], "the token is issued in the future"),
            Code::TokenLifetimeTooLong => (&[401], "the token lives longer than `tokens.max_ttl`"),
            Code::TokenNoRole => (&[401], "the token carries no role of this service"),
            Code::TokenRevoked => (&[401], "the token has been revoked"),
            Code::ForbiddenRole => (&[403], "the caller's roles do not allow this"),
            Code::InvalidJti => (&[422], "not a token id"),
            Code::LinkUnknown => (&[401], "the sign-in link is not one this service issued"),
            Code::LinkUsed => (&[401], "the sign-in link has been used: a link signs in once"),
            Code::LinkExpired => (&[401], "the sign-in link has expired"),
            Code::CrossSiteRequest => (&[403], "the form was sent from another site"),
            Code::SignInUnknown => (&[401], "the sign-in through the provider is unknown, used or expired: start it again"),
            Code::SignInOtherBrowser => (&[401], "the sign-in was started in another browser"),
            Code::ProviderRefused => (&[401], "the identity provider refused the sign-in, or its answer did not verify"),
            Code::NoProviderClient => (&[404], "no identity provider of that name signs in to the console"),
            Code::ConsoleAddressUnknown => (&[503], "the console's public address is not configured (`[console] public_url`)"),
            Code::FormTokenInvalid => (&[403], "the form's token is missing or is not this session's"),
            Code::CustodianExists => (&[409], "a custodian of that name exists"),
            Code::CustodianNotFound => (&[404], "no such custodian"),
            Code::CustodianLocked => (&[423], "the custodian is locked out after repeated wrong codes"),
            Code::AlreadyEnrolled => (&[409], "the custodian has already enrolled"),
            Code::NotEnrolled => (&[409], "the custodian has not enrolled TOTP"),
            Code::NotACustodian => (&[403], "the caller is not an active custodian"),
            Code::NotSelf => (&[403], "custodians enrol and confirm only themselves"),
            Code::EnrollmentChanged => (&[409], "the custodian's TOTP enrolment changed while the code was being checked; send a new code"),
            Code::PolicyUnproven => (&[409], "a credential's policy assignment or a policy version does not carry the audit key's seal (written around the service): nothing is decided under it"),
            Code::QuorumUnproven => (&[409], "a release could not re-prove its quorum from what the database does not hold (the signed audit chain, the custodians' seeds): the stored request or decisions were changed; audited"),
            Code::RequestChanged => (&[409], "the request or its decisions changed between the proof of its quorum and the release; release again"),
            Code::InvalidTotp => (&[401], "the TOTP code is wrong or outside the accepted window (counts toward lockout; the message says how many tries are left)"),
            Code::InvalidTotpFormat => (&[422], "a TOTP code is exactly 6 digits (never counts toward lockout)"),
            Code::TotpReplayed => (&[409], "this code, or a later one, was already used"),
            Code::InvalidName => (&[422], "not a valid custodian or credential name"),
            Code::InvalidGroups => (&[422], "at least one group, each a valid group name"),
            Code::InvalidFields => (&[422], "the credential's fields do not match its kind"),
            Code::InvalidAccount => (&[422], "not a 12-digit AWS account id"),
            Code::InvalidAccessKeyId => (&[422], "not an AWS access key id"),
            Code::CredentialExists => (&[409], "a credential of that name exists"),
            Code::CredentialNotFound => (&[404], "no such credential"),
            Code::UnknownPolicy => (&[404, 422], "no such policy"),
            Code::PolicyMissing => (&[409], "the credential's policy is not loaded"),
            Code::NotRecoverable => (&[409], "this version cannot be recovered"),
            Code::NoAccessKey => (&[409], "the credential holds no AWS access key"),
            Code::RotationInProgress => (&[409], "a key rotation of this credential is open"),
            Code::ConcurrentRotation => (&[409], "another run took this rotation step"),
            Code::RequestNotFound => (&[404], "no such request"),
            Code::InvalidReason => (&[422], "a reason is required, within its maximum length"),
            Code::InvalidTicket => (&[422], "the ticket does not match the policy's pattern"),
            Code::TicketRequired => (&[422], "the policy releases only against a declared incident ticket"),
            Code::TooManyOpenRequests => (&[409], "the policy's `max_open_releases` is reached"),
            Code::NotEligible => (&[403], "the custodian's groups do not count toward this policy"),
            Code::SelfApproval => (&[403], "a requester never approves their own request"),
            Code::AlreadyDecided => (&[409], "the custodian has already decided this request"),
            Code::ApprovalNotNeeded => (&[409], "the approvals so far already cover this custodian's groups"),
            Code::RequestAlreadyApproved => (&[409], "the request is approved already"),
            Code::RequestDenied => (&[409], "the request was denied"),
            Code::RequestExpired => (&[409], "the request expired before its quorum"),
            Code::RequestNotApproved => (&[409], "the request has no quorum yet"),
            Code::RequestReleased => (&[409], "the credential of this request was already released"),
            Code::ReleaseWindowClosed => (&[409], "the approved request's release window has passed"),
            Code::OutsideReleaseHours => (&[409], "the policy allows releases only in its `release_hours`"),
            Code::NotRequester => (&[403], "only the requester releases"),
            Code::QuorumNotMet => (&[409], "not enough valid approvals"),
            Code::InvalidPolicy => (&[422], "the proposed policy is invalid"),
            Code::PolicyUnsatisfiable => (&[422], "the enrolled custodians could never meet the proposed policy"),
            Code::NoChange => (&[422], "the proposal changes nothing"),
            Code::PolicyChangeNotFound => (&[404], "no such policy change"),
            Code::PolicyChangeClosed => (&[409], "the policy change was applied or denied"),
            Code::PolicyChangeExpired => (&[409], "the policy change expired"),
            Code::PolicyChangedMeanwhile => (&[409], "the policy changed after the proposal was made; propose again against the policy in force"),
            Code::NoRecoverySet => (&[409], "no recovery set has been made"),
            Code::RecoveryInProgress => (&[409], "a recovery ceremony is under way"),
            Code::RecoverySessionNotFound => (&[404], "no such recovery session"),
            Code::RecoverySessionClosed => (&[409], "the recovery session is closed"),
            Code::RecoverySessionExpired => (&[409], "the recovery session expired"),
            Code::RecoverySessionElsewhere => (&[409], "the session's key lives in another server process"),
            Code::NotAShareholder => (&[403], "the custodian holds no share of the set"),
            Code::NotYourShare => (&[403], "the share was made for another custodian"),
            Code::ShareAlreadySubmitted => (&[409], "the custodian already submitted a share to this session"),
            Code::ShareTooLarge => (&[413], "the sealed share is too large"),
            Code::ShareUnreadable => (&[422], "the sealed share does not open with the session's key"),
            Code::ShareMalformed => (&[422], "not a share file"),
            Code::ShareForeign => (&[422], "a share of another set"),
            Code::ShareCorrupted => (&[422], "the share does not match its commitment"),
            Code::ShareInvalid => (&[422], "the share is not part of this set"),
            Code::ShareDuplicate => (&[409], "the same share twice"),
            Code::ShareKeyCheck => (&[422], "the combined key does not match the set"),
            Code::SharesNotEnough => (&[409], "fewer shares than the threshold"),
            Code::ShareSetRetired => (&[409], "the share's set was replaced"),
            Code::AuditLogEmpty => (&[409], "the audit log has no events to sign"),
            Code::AlertNotDead => (&[409], "only a dead-lettered alert is retried"),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
