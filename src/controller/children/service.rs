//! The Services of a stream: the ingest Service (the worker's RTMP port, its RTMPS port
//! when the stream has a certificate, its SRT port over UDP when the stream takes SRT) and
//! the origin
//! Service (its HLS origin), exposed as the spec asks.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::BuildError;
use super::names::{Component, child_metadata, ingest_service_name, origin_service_name, selector_labels};
use crate::api::{LiveStream, ServiceType};
use crate::controller::OperatorConfig;

/// The ingest Service of `stream`; without a type in its spec, of the operator's default
/// type (ClusterIP behind the ingest gateway).
pub fn ingest_service(stream: &LiveStream, config: &OperatorConfig) -> Result<Service, BuildError> {
    let spec = &stream.spec.ingest.service;
    let name = ingest_service_name(&stream.name_any());
    let rtmp = Exposed { port: spec.port, node_port: spec.node_port, target: "rtmp", protocol: "TCP" };
    let rtmps = stream.spec.ingest.tls.as_ref().map(|tls| Exposed {
        port: tls.port,
        node_port: tls.node_port,
        target: "rtmps",
        protocol: "TCP",
    });
    let srt = stream.spec.ingest.srt.as_ref().map(|srt| Exposed {
        port: srt.port,
        node_port: srt.node_port,
        target: "srt",
        protocol: "UDP",
    });
    let ports: Vec<Exposed> = std::iter::once(rtmp).chain(rtmps).chain(srt).collect();
    let type_ = spec.type_.unwrap_or_else(|| config.default_ingest_service_type());
    service(stream, name, Component::Ingest, type_, ports, &spec.annotations)
}

/// The origin Service of `stream`: as the spec asks while Low-Latency HLS is on, a
/// ClusterIP Service otherwise (nothing to expose, and no load balancer to pay for).
pub fn origin_service(stream: &LiveStream) -> Result<Service, BuildError> {
    let spec = &stream.spec.origin.service;
    let name = origin_service_name(&stream.name_any());
    let low_latency = stream.spec.hls.part_target().is_some();
    let type_ = if low_latency { spec.type_ } else { ServiceType::ClusterIP };
    let port = Exposed { port: spec.port, node_port: spec.node_port, target: "origin", protocol: "TCP" };
    service(stream, name, Component::Origin, type_, vec![port], &spec.annotations)
}

/// One port of a Service and the container port it targets.
struct Exposed {
    port: i32,
    node_port: Option<i32>,
    target: &'static str,
    protocol: &'static str,
}

fn service(
    stream: &LiveStream,
    name: String,
    component: Component,
    type_: ServiceType,
    ports: Vec<Exposed>,
    annotations: &BTreeMap<String, String>,
) -> Result<Service, BuildError> {
    let mut metadata = child_metadata(stream, name, component)?;
    if !annotations.is_empty() {
        metadata.annotations = Some(annotations.clone());
    }
    let type_name = match type_ {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    Ok(Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_name.into()),
            selector: Some(selector_labels(&stream.name_any())),
            ports: Some(
                ports
                    .into_iter()
                    .map(|port| ServicePort {
                        name: Some(port.target.into()),
                        port: port.port,
                        target_port: Some(IntOrString::String(port.target.into())),
                        node_port: match type_ {
                            ServiceType::ClusterIP => None,
                            _ => port.node_port,
                        },
                        protocol: Some(port.protocol.into()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn service_follows_the_ingest_spec() {
        let mut stream = fixtures::stream("media", "demo");
        stream.spec.ingest.service.type_ = Some(ServiceType::NodePort);
        stream.spec.ingest.service.port = 1936;
        stream.spec.ingest.service.node_port = Some(31935);
        stream.spec.ingest.service.annotations.insert("lb.example/kind".into(), "nlb".into());
        let svc = ingest_service(&stream, &OperatorConfig::default()).unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("demo-ingest"));
        assert_eq!(svc.metadata.annotations.as_ref().unwrap()["lb.example/kind"], "nlb");
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        let port = &spec.ports.unwrap()[0];
        assert_eq!((port.port, port.node_port), (1936, Some(31935)));
        assert_eq!(port.target_port, Some(IntOrString::String("rtmp".into())));
        assert_eq!(spec.selector.unwrap()["app.kubernetes.io/component"], "worker");
    }

    #[test]
    fn rtmps_is_a_second_port_of_the_ingest_service() {
        let mut stream = fixtures::stream("media", "demo");
        stream.spec.ingest.tls =
            Some(crate::api::IngestTlsSpec { secret_name: "ingest-tls".into(), port: 443, node_port: Some(31443) });
        let ports = ingest_service(&stream, &OperatorConfig::default()).unwrap().spec.unwrap().ports.unwrap();
        let named: Vec<_> = ports.iter().map(|p| (p.name.as_deref().unwrap(), p.port, p.node_port)).collect();
        assert_eq!(named, vec![("rtmp", 1935, None), ("rtmps", 443, Some(31443))]);
        assert_eq!(ports[1].target_port, Some(IntOrString::String("rtmps".into())));
    }

    #[test]
    fn srt_is_a_udp_port_of_the_ingest_service() {
        let mut stream = fixtures::stream("media", "demo");
        stream.spec.ingest.service.type_ = Some(ServiceType::NodePort);
        stream.spec.ingest.srt = Some(crate::api::IngestSrtSpec { node_port: Some(31900), ..Default::default() });
        let ports = ingest_service(&stream, &OperatorConfig::default()).unwrap().spec.unwrap().ports.unwrap();
        let named: Vec<_> =
            ports.iter().map(|p| (p.name.as_deref().unwrap(), p.port, p.node_port, p.protocol.as_deref())).collect();
        assert_eq!(named, vec![("rtmp", 1935, None, Some("TCP")), ("srt", 9000, Some(31900), Some("UDP"))]);
        assert_eq!(ports[1].target_port, Some(IntOrString::String("srt".into())));
    }

    #[test]
    fn origin_service_is_exposed_only_with_low_latency() {
        let mut stream = fixtures::stream("media", "demo");
        let svc = origin_service(&stream).unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("demo-origin"));
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        let port = &spec.ports.unwrap()[0];
        assert_eq!((port.port, port.name.as_deref()), (80, Some("origin")));
        assert_eq!(port.target_port, Some(IntOrString::String("origin".into())));
        stream.spec.hls.low_latency = false;
        stream.spec.origin.service.node_port = Some(31080);
        let spec = origin_service(&stream).unwrap().spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.ports.unwrap()[0].node_port, None);
    }

    #[test]
    fn default_service_is_a_load_balancer_without_annotations() {
        let svc = ingest_service(&fixtures::stream("media", "demo"), &OperatorConfig::default()).unwrap();
        assert_eq!(svc.metadata.annotations, None);
        assert_eq!(svc.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    }
}
