//! The host side of the pod network that is not CNI's job: blackhole routes so that pod and
//! service addresses never leave the machine, and removing the node's bridge on cleanup.
//!
//! Forwarding is on for the bridge (the CNI plugin turns it on), and with `ipMasq` off a
//! pod's packet to an outside address would still leave with its pod address as source: each
//! node's nftables table `inet navarch_BRIDGE` drops new connections from its bridge to any
//! interface but the pod bridges (`nv*`). Replies to connections made to pods (NodePorts)
//! still pass. A table per node, so that removing one node leaves the others' alone.
//!
//! A blackhole route for the cluster CIDR (`10.42.0.0/16`) loses to the more specific `/24`
//! the bridge gets for this node's pods, so local pods are reached and every other pod or
//! service address is dropped here instead of following the default route. Done with
//! iproute2's `ip`, as the CNI plugins themselves are separate programs too.

use std::process::Stdio;

use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::Error;

async fn ip(args: &[&str]) -> Result<std::process::Output, Error> {
    Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| Error::Command {
            command: format!("ip {}", args.join(" ")),
            message: e.to_string(),
        })
}

/// `ip route replace blackhole CIDR` for each range (idempotent).
pub async fn ensure_blackhole_routes(cidrs: &[IpNet]) -> Result<(), Error> {
    for cidr in cidrs {
        let cidr = cidr.trunc().to_string();
        let family = if cidr.contains(':') { "-6" } else { "-4" };
        let output = ip(&[family, "route", "replace", "blackhole", &cidr]).await?;
        if !output.status.success() {
            return Err(Error::Command {
                command: format!("ip route replace blackhole {cidr}"),
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

/// Remove blackhole routes added by [`ensure_blackhole_routes`]; missing ones are fine.
pub async fn remove_blackhole_routes(cidrs: &[IpNet]) -> Result<(), Error> {
    for cidr in cidrs {
        let cidr = cidr.trunc().to_string();
        let family = if cidr.contains(':') { "-6" } else { "-4" };
        // Fails only when the route is not there.
        let _ = ip(&[family, "route", "del", "blackhole", &cidr]).await?;
    }
    Ok(())
}

/// Whether a network interface of that name exists.
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Delete the node's bridge (after its pods are gone); a missing bridge is fine.
pub async fn remove_bridge(name: &str) -> Result<(), Error> {
    if !link_exists(name) {
        return Ok(());
    }
    let output = ip(&["link", "delete", name]).await?;
    if !output.status.success() && link_exists(name) {
        return Err(Error::Command {
            command: format!("ip link delete {name}"),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The nftables table of [`pod_egress_filter`] for the node whose pod bridge is `bridge`.
pub fn egress_table(bridge: &str) -> String {
    format!("navarch_{bridge}")
}

/// The ruleset that keeps traffic from `bridge`'s pods on the machine, replacing any earlier
/// version of the table in one transaction.
pub fn pod_egress_filter(bridge: &str) -> String {
    let table = egress_table(bridge);
    format!(
        r#"table inet {table} {{}}
delete table inet {table}
table inet {table} {{
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    iifname "{bridge}" oifname != "nv*" ct state new counter drop
  }}
}}
"#
    )
}

async fn nft(input: Option<&str>, args: &[&str]) -> Result<(), Error> {
    let command = format!("nft {}", args.join(" "));
    let failed = |message: String| Error::Command {
        command: command.clone(),
        message,
    };
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| failed(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Install [`pod_egress_filter`] for `bridge` (idempotent).
pub async fn ensure_pod_egress_filter(bridge: &str) -> Result<(), Error> {
    nft(Some(&pod_egress_filter(bridge)), &["-f", "-"]).await
}

/// Whether the table of [`pod_egress_filter`] for `bridge` is there.
pub async fn pod_egress_filter_installed(bridge: &str) -> bool {
    nft(None, &["list", "table", "inet", &egress_table(bridge)])
        .await
        .is_ok()
}

/// Remove the table of [`pod_egress_filter`] for `bridge`; a missing one is fine.
pub async fn remove_pod_egress_filter(bridge: &str) -> Result<(), Error> {
    if !pod_egress_filter_installed(bridge).await {
        return Ok(());
    }
    nft(None, &["delete", "table", "inet", &egress_table(bridge)]).await
}
