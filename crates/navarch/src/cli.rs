//! The command line: subcommands and flags (DESIGN.md, "The binary").

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

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

    /// Do not run the controllers.
    #[arg(long)]
    pub disable_controllers: bool,

    /// Pod network; each node gets a /24 of it.
    #[arg(long, value_name = "CIDR", default_value = "10.42.0.0/16", value_parser = parse_cidr)]
    pub cluster_cidr: IpNet,

    /// Service ClusterIP range; its first address is the `kubernetes` service.
    #[arg(long, value_name = "CIDR", default_value = "10.43.0.0/16", value_parser = parse_cidr)]
    pub service_cidr: IpNet,
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
}
