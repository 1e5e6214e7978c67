//! The worker Deployment: one pod, replaced (never overlapped) on change, locked down.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource,
    SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::BuildError;
use super::config_map::CONFIG_FILE_KEY;
use super::names::{Component, child_metadata, labels, selector_labels, worker_name};
use crate::api::{LadderSpec, LiveStream, WebIdentitySpec};
use crate::controller::OperatorConfig;
use crate::controller::validate::{Resolved, TLS_CERTIFICATE_KEY, TLS_PRIVATE_KEY_KEY};
use crate::transcode::cost::cpu_millicores;
use crate::worker::pipeline::rendition_requests;

/// Pod template annotation holding the checksum of the worker configuration.
pub const CONFIG_CHECKSUM_ANNOTATION: &str = "livestream.dev/config-checksum";
/// Where the ConfigMap is mounted in the worker.
pub const CONFIG_MOUNT_DIR: &str = "/etc/livestream";
/// The environment variable holding the stream key.
pub const STREAM_KEY_ENV: &str = "LIVESTREAM_STREAM_KEY";
/// The worker's RTMP port.
pub const RTMP_PORT: i32 = 1935;
/// The worker's RTMPS port, when the stream has a TLS Secret.
pub const RTMPS_PORT: i32 = 1936;
/// The worker's SRT port (UDP).
pub const SRT_PORT: i32 = 9000;
/// Where the TLS Secret is mounted in the worker.
pub const TLS_MOUNT_DIR: &str = "/etc/livestream-tls";
/// The worker's HTTP port (health, metrics, `/status`).
pub const HTTP_PORT: i32 = 8080;
/// The worker's HLS origin port (low-latency playlists).
pub const ORIGIN_PORT: i32 = 8081;

const SCRATCH_DIR: &str = "/tmp";
/// Where the worker's projected ServiceAccount token for `storage.webIdentity` is.
pub const WEB_IDENTITY_MOUNT_DIR: &str = "/var/run/secrets/livestream/web-identity";
/// How long the kubelet's tokens last; it renews them at 80 % of that, and the provider
/// chain reads the file again for each new set of credentials.
const WEB_IDENTITY_TOKEN_SECONDS: i64 = 3600;

/// The worker Deployment of `stream`; `config_checksum` is the checksum of its rendered
/// configuration.
pub fn deployment(
    stream: &LiveStream,
    config: &OperatorConfig,
    resolved: &Resolved,
    config_checksum: &str,
) -> Result<Deployment, BuildError> {
    let name = stream.name_any();
    let worker = &stream.spec.worker;
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&name, Component::Worker)),
            annotations: Some(BTreeMap::from([(CONFIG_CHECKSUM_ANNOTATION.to_string(), config_checksum.to_string())])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: worker.service_account_name.clone().or_else(|| config.worker_service_account.clone()),
            // The worker needs no API rights: no API token. A web identity token is a
            // projected volume of its own, whose audience is the STS, not the API server.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(config.worker_uid),
                run_as_group: Some(config.worker_uid),
                fs_group: Some(config.worker_uid),
                seccomp_profile: Some(runtime_default_seccomp()),
                ..PodSecurityContext::default()
            }),
            containers: vec![worker_container(stream, config, resolved)],
            volumes: Some(
                [
                    Volume {
                        name: "config".into(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: worker_name(&name),
                            ..ConfigMapVolumeSource::default()
                        }),
                        ..Volume::default()
                    },
                    Volume {
                        name: "scratch".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    },
                ]
                .into_iter()
                .chain(resolved.tls_secret.as_ref().map(|secret| tls_volume(secret)))
                .chain(stream.spec.storage.web_identity.as_ref().map(web_identity_volume))
                .collect(),
            ),
            node_selector: (!worker.node_selector.is_empty()).then(|| worker.node_selector.clone()),
            tolerations: (!worker.tolerations.is_empty()).then(|| worker.tolerations.clone()),
            termination_grace_period_seconds: Some(30),
            ..PodSpec::default()
        }),
    };
    Ok(Deployment {
        metadata: child_metadata(stream, worker_name(&name), Component::Worker)?,
        spec: DeploymentSpec {
            replicas: Some(if stream.spec.suspend { 0 } else { 1 }),
            selector: LabelSelector { match_labels: Some(selector_labels(&name)), ..LabelSelector::default() },
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }),
            revision_history_limit: Some(2),
            template,
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

fn worker_container(stream: &LiveStream, config: &OperatorConfig, resolved: &Resolved) -> Container {
    let worker = &stream.spec.worker;
    let mut env = vec![
        EnvVar {
            name: "POD_IP".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: "status.podIP".into(), api_version: None }),
                ..EnvVarSource::default()
            }),
            value: None,
        },
        secret_env(STREAM_KEY_ENV, &resolved.stream_key.name, &resolved.stream_key.key),
    ];
    if let Some(credentials) = &resolved.credentials {
        env.push(secret_env("AWS_ACCESS_KEY_ID", &credentials.name, &credentials.access_key_id_key));
        env.push(secret_env("AWS_SECRET_ACCESS_KEY", &credentials.name, &credentials.secret_access_key_key));
    }
    if let Some(identity) = &stream.spec.storage.web_identity {
        env.extend(web_identity_env(stream, identity));
    }
    env.push(EnvVar { name: "TMPDIR".into(), value: Some(SCRATCH_DIR.into()), value_from: None });

    Container {
        name: "worker".into(),
        image: Some(worker.image.clone().unwrap_or_else(|| config.worker_image.clone())),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["livestream".into()]),
        args: Some(vec![
            "worker".into(),
            "--config".into(),
            format!("{CONFIG_MOUNT_DIR}/{CONFIG_FILE_KEY}"),
            "--listen-ip".into(),
            "$(POD_IP)".into(),
        ]),
        env: Some(env),
        ports: Some(
            [port("rtmp", RTMP_PORT), port("http", HTTP_PORT), port("origin", ORIGIN_PORT)]
                .into_iter()
                .chain(resolved.tls_secret.is_some().then(|| port("rtmps", RTMPS_PORT)))
                .chain(
                    stream
                        .spec
                        .ingest
                        .srt
                        .is_some()
                        .then(|| ContainerPort { protocol: Some("UDP".into()), ..port("srt", SRT_PORT) }),
                )
                .collect(),
        ),
        volume_mounts: Some(
            [
                VolumeMount {
                    name: "config".into(),
                    mount_path: CONFIG_MOUNT_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount { name: "scratch".into(), mount_path: SCRATCH_DIR.into(), ..VolumeMount::default() },
            ]
            .into_iter()
            .chain(resolved.tls_secret.is_some().then(|| VolumeMount {
                name: "tls".into(),
                mount_path: TLS_MOUNT_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }))
            .chain(stream.spec.storage.web_identity.is_some().then(|| VolumeMount {
                name: "web-identity".into(),
                mount_path: WEB_IDENTITY_MOUNT_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }))
            .collect(),
        ),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 1)),
        resources: Some(worker.resources.clone().unwrap_or_else(|| ladder_resources(&stream.spec.ladder))),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(config.worker_uid),
            run_as_group: Some(config.worker_uid),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// Without resources in the spec, the worker requests the CPU its ladder needs to keep up
/// with real time, so that the scheduler places it on a node that has that much free. No
/// limit: a throttled encoder falls behind the live edge, which is worse than sharing.
fn ladder_resources(ladder: &LadderSpec) -> ResourceRequirements {
    let millicores = cpu_millicores(&rendition_requests(ladder), ladder.preset);
    ResourceRequirements {
        requests: Some(BTreeMap::from([("cpu".to_string(), Quantity(format!("{millicores}m")))])),
        ..ResourceRequirements::default()
    }
}

/// The worker's ServiceAccount token for the STS of `identity`, as the kubelet keeps it
/// fresh.
fn web_identity_volume(identity: &WebIdentitySpec) -> Volume {
    Volume {
        name: "web-identity".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(identity.audience.clone()),
                    expiration_seconds: Some(WEB_IDENTITY_TOKEN_SECONDS),
                    path: "token".into(),
                    ..ServiceAccountTokenProjection::default()
                }),
                ..VolumeProjection::default()
            }]),
            default_mode: Some(0o440),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// What the AWS provider chain reads to assume the role of `identity` with the token:
/// the same variables EKS's IRSA sets, and the STS endpoint when it is not AWS's.
fn web_identity_env(stream: &LiveStream, identity: &WebIdentitySpec) -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar { name: name.into(), value: Some(value), value_from: None };
    let namespace = stream.namespace().unwrap_or_default();
    // A session name of at most 64 of [\w+=,.@-], naming the stream in the STS's logs.
    let session: String = format!("livestream.{namespace}.{}", stream.name_any()).chars().take(64).collect();
    let mut env = vec![
        value("AWS_ROLE_ARN", identity.role_arn.clone()),
        value("AWS_WEB_IDENTITY_TOKEN_FILE", format!("{WEB_IDENTITY_MOUNT_DIR}/token")),
        value("AWS_ROLE_SESSION_NAME", session),
        value("AWS_REGION", stream.spec.storage.region.clone()),
    ];
    if let Some(endpoint) = &identity.sts_endpoint {
        env.push(value("AWS_ENDPOINT_URL_STS", endpoint.clone()));
    }
    env
}

/// The TLS Secret as files, readable by the worker's group only. Mounted whole (no
/// subPath), so the kubelet swaps in a renewed certificate and the worker reads it again.
fn tls_volume(secret: &str) -> Volume {
    Volume {
        name: "tls".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            default_mode: Some(0o440),
            items: Some(
                [TLS_CERTIFICATE_KEY, TLS_PRIVATE_KEY_KEY]
                    .map(|key| KeyToPath { key: key.into(), path: key.into(), ..KeyToPath::default() })
                    .to_vec(),
            ),
            optional: Some(false),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: Some(false) }),
            ..EnvVarSource::default()
        }),
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(2),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use crate::api::{CredentialsSecretRef, SecretKeyRef};

    fn resolved(credentials: bool) -> Resolved {
        Resolved {
            stream_key: SecretKeyRef { name: "demo-stream-key".into(), key: "streamKey".into() },
            key: crate::ingest::session::StreamKey::new("k3y"),
            credentials: credentials.then(|| CredentialsSecretRef {
                name: "s3".into(),
                access_key_id_key: "id".into(),
                secret_access_key_key: "secret".into(),
            }),
            tls_secret: None,
        }
    }

    fn container(d: &Deployment) -> &Container {
        &d.spec.template.spec.as_ref().unwrap().containers[0]
    }

    fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
        c.env.as_ref().unwrap().iter().find(|e| e.name == name)
    }

    #[test]
    fn worker_runs_one_replica_with_recreate_and_the_command() {
        let stream = fixtures::stream("media", "demo");
        let d = deployment(&stream, &OperatorConfig::default(), &resolved(false), "abc").unwrap();
        let spec = &d.spec;
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.strategy.as_ref().unwrap().type_.as_deref(), Some("Recreate"));
        let c = container(&d);
        assert_eq!(c.image.as_deref(), Some(OperatorConfig::default().worker_image.as_str()));
        let mut argv = c.command.clone().unwrap();
        argv.extend(c.args.clone().unwrap());
        assert_eq!(argv.join(" "), "livestream worker --config /etc/livestream/worker.yaml --listen-ip $(POD_IP)");
        let pod_ip = env(c, "POD_IP").unwrap().value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
        assert_eq!(pod_ip.field_path, "status.podIP");
        let template = spec.template.metadata.as_ref().unwrap();
        assert_eq!(template.annotations.as_ref().unwrap()[CONFIG_CHECKSUM_ANNOTATION], "abc");
        let selector = spec.selector.match_labels.as_ref().unwrap();
        assert!(selector.iter().all(|(k, v)| template.labels.as_ref().unwrap().get(k) == Some(v)));
    }

    #[test]
    fn the_cpu_request_follows_the_ladder_unless_resources_are_given() {
        let cpu = |stream: &LiveStream| {
            let d = deployment(stream, &OperatorConfig::default(), &resolved(false), "abc").unwrap();
            let resources = container(&d).resources.clone().unwrap();
            assert!(resources.limits.is_none(), "no CPU limit to throttle the encoder");
            resources.requests.unwrap().get("cpu").map(|q| q.0.clone())
        };
        let mut stream = fixtures::stream("media", "demo");
        assert_eq!(cpu(&stream).as_deref(), Some("2350m"), "the default ladder at veryfast");
        stream.spec.ladder.preset = crate::api::EncoderPreset::Ultrafast;
        assert_eq!(cpu(&stream).as_deref(), Some("600m"));
        let given = ResourceRequirements {
            requests: Some(BTreeMap::from([("memory".to_string(), Quantity("1Gi".into()))])),
            ..ResourceRequirements::default()
        };
        stream.spec.worker.resources = Some(given);
        assert_eq!(cpu(&stream), None, "resources in the spec are taken as they are");
    }

    #[test]
    fn secrets_come_from_secret_key_refs_only() {
        let stream = fixtures::stream("media", "demo");
        let d = deployment(&stream, &OperatorConfig::default(), &resolved(true), "abc").unwrap();
        let c = container(&d);
        for (name, secret, key) in [
            (STREAM_KEY_ENV, "demo-stream-key", "streamKey"),
            ("AWS_ACCESS_KEY_ID", "s3", "id"),
            ("AWS_SECRET_ACCESS_KEY", "s3", "secret"),
        ] {
            let var = env(c, name).unwrap();
            assert_eq!(var.value, None);
            let selector = var.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
            assert_eq!((selector.name.as_str(), selector.key.as_str()), (secret, key));
        }
        assert_eq!(env(c, "TMPDIR").unwrap().value.as_deref(), Some("/tmp"));
        let without = deployment(&stream, &OperatorConfig::default(), &resolved(false), "abc").unwrap();
        assert!(env(container(&without), "AWS_ACCESS_KEY_ID").is_none());
    }

    #[test]
    fn a_web_identity_is_a_projected_token_and_the_variables_of_irsa() {
        let mut stream = fixtures::stream("media", "demo");
        stream.spec.storage.region = "eu-west-1".into();
        stream.spec.storage.web_identity = Some(WebIdentitySpec {
            role_arn: "arn:aws:iam::123456789012:role/live".into(),
            audience: "sts.amazonaws.com".into(),
            sts_endpoint: Some("https://minio.example:9000".into()),
        });
        stream.spec.worker.service_account_name = Some("live-worker".into());
        let d = deployment(&stream, &OperatorConfig::default(), &resolved(false), "abc").unwrap();
        let pod = d.spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("live-worker"));
        assert_eq!(pod.automount_service_account_token, Some(false), "no API token");
        let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "web-identity").expect("the token volume");
        let projection = &volume.projected.as_ref().unwrap().sources.as_ref().unwrap()[0];
        let token = projection.service_account_token.as_ref().unwrap();
        assert_eq!((token.audience.as_deref(), token.path.as_str()), (Some("sts.amazonaws.com"), "token"));
        let c = container(&d);
        let value = |name| env(c, name).and_then(|e| e.value.as_deref());
        assert_eq!(value("AWS_ROLE_ARN"), Some("arn:aws:iam::123456789012:role/live"));
        assert_eq!(value("AWS_WEB_IDENTITY_TOKEN_FILE"), Some("/var/run/secrets/livestream/web-identity/token"));
        assert_eq!(value("AWS_ROLE_SESSION_NAME"), Some("livestream.media.demo"));
        assert_eq!(value("AWS_REGION"), Some("eu-west-1"));
        assert_eq!(value("AWS_ENDPOINT_URL_STS"), Some("https://minio.example:9000"));
        assert!(env(c, "AWS_ACCESS_KEY_ID").is_none());
        let mount = c.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "web-identity").unwrap();
        assert_eq!(mount.mount_path, WEB_IDENTITY_MOUNT_DIR);

        // Without either, the worker's chain finds what the platform gives the pod.
        let plain = fixtures::stream("media", "plain");
        let config = OperatorConfig { worker_service_account: Some("workers".into()), ..OperatorConfig::default() };
        let d = deployment(&plain, &config, &resolved(false), "abc").unwrap();
        let pod = d.spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("workers"), "the operator's default");
        assert!(env(container(&d), "AWS_ROLE_ARN").is_none());
        assert!(pod.volumes.as_ref().unwrap().iter().all(|v| v.name != "web-identity"));
    }

    #[test]
    fn a_tls_secret_is_mounted_whole_and_rtmps_exposed() {
        let stream = fixtures::stream("media", "demo");
        let with_tls = Resolved { tls_secret: Some("ingest-tls".into()), ..resolved(false) };
        let d = deployment(&stream, &OperatorConfig::default(), &with_tls, "abc").unwrap();
        let pod = d.spec.template.spec.as_ref().unwrap();
        let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "tls").expect("a tls volume");
        let secret = volume.secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("ingest-tls"));
        assert_eq!(secret.default_mode, Some(0o440), "the key is not readable by others");
        let c = container(&d);
        let mount = c.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "tls").expect("mounted");
        assert_eq!((mount.mount_path.as_str(), mount.sub_path.as_deref()), (TLS_MOUNT_DIR, None));
        assert!(
            c.ports.as_ref().unwrap().iter().any(|p| p.name.as_deref() == Some("rtmps") && p.container_port == 1936)
        );
        let without = deployment(&stream, &OperatorConfig::default(), &resolved(false), "abc").unwrap();
        assert!(!container(&without).ports.as_ref().unwrap().iter().any(|p| p.name.as_deref() == Some("rtmps")));
    }

    #[test]
    fn srt_is_a_udp_container_port() {
        let mut stream = fixtures::stream("media", "demo");
        let srt_port = |stream: &LiveStream| {
            let d = deployment(stream, &OperatorConfig::default(), &resolved(false), "abc").unwrap();
            let ports = container(&d).ports.clone().unwrap();
            ports.into_iter().find(|p| p.name.as_deref() == Some("srt")).map(|p| (p.container_port, p.protocol))
        };
        assert_eq!(srt_port(&stream), None);
        stream.spec.ingest.srt = Some(crate::api::IngestSrtSpec::default());
        assert_eq!(srt_port(&stream), Some((SRT_PORT, Some("UDP".into()))));
    }

    #[test]
    fn container_is_locked_down_and_probed() {
        let stream = fixtures::stream("media", "demo");
        let d = deployment(&stream, &OperatorConfig::default(), &resolved(false), "abc").unwrap();
        let c = container(&d);
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(65532));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.as_ref().unwrap().drop, Some(vec!["ALL".to_string()]));
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let ports: Vec<_> =
            c.ports.as_ref().unwrap().iter().map(|p| (p.name.clone().unwrap(), p.container_port)).collect();
        assert_eq!(ports, vec![("rtmp".to_string(), 1935), ("http".to_string(), 8080), ("origin".to_string(), 8081)]);
        let ready = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        let live = c.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        let mounts: Vec<_> = c.volume_mounts.as_ref().unwrap().iter().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(mounts, vec!["/etc/livestream", "/tmp"]);
    }

    #[test]
    fn suspend_scales_to_zero_and_worker_settings_apply() {
        let mut stream = fixtures::stream("media", "demo");
        stream.spec.suspend = true;
        stream.spec.worker.image = Some("registry.example/livestream:1.2".into());
        stream.spec.worker.node_selector.insert("media".into(), "true".into());
        let d = deployment(&stream, &OperatorConfig::default(), &resolved(false), "abc").unwrap();
        assert_eq!(d.spec.replicas, Some(0));
        assert_eq!(container(&d).image.as_deref(), Some("registry.example/livestream:1.2"));
        let pod = d.spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.node_selector.as_ref().unwrap()["media"], "true");
        assert_eq!(pod.tolerations, None);
    }
}
