//! `navarch server`: the control plane. Validates the flags, opens the store, starts the API
//! server, prints the kubeconfig path once ready, and shuts down on the first signal.
//! [`start`] and [`ControlPlane::wait`] are the two halves, so that `navarch up` can run a
//! node agent in between.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use navarch_apiserver::{ApiServer, Config};
use tokio_util::sync::CancellationToken;

use crate::cli::ServerArgs;
use crate::data_dir;

pub async fn run(args: ServerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(control_plane) = start(&args, shutdown.clone()).await? else {
        return Ok(());
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}",
        control_plane.server.kubeconfig_path().display()
    )
    .and_then(|()| stdout.flush())
    .context("cannot write to stdout")?;
    drop(stdout);
    control_plane.wait(shutdown).await;
    Ok(())
}

/// A running API server with its controllers and scheduler.
pub struct ControlPlane {
    pub server: ApiServer,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the API server, the controllers and the scheduler as `args` say. `None` when a
/// signal arrived while starting (the server has stopped again).
pub async fn start(
    args: &ServerArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<ControlPlane>> {
    let started = Instant::now();
    args.validate().map_err(anyhow::Error::msg)?;
    let ipnet::IpNet::V4(cluster_cidr) = args.cluster_cidr else {
        anyhow::bail!(
            "--cluster-cidr {} is not an IPv4 network",
            args.cluster_cidr
        );
    };
    let controllers_config = navarch_controllers::Config {
        cluster_cidr,
        node_monitor_grace_period: args.node_monitor_grace_period,
        ..Default::default()
    };
    // Read and checked now; parsed again for each leadership term.
    let mut scheduler_config = match &args.scheduler_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            navarch_scheduler::config::profiles_from_str(&text)?;
            Some(text)
        }
        None => None,
    };
    let data_dir = data_dir::prepare(&args.data_dir)?;
    let datastore = args.datastore_endpoint.clone().unwrap_or_default();
    let store = datastore.open(&data_dir).await?;
    let store_opened = started.elapsed();

    let config = Config {
        data_dir: data_dir.clone(),
        bind_address: args.bind_address,
        secure_port: args.secure_port,
        service_cidr: args.service_cidr,
    };
    let server = ApiServer::start(config, store, shutdown.clone()).await?;
    if shutdown.is_cancelled() {
        // A signal arrived while starting: do not announce a server that is going away.
        server.stopped().await;
        return Ok(None);
    }

    tracing::info!(
        address = %server.local_addr(),
        datastore = %datastore.describe(&data_dir),
        cluster.cidr = %args.cluster_cidr,
        service.cidr = %args.service_cidr,
        scheduler = !args.disable_scheduler,
        controllers = !args.disable_controllers,
        store_ms = store_opened.as_millis() as u64,
        ready_ms = started.elapsed().as_millis() as u64,
        "ready"
    );
    // Controller manager: the same public API, in-process, stopped by the same token.
    let controllers = (!args.disable_controllers).then(|| {
        let client = crate::in_process::client(
            server.router(),
            "system:kube-controller-manager",
            &["system:masters"],
        );
        tokio::spawn(navarch_controllers::run_with(
            client,
            controllers_config,
            shutdown.clone(),
        ))
    });
    // Scheduler: likewise in-process, as system:kube-scheduler, while this server holds the
    // kube-system/kube-scheduler Lease.
    let scheduler = (!args.disable_scheduler).then(|| {
        let client = crate::in_process::client(
            server.router(),
            "system:kube-scheduler",
            &["system:masters"],
        );
        let elector = navarch_controllers::leader::Elector::new(
            client.clone(),
            "kube-scheduler",
            navarch_controllers::leader::identity(),
            navarch_controllers::leader::Timing::default(),
        );
        let scheduler_config = scheduler_config.take();
        tokio::spawn(elector.run(shutdown.clone(), move |term| {
            let profiles = scheduler_config
                .as_deref()
                .and_then(|text| navarch_scheduler::config::profiles_from_str(text).ok());
            let scheduler = match profiles {
                Some(profiles) => navarch_scheduler::Scheduler::with_profiles(profiles),
                None => navarch_scheduler::Scheduler::new(
                    navarch_scheduler::plugins::default_framework(),
                ),
            };
            scheduler.run(client.clone(), term)
        }))
    });

    Ok(Some(ControlPlane {
        server,
        tasks: [controllers, scheduler].into_iter().flatten().collect(),
    }))
}

impl ControlPlane {
    /// Runs until `shutdown`, then stops the components and the server.
    pub async fn wait(self, shutdown: CancellationToken) {
        shutdown.cancelled().await;
        // The components stop on the token; one that does not within the grace is aborted,
        // so a stuck watch can never keep the process from exiting.
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(COMPONENT_STOP_GRACE, task)
                .await
                .is_err()
            {
                tracing::warn!("a component did not stop in time; aborting it");
                abort.abort();
            }
        }
        self.server.stopped().await;
        tracing::info!("stopped");
    }
}

/// How long controllers and the scheduler get to stop after a shutdown signal.
const COMPONENT_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
