//! Command-line arguments of `livestream controller`.

use std::net::SocketAddr;
use std::time::Duration;

use super::OperatorConfig;
use super::config::GatewaySettings;

/// Runs the operator.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct ControllerArgs {
    /// Worker image for LiveStreams that do not set `spec.worker.image`.
    #[arg(long, env = "LIVESTREAM_WORKER_IMAGE")]
    pub worker_image: String,
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "LIVESTREAM_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints.
    #[arg(long, env = "LIVESTREAM_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Run only while holding the leader Lease (for more than one replica).
    #[arg(long, env = "LIVESTREAM_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "LIVESTREAM_LEASE_NAME", default_value = "livestream-operator")]
    pub lease_name: String,
    /// Namespace of the leader Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Lease (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a delete may wait for storage cleanup before it proceeds without it.
    #[arg(long, env = "LIVESTREAM_STORAGE_CLEANUP_TIMEOUT", default_value_t = 30)]
    pub storage_cleanup_timeout_seconds: u64,
    /// ServiceAccount of workers whose LiveStream sets no `spec.worker.serviceAccountName`
    /// (default: the namespace's `default`): the identity of storage credentials under
    /// EKS's IRSA or Pod Identity. It must exist in each stream's namespace.
    #[arg(long, env = "LIVESTREAM_WORKER_SERVICE_ACCOUNT")]
    pub worker_service_account: Option<String>,
    /// The ingest gateway's address, `rtmp://HOST:PORT`, as encoders reach it: streams
    /// without an ingest Service type of their own get a ClusterIP Service, and this URL
    /// in their status. Needs --gateway-routes-secret.
    #[arg(long, env = "LIVESTREAM_GATEWAY_URL", requires = "gateway_routes_secret")]
    pub gateway_url: Option<String>,
    /// The gateway's RTMPS address, `rtmps://HOST:PORT`, when it serves RTMPS.
    #[arg(long, env = "LIVESTREAM_GATEWAY_SECURE_URL", requires = "gateway_url")]
    pub gateway_secure_url: Option<String>,
    /// The Secret, in the operator's namespace, in which the operator keeps the gateway's
    /// routes.
    #[arg(long, env = "LIVESTREAM_GATEWAY_ROUTES_SECRET", requires = "gateway_url")]
    pub gateway_routes_secret: Option<String>,
    /// Seconds between reads of a running worker's status.
    #[arg(long, env = "LIVESTREAM_LIVE_POLL_INTERVAL", default_value_t = 3)]
    pub live_poll_seconds: u64,
}

impl ControllerArgs {
    /// The operator settings these arguments ask for.
    pub fn operator_config(&self) -> OperatorConfig {
        OperatorConfig {
            worker_image: self.worker_image.clone(),
            cleanup_timeout: Duration::from_secs(self.storage_cleanup_timeout_seconds),
            live_poll_interval: Duration::from_secs(self.live_poll_seconds.max(1)),
            worker_service_account: self.worker_service_account.clone().filter(|name| !name.is_empty()),
            gateway: self
                .gateway_url
                .clone()
                .filter(|url| !url.is_empty())
                .zip(self.gateway_routes_secret.clone())
                .map(|(url, routes_secret)| GatewaySettings {
                    url,
                    secure_url: self.gateway_secure_url.clone().filter(|url| !url.is_empty()),
                    routes_namespace: self.lease_namespace.clone().unwrap_or_else(|| "default".into()),
                    routes_secret,
                }),
            ..OperatorConfig::default()
        }
    }

    /// This replica's identity: `--identity`, else the host name, else a random one.
    pub fn identity(&self) -> String {
        self.identity
            .clone()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("livestream-operator-{}", rand::random::<u32>()))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    #[test]
    fn defaults_and_overrides() {
        let cli = Cli::try_parse_from(["x", "--worker-image", "img:1"]).unwrap();
        assert!(cli.args.leader_election);
        assert_eq!(cli.args.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(cli.args.operator_config().cleanup_timeout, Duration::from_secs(30));
        assert_eq!(cli.args.operator_config().worker_image, "img:1");
        let cli = Cli::try_parse_from([
            "x",
            "--worker-image",
            "img:1",
            "--leader-election",
            "false",
            "--namespace",
            "media",
            "--storage-cleanup-timeout-seconds",
            "5",
        ])
        .unwrap();
        assert!(!cli.args.leader_election);
        assert_eq!(cli.args.namespace.as_deref(), Some("media"));
        assert_eq!(cli.args.operator_config().cleanup_timeout, Duration::from_secs(5));
    }
}
