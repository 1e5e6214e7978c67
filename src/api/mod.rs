//! The `LiveStream` API (`livestream.dev/v1alpha1`): spec, status and the CRD.

mod spec;
mod status;

pub use spec::*;
pub use status::*;

use kube::CustomResourceExt;

/// The API group of every type here.
pub const GROUP: &str = "livestream.dev";

/// The CRD as YAML, exactly as `livestream crd` prints it and `crds/livestream.yaml` holds it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&LiveStream::crd()).map(|y| format!("---\n{y}"))
}
