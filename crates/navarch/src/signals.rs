//! SIGTERM / SIGINT: the first one starts a graceful shutdown, the second ends the process.

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Install the handlers now (so that a signal during startup is not lost) and cancel
/// `shutdown` on the first signal; a second one exits at once with 128 + its number.
pub fn install(shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let (name, number) = tokio::select! {
                _ = term.recv() => ("SIGTERM", 15),
                _ = int.recv() => ("SIGINT", 2),
            };
            if first {
                first = false;
                tracing::info!(
                    signal = name,
                    "shutting down; send it again to exit immediately"
                );
                shutdown.cancel();
            } else {
                tracing::warn!(signal = name, "exiting immediately");
                std::process::exit(128 + number);
            }
        }
    });
    Ok(())
}
