//! Credentials for a role, in exchange for a web identity token (STS
//! AssumeRoleWithWebIdentity): what EKS's IRSA and a LiveStream's `storage.webIdentity`
//! give a worker, read from the same environment variables (`AWS_ROLE_ARN`,
//! `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_SESSION_NAME`, and `AWS_ENDPOINT_URL_STS` for
//! an STS other than AWS's).
//!
//! The SDK's own web identity provider also reads an account id from the assumed role's
//! ARN, and refuses an answer whose ARN is empty, as MinIO's STS gives it; this one takes
//! only the credentials and their expiry. The token file is read for every exchange: the
//! kubelet renews it in place.

use std::path::PathBuf;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_s3::config::{BehaviorVersion, Region, SharedHttpClient};

use super::s3_error::error_chain;

/// Exchanges a web identity token for a role's credentials.
#[derive(Debug)]
pub(super) struct WebIdentity {
    role_arn: String,
    token_file: PathBuf,
    session_name: String,
    sts: aws_sdk_sts::Client,
}

impl WebIdentity {
    /// The exchange the environment asks for, if it names a role and a token file.
    pub(super) fn from_env(http_client: SharedHttpClient, region: Region) -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
        let role_arn = var("AWS_ROLE_ARN")?;
        let token_file = PathBuf::from(var("AWS_WEB_IDENTITY_TOKEN_FILE")?);
        let session_name = var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "livestream".into());
        let mut config = aws_sdk_sts::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http_client)
            .region(region);
        if let Some(endpoint) = var("AWS_ENDPOINT_URL_STS").or_else(|| var("AWS_ENDPOINT_URL")) {
            config = config.endpoint_url(endpoint);
        }
        Some(Self { role_arn, token_file, session_name, sts: aws_sdk_sts::Client::from_conf(config.build()) })
    }

    async fn exchange(&self) -> Result<Credentials, CredentialsError> {
        let token = tokio::fs::read_to_string(&self.token_file).await.map_err(|error| {
            CredentialsError::provider_error(format!(
                "cannot read the web identity token {}: {error}",
                self.token_file.display()
            ))
        })?;
        let answer = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .web_identity_token(token.trim())
            .send()
            .await
            .map_err(|error| {
                CredentialsError::provider_error(format!(
                    "AssumeRoleWithWebIdentity for {}: {}",
                    self.role_arn,
                    error_chain(&error)
                ))
            })?;
        let credentials = answer.credentials().ok_or_else(|| {
            CredentialsError::provider_error("AssumeRoleWithWebIdentity answered without credentials")
        })?;
        let expiry = SystemTime::try_from(*credentials.expiration()).ok();
        Ok(Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_string()),
            expiry,
            "livestream-web-identity",
        ))
    }
}

impl ProvideCredentials for WebIdentity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.exchange())
    }
}
