//! The `livestream` command: the operator, the ingest worker and the standalone server.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use livestream::telemetry::{LogFormat, init_logging};

/// Live streaming on Kubernetes: RTMP in, an ABR ladder through ffmpeg, HLS out to
/// S3-compatible storage.
#[derive(Parser, Debug)]
#[command(name = "livestream", version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "LIVESTREAM_LOG_FORMAT", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run standalone: RTMP in, HLS on local disk (or S3) served over HTTP.
    Serve(Box<livestream::serve::ServeArgs>),
    /// Run the ingest worker of one LiveStream from its configuration file.
    Worker {
        /// The configuration file the operator mounts.
        #[arg(long, env = "LIVESTREAM_WORKER_CONFIG")]
        config: PathBuf,
        /// Bind the listeners to this address (the pod IP) instead of the configured one.
        #[arg(long, env = "LIVESTREAM_LISTEN_IP")]
        listen_ip: Option<IpAddr>,
    },
    /// Run the operator: reconcile LiveStreams into workers.
    Controller(Box<livestream::controller::ControllerArgs>),
    /// Run the ingest gateway: one RTMP/RTMPS address for every stream, routing each
    /// publish by its key to the stream's worker.
    Gateway(Box<livestream::gateway::GatewayArgs>),
    /// Print the LiveStream CustomResourceDefinition as YAML.
    Crd,
    /// Print the reference of every LiveStream field as Markdown (docs/reference.md).
    Reference,
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crd => {
            print!("{}", livestream::api::crd_yaml()?);
            Ok(())
        }
        Command::Reference => {
            print!("{}", livestream::api::reference::markdown());
            Ok(())
        }
        Command::Version => {
            println!("livestream {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Serve(args) => {
            init_logging(cli.log_format);
            runtime()?.block_on(livestream::serve::run(*args)).context("livestream serve")
        }
        Command::Controller(args) => {
            init_logging(cli.log_format);
            let cleaner = std::sync::Arc::new(livestream::controller::s3_cleaner::S3Cleaner);
            runtime()?.block_on(livestream::controller::run(*args, cleaner)).context("livestream controller")
        }
        Command::Gateway(args) => {
            init_logging(cli.log_format);
            runtime()?.block_on(livestream::gateway::run(*args)).context("livestream gateway")
        }
        Command::Worker { config, listen_ip } => {
            init_logging(cli.log_format);
            let config = livestream::worker::config::WorkerConfig::load(&config)?;
            runtime()?.block_on(livestream::worker::run::run(config, listen_ip)).context("livestream worker")
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the async runtime")
}
