//! The `LiveStream` API (`livestream.dev/v1alpha1`): spec, status and the CRD.

pub mod reference;
mod spec;
mod status;

pub use spec::*;
pub use status::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

/// The API group of every type here.
pub const GROUP: &str = "livestream.dev";

/// The LiveStream CustomResourceDefinition.
///
/// Unsigned integers get the formats Kubernetes knows (`int32`, `int64`); their lower bound
/// of zero stays in `minimum`. The API server warns about `uint32` and `uint64`, which the
/// schema generator uses for Rust's unsigned types.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = LiveStream::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            kubernetes_integer_formats(schema);
        }
    }
    crd
}

fn kubernetes_integer_formats(schema: &mut JSONSchemaProps) {
    match schema.format.as_deref() {
        Some("uint32" | "uint8" | "uint16") => schema.format = Some("int32".into()),
        Some("uint64" | "uint") => schema.format = Some("int64".into()),
        _ => {}
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        kubernetes_integer_formats(child);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        kubernetes_integer_formats(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(additional)) = schema.additional_properties.as_mut() {
        kubernetes_integer_formats(additional);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of].into_iter().flatten() {
        list.iter_mut().for_each(kubernetes_integer_formats);
    }
}

/// The CRD as YAML, exactly as `livestream crd` prints it and `crds/livestream.yaml` holds it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crd()).map(|y| format!("---\n{y}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn integer_formats_are_ones_kubernetes_knows() {
        let yaml = super::crd_yaml().unwrap();
        assert!(!yaml.contains("format: uint"), "unsigned formats left in the CRD");
        assert!(yaml.contains("format: int32"));
    }
}
