//! A real Kubernetes control plane for tests: etcd and kube-apiserver (and, on request,
//! kube-controller-manager) on free loopback ports, with generated certificates and an
//! admin kubeconfig, as controller-runtime's envtest provides.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

use super::process::{ManagedProcess, free_port, testenv_bin, wait_for};

/// The control plane. Dropping it stops every process and removes its files.
pub struct KubeEnv {
    // Field order is drop order: the controller manager and API server stop before etcd.
    controller_manager: Option<ManagedProcess>,
    apiserver: ManagedProcess,
    _etcd: ManagedProcess,
    kubeconfig: PathBuf,
    server: String,
    dir: tempfile::TempDir,
}

/// What to start beside etcd and the API server.
#[derive(Clone, Copy, Debug, Default)]
pub struct KubeEnvOptions {
    /// Also run kube-controller-manager (Deployments, ReplicaSets, garbage collection,
    /// service account tokens).
    pub controller_manager: bool,
}

impl KubeEnv {
    /// Starts a fresh control plane and waits until the API server is ready.
    pub fn start(options: KubeEnvOptions) -> Self {
        let dir = tempfile::Builder::new().prefix("livestream-kube-").tempdir().expect("temp dir");
        let root = dir.path();
        let pki = Pki::write(root);

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
        let mut apiserver_cmd = Command::new(testenv_bin("kube-apiserver"));
        apiserver_cmd.args([
            &format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            &format!("--secure-port={port}"),
            &format!("--cert-dir={}", root.join("apiserver-certs").display()),
            &format!("--tls-cert-file={}", pki.server_cert.display()),
            &format!("--tls-private-key-file={}", pki.server_key.display()),
            &format!("--client-ca-file={}", pki.ca_cert.display()),
            &format!("--service-account-key-file={}", pki.sa_pub.display()),
            &format!("--service-account-signing-key-file={}", pki.sa_key.display()),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=0",
        ]);
        let apiserver = ManagedProcess::spawn("kube-apiserver", apiserver_cmd, &root.join("kube-apiserver.log"));

        let kubeconfig = root.join("admin.kubeconfig");
        std::fs::write(&kubeconfig, pki.kubeconfig(&server)).expect("write kubeconfig");

        let mut env = Self { controller_manager: None, apiserver, _etcd: etcd, kubeconfig, server, dir };
        env.wait_ready();
        if options.controller_manager {
            env.start_controller_manager(&pki);
        }
        env
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
        KubeHandle { kubeconfig: self.kubeconfig.clone(), server: self.server.clone() }
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

    fn start_controller_manager(&mut self, pki: &Pki) {
        let mut cmd = Command::new(testenv_bin("kube-controller-manager"));
        cmd.args([
            &format!("--kubeconfig={}", self.kubeconfig.display()),
            &format!("--authentication-kubeconfig={}", self.kubeconfig.display()),
            &format!("--authorization-kubeconfig={}", self.kubeconfig.display()),
            &format!("--service-account-private-key-file={}", pki.sa_key.display()),
            &format!("--root-ca-file={}", pki.ca_cert.display()),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={}", free_port()),
            &format!("--cert-dir={}", self.dir().join("kcm-certs").display()),
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--controllers=*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl,-bootstrapsigner,-tokencleaner",
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

/// The certificates and keys of one environment.
struct Pki {
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    sa_key: PathBuf,
    sa_pub: PathBuf,
}

impl Pki {
    fn write(root: &Path) -> Self {
        let dir = root.join("pki");
        std::fs::create_dir_all(&dir).expect("pki dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name.push(DnType::CommonName, "livestream-test-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA cert");

        let server_key = KeyPair::generate().expect("server key");
        let mut server_params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes.default.svc".to_string(),
        ])
        .expect("server params");
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
        Self {
            ca_cert: write("ca.crt", ca.pem()),
            server_cert: write("apiserver.crt", server_cert.pem()),
            server_key: write("apiserver.key", server_key.serialize_pem()),
            admin_cert: write("admin.crt", admin_cert.pem()),
            admin_key: write("admin.key", admin_key.serialize_pem()),
            sa_key: write("sa.key", sa_key.serialize_pem()),
            sa_pub: write("sa.pub", sa_key.public_key_pem()),
        }
    }

    fn kubeconfig(&self, server: &str) -> String {
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
            ca = self.ca_cert.display(),
            cert = self.admin_cert.display(),
            key = self.admin_key.display(),
        )
    }
}
