//! How S3 failures map onto [`StoreError`]: a pure classification of the HTTP status and
//! S3 error code, and the conversion of SDK errors that uses it. Messages are built from
//! the status, code and service message only, with the access key id masked, so that no
//! credential can reach a log.

use aws_credential_types::provider::error::CredentialsError;
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
        // The service lacks a feature the request uses (a conditional write, say):
        // retrying cannot help.
        Some("NotImplemented") => return ServiceFailure::Other,
        _ => {}
    }
    match status {
        404 => ServiceFailure::NotFound,
        412 => ServiceFailure::PreconditionFailed,
        401 | 403 => ServiceFailure::AccessDenied,
        301 => ServiceFailure::WrongRegion,
        501 => ServiceFailure::Other,
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
/// back in an answer), and any AWS access key id by its form (`AKIA`/`ASIA` and sixteen
/// upper-case letters or digits: the temporary keys of the provider chain are not known
/// in advance).
pub(crate) fn redact(text: String, access_key_id: &str) -> String {
    let text = if access_key_id.is_empty() || !text.contains(access_key_id) {
        text
    } else {
        text.replace(access_key_id, "<access-key-id>")
    };
    mask_aws_key_ids(text)
}

fn mask_aws_key_ids(text: String) -> String {
    let bytes = text.as_bytes();
    let is_key_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut found = Vec::new();
    let mut at = 0;
    while at + 20 <= bytes.len() {
        let candidate = &bytes[at..at + 20];
        let starts_word = at == 0 || !is_key_char(bytes[at - 1]);
        let ends_word = bytes.get(at + 20).is_none_or(|b| !is_key_char(*b));
        if starts_word
            && ends_word
            && (candidate.starts_with(b"AKIA") || candidate.starts_with(b"ASIA"))
            && candidate.iter().all(|b| is_key_char(*b))
        {
            found.push(at);
            at += 20;
        } else {
            at += 1;
        }
    }
    if found.is_empty() {
        return text;
    }
    let mut masked = String::with_capacity(text.len());
    let mut from = 0;
    for start in found {
        masked.push_str(&text[from..start]);
        masked.push_str("<access-key-id>");
        from = start + 20;
    }
    masked.push_str(&text[from..]);
    masked
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

/// The failure of the credentials provider behind `err`, if that is what failed: the
/// request was never sent.
fn credentials_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(credentials) = cause.downcast_ref::<CredentialsError>() {
            return Some(match credentials {
                CredentialsError::CredentialsNotLoaded(_) => "no credentials: the AWS provider chain found none \
                     (environment, web identity token, container or instance credentials); give the stream a \
                     credentials Secret or its worker a web identity, or set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY"
                    .to_string(),
                other => format!("no credentials: {}", error_chain(other)),
            });
        }
        source = cause.source();
    }
    None
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
    if let Some(failure) = credentials_error(&err) {
        return StoreError::AccessDenied { detail: redact(format!("bucket {}: {failure}", context.bucket)) };
    }
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
        assert_eq!(
            redact("temporary ASIAIOSFODNN7EXAMPLE expired".into(), ""),
            "temporary <access-key-id> expired",
            "keys of the provider chain by their form"
        );
        assert_eq!(redact("AKIAIOSFODNN7EXAMPLE".into(), ""), "<access-key-id>");
        assert_eq!(redact("XAKIAIOSFODNN7EXAMPLE".into(), ""), "XAKIAIOSFODNN7EXAMPLE", "inside a longer word");
    }

    #[test]
    fn features_a_service_lacks_are_not_retried() {
        assert_eq!(classify_service_failure(501, Some("NotImplemented")), ServiceFailure::Other);
        assert_eq!(classify_service_failure(501, None), ServiceFailure::Other);
    }
}
