//! Logs, metrics and health endpoints, shared by every `livestream` command.

mod health;
mod http;
mod logging;
mod signals;

pub use health::{Health, HealthCheck};
pub use http::{HttpLimits, TelemetryServerError, bind, routes, serve, serve_router};
pub use logging::{LogFormat, clip, init_logging};
pub use signals::shutdown_signal;
