//! `navarch`: the one binary. It parses the command line, initialises logging, runs the
//! chosen component and turns failures into one `navarch: error: …` line and exit code 1.
//! Everything else lives in the library crates.

mod agent;
mod cleanup;
mod cli;
mod data_dir;
mod datastore;
mod images;
mod in_process;
#[cfg(test)]
mod scheduler_tests;
mod server;
mod signals;
mod up;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// How long leftover background tasks may take once the command has finished.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let result = runtime.block_on(run(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    signals::install(shutdown.clone())?;
    match cli.command {
        Command::Server(args) => server::run(args, shutdown).await,
        Command::Agent(args) if args.cleanup => cleanup::agent(args).await,
        Command::Up(args) if args.cleanup => cleanup::up(args).await,
        Command::Agent(args) => agent::run_agent(args, shutdown).await,
        Command::Simulate(args) => agent::run_simulate(args, shutdown).await,
        Command::Up(args) => up::run(args, shutdown).await,
        Command::Images(args) => images::run(args).await,
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("navarch: error: {e:#}");
    ExitCode::FAILURE
}
