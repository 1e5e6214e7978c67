//! The ingest and playback URLs of a stream.

use k8s_openapi::api::core::v1::Service;

use crate::api::{LiveStream, ServiceType};
use crate::controller::children::storage_prefix;
use crate::controller::config::GatewaySettings;
use crate::storage::bucket_url;
use crate::transcode::poster::POSTER_FILE;

/// The gateway that `service`'s stream is behind: the operator runs one, and the stream's
/// own Service is a ClusterIP one.
fn behind<'a>(service: &Service, gateway: Option<&'a GatewaySettings>) -> Option<&'a GatewaySettings> {
    gateway.filter(|_| is_cluster_ip(service))
}

/// `base` (a gateway's URL) with the application `app` as its path.
fn with_app(base: &str, app: &str) -> String {
    format!("{}/{app}", base.trim_end_matches('/'))
}

/// `rtmp://HOST:PORT/APP` where encoders push: the ingest gateway's address when the
/// stream's own Service is a ClusterIP one behind it, else that Service's. Never carries
/// the stream key.
pub fn ingest_url(
    stream: &LiveStream,
    service: Option<&Service>,
    node_address: Option<&str>,
    gateway: Option<&GatewaySettings>,
) -> Option<String> {
    let app = &stream.spec.ingest.app;
    let service = service?;
    if let Some(gateway) = behind(service, gateway) {
        return Some(with_app(&gateway.url, app));
    }
    let (host, port) = service_address(service, "rtmp", node_address)?;
    Some(format!("rtmp://{host}:{port}/{app}"))
}

/// `rtmps://HOST:PORT/APP`: the gateway's, when it serves RTMPS and the stream is behind
/// it; else the ingest Service's RTMPS port, when the stream has one.
pub fn secure_ingest_url(
    stream: &LiveStream,
    service: Option<&Service>,
    node_address: Option<&str>,
    gateway: Option<&GatewaySettings>,
) -> Option<String> {
    let app = &stream.spec.ingest.app;
    let service = service?;
    if let Some(gateway) = behind(service, gateway) {
        return gateway.secure_url.as_deref().map(|url| with_app(url, app));
    }
    stream.spec.ingest.tls.as_ref()?;
    let (host, port) = service_address(service, "rtmps", node_address)?;
    Some(format!("rtmps://{host}:{port}/{app}"))
}

fn is_cluster_ip(service: &Service) -> bool {
    service.spec.as_ref().and_then(|spec| spec.type_.as_deref()).is_none_or(|type_| type_ == "ClusterIP")
}

/// `srt://HOST:PORT` for the ingest Service's SRT port, when the stream has one. The
/// stream ID, which carries the key, is the encoder's to add.
pub fn srt_ingest_url(stream: &LiveStream, service: Option<&Service>, node_address: Option<&str>) -> Option<String> {
    stream.spec.ingest.srt.as_ref()?;
    let (host, port) = service_address(service?, "srt", node_address)?;
    Some(format!("srt://{host}:{port}"))
}

/// The low-latency master playlist, while Low-Latency HLS is on: under the CDN's
/// low-latency base URL when there is one, else at the origin Service's address.
pub fn low_latency_playback_url(
    stream: &LiveStream,
    origin_service: Option<&Service>,
    node_address: Option<&str>,
) -> Option<String> {
    stream.spec.hls.part_target()?;
    let prefix = storage_prefix(stream);
    if let Some(base) = stream.spec.cdn.as_ref().and_then(|cdn| cdn.low_latency_base_url.as_ref()) {
        return Some(format!("{}/{prefix}/master.m3u8", base.trim_end_matches('/')));
    }
    let (host, port) = service_address(origin_service?, "origin", node_address)?;
    let authority = if port == 80 { host } else { format!("{host}:{port}") };
    Some(format!("http://{authority}/{prefix}/master.m3u8"))
}

/// Where clients reach the port named `port_name` of `service`: a load balancer's address,
/// else a node address and the node port, else the cluster IP (by the Service's own type).
fn service_address(service: &Service, port_name: &str, node_address: Option<&str>) -> Option<(String, i32)> {
    let spec = service.spec.as_ref()?;
    let type_ = match spec.type_.as_deref() {
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("NodePort") => ServiceType::NodePort,
        _ => ServiceType::ClusterIP,
    };
    let port = spec.ports.as_ref()?.iter().find(|p| p.name.as_deref() == Some(port_name))?;
    let load_balancer = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|ingress| ingress.iter().find_map(|i| i.ip.clone().or_else(|| i.hostname.clone())));
    let (host, port_number) = match (load_balancer, type_, port.node_port, node_address) {
        (Some(host), ServiceType::LoadBalancer, _, _) => (host, port.port),
        (_, ServiceType::LoadBalancer | ServiceType::NodePort, Some(node_port), Some(node)) => {
            (node.to_string(), node_port)
        }
        _ => {
            let cluster_ip = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None")?;
            (cluster_ip.to_string(), port.port)
        }
    };
    Some((bracket_ipv6(&host), port_number))
}

/// The master playlist: under the CDN when there is one, else straight from storage.
pub fn playback_url(stream: &LiveStream) -> String {
    format!("{}/master.m3u8", media_base_url(stream))
}

/// The stream's poster (a JPEG of its latest picture, refreshed every few seconds while
/// it is live), beside the master playlist.
pub fn poster_url(stream: &LiveStream) -> String {
    format!("{}/{POSTER_FILE}", media_base_url(stream))
}

/// The URL at which viewers reach the stream's storage prefix: under the CDN when there is
/// one, else the bucket's own URL.
pub fn media_base_url(stream: &LiveStream) -> String {
    let prefix = storage_prefix(stream);
    let storage = &stream.spec.storage;
    if let Some(cdn) = &stream.spec.cdn {
        return format!("{}/{prefix}", cdn.base_url.trim_end_matches('/'));
    }
    let bucket = bucket_url(&storage.bucket, &storage.region, storage.endpoint.as_deref(), storage.force_path_style);
    format!("{bucket}/{prefix}")
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_string() }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};

    use super::*;
    use crate::api::CdnSpec;
    use crate::controller::OperatorConfig;
    use crate::controller::children::{fixtures, ingest_service, origin_service};

    fn service(
        stream: &LiveStream,
        cluster_ip: &str,
        node_port: Option<i32>,
        lb: Option<LoadBalancerIngress>,
    ) -> Service {
        let mut svc = ingest_service(stream, &OperatorConfig::default()).unwrap();
        let spec = svc.spec.as_mut().unwrap();
        spec.cluster_ip = Some(cluster_ip.into());
        spec.ports.as_mut().unwrap()[0].node_port = node_port;
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus { ingress: lb.map(|i| vec![i]) }),
            ..ServiceStatus::default()
        });
        svc
    }

    #[test]
    fn ingest_prefers_the_load_balancer_then_the_node_port_then_the_cluster_ip() {
        let stream = fixtures::stream("media", "demo");
        let lb = LoadBalancerIngress { hostname: Some("lb.example.com".into()), ..Default::default() };
        let svc = service(&stream, "10.96.0.10", Some(31000), Some(lb));
        assert_eq!(
            ingest_url(&stream, Some(&svc), Some("192.0.2.1"), None).unwrap(),
            "rtmp://lb.example.com:1935/live"
        );
        let svc = service(&stream, "10.96.0.10", Some(31000), None);
        assert_eq!(ingest_url(&stream, Some(&svc), Some("192.0.2.1"), None).unwrap(), "rtmp://192.0.2.1:31000/live");
        assert_eq!(ingest_url(&stream, Some(&svc), None, None).unwrap(), "rtmp://10.96.0.10:1935/live");
        assert_eq!(
            ingest_url(&stream, Some(&svc), Some("2001:db8::1"), None).unwrap(),
            "rtmp://[2001:db8::1]:31000/live"
        );
        assert_eq!(ingest_url(&stream, None, None, None), None);
        assert_eq!(secure_ingest_url(&stream, Some(&svc), None, None), None, "no TLS in the spec");

        let mut secure = stream.clone();
        secure.spec.ingest.tls =
            Some(crate::api::IngestTlsSpec { secret_name: "t".into(), port: 443, node_port: None });
        let lb = LoadBalancerIngress { ip: Some("203.0.113.7".into()), ..Default::default() };
        let svc = service(&secure, "10.96.0.10", None, Some(lb));
        assert_eq!(secure_ingest_url(&secure, Some(&svc), None, None).unwrap(), "rtmps://203.0.113.7:443/live");
        assert_eq!(ingest_url(&secure, Some(&svc), None, None).unwrap(), "rtmp://203.0.113.7:1935/live");
    }

    #[test]
    fn behind_the_gateway_a_cluster_ip_stream_shows_the_gateway() {
        let config = OperatorConfig {
            gateway: Some(GatewaySettings {
                url: "rtmp://ingest.example.com:1935".into(),
                secure_url: Some("rtmps://ingest.example.com:443/".into()),
                routes_namespace: "livestream".into(),
                routes_secret: "routes".into(),
            }),
            ..OperatorConfig::default()
        };
        let gateway = config.gateway.as_ref();
        let stream = fixtures::stream("media", "demo");
        let mut svc = ingest_service(&stream, &config).unwrap();
        assert_eq!(svc.spec.as_ref().unwrap().type_.as_deref(), Some("ClusterIP"), "no load balancer of its own");
        svc.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.10".into());
        assert_eq!(ingest_url(&stream, Some(&svc), None, gateway).unwrap(), "rtmp://ingest.example.com:1935/live");
        assert_eq!(
            secure_ingest_url(&stream, Some(&svc), None, gateway).unwrap(),
            "rtmps://ingest.example.com:443/live"
        );
        // A stream that asks for a load balancer of its own keeps its own address.
        let mut own = stream.clone();
        own.spec.ingest.service.type_ = Some(ServiceType::LoadBalancer);
        let lb = LoadBalancerIngress { ip: Some("203.0.113.7".into()), ..Default::default() };
        let svc = service(&own, "10.96.0.11", None, Some(lb));
        assert_eq!(ingest_url(&own, Some(&svc), None, gateway).unwrap(), "rtmp://203.0.113.7:1935/live");
    }

    #[test]
    fn srt_ingest_names_the_udp_port_without_the_key() {
        let mut stream = fixtures::stream("media", "demo");
        let svc = service(&stream, "10.96.0.10", None, None);
        assert_eq!(srt_ingest_url(&stream, Some(&svc), None), None, "no SRT in the spec");
        stream.spec.ingest.srt = Some(crate::api::IngestSrtSpec::default());
        let mut svc = crate::controller::children::ingest_service(&stream, &OperatorConfig::default()).unwrap();
        svc.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.10".into());
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].node_port = Some(31900);
        assert_eq!(srt_ingest_url(&stream, Some(&svc), None).unwrap(), "srt://10.96.0.10:9000");
        assert_eq!(srt_ingest_url(&stream, Some(&svc), Some("192.0.2.1")).unwrap(), "srt://192.0.2.1:31900");
    }

    #[test]
    fn playback_url_for_cdn_path_style_virtual_host_and_aws() {
        let mut stream = fixtures::stream("media", "demo");
        assert_eq!(playback_url(&stream), "https://live-video.s3.us-east-1.amazonaws.com/media/demo/master.m3u8");
        stream.spec.storage.endpoint = Some("http://127.0.0.1:9000/".into());
        stream.spec.storage.force_path_style = true;
        assert_eq!(playback_url(&stream), "http://127.0.0.1:9000/live-video/media/demo/master.m3u8");
        stream.spec.storage.force_path_style = false;
        stream.spec.storage.endpoint = Some("https://r2.example.com".into());
        assert_eq!(playback_url(&stream), "https://live-video.r2.example.com/media/demo/master.m3u8");
        stream.spec.cdn = Some(CdnSpec { base_url: "https://cdn.example.com/".into(), low_latency_base_url: None });
        stream.spec.storage.prefix = Some("events/launch".into());
        assert_eq!(playback_url(&stream), "https://cdn.example.com/events/launch/master.m3u8");
    }

    #[test]
    fn low_latency_playback_from_the_cdn_or_the_origin_service() {
        let mut stream = fixtures::stream("media", "demo");
        let mut svc = origin_service(&stream).unwrap();
        svc.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.20".into());
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(31080);
        assert_eq!(
            low_latency_playback_url(&stream, Some(&svc), Some("192.0.2.1")).as_deref(),
            Some("http://192.0.2.1:31080/media/demo/master.m3u8")
        );
        assert_eq!(
            low_latency_playback_url(&stream, Some(&svc), None).as_deref(),
            Some("http://10.96.0.20/media/demo/master.m3u8"),
            "port 80 goes without saying"
        );
        stream.spec.cdn = Some(CdnSpec {
            base_url: "https://media.example.com".into(),
            low_latency_base_url: Some("https://live.example.com/".into()),
        });
        assert_eq!(
            low_latency_playback_url(&stream, None, None).as_deref(),
            Some("https://live.example.com/media/demo/master.m3u8")
        );
        stream.spec.hls.low_latency = false;
        assert_eq!(low_latency_playback_url(&stream, Some(&svc), None), None);
    }
}
