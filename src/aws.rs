//! Shared AWS plumbing: the SDK configuration (standard credential chain,
//! optional endpoint override, bounded timeouts) and error classification.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};

/// Where and how to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Region; otherwise the standard chain (AWS_REGION, profile, IMDS).
    pub region: Option<String>,
    /// Endpoint override (VPC endpoint, emulator); otherwise AWS's.
    pub endpoint_url: Option<String>,
    /// Upper bound of one API call including retries.
    pub call_timeout: Duration,
}

/// Load the SDK configuration through the standard chain: environment,
/// profile, web identity (IRSA), container and instance roles.
pub async fn sdk_config(s: &AwsSettings) -> aws_config::SdkConfig {
    let attempt = (s.call_timeout / 2).max(Duration::from_millis(500));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(attempt.min(Duration::from_secs(3)))
        .operation_attempt_timeout(attempt)
        .operation_timeout(s.call_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(r) = &s.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(e) = &s.endpoint_url {
        loader = loader.endpoint_url(e.clone());
    }
    loader.load().await
}

/// How an AWS call failed, coarsely.
pub enum Failure {
    /// Not reached, timed out, throttled or a server-side fault.
    Unavailable(String),
    /// The service answered with an error code.
    Service { code: String, message: String },
}

pub fn classify<E>(e: &SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown").to_string();
            let message = err.message().unwrap_or_default().to_string();
            // A server-side fault is an outage, whatever its code.
            let transient = se.raw().status().is_server_error()
                || matches!(
                    code.as_str(),
                    "ThrottlingException"
                        | "Throttling"
                        | "TooManyRequestsException"
                        | "RequestLimitExceeded"
                        | "DependencyTimeoutException"
                        | "KMSInternalException"
                        | "InternalServiceError"
                        | "InternalFailure"
                        | "ServiceUnavailable"
                );
            if transient {
                Failure::Unavailable(format!("{code}: {message}"))
            } else {
                Failure::Service { code, message }
            }
        }
        SdkError::TimeoutError(_) => Failure::Unavailable("timed out".into()),
        SdkError::DispatchFailure(d) => {
            Failure::Unavailable(format!("cannot reach the endpoint: {d:?}"))
        }
        SdkError::ResponseError(_) => Failure::Unavailable("unreadable response".into()),
        other => Failure::Unavailable(format!("{other}")),
    }
}
