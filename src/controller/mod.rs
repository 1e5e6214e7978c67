//! The operator: turns each `LiveStream` into a worker Deployment, its configuration, an
//! ingest Service and a stream-key Secret, keeps them applied, reports the stream's status
//! (with live figures read from the worker) and cleans up storage on delete.
//!
//! The decisions are pure functions ([`children`], [`validate`], [`status`], [`leader`],
//! [`probe`]); the kube-rs `Controller`, the Lease loop and the HTTP poll are thin shells
//! around them.

pub mod apply;
pub mod args;
pub mod backoff;
pub mod cache;
pub mod children;
pub mod cleanup;
pub mod config;
pub mod events;
pub mod gateway_routes;
pub mod leader;
pub mod metrics;
pub mod probe;
pub mod reconcile;
pub mod run;
pub mod s3_cleaner;
pub mod status;
pub mod validate;

pub use args::ControllerArgs;
pub use cleanup::{CleanupError, PrefixCleaner, StorageCredentials, StorageTarget};
pub use config::OperatorConfig;
pub use metrics::Metrics;
pub use run::{RunError, RunSettings, run, run_controller};
