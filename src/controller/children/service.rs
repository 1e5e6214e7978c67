//! The ingest Service: the RTMP port of the worker, exposed as the spec asks.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::BuildError;
use super::names::{Component, child_metadata, ingest_service_name, selector_labels};
use crate::api::{LiveStream, ServiceType};

/// The ingest Service of `stream`.
pub fn ingest_service(stream: &LiveStream) -> Result<Service, BuildError> {
    let name = stream.name_any();
    let spec = &stream.spec.ingest.service;
    let mut metadata = child_metadata(stream, ingest_service_name(&name), Component::Ingest)?;
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    let type_ = match spec.type_ {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    Ok(Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![ServicePort {
                name: Some("rtmp".into()),
                port: spec.port,
                target_port: Some(IntOrString::String("rtmp".into())),
                node_port: match spec.type_ {
                    ServiceType::ClusterIP => None,
                    _ => spec.node_port,
                },
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
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
        stream.spec.ingest.service.type_ = ServiceType::NodePort;
        stream.spec.ingest.service.port = 1936;
        stream.spec.ingest.service.node_port = Some(31935);
        stream.spec.ingest.service.annotations.insert("lb.example/kind".into(), "nlb".into());
        let svc = ingest_service(&stream).unwrap();
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
    fn default_service_is_a_load_balancer_without_annotations() {
        let svc = ingest_service(&fixtures::stream("media", "demo")).unwrap();
        assert_eq!(svc.metadata.annotations, None);
        assert_eq!(svc.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    }
}
