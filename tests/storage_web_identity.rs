//! Web identity against real components: MinIO's STS trusts the service account token
//! issuer of the test's own kube-apiserver (OIDC discovery served by the API server to
//! anyone, over HTTPS signed by the test CA that MinIO trusts), and exchanges a token from
//! the TokenRequest API for temporary credentials (AssumeRoleWithWebIdentity), as a worker
//! pod would exchange its projected token on EKS with IRSA, or on any cluster whose issuer
//! the STS trusts. The credentials write and read the bucket that the role's policy names,
//! and nothing else.
//!
//! The AWS SDK's own web identity provider (which the SDK's default chain runs when
//! `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE` are set), configured with the role, a
//! token file and `AWS_ENDPOINT_URL_STS`, reaches MinIO's STS but refuses its answer (see
//! [`the_sdks_web_identity_provider_refuses_minios_answer`]), so the exchange that succeeds
//! here is sent by the SDK's STS client, the same request the provider sends. The tokens a
//! user may meet instead of a valid one are refused through the provider, each with the
//! STS's reason: one for another audience (IRSA's `sts.amazonaws.com`), an expired one
//! signed by the issuer's own key, one signed by another key, and a file that holds no
//! token.
//!
//! The product's own provider (`storage::web_identity`) makes the exchange that works:
//! `livestream serve`, given only the variables IRSA and `storage.webIdentity` set (no
//! key), writes a whole stream into the role's bucket, keeps the token and the temporary
//! key out of its log, and with a token for another audience stays unready and logs the
//! STS's reason. `cluster_operator` takes the same path through the operator and a worker
//! pod's projected token.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::{StaticConfiguration, WebIdentityTokenCredentialsProvider};
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::config::SharedHttpClient;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role_with_web_identity::{
    AssumeRoleWithWebIdentityError, AssumeRoleWithWebIdentityOutput,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::kube::{KubeEnv, KubeEnvOptions, SERVICE_ACCOUNT_ISSUER, service_account_token};
use support::minio::{MinioServer, OpenIdProvider};

/// The audience MinIO expects: its OpenID client ID.
const AUDIENCE: &str = "minio.livestream.test";
/// The policy of the role that every valid token assumes.
const ROLE_POLICY: &str = "livestream-worker";
/// The one bucket the role's policy allows, and one it does not.
const BUCKET: &str = "live";
const OTHER_BUCKET: &str = "archive";
const NAMESPACE: &str = "streams";
const SERVICE_ACCOUNT: &str = "livestream-worker";
/// The shortest lifetime the TokenRequest API grants.
const TOKEN_LIFETIME: Duration = Duration::from_secs(600);
const REGION: &str = "us-east-1";

#[tokio::test]
async fn minio_sts_exchanges_service_account_tokens_for_credentials_within_the_role() {
    let world = World::start().await;
    the_issuer_is_discoverable_without_credentials(&world);
    credentials_from_a_token_reach_the_roles_bucket_only(&world).await;
    the_sdks_web_identity_provider_refuses_minios_answer(&world).await;
    serve_writes_with_a_web_identity_and_names_a_refused_token(&world).await;
    a_token_for_another_audience_is_refused(&world).await;
    an_expired_token_is_refused(&world).await;
    a_token_signed_by_another_key_is_refused(&world).await;
    a_file_without_a_token_is_refused(&world).await;
}

/// Anyone reads the discovery document and the keys, and nothing more: the document names
/// the tokens' issuer and a key set at the API server's own address.
fn the_issuer_is_discoverable_without_credentials(world: &World) {
    let issuer = world.kube.token_issuer().expect("the environment publishes its token issuer");
    let document: Value =
        serde_json::from_str(&world.anonymous_get(&issuer.discovery_url)).expect("the discovery document is JSON");
    assert_eq!(document["issuer"], SERVICE_ACCOUNT_ISSUER, "{document}");
    let jwks_uri = document["jwks_uri"].as_str().expect("the discovery document names its jwks_uri");
    assert_eq!(jwks_uri, format!("{}/openid/v1/jwks", world.kube.server()));
    let keys: Value = serde_json::from_str(&world.anonymous_get(jwks_uri)).expect("the key set is JSON");
    assert!(keys["keys"].as_array().is_some_and(|keys| !keys.is_empty()), "no keys in {keys}");

    let refused = world.anonymous_status(&format!("{}/api/v1/namespaces", world.kube.server()));
    assert_eq!(refused, "403", "an anonymous request may list namespaces");
}

/// The credentials are temporary, and the role's policy bounds them: its bucket is
/// writable and readable, another bucket is not.
async fn credentials_from_a_token_reach_the_roles_bucket_only(world: &World) {
    let token = world.token(AUDIENCE).await;
    let answer = world.assume_role_with_web_identity(&token).await;
    assert_eq!(
        answer.subject_from_web_identity_token.as_deref(),
        Some(format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}").as_str())
    );
    let granted = answer.credentials.expect("the STS's answer holds credentials");
    assert_ne!(granted.access_key_id, world.minio.access_key());
    // Without a requested duration, MinIO lets the credentials live as long as the token.
    let expiry = SystemTime::try_from(granted.expiration).expect("an expiry after 1970");
    let token_expiry = UNIX_EPOCH + Duration::from_secs(claims(&token)["exp"].as_u64().expect("exp"));
    assert!(expiry > SystemTime::now() && expiry <= token_expiry, "the credentials expire at {expiry:?}");
    let credentials = Credentials::new(
        granted.access_key_id,
        granted.secret_access_key,
        Some(granted.session_token),
        Some(expiry),
        "MinIO STS",
    );

    let s3 = world.s3(credentials);
    let body = b"#EXTM3U\n#EXT-X-VERSION:7\n";
    s3.put_object()
        .bucket(BUCKET)
        .key("streams/demo/master.m3u8")
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put into {BUCKET} with the role's credentials: {}", DisplayErrorContext(&e)));
    let read = s3
        .get_object()
        .bucket(BUCKET)
        .key("streams/demo/master.m3u8")
        .send()
        .await
        .unwrap_or_else(|e| panic!("get from {BUCKET} with the role's credentials: {}", DisplayErrorContext(&e)));
    let read = read.body.collect().await.expect("read the object").into_bytes();
    assert_eq!(&read[..], body);

    let error = s3
        .put_object()
        .bucket(OTHER_BUCKET)
        .key("streams/demo/master.m3u8")
        .body(ByteStream::from_static(body))
        .send()
        .await
        .expect_err("the role's credentials wrote outside its bucket");
    assert_eq!(error.as_service_error().and_then(|e| e.meta().code()), Some("AccessDenied"), "{error:?}");
    let error = s3
        .get_object()
        .bucket(OTHER_BUCKET)
        .key("root-only.txt")
        .send()
        .await
        .expect_err("the role's credentials read outside its bucket");
    assert_eq!(error.as_service_error().and_then(|e| e.meta().code()), Some("AccessDenied"), "{error:?}");
}

/// The SDK's web identity provider sends the request above, MinIO grants the credentials,
/// and the provider refuses the answer: MinIO's answer holds an empty `AssumedRoleUser`
/// (`<Arn></Arn>`), from which aws-config reads an account ID, and an empty ARN has none.
/// AWS's STS always names the assumed role. When this fails, the SDK takes MinIO's answer:
/// the test above can then use the provider itself.
async fn the_sdks_web_identity_provider_refuses_minios_answer(world: &World) {
    let token = world.token(AUDIENCE).await;
    let answer = world.assume_role_with_web_identity(&token).await;
    let assumed = answer.assumed_role_user.expect("MinIO names an assumed role user");
    assert_eq!((assumed.arn.as_str(), assumed.assumed_role_id.as_str()), ("", ""));

    let token_file = world.write_token("token", &token);
    let refusal = match world.web_identity(&token_file).provide_credentials().await {
        Ok(_) => panic!("the SDK's web identity provider now takes MinIO's answer: use it in the test"),
        Err(error) => DisplayErrorContext(&error).to_string(),
    };
    assert!(refusal.contains("ARN must have 6 components"), "{refusal}");
}

/// The product's own path: `livestream serve` with the variables that IRSA (or a
/// LiveStream's `storage.webIdentity`) sets, and no key, exchanges the token itself and
/// writes a stream into the role's bucket; a token for another audience leaves it not
/// ready, with the STS's reason in its log.
async fn serve_writes_with_a_web_identity_and_names_a_refused_token(world: &World) {
    use support::media::{Push, Serve, push, wait_exit};
    let token_file = world.write_token("serve-token", &world.token(AUDIENCE).await);
    let (role, sts, endpoint) = (world.minio.role_arn(), world.minio.sts_endpoint(), world.minio.endpoint());
    let args: Vec<String> = ["--s3-bucket", BUCKET, "--s3-endpoint", &endpoint, "--s3-path-style", "--s3-prefix", "wi"]
        .into_iter()
        .chain(["--rendition", "90p:160x90:100", "--reconnect-grace", "1"])
        .map(String::from)
        .collect();
    let env = vec![
        ("AWS_ROLE_ARN".to_string(), role.clone()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE".to_string(), token_file.display().to_string()),
        ("AWS_ENDPOINT_URL_STS".to_string(), sts.clone()),
    ];
    // The server stays up until its ended playlist is read: it ends the stream after the
    // encoder has gone.
    let serve = tokio::task::spawn_blocking({
        let (args, env, logs) = (args.clone(), env.clone(), world.dir.path().to_path_buf());
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let serve = Serve::start(&args, &env);
            let mut pusher = push(
                &serve.rtmp_url("live", "demo"),
                &Push { seconds: 3.0, ..Push::default() },
                &logs.join("push.log"),
            );
            assert!(wait_exit(&mut pusher, Duration::from_secs(40)), "{}", pusher.log_tail(2000));
            serve
        }
    })
    .await
    .expect("serve ran");
    let root = Credentials::new(world.minio.access_key(), world.minio.secret_key(), None, None, "minio-root");
    let s3 = world.s3(root);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = s3.get_object().bucket(BUCKET).key("wi/live/demo/90p/index.m3u8").send().await;
        let text = match answer {
            Ok(object) => String::from_utf8(object.body.collect().await.unwrap().to_vec()).unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains("#EXT-X-ENDLIST") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ended playlist in {BUCKET} within 30 s: {text}\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = serve.log();
    drop(serve);
    let token = std::fs::read_to_string(&token_file).expect("the token file");
    let signature = token.rsplit('.').next().expect("a signed token");
    assert!(!log.contains(signature) && !log.contains("ASIA"), "no token or key in the log:\n{log}");

    let wrong = world.write_token("wrong-audience", &world.token("sts.amazonaws.com").await);
    let env: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| if k == "AWS_WEB_IDENTITY_TOKEN_FILE" { (k, wrong.display().to_string()) } else { (k, v) })
        .collect();
    let dir = world.dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(support::media::livestream_bin());
        let (rtmp, http) = (support::process::free_port(), support::process::free_port());
        command
            .arg("serve")
            .arg(format!("--rtmp-addr=127.0.0.1:{rtmp}"))
            .arg(format!("--http-addr=127.0.0.1:{http}"))
            .args(&args)
            .envs(env);
        let mut serve = support::process::ManagedProcess::spawn("refused serve", command, &dir.join("refused.log"));
        let reason = support::process::wait_for("the STS's refusal in the log", Duration::from_secs(20), || {
            serve.assert_running();
            let log = serve.log_tail(20_000);
            log.lines()
                .find(|line| line.contains("storage check failed") && line.contains("AssumeRoleWithWebIdentity"))
                .map(str::to_string)
        });
        assert!(reason.contains("must match configured OpenID Client ID"), "{reason}");
        let ready = support::media::http_get(&format!("http://127.0.0.1:{http}/readyz")).0;
        assert_ne!(ready, 200, "not ready without credentials");
    })
    .await
    .expect("the refused serve ran");
}

/// A token for IRSA's audience, as a pod spec copied from EKS would project it.
async fn a_token_for_another_audience_is_refused(world: &World) {
    let token = world.token("sts.amazonaws.com").await;
    let (code, message) = world.refusal("another audience", &token).await;
    assert_eq!(code, "InvalidParameterValue", "{message}");
    // MinIO looks for its client ID in `aud`, then in `azp`, and its message names `azp`.
    assert!(message.contains("must match configured OpenID Client ID"), "{message}");
}

/// A token that the issuer signed, as it was twenty minutes ago, now expired: what a pod
/// meets when its token stops being refreshed.
async fn an_expired_token_is_refused(world: &World) {
    let real = world.token(AUDIENCE).await;
    let now = unix_now();
    let mut expired = claims(&real);
    expired["iat"] = json!(now - 1200);
    expired["nbf"] = json!(now - 1200);
    expired["exp"] = json!(now - 600);
    let key = std::fs::read_to_string(world.kube.service_account_signing_key()).expect("read the signing key");
    let token = sign_es256(&header(&real), &expired, &key);
    // Not STS's ExpiredToken code: MinIO reports the JWT library's refusal.
    assert_eq!(
        world.refusal("an expired token", &token).await,
        ("InvalidParameterValue".into(), "Token is expired".into())
    );
}

/// A token in every claim like a valid one, signed by a key the issuer never published.
async fn a_token_signed_by_another_key_is_refused(world: &World) {
    let real = world.token(AUDIENCE).await;
    let other_key = rcgen::KeyPair::generate().expect("generate a key").serialize_pem();
    let token = sign_es256(&header(&real), &claims(&real), &other_key);
    let (code, message) = world.refusal("a token signed by another key", &token).await;
    assert_eq!(code, "InvalidParameterValue", "{message}");
    assert!(message.contains("verification error"), "{message}");
}

/// A token file that holds something else (an empty projection, a mounted Secret).
async fn a_file_without_a_token_is_refused(world: &World) {
    let (code, message) = world.refusal("no token", "not-a-token").await;
    assert_eq!(code, "InvalidParameterValue", "{message}");
    assert!(message.contains("invalid number of segments"), "{message}");
}

/// The API server with a public token issuer, a MinIO whose STS trusts it, and a
/// ServiceAccount to issue tokens for.
struct World {
    kube: KubeEnv,
    minio: MinioServer,
    client: kube::Client,
    http: SharedHttpClient,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> Self {
        let kube = tokio::task::spawn_blocking(|| {
            KubeEnv::start(KubeEnvOptions { issuer_discovery: true, ..KubeEnvOptions::default() })
        })
        .await
        .expect("start the control plane");
        let issuer = kube.token_issuer().expect("the environment publishes its token issuer");
        let provider = OpenIdProvider {
            discovery_url: issuer.discovery_url.clone(),
            ca_cert: Some(issuer.ca_cert.clone()),
            audience: AUDIENCE.to_string(),
            role_policy: ROLE_POLICY.to_string(),
        };
        let minio = MinioServer::start_with_openid(std::net::Ipv4Addr::LOCALHOST, provider).await;
        minio.create_bucket(BUCKET, false).await;
        minio.create_bucket(OTHER_BUCKET, false).await;
        minio.create_policy(ROLE_POLICY, &bucket_policy(BUCKET)).await;
        let root = Credentials::new(minio.access_key(), minio.secret_key(), None, None, "minio-root");
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
        let client = kube.client().await;
        let dir = tempfile::Builder::new().prefix("web-identity-").tempdir().expect("a directory for token files");
        let world = Self { kube, minio, client, http, dir };
        world
            .s3(root)
            .put_object()
            .bucket(OTHER_BUCKET)
            .key("root-only.txt")
            .body(ByteStream::from_static(b"written by root"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put into {OTHER_BUCKET} as root: {}", DisplayErrorContext(&e)));

        // The STS endpoint reaches the SDK as it reaches a worker pod: through the
        // environment, the only way the web identity provider takes one.
        // SAFETY: this binary's only test sets it before it builds any provider, and no other
        // thread of the process reads the environment meanwhile: the runtime is current-thread
        // and every child process has been started.
        unsafe { std::env::set_var("AWS_ENDPOINT_URL_STS", world.minio.sts_endpoint()) };

        let namespaces: Api<Namespace> = Api::all(world.client.clone());
        let namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("a namespace");
        namespaces.create(&PostParams::default(), &namespace).await.expect("create the namespace");
        let accounts: Api<ServiceAccount> = Api::namespaced(world.client.clone(), NAMESPACE);
        let account = serde_json::from_value(json!({"metadata": {"name": SERVICE_ACCOUNT}})).expect("an account");
        accounts.create(&PostParams::default(), &account).await.expect("create the service account");
        world
    }

    async fn token(&self, audience: &str) -> String {
        service_account_token(&self.client, NAMESPACE, SERVICE_ACCOUNT, audience, TOKEN_LIFETIME).await
    }

    /// AssumeRoleWithWebIdentity with the SDK's STS client, as the SDK's web identity
    /// provider sends it.
    async fn assume_role_with_web_identity(&self, token: &str) -> AssumeRoleWithWebIdentityOutput {
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(self.http.clone())
            .region(Region::new(REGION))
            .endpoint_url(self.minio.sts_endpoint())
            .build();
        aws_sdk_sts::Client::from_conf(config)
            .assume_role_with_web_identity()
            .role_arn(self.minio.role_arn())
            .role_session_name("storage-web-identity")
            .web_identity_token(token)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the STS refused a valid token: {}\nMinIO's log ends with:\n{}",
                    DisplayErrorContext(&e),
                    self.minio.log_tail()
                )
            })
    }

    fn write_token(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, token).expect("write the token file");
        path
    }

    /// The SDK's web identity provider for MinIO's role and `token_file`, on the project's
    /// one HTTPS client (rustls with ring).
    fn web_identity(&self, token_file: &Path) -> WebIdentityTokenCredentialsProvider {
        let config =
            ProviderConfig::default().with_http_client(self.http.clone()).with_region(Some(Region::new(REGION)));
        WebIdentityTokenCredentialsProvider::builder()
            .configure(&config)
            .static_configuration(StaticConfiguration {
                web_identity_token_file: token_file.to_path_buf(),
                role_arn: self.minio.role_arn(),
                session_name: "storage-web-identity".to_string(),
            })
            .build()
    }

    /// The code and message of the STS's refusal of `token`, as the SDK's web identity
    /// provider reports them.
    async fn refusal(&self, what: &str, token: &str) -> (String, String) {
        let token_file = self.write_token("refused-token", token);
        let Err(error) = self.web_identity(&token_file).provide_credentials().await else {
            panic!("the STS gave credentials for {what}");
        };
        let refused = std::error::Error::source(&error)
            .and_then(|source| source.downcast_ref::<SdkError<AssumeRoleWithWebIdentityError, HttpResponse>>())
            .and_then(SdkError::as_service_error)
            .unwrap_or_else(|| panic!("no answer of the STS for {what}: {}", DisplayErrorContext(&error)));
        (refused.code().unwrap_or_default().to_string(), refused.message().unwrap_or_default().to_string())
    }

    fn s3(&self, credentials: impl ProvideCredentials + 'static) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .http_client(self.http.clone())
            .region(Region::new(REGION))
            .endpoint_url(self.minio.endpoint())
            .force_path_style(true)
            .credentials_provider(credentials)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The body of a GET without credentials, trusting the test CA.
    fn anonymous_get(&self, url: &str) -> String {
        let out = self.curl().args(["--fail", url]).output().expect("run curl");
        assert!(
            out.status.success(),
            "an anonymous GET of {url} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// The status code of a GET without credentials.
    fn anonymous_status(&self, url: &str) -> String {
        let out = self.curl().args(["-o", "/dev/null", "-w", "%{http_code}", url]).output().expect("run curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn curl(&self) -> std::process::Command {
        let mut curl = std::process::Command::new("curl");
        curl.args(["-sS", "--max-time", "10", "--cacert"]).arg(self.kube.ca_cert());
        curl
    }
}

/// Objects of `bucket`: what a worker needs of its bucket, and nothing else.
fn bucket_policy(bucket: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [format!("arn:aws:s3:::{bucket}/*")],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [format!("arn:aws:s3:::{bucket}")],
            },
        ],
    })
}

/// The decoded JSON of a JWT's part `index` (0: header, 1: claims).
fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn header(token: &str) -> Value {
    jwt_part(token, 0)
}

fn claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// A JWT with `header` and `claims`, signed ES256 with the PEM `key` (ECDSA P-256), as the
/// API server signs its tokens.
fn sign_es256(header: &Value, claims: &Value, key: &str) -> String {
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON"));
    let signing_input = format!("{}.{}", encode(header), encode(claims));
    let pkcs8 = rcgen::KeyPair::from_pem(key).expect("a PEM key").serialize_der();
    let rng = ring::rand::SystemRandom::new();
    let key =
        ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .expect("an ECDSA P-256 key");
    let signature = key.sign(&rng, signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}
