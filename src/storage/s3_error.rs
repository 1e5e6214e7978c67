//! How S3 failures map onto [`StoreError`]: a pure classification of the HTTP status and
//! S3 error code, and the conversion of SDK errors that uses it. Messages are built from
//! the status, code and service message only, with the access key id masked, so that no
//! credential can reach a log.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::error::StoreError;

/// What an S3 error answer means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServiceFailure {
    /// The object (or, for bucket operations, the bucket) does not exist.
    NotFound,
    BucketMissing,
    /// Wrong or insufficient credentials.
    AccessDenied,
    /// A server-side or throttling failure that may pass.
    Unavailable,
    /// The bucket lives in another region than the one configured.
    WrongRegion,
    /// A conditional write found another object than it expected.
    PreconditionFailed,
    Other,
}

/// Classifies an S3 error answer by its error code, or by its HTTP status when the code
/// is missing (answers to HEAD requests have no body).
pub(crate) fn classify_service_failure(status: u16, code: Option<&str>) -> ServiceFailure {
    match code {
        Some("NoSuchBucket") => return ServiceFailure::BucketMissing,
        Some("NoSuchKey" | "NotFound") => return ServiceFailure::NotFound,
        Some("PreconditionFailed") => return ServiceFailure::PreconditionFailed,
        // AWS: another conditional write to the key was in flight; retrying settles it.
        Some("ConditionalRequestConflict") => return ServiceFailure::Unavailable,
        Some(
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken"
            | "AllAccessDisabled"
            | "AccountProblem"
            | "InvalidSecurity"
            | "RequestTimeTooSkewed",
        ) => return ServiceFailure::AccessDenied,
        Some(
            "SlowDown"
            | "ServiceUnavailable"
            | "InternalError"
            | "RequestTimeout"
            | "Throttling"
            | "ThrottlingException"
            | "TooManyRequests"
            | "XMinioServerNotInitialized",
        ) => return ServiceFailure::Unavailable,
        Some("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException") => {
            return ServiceFailure::WrongRegion;
        }
        _ => {}
    }
    match status {
        404 => ServiceFailure::NotFound,
        412 => ServiceFailure::PreconditionFailed,
        401 | 403 => ServiceFailure::AccessDenied,
        301 => ServiceFailure::WrongRegion,
        408 | 429 | 500..=599 => ServiceFailure::Unavailable,
        _ => ServiceFailure::Other,
    }
}

/// `CODE: message (HTTP status)`, with whatever parts the answer has.
pub(crate) fn describe_service_failure(status: u16, code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
        (Some(code), None) => format!("{code} (HTTP {status})"),
        (None, Some(message)) => format!("{message} (HTTP {status})"),
        (None, None) => format!("HTTP {status}"),
    }
}

/// Masks the access key id in a message (the secret key is never sent, so it cannot come
/// back in an answer).
pub(crate) fn redact(text: String, access_key_id: &str) -> String {
    if access_key_id.is_empty() || !text.contains(access_key_id) {
        return text;
    }
    text.replace(access_key_id, "<access-key-id>")
}

/// An error and its sources, each by its `Display`, joined by `: `.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What an error is about, for its message.
pub(crate) struct ErrorContext<'a> {
    pub bucket: &'a str,
    pub region: &'a str,
    /// The object, or `None` for bucket operations.
    pub key: Option<&'a str>,
    pub access_key_id: &'a str,
}

/// Converts an SDK error into a [`StoreError`].
pub(crate) fn from_sdk_error<E>(err: SdkError<E, HttpResponse>, context: &ErrorContext<'_>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let redact = |text: String| redact(text, context.access_key_id);
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            let detail = redact(describe_service_failure(status, code, service.err().message()));
            match classify_service_failure(status, code) {
                ServiceFailure::NotFound => match context.key {
                    Some(key) => StoreError::NotFound { key: key.to_string() },
                    None => StoreError::BucketMissing { bucket: context.bucket.to_string() },
                },
                ServiceFailure::BucketMissing => StoreError::BucketMissing { bucket: context.bucket.to_string() },
                ServiceFailure::PreconditionFailed => {
                    StoreError::Conflict { key: context.key.unwrap_or_default().to_string() }
                }
                ServiceFailure::AccessDenied => StoreError::AccessDenied {
                    detail: format!("bucket {}: {detail} (check the access key and its permissions)", context.bucket),
                },
                ServiceFailure::Unavailable => StoreError::Unavailable { detail },
                ServiceFailure::WrongRegion => StoreError::Other {
                    detail: format!(
                        "bucket {} is not in region {}, or the endpoint is wrong: {detail}",
                        context.bucket, context.region
                    ),
                },
                ServiceFailure::Other => StoreError::Other { detail: format!("bucket {}: {detail}", context.bucket) },
            }
        }
        SdkError::TimeoutError(_) => StoreError::Unreachable { detail: "no answer in time".into() },
        SdkError::DispatchFailure(failure) if failure.is_user() => {
            StoreError::Other { detail: redact(format!("cannot send the request: {}", error_chain(&err))) }
        }
        SdkError::DispatchFailure(_) => StoreError::Unreachable { detail: redact(error_chain(&err)) },
        SdkError::ResponseError(_) => {
            StoreError::Unavailable { detail: redact(format!("unreadable answer: {}", error_chain(&err))) }
        }
        _ => StoreError::Other { detail: redact(error_chain(&err)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decide_before_statuses() {
        assert_eq!(classify_service_failure(404, Some("NoSuchBucket")), ServiceFailure::BucketMissing);
        assert_eq!(classify_service_failure(404, Some("NoSuchKey")), ServiceFailure::NotFound);
        assert_eq!(classify_service_failure(403, Some("InvalidAccessKeyId")), ServiceFailure::AccessDenied);
        assert_eq!(classify_service_failure(403, Some("SignatureDoesNotMatch")), ServiceFailure::AccessDenied);
        assert_eq!(classify_service_failure(503, Some("SlowDown")), ServiceFailure::Unavailable);
        assert_eq!(classify_service_failure(400, Some("RequestTimeout")), ServiceFailure::Unavailable);
        assert_eq!(classify_service_failure(400, Some("AuthorizationHeaderMalformed")), ServiceFailure::WrongRegion);
        assert_eq!(classify_service_failure(400, Some("InvalidArgument")), ServiceFailure::Other);
    }

    #[test]
    fn statuses_decide_answers_without_a_body() {
        assert_eq!(classify_service_failure(404, None), ServiceFailure::NotFound);
        assert_eq!(classify_service_failure(403, None), ServiceFailure::AccessDenied);
        assert_eq!(classify_service_failure(301, None), ServiceFailure::WrongRegion);
        assert_eq!(classify_service_failure(500, None), ServiceFailure::Unavailable);
        assert_eq!(classify_service_failure(429, None), ServiceFailure::Unavailable);
        assert_eq!(classify_service_failure(400, None), ServiceFailure::Other);
    }

    #[test]
    fn descriptions_use_what_the_answer_has() {
        assert_eq!(describe_service_failure(403, Some("AccessDenied"), Some("no")), "AccessDenied: no (HTTP 403)");
        assert_eq!(describe_service_failure(403, None, None), "HTTP 403");
        assert_eq!(describe_service_failure(500, None, Some("boom")), "boom (HTTP 500)");
    }

    #[test]
    fn chains_name_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("dispatch failure")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"));
        assert_eq!(error_chain(&err), "dispatch failure: connection refused");
    }

    #[test]
    fn access_key_ids_are_masked() {
        assert_eq!(redact("key AKIDEXAMPLE is unknown".into(), "AKIDEXAMPLE"), "key <access-key-id> is unknown");
        assert_eq!(redact("nothing here".into(), ""), "nothing here");
    }
}
