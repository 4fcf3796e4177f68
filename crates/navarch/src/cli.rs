//! The command line: subcommands and flags (DESIGN.md, "The binary").

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use navarch_agent::host::Reserved;

use crate::datastore::Datastore;

#[derive(Debug, Parser)]
#[command(
    name = "navarch",
    version,
    about = "A Kubernetes-compatible orchestrator in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: API server over the store.
    Server(ServerArgs),
    /// Run a node agent that registers this node and runs the pods bound to it.
    Agent(AgentArgs),
    /// Run N simulated ("hollow") nodes in one process, for scale tests.
    Simulate(SimulateArgs),
    /// Run a single-node cluster: the control plane and this machine's node agent in one
    /// process.
    Up(UpArgs),
    /// Import, list and remove the images of this node's container runtime (no registry
    /// needed).
    Images(ImagesArgs),
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// The agent's data dir: its containerd listens on DIR/containerd/containerd.sock.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/navarch",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Another CRI runtime's socket (unix:///PATH) instead of the agent's containerd.
    #[arg(long, value_name = "URL", global = true)]
    pub container_runtime_endpoint: Option<String>,

    #[command(subcommand)]
    pub command: ImagesCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Import an OCI or Docker image archive (FILE.tar).
    Import {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// List the images.
    Ls,
    /// Remove images by name or id.
    Rm {
        #[arg(value_name = "IMAGE", required = true)]
        images: Vec<String>,
    },
}

/// How an agent reaches and authenticates to the API server.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The API server, e.g. https://10.0.0.1:6443.
    // `--cleanup` of `agent` needs no server (that of `simulate` finds out when it connects).
    #[arg(long, value_name = "URL", required_unless_present_any = ["kubeconfig", "cleanup"])]
    pub server: Option<String>,

    /// The node join token (the server's DATA_DIR/node-token).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "NAVARCH_TOKEN",
        hide_env_values = true,
        required_unless_present_any = ["kubeconfig", "cleanup"]
    )]
    pub token: Option<String>,

    /// The cluster CA certificate that the server's certificate must chain to (the server's
    /// DATA_DIR/tls/ca.crt); defaults to /var/lib/navarch/tls/ca.crt when that exists.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Use this kubeconfig instead of --server/--token.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["server", "token"])]
    pub kubeconfig: Option<PathBuf>,
}

/// What simulated nodes have and how they behave.
#[derive(Debug, Args)]
pub struct SimulatedNodeArgs {
    /// CPU capacity of each node.
    #[arg(long, value_name = "QUANTITY", default_value = "32", value_parser = parse_quantity)]
    pub cpu: String,

    /// Memory capacity of each node.
    #[arg(long, value_name = "QUANTITY", default_value = "256Gi", value_parser = parse_quantity)]
    pub memory: String,

    /// Ephemeral storage capacity of each node.
    #[arg(long, value_name = "QUANTITY", default_value = "100Gi", value_parser = parse_quantity)]
    pub ephemeral_storage: String,

    /// Pods each node accepts.
    #[arg(long, value_name = "N", default_value_t = 110)]
    pub max_pods: u32,

    /// How long a simulated pod sandbox takes to come up.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    pub pod_startup: Duration,

    /// First CrashLoopBackOff delay (doubles per restart).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub crashloop_backoff_initial: Duration,

    /// Longest CrashLoopBackOff delay; the back-off resets after twice this much running.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub crashloop_backoff_max: Duration,

    /// Resources kept for the operating system, out of the node's allocatable
    /// (`cpu=100m,memory=256Mi,ephemeral-storage=1Gi`).
    #[arg(long, value_name = "LIST", default_value = "", value_parser = parse_reserved)]
    pub system_reserved: Reserved,

    /// Resources kept for Navarch itself, out of the node's allocatable (same format).
    #[arg(long, value_name = "LIST", default_value = "", value_parser = parse_reserved)]
    pub kube_reserved: Reserved,
}

fn parse_reserved(s: &str) -> Result<Reserved, String> {
    Reserved::parse(s)
}

/// Container runtimes an agent can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// containerd over CRI, started and supervised by the agent.
    Containerd,
    /// Nothing runs; pods become Running after --pod-startup.
    Simulated,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// The Node's name (default: this machine's hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// The node's address (its InternalIP and its pods' hostIP).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub node_ip: IpAddr,

    /// Directory for the agent's state (unused by the simulated runtime).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/navarch")]
    pub data_dir: PathBuf,

    /// The container runtime.
    #[arg(long, value_enum, default_value = "containerd")]
    pub runtime: RuntimeKind,

    /// containerd's socket (for --runtime containerd).
    #[arg(long, value_name = "URL")]
    pub container_runtime_endpoint: Option<String>,

    /// Remove everything this node's agent created on the machine — its pods' containers
    /// and sandboxes, its containerd's state in --data-dir, mounts, the pod bridge, its
    /// nftables table, the blackhole routes — then exit.
    #[arg(long)]
    pub cleanup: bool,

    #[command(flatten)]
    pub node: SimulatedNodeArgs,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// The Node's name (default: this machine's hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// The node's address (its InternalIP and its pods' hostIP).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub node_ip: IpAddr,

    /// The container runtime.
    #[arg(long, value_enum, default_value = "containerd")]
    pub runtime: RuntimeKind,

    /// Use this CRI runtime instead of starting containerd (for --runtime containerd).
    #[arg(long, value_name = "URL")]
    pub container_runtime_endpoint: Option<String>,

    /// Remove everything the node created on the machine (as `navarch agent --cleanup`),
    /// then exit; the cluster's state in --data-dir stays.
    #[arg(long)]
    pub cleanup: bool,

    #[command(flatten)]
    pub node: SimulatedNodeArgs,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// How many nodes to run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub nodes: u32,

    /// Node names are PREFIX0, PREFIX1, … (zero-padded to the same width).
    #[arg(long, value_name = "PREFIX", default_value = "sim-")]
    pub name_prefix: String,

    /// On exit, delete the Nodes and their Leases (by default they stay and go NotReady).
    #[arg(long)]
    pub cleanup: bool,

    #[command(flatten)]
    pub node: SimulatedNodeArgs,
}

/// A Go-style duration: `200ms`, `10s`, `5m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    navarch_agent::duration::parse_duration(s)
}

/// A Kubernetes quantity such as `32`, `3500m`, `256Gi`, `1.5G`.
fn parse_quantity(s: &str) -> Result<String, String> {
    const SUFFIXES: &[&str] = &[
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let digits_end = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let valid = !number.is_empty()
        && number.parse::<f64>().is_ok_and(|n| n > 0.0)
        && SUFFIXES.contains(&suffix);
    if valid {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a quantity such as 32, 500m or 256Gi"))
    }
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Directory for the state database, certificates and the admin kubeconfig.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/navarch")]
    pub data_dir: PathBuf,

    /// Address to listen on (all interfaces by default; the kubeconfig uses 127.0.0.1).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// HTTPS port of the API server.
    #[arg(long, value_name = "PORT", default_value_t = 6443)]
    pub secure_port: u16,

    /// Where objects are stored: `sqlite://PATH` (default `sqlite://DATA_DIR/state.db`) or
    /// etcd endpoints `http://HOST:2379[,http://HOST:2379…]`.
    #[arg(long, value_name = "URL")]
    pub datastore_endpoint: Option<Datastore>,

    /// Do not run the scheduler.
    #[arg(long)]
    pub disable_scheduler: bool,

    /// A KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) file: scheduler profiles,
    /// their plugins and plugin arguments.
    #[arg(long, value_name = "FILE")]
    pub scheduler_config: Option<std::path::PathBuf>,

    /// Do not run the controllers.
    #[arg(long)]
    pub disable_controllers: bool,

    /// Pod network; each node gets a /24 of it.
    #[arg(long, value_name = "CIDR", default_value = "10.42.0.0/16", value_parser = parse_cidr)]
    pub cluster_cidr: IpNet,

    /// Service ClusterIP range; its first address is the `kubernetes` service.
    #[arg(long, value_name = "CIDR", default_value = "10.43.0.0/16", value_parser = parse_cidr)]
    pub service_cidr: IpNet,

    /// A node whose kubelet has neither renewed its Lease nor posted status for this long is
    /// marked Unknown and tainted unreachable.
    #[arg(long, value_name = "DURATION", default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
}

impl ServerArgs {
    /// Checks across flags that clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.cluster_cidr.contains(&self.service_cidr.network())
            || self.service_cidr.contains(&self.cluster_cidr.network())
        {
            return Err(format!(
                "--cluster-cidr {} and --service-cidr {} overlap",
                self.cluster_cidr, self.service_cidr
            ));
        }
        Ok(())
    }
}

/// A network in CIDR notation whose host bits are zero, with room for at least one host.
fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s
        .parse()
        .map_err(|_| format!("{s:?} is not a CIDR such as 10.42.0.0/16"))?;
    if net.trunc() != net {
        return Err(format!(
            "{s} has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    if net.hosts().next().is_none() {
        return Err(format!("{s} has no usable addresses"));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerArgs, clap::Error> {
        let mut argv = vec!["navarch", "server"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Server(args) => args,
            _ => unreachable!("parsed the server subcommand"),
        })
    }

    #[test]
    fn defaults_follow_the_design() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.data_dir, PathBuf::from("/var/lib/navarch"));
        assert_eq!(args.secure_port, 6443);
        assert_eq!(args.bind_address.to_string(), "0.0.0.0");
        assert_eq!(args.cluster_cidr.to_string(), "10.42.0.0/16");
        assert_eq!(args.service_cidr.to_string(), "10.43.0.0/16");
        assert!(args.datastore_endpoint.is_none());
        assert!(!args.disable_scheduler && !args.disable_controllers);
        assert_eq!(args.node_monitor_grace_period, Duration::from_secs(50));
        args.validate().unwrap();
    }

    #[test]
    fn bad_cidrs_are_rejected() {
        assert!(parse(&["--cluster-cidr", "10.42.0.0"]).is_err());
        assert!(parse(&["--cluster-cidr", "10.42.0.1/16"]).is_err());
        assert!(parse(&["--service-cidr", "banana"]).is_err());
        assert!(parse(&["--service-cidr", "10.43.0.0/33"]).is_err());
        assert!(parse(&["--service-cidr", "fd00::/64"]).is_ok());
    }

    #[test]
    fn overlapping_cidrs_are_rejected() {
        let args = parse(&[
            "--cluster-cidr",
            "10.0.0.0/8",
            "--service-cidr",
            "10.43.0.0/16",
        ])
        .unwrap();
        assert!(args.validate().unwrap_err().contains("overlap"));
    }

    #[test]
    fn bad_ports_and_addresses_are_rejected() {
        assert!(parse(&["--secure-port", "70000"]).is_err());
        assert!(parse(&["--bind-address", "localhost:1"]).is_err());
    }

    fn parse_simulate(args: &[&str]) -> Result<SimulateArgs, clap::Error> {
        let mut argv = vec!["navarch", "simulate"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Simulate(args) => args,
            _ => unreachable!("parsed the simulate subcommand"),
        })
    }

    #[test]
    fn simulate_defaults_follow_the_issue() {
        let args = parse_simulate(&["--server", "https://x:6443", "--token", "t", "--nodes", "3"])
            .unwrap();
        assert_eq!(args.nodes, 3);
        assert_eq!(args.name_prefix, "sim-");
        assert_eq!(args.node.cpu, "32");
        assert_eq!(args.node.memory, "256Gi");
        assert_eq!(args.node.max_pods, 110);
        assert_eq!(args.node.pod_startup, Duration::from_millis(200));
        assert_eq!(args.node.crashloop_backoff_initial, Duration::from_secs(10));
        assert_eq!(args.node.crashloop_backoff_max, Duration::from_secs(300));
        assert!(!args.cleanup);
    }

    #[test]
    fn simulate_needs_credentials_and_valid_values() {
        assert!(parse_simulate(&["--nodes", "3"]).is_err());
        assert!(parse_simulate(&["--kubeconfig", "k", "--nodes", "3"]).is_ok());
        assert!(parse_simulate(&["--kubeconfig", "k", "--token", "t", "--nodes", "3"]).is_err());
        assert!(parse_simulate(&["--kubeconfig", "k", "--nodes", "0"]).is_err());
        assert!(
            parse_simulate(&["--kubeconfig", "k", "--nodes", "1", "--memory", "lots"]).is_err()
        );
        assert!(
            parse_simulate(&["--kubeconfig", "k", "--nodes", "1", "--pod-startup", "soon"])
                .is_err()
        );
    }

    #[test]
    fn agent_runtime_defaults_to_containerd() {
        let cli = Cli::try_parse_from(["navarch", "agent", "--kubeconfig", "k"]).unwrap();
        let Command::Agent(args) = cli.command else {
            panic!("not the agent subcommand")
        };
        assert_eq!(args.runtime, RuntimeKind::Containerd);
        let cli = Cli::try_parse_from([
            "navarch",
            "agent",
            "--kubeconfig",
            "k",
            "--runtime",
            "simulated",
        ])
        .unwrap();
        let Command::Agent(args) = cli.command else {
            panic!("not the agent subcommand")
        };
        assert_eq!(args.runtime, RuntimeKind::Simulated);
    }

    #[test]
    fn cleanup_and_reservations_parse_for_agent_and_up() {
        let cli = Cli::try_parse_from([
            "navarch",
            "agent",
            "--cleanup",
            "--system-reserved",
            "cpu=100m,memory=1Gi",
            "--kube-reserved",
            "ephemeral-storage=1Gi",
        ])
        .unwrap();
        let Command::Agent(args) = cli.command else {
            panic!("not the agent subcommand")
        };
        assert!(args.cleanup);
        let reserved = args.node.system_reserved.plus(args.node.kube_reserved);
        assert_eq!(reserved.cpu_milli, 100);
        assert_eq!(reserved.memory, 1 << 30);
        assert_eq!(reserved.ephemeral_storage, 1 << 30);
        let cli = Cli::try_parse_from(["navarch", "up", "--cleanup"]).unwrap();
        let Command::Up(args) = cli.command else {
            panic!("not the up subcommand")
        };
        assert!(args.cleanup);
        assert_eq!(args.node.system_reserved, Reserved::default());
        assert!(
            Cli::try_parse_from(["navarch", "up", "--kube-reserved", "gpu=1"]).is_err(),
            "unknown resources are refused"
        );
    }
}
