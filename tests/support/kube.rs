//! A real Kubernetes control plane for tests: etcd and kube-apiserver (and, on request,
//! kube-controller-manager) on free loopback ports, with generated certificates and an
//! admin kubeconfig, as controller-runtime's envtest provides. For a cluster with a node
//! (`support::cluster`), the API server also serves the node's address, so that pods reach
//! it through the `kubernetes` Service, and authorizes the kubelet as a node. On request, the
//! issuer of its service account tokens is discoverable by anyone (OIDC discovery, as on
//! EKS and GKE), so that a relying party outside the cluster, such as an STS, trusts them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

use super::process::{ManagedProcess, free_port, testenv_bin, wait_for};

/// The control plane. Dropping it stops every process and removes its files.
pub struct KubeEnv {
    // Field order is drop order: the controller manager and API server stop before etcd.
    controller_manager: Option<ManagedProcess>,
    apiserver: ManagedProcess,
    apiserver_cmd: Vec<String>,
    _etcd: ManagedProcess,
    kubeconfig: PathBuf,
    server: String,
    token_issuer: Option<TokenIssuer>,
    pki: Pki,
    dir: tempfile::TempDir,
}

/// What to start beside etcd and the API server.
#[derive(Clone, Copy, Debug, Default)]
pub struct KubeEnvOptions {
    /// Also run kube-controller-manager (Deployments, ReplicaSets, garbage collection,
    /// service account tokens).
    pub controller_manager: bool,
    /// Serve a node: listen on its address too, and issue its credentials.
    pub node: Option<NodeAccess>,
    /// Let anyone read the service account issuer's discovery document and signing keys,
    /// as a relying party outside the cluster does to verify the tokens (see
    /// [`KubeHandle::token_issuer`]).
    pub issuer_discovery: bool,
}

/// The `iss` of the service account tokens: the in-cluster name of the API server.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Where a relying party outside the cluster finds the service account token issuer.
#[derive(Clone, Debug)]
pub struct TokenIssuer {
    /// The tokens' `iss` claim, [`SERVICE_ACCOUNT_ISSUER`]. It is not where the discovery
    /// document is served: relying parties that insist on OIDC's rule that the issuer
    /// URL serves it (AWS IAM does) would not trust these tokens, MinIO does.
    pub issuer: String,
    /// The OIDC discovery document, `https://127.0.0.1:PORT/.well-known/openid-configuration`,
    /// readable without credentials; its `jwks_uri` names the API server's own address.
    pub discovery_url: String,
    /// The CA that signed the API server's serving certificate (PEM): the relying party
    /// must trust it to read the document and the keys.
    pub ca_cert: PathBuf,
}

/// The node that a cluster's API server serves.
#[derive(Clone, Copy, Debug)]
pub struct NodeAccess {
    /// The node's name (the kubelet's client certificate is `system:node:NAME`).
    pub name: &'static str,
    /// The node's address: pods reach the API server there, behind the `kubernetes`
    /// Service's ClusterIP.
    pub ip: Ipv4Addr,
}

/// The ClusterIP range of Services, and the `kubernetes` Service's address in it.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

impl KubeEnv {
    /// Starts a fresh control plane and waits until the API server is ready.
    pub fn start(options: KubeEnvOptions) -> Self {
        let dir = tempfile::Builder::new().prefix("livestream-kube-").tempdir().expect("temp dir");
        Self::start_in(dir, options)
    }

    /// Starts a fresh control plane with its files in `dir`, which it removes when dropped.
    pub fn start_in(dir: tempfile::TempDir, options: KubeEnvOptions) -> Self {
        let root = dir.path();
        let pki = Pki::write(root, options.node);

        let etcd_port = free_port();
        let etcd_peer_port = free_port();
        let mut etcd_cmd = Command::new(testenv_bin("etcd"));
        etcd_cmd.args([
            "--name=default",
            &format!("--data-dir={}", root.join("etcd").display()),
            &format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}"),
            &format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer_port}"),
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]);
        let mut etcd = ManagedProcess::spawn("etcd", etcd_cmd, &root.join("etcd.log"));
        wait_for("etcd to listen", Duration::from_secs(30), || {
            etcd.assert_running();
            std::net::TcpStream::connect(("127.0.0.1", etcd_port)).ok()
        });

        let port = free_port();
        let server = format!("https://127.0.0.1:{port}");
        let mut apiserver_cmd =
            vec![format!("--etcd-servers=http://127.0.0.1:{etcd_port}"), format!("--secure-port={port}")];
        match options.node {
            // The `kubernetes` Service's endpoint is the node's address, where pods reach it.
            Some(node) => apiserver_cmd.extend([
                "--bind-address=0.0.0.0".to_string(),
                format!("--advertise-address={}", node.ip),
                "--endpoint-reconciler-type=lease".into(),
                "--authorization-mode=Node,RBAC".into(),
                "--enable-admission-plugins=NodeRestriction".into(),
                format!("--kubelet-client-certificate={}", pki.admin_cert.display()),
                format!("--kubelet-client-key={}", pki.admin_key.display()),
                "--kubelet-preferred-address-types=InternalIP".into(),
            ]),
            None => apiserver_cmd.extend([
                "--bind-address=127.0.0.1".to_string(),
                "--advertise-address=127.0.0.1".into(),
                "--endpoint-reconciler-type=none".into(),
                "--authorization-mode=RBAC".into(),
            ]),
        }
        apiserver_cmd.extend([
            format!("--cert-dir={}", root.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pki.server_cert.display()),
            format!("--tls-private-key-file={}", pki.server_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            format!("--service-account-key-file={}", pki.sa_pub.display()),
            format!("--service-account-signing-key-file={}", pki.sa_key.display()),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--allow-privileged=true".into(),
            "--enable-priority-and-fairness=false".into(),
            "--profiling=false".into(),
            "--v=0".into(),
        ]);
        // The discovery document names the key set at the issuer's address unless told
        // otherwise, and the issuer's name resolves only inside the cluster.
        if options.issuer_discovery {
            apiserver_cmd.push(format!("--service-account-jwks-uri={server}/openid/v1/jwks"));
        }
        let apiserver = spawn_apiserver(&apiserver_cmd, root);

        let kubeconfig = root.join("admin.kubeconfig");
        std::fs::write(&kubeconfig, pki.kubeconfig(&server)).expect("write kubeconfig");

        let token_issuer = options.issuer_discovery.then(|| TokenIssuer {
            issuer: SERVICE_ACCOUNT_ISSUER.to_string(),
            discovery_url: format!("{server}/.well-known/openid-configuration"),
            ca_cert: pki.ca_cert.clone(),
        });
        let mut env = Self {
            controller_manager: None,
            apiserver,
            apiserver_cmd,
            _etcd: etcd,
            kubeconfig,
            server,
            token_issuer,
            pki,
            dir,
        };
        env.wait_ready();
        if options.issuer_discovery {
            env.publish_issuer_discovery();
        }
        if options.controller_manager {
            env.start_controller_manager(options.node.is_some());
        }
        env
    }

    /// Stops the API server (SIGTERM, as a rolling restart does) and starts it again on the
    /// same port and data; returns once it is ready.
    pub fn restart_apiserver(&mut self) {
        self.apiserver.terminate(Duration::from_secs(20));
        self.apiserver = spawn_apiserver(&self.apiserver_cmd, self.dir.path());
        self.wait_ready();
    }

    /// The cluster CA's certificate, which signed every server and client certificate.
    pub fn ca_cert(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// A kubeconfig for this API server with the node's client certificate (for the
    /// kubelet), when the environment serves a node.
    pub fn node_kubeconfig(&self) -> Option<PathBuf> {
        let node = self.pki.node.as_ref()?;
        let path = self.dir().join("node.kubeconfig");
        std::fs::write(&path, kubeconfig_text(&self.server, &self.pki.ca_cert, &node.client_cert, &node.client_key))
            .expect("write the node's kubeconfig");
        Some(path)
    }

    /// The private key that signs the service account tokens (PEM, ECDSA P-256, so ES256
    /// tokens), for tests that need a token the API server would not issue (an expired one).
    pub fn service_account_signing_key(&self) -> &Path {
        &self.pki.sa_key
    }

    /// Where a relying party finds the service account token issuer, when the environment
    /// was started with [`KubeEnvOptions::issuer_discovery`].
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.token_issuer.as_ref()
    }

    /// The kubelet's serving certificate and key, when the environment serves a node.
    pub fn node_serving_cert(&self) -> Option<(&Path, &Path)> {
        self.pki.node.as_ref().map(|n| (n.serving_cert.as_path(), n.serving_key.as_path()))
    }

    /// One control plane shared by every test of a test binary, stopped and removed when
    /// the binary exits. Tests that share it work in namespaces of their own.
    pub fn shared() -> &'static KubeHandle {
        static HANDLE: OnceLock<KubeHandle> = OnceLock::new();
        static ENV: Mutex<Option<KubeEnv>> = Mutex::new(None);
        HANDLE.get_or_init(|| {
            let env = Self::start(KubeEnvOptions::default());
            let handle = env.handle();
            *ENV.lock().expect("shared environment lock") = Some(env);
            // Statics are never dropped: stop the processes and remove the files at exit.
            extern "C" fn stop_shared() {
                if let Ok(mut env) = ENV.lock() {
                    env.take();
                }
            }
            // SAFETY: registers a plain function without arguments.
            unsafe {
                libc::atexit(stop_shared);
            }
            handle
        })
    }

    /// What a test needs to talk to this environment.
    pub fn handle(&self) -> KubeHandle {
        KubeHandle {
            kubeconfig: self.kubeconfig.clone(),
            server: self.server.clone(),
            token_issuer: self.token_issuer.clone(),
        }
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The directory holding this environment's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client with cluster-admin rights.
    pub async fn client(&self) -> Client {
        self.handle().client().await
    }

    /// `kubectl` against this API server.
    pub fn kubectl(&self) -> Command {
        self.handle().kubectl()
    }

    fn wait_ready(&mut self) {
        let handle = self.handle();
        let apiserver = &mut self.apiserver;
        wait_for("kube-apiserver to report /readyz ok", Duration::from_secs(90), || {
            apiserver.assert_running();
            let out = handle.kubectl().args(["get", "--raw", "/readyz"]).output().ok()?;
            out.status.success().then_some(())
        });
    }

    /// Binds the built-in `system:service-account-issuer-discovery` role (GET on the two
    /// discovery paths, nothing else) to unauthenticated users, whom the API server admits
    /// as `system:anonymous` by default; the Kubernetes documentation's recipe for a public
    /// issuer. Everything else stays closed to them.
    fn publish_issuer_discovery(&self) {
        let out = self
            .kubectl()
            .args([
                "create",
                "clusterrolebinding",
                "service-account-issuer-discovery-public",
                "--clusterrole=system:service-account-issuer-discovery",
                "--group=system:unauthenticated",
            ])
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "bind the issuer discovery role to unauthenticated users: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_controller_manager(&mut self, with_node: bool) {
        // With a node, its lifecycle (taints from conditions, eviction) is the real one.
        let controllers = if with_node {
            "--controllers=*,-nodeipam,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl,-bootstrapsigner,-tokencleaner"
        } else {
            "--controllers=*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl,-bootstrapsigner,-tokencleaner"
        };
        let mut cmd = Command::new(testenv_bin("kube-controller-manager"));
        cmd.args([
            &format!("--kubeconfig={}", self.kubeconfig.display()),
            &format!("--authentication-kubeconfig={}", self.kubeconfig.display()),
            &format!("--authorization-kubeconfig={}", self.kubeconfig.display()),
            &format!("--service-account-private-key-file={}", self.pki.sa_key.display()),
            &format!("--root-ca-file={}", self.pki.ca_cert.display()),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={}", free_port()),
            &format!("--cert-dir={}", self.dir().join("kcm-certs").display()),
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            controllers,
            "--concurrent-deployment-syncs=5",
            "--concurrent-gc-syncs=5",
            "--v=0",
        ]);
        let mut kcm = ManagedProcess::spawn("kube-controller-manager", cmd, &self.dir().join("kcm.log"));
        // Ready when the service account controller has created the default account.
        wait_for("kube-controller-manager to create the default service account", Duration::from_secs(60), || {
            kcm.assert_running();
            let out = self
                .kubectl()
                .args(["get", "serviceaccount", "default", "-n", "default", "-o", "name"])
                .output()
                .ok()?;
            out.status.success().then_some(())
        });
        self.controller_manager = Some(kcm);
    }
}

/// The address and credentials of a running environment.
#[derive(Clone, Debug)]
pub struct KubeHandle {
    kubeconfig: PathBuf,
    server: String,
    token_issuer: Option<TokenIssuer>,
}

impl KubeHandle {
    /// The admin kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Where a relying party finds the service account token issuer, when the environment
    /// was started with [`KubeEnvOptions::issuer_discovery`].
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.token_issuer.as_ref()
    }

    /// A client with cluster-admin rights. Create one per test: a client belongs to the
    /// tokio runtime it was first used on.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("config from kubeconfig");
        Client::try_from(config).expect("client")
    }

    /// `kubectl` against this API server.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(testenv_bin("kubectl"));
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()));
        cmd
    }

    /// Installs a CRD with server-side apply and waits until it is Established.
    pub async fn install_crd(&self, client: &Client, crd: &CustomResourceDefinition) {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let name = crd.metadata.name.clone().expect("CRD name");
        api.patch(&name, &PatchParams::apply("livestream-tests").force(), &Patch::Apply(crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        let established =
            kube::runtime::wait::await_condition(api, &name, kube::runtime::wait::conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .unwrap_or_else(|_| panic!("CRD {name} was not Established within 30s"))
            .expect("watch CRD");
    }
}

/// A token of `service_account` in `namespace` for `audience`, valid for `lifetime` (the API
/// server's minimum is 10 minutes), from the TokenRequest API: what the kubelet projects
/// into a pod's volume. The ServiceAccount must exist.
pub async fn service_account_token(
    client: &Client,
    namespace: &str,
    service_account: &str,
    audience: &str,
    lifetime: Duration,
) -> String {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![audience.to_string()]),
            expiration_seconds: Some(lifetime.as_secs() as i64),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let issued = accounts
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("request a token of {namespace}/{service_account} for {audience}: {e}"));
    issued
        .status
        .and_then(|status| status.token)
        .unwrap_or_else(|| panic!("the TokenRequest for {audience} has no token"))
}

fn spawn_apiserver(args: &[String], root: &Path) -> ManagedProcess {
    let mut cmd = Command::new(testenv_bin("kube-apiserver"));
    cmd.args(args);
    ManagedProcess::spawn("kube-apiserver", cmd, &root.join("kube-apiserver.log"))
}

/// The certificates and keys of one environment.
struct Pki {
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    sa_key: PathBuf,
    sa_pub: PathBuf,
    node: Option<NodePki>,
}

/// The kubelet's client certificate (user `system:node:NAME` in group `system:nodes`, as
/// the Node authorizer expects) and its serving certificate.
struct NodePki {
    client_cert: PathBuf,
    client_key: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
}

impl Pki {
    fn write(root: &Path, node: Option<NodeAccess>) -> Self {
        let dir = root.join("pki");
        std::fs::create_dir_all(&dir).expect("pki dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name.push(DnType::CommonName, "livestream-test-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA cert");

        let server_key = KeyPair::generate().expect("server key");
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
            KUBERNETES_SERVICE_IP.to_string(),
        ];
        names.extend(node.map(|n| n.ip.to_string()));
        let mut server_params = CertificateParams::new(names).expect("server params");
        server_params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        let server_cert = server_params.signed_by(&server_key, &ca).expect("server cert");

        let admin_key = KeyPair::generate().expect("admin key");
        let mut admin_params = CertificateParams::new(Vec::<String>::new()).expect("admin params");
        admin_params.distinguished_name.push(DnType::CommonName, "livestream-test-admin");
        admin_params.distinguished_name.push(DnType::OrganizationName, "system:masters");
        let admin_cert = admin_params.signed_by(&admin_key, &ca).expect("admin cert");

        let sa_key = KeyPair::generate().expect("service account key");

        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write pki file");
            path
        };
        let node = node.map(|node| {
            let client_key = KeyPair::generate().expect("node client key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("node client params");
            params.distinguished_name.push(DnType::CommonName, format!("system:node:{}", node.name));
            params.distinguished_name.push(DnType::OrganizationName, "system:nodes");
            let client_cert = params.signed_by(&client_key, &ca).expect("node client cert");
            let serving_key = KeyPair::generate().expect("node serving key");
            let mut params =
                CertificateParams::new(vec![node.name.to_string(), node.ip.to_string()]).expect("node serving params");
            params.distinguished_name.push(DnType::CommonName, node.name);
            let serving_cert = params.signed_by(&serving_key, &ca).expect("node serving cert");
            NodePki {
                client_cert: write("node.crt", client_cert.pem()),
                client_key: write("node.key", client_key.serialize_pem()),
                serving_cert: write("node-serving.crt", serving_cert.pem()),
                serving_key: write("node-serving.key", serving_key.serialize_pem()),
            }
        });
        Self {
            ca_cert: write("ca.crt", ca.pem()),
            server_cert: write("apiserver.crt", server_cert.pem()),
            server_key: write("apiserver.key", server_key.serialize_pem()),
            admin_cert: write("admin.crt", admin_cert.pem()),
            admin_key: write("admin.key", admin_key.serialize_pem()),
            sa_key: write("sa.key", sa_key.serialize_pem()),
            sa_pub: write("sa.pub", sa_key.public_key_pem()),
            node,
        }
    }

    fn kubeconfig(&self, server: &str) -> String {
        kubeconfig_text(server, &self.ca_cert, &self.admin_cert, &self.admin_key)
    }
}

/// A kubeconfig for `server` with a client certificate.
fn kubeconfig_text(server: &str, ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: test
  context:
    cluster: test
    user: admin
    namespace: default
current-context: test
",
        ca = ca.display(),
        cert = cert.display(),
        key = key.display(),
    )
}
