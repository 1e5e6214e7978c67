//! Logs, metrics and health endpoints, shared by every `livestream` command.

mod health;
mod http;
mod logging;

pub use health::{Health, HealthCheck};
pub use http::{TelemetryServerError, bind, routes, serve};
pub use logging::{LogFormat, init_logging};
