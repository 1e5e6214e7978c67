//! The `livestream` command: the operator, the ingest worker and the standalone server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Live streaming on Kubernetes: RTMP in, an ABR ladder through ffmpeg, HLS out to
/// S3-compatible storage.
#[derive(Parser, Debug)]
#[command(name = "livestream", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the LiveStream CustomResourceDefinition as YAML.
    Crd,
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
        }
        Command::Version => {
            println!("livestream {}", env!("CARGO_PKG_VERSION"));
        }
    }
    Ok(())
}
