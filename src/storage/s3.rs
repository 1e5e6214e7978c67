//! The S3 backend, for AWS S3 and S3-compatible services (MinIO, R2, ...).
//!
//! The client is built by hand rather than from the environment: static credentials that
//! the caller read from a Secret, or the AWS SDK's standard provider chain (environment,
//! web identity token, container and instance credentials) on the same HTTP client; an
//! HTTPS client on rustls with the ring provider, and checksums only where an operation
//! requires them, since several S3-compatible services refuse the newer default checksum
//! headers. The SDK's own retries are off: retrying is the business of
//! [`crate::storage::retry`], which knows which objects must land.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future as credentials_future};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::SharedHttpClient;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use bytes::{Bytes, BytesMut};

use super::error::StoreError;
use super::key::{directory_prefix, validate_key};
use super::object::ObjectKind;
use super::s3_error::{
    ErrorContext, ServiceFailure, classify_service_failure, describe_service_failure, error_chain, from_sdk_error,
    redact,
};
use super::store::{Expect, MAX_GET_BYTES, MAX_LIST_KEYS, Store, Version};
use super::web_identity::WebIdentity;

/// The most keys one DeleteObjects request may name.
const DELETE_BATCH: usize = 1000;

/// How the client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum S3Credentials {
    /// An access key and its secret, as read from a Secret or the environment.
    Static { access_key_id: String, secret_access_key: String },
    /// The AWS SDK's standard provider chain, in its order: the environment
    /// (`AWS_ACCESS_KEY_ID`...), profile files, a web identity token (`AWS_ROLE_ARN` with
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`, as EKS's IRSA injects them), container credentials
    /// (EKS Pod Identity, ECS), and the instance metadata service. Temporary credentials
    /// are refreshed before they expire.
    ProviderChain,
}

impl S3Credentials {
    /// Static credentials.
    pub fn from_keys(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        S3Credentials::Static { access_key_id: access_key_id.into(), secret_access_key: secret_access_key.into() }
    }

    /// How the credentials come, for logs: never a key.
    pub fn describe(&self) -> &'static str {
        match self {
            S3Credentials::Static { .. } => "an access key",
            S3Credentials::ProviderChain => "the AWS provider chain",
        }
    }
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Where and how to reach a bucket.
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// Endpoint URL of an S3-compatible service; `None` for AWS.
    pub endpoint: Option<String>,
    /// Address the bucket as `ENDPOINT/BUCKET` instead of `BUCKET.ENDPOINT`.
    pub force_path_style: bool,
    pub credentials: S3Credentials,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for a whole request, upload included.
    pub operation_timeout: Duration,
}

impl S3Settings {
    /// Settings with the default timeouts: 5 s to connect, 30 s per request (a segment of
    /// a few megabytes uploads in well under that on any link that can carry the stream).
    pub fn new(bucket: impl Into<String>, region: impl Into<String>, credentials: S3Credentials) -> Self {
        Self {
            bucket: bucket.into(),
            region: region.into(),
            endpoint: None,
            force_path_style: false,
            credentials,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(30),
        }
    }

    /// Sets the endpoint of an S3-compatible service.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>, force_path_style: bool) -> Self {
        self.endpoint = Some(endpoint.into());
        self.force_path_style = force_path_style;
        self
    }

    /// Sets the connect and per-request timeouts.
    pub fn with_timeouts(mut self, connect: Duration, operation: Duration) -> Self {
        self.connect_timeout = connect;
        self.operation_timeout = operation;
        self
    }
}

/// The URL at which anyone reaches the objects of `bucket` over plain HTTP(S) (when the
/// bucket allows anonymous reads): `ENDPOINT/BUCKET` path-style, `BUCKET.ENDPOINT`
/// virtual-hosted, or AWS's regional endpoints when no endpoint is given.
pub fn bucket_url(bucket: &str, region: &str, endpoint: Option<&str>, force_path_style: bool) -> String {
    match (endpoint, force_path_style) {
        (Some(endpoint), true) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        (Some(endpoint), false) => match endpoint.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{bucket}.{}", rest.trim_end_matches('/')),
            None => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        },
        (None, true) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        (None, false) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
    }
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("force_path_style", &self.force_path_style)
            .field("credentials", &self.credentials)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

/// A bucket on S3 or an S3-compatible service.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: Arc<str>,
    region: Arc<str>,
    /// A static access key id, kept only to mask it in error messages (temporary ones of
    /// the provider chain are masked by their form).
    access_key_id: Arc<str>,
}

/// The provider chain, built at its first use (building the SDK's is async) on the
/// client's own HTTP client: a web identity of the environment by [`WebIdentity`], else
/// the SDK's default chain. The client's identity cache keeps what it provides until
/// shortly before it expires.
#[derive(Debug)]
struct ProviderChain {
    http_client: SharedHttpClient,
    region: Region,
    chain: tokio::sync::OnceCell<SharedCredentialsProvider>,
}

impl ProviderChain {
    fn new(http_client: SharedHttpClient, region: Region) -> Self {
        Self { http_client, region, chain: tokio::sync::OnceCell::new() }
    }

    async fn build(&self) -> SharedCredentialsProvider {
        if let Some(web_identity) = WebIdentity::from_env(self.http_client.clone(), self.region.clone()) {
            return SharedCredentialsProvider::new(web_identity);
        }
        let config =
            ProviderConfig::default().with_http_client(self.http_client.clone()).with_region(Some(self.region.clone()));
        SharedCredentialsProvider::new(
            DefaultCredentialsChain::builder().region(self.region.clone()).configure(config).build().await,
        )
    }
}

impl ProvideCredentials for ProviderChain {
    fn provide_credentials<'a>(&'a self) -> credentials_future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        credentials_future::ProvideCredentials::new(async move {
            self.chain.get_or_init(|| self.build()).await.provide_credentials().await
        })
    }
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store").field("bucket", &self.bucket).field("region", &self.region).finish_non_exhaustive()
    }
}

impl S3Store {
    /// Builds the client. Nothing is sent yet: [`S3Store::check`] verifies the settings.
    pub fn new(settings: S3Settings) -> Self {
        let http_client =
            aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(settings.connect_timeout)
            .operation_attempt_timeout(settings.operation_timeout)
            .operation_timeout(settings.operation_timeout)
            .build();
        let region = Region::new(settings.region.clone());
        let (credentials, access_key_id) = match settings.credentials {
            S3Credentials::Static { access_key_id, secret_access_key } => {
                let credentials = Credentials::new(&access_key_id, secret_access_key, None, None, "livestream-static");
                (SharedCredentialsProvider::new(credentials), access_key_id)
            }
            S3Credentials::ProviderChain => {
                let chain = ProviderChain::new(http_client.clone(), region.clone());
                (SharedCredentialsProvider::new(chain), String::new())
            }
        };
        let mut config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http_client)
            .region(region)
            .credentials_provider(credentials)
            .force_path_style(settings.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(config.build()),
            bucket: Arc::from(settings.bucket),
            region: Arc::from(settings.region),
            access_key_id: Arc::from(access_key_id),
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The underlying SDK client, for operations this module does not wrap (bucket
    /// administration in tests and tools).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Verifies that the bucket exists and that the credentials may use it (HeadBucket).
    /// The error tells apart a missing bucket, refused credentials, a wrong region and an
    /// unreachable endpoint.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&*self.bucket)
            .send()
            .await
            .map_err(|e| from_sdk_error(e, &self.context(None)))?;
        Ok(())
    }

    fn context<'a>(&'a self, key: Option<&'a str>) -> ErrorContext<'a> {
        ErrorContext { bucket: &self.bucket, region: &self.region, key, access_key_id: &self.access_key_id }
    }

    fn checked_key<'k>(&self, key: &'k str) -> Result<&'k str, StoreError> {
        validate_key(key).map_err(|reason| StoreError::invalid_key(key, reason))?;
        Ok(key)
    }

    /// Deletes one batch of at most [`DELETE_BATCH`] keys; returns how many were deleted.
    async fn delete_batch(&self, keys: Vec<String>) -> Result<u64, StoreError> {
        let count = keys.len() as u64;
        let objects = keys
            .into_iter()
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Other { detail: format!("cannot build a delete request: {e}") })?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| StoreError::Other { detail: format!("cannot build a delete request: {e}") })?;
        let output = self
            .client
            .delete_objects()
            .bucket(&*self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| from_sdk_error(e, &self.context(None)))?;
        let Some(first) = output.errors().first() else {
            return Ok(count);
        };
        let detail = redact(
            format!(
                "{} of {count} objects were not deleted, the first {}: {}",
                output.errors().len(),
                first.key().unwrap_or("(unnamed)"),
                describe_service_failure(200, first.code(), first.message())
            ),
            &self.access_key_id,
        );
        Err(match classify_service_failure(200, first.code()) {
            ServiceFailure::AccessDenied => StoreError::AccessDenied { detail },
            ServiceFailure::Unavailable => StoreError::Unavailable { detail },
            _ => StoreError::Other { detail },
        })
    }

    /// One page of keys under `prefix`, and the token of the next page if any.
    async fn list_page(
        &self,
        prefix: &str,
        max_keys: usize,
        token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&*self.bucket)
            .prefix(prefix)
            .max_keys(i32::try_from(max_keys.min(DELETE_BATCH)).unwrap_or(1000))
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| from_sdk_error(e, &self.context(None)))?;
        let keys = output.contents().iter().filter_map(|object| object.key().map(str::to_string)).collect();
        let next = match output.is_truncated() {
            Some(true) => output.next_continuation_token().map(str::to_string),
            _ => None,
        };
        Ok((keys, next))
    }
}

impl S3Store {
    /// PutObject, conditional when `expect` is given (`If-None-Match: *` for an absent
    /// object, `If-Match` with the ETag of the expected one; S3 and MinIO answer 412
    /// when the condition fails). Returns the ETag of the new object.
    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        kind: ObjectKind,
        expect: Option<&Expect>,
    ) -> Result<Version, StoreError> {
        let key = self.checked_key(key)?;
        let length = i64::try_from(body.len())
            .map_err(|_| StoreError::TooLarge { key: key.to_string(), limit: i64::MAX as u64 })?;
        let mut request = self
            .client
            .put_object()
            .bucket(&*self.bucket)
            .key(key)
            .content_type(kind.content_type())
            .cache_control(kind.cache_control())
            .content_length(length)
            .body(ByteStream::from(body));
        request = match expect {
            Some(Expect::Absent) => request.if_none_match("*"),
            Some(Expect::Version(Version(etag))) => request.if_match(etag),
            None => request,
        };
        let output = request.send().await.map_err(|e| from_sdk_error(e, &self.context(Some(key))))?;
        Ok(Version(output.e_tag().unwrap_or_default().to_string()))
    }

    /// GetObject, bounded by [`MAX_GET_BYTES`], with the object's ETag.
    async fn get_object(&self, key: &str) -> Result<Option<(Bytes, Version)>, StoreError> {
        let key = self.checked_key(key)?;
        let output = match self.client.get_object().bucket(&*self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(e) => {
                return match from_sdk_error(e, &self.context(Some(key))) {
                    StoreError::NotFound { .. } => Ok(None),
                    other => Err(other),
                };
            }
        };
        let too_large = || StoreError::TooLarge { key: key.to_string(), limit: MAX_GET_BYTES };
        let announced = output.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        if announced > MAX_GET_BYTES {
            return Err(too_large());
        }
        let version = Version(output.e_tag().unwrap_or_default().to_string());
        let mut body = output.body;
        let mut collected = BytesMut::with_capacity(usize::try_from(announced).unwrap_or(0));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StoreError::Unavailable {
                detail: redact(format!("reading {key}: {}", error_chain(&e)), &self.access_key_id),
            })?;
            if (collected.len() + chunk.len()) as u64 > MAX_GET_BYTES {
                return Err(too_large());
            }
            collected.extend_from_slice(&chunk);
        }
        Ok(Some((collected.freeze(), version)))
    }
}

impl Store for S3Store {
    async fn put(&self, key: &str, body: Bytes, kind: ObjectKind) -> Result<(), StoreError> {
        self.put_object(key, body, kind, None).await.map(|_| ())
    }

    async fn put_if(&self, key: &str, body: Bytes, kind: ObjectKind, expect: &Expect) -> Result<Version, StoreError> {
        self.put_object(key, body, kind, Some(expect)).await
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, StoreError> {
        self.get_object(key).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.get_object(key).await?.map(|(body, _)| body))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = self.checked_key(key)?;
        match self.client.delete_object().bucket(&*self.bucket).key(key).send().await {
            Ok(_) => Ok(()),
            Err(e) => match from_sdk_error(e, &self.context(Some(key))) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let prefix = directory_prefix(prefix).map_err(|reason| StoreError::invalid_key(prefix, reason))?;
        let mut deleted = 0;
        let mut token = None;
        loop {
            let (keys, next) = self.list_page(&prefix, DELETE_BATCH, token).await?;
            if !keys.is_empty() {
                deleted += self.delete_batch(keys).await?;
            }
            match next {
                Some(next) => token = Some(next),
                None => return Ok(deleted),
            }
        }
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let prefix = directory_prefix(prefix).map_err(|reason| StoreError::invalid_key(prefix, reason))?;
        let limit = limit.min(MAX_LIST_KEYS);
        let mut keys = Vec::new();
        let mut token = None;
        while keys.len() < limit {
            let (page, next) = self.list_page(&prefix, limit - keys.len(), token).await?;
            keys.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        keys.truncate(limit);
        Ok(keys)
    }
}
