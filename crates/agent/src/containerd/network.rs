//! The host side of the pod network that is not CNI's job: blackhole routes so that pod and
//! service addresses never leave the machine, and removing the node's bridge on cleanup.
//!
//! A blackhole route for the cluster CIDR (`10.42.0.0/16`) loses to the more specific `/24`
//! the bridge gets for this node's pods, so local pods are reached and every other pod or
//! service address is dropped here instead of following the default route. Done with
//! iproute2's `ip`, as the CNI plugins themselves are separate programs too.

use ipnet::IpNet;
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
