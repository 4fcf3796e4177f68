//! Node IPAM: every node gets a block of the cluster network (`--cluster-cidr`, a /24 each by
//! default) in `spec.podCIDR` / `spec.podCIDRs`, as upstream's range allocator does. Blocks
//! already set on nodes (by an earlier run, or by hand) are respected; a node's block is free
//! again once the node is deleted. When the network is exhausted the node stays without one
//! and a `CIDRNotAvailable` event says so.
//!
//! One watch over the nodes, handled in order by one task, so allocations never race; the
//! writes go out concurrently.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use tokio::task::JoinSet;

use crate::events::Recorder;
use crate::Config;

/// Assignments written at once.
const MAX_IN_FLIGHT: usize = 32;

/// Hands out the blocks of one network.
#[derive(Debug)]
pub struct Allocator {
    network: Ipv4Net,
    prefix: u8,
    /// Block index → node.
    used: BTreeMap<u32, String>,
    /// Node → block index.
    owned: HashMap<String, u32>,
    /// Where the next search starts (upstream allocates round-robin).
    next: u32,
}

impl Allocator {
    pub fn new(network: Ipv4Net, prefix: u8) -> Allocator {
        let prefix = prefix.max(network.prefix_len()).min(32);
        Allocator {
            network,
            prefix,
            used: BTreeMap::new(),
            owned: HashMap::new(),
            next: 0,
        }
    }

    /// How many blocks the network has.
    pub fn capacity(&self) -> u64 {
        1u64 << (self.prefix - self.network.prefix_len())
    }

    fn block(&self, index: u32) -> Ipv4Net {
        let size = 1u64 << (32 - self.prefix);
        let base = u64::from(u32::from(self.network.network())) + u64::from(index) * size;
        Ipv4Net::new((base as u32).into(), self.prefix).expect("prefix checked")
    }

    fn index_of(&self, cidr: Ipv4Net) -> Option<u32> {
        if cidr.prefix_len() != self.prefix || !self.network.contains(&cidr.network()) {
            return None;
        }
        let offset = u32::from(cidr.network()) - u32::from(self.network.network());
        Some(offset >> (32 - self.prefix))
    }

    /// Record a block a node already has. False when it lies outside the network (then it is
    /// not ours to track) or another node holds it.
    pub fn occupy(&mut self, node: &str, cidr: Ipv4Net) -> bool {
        let Some(index) = self.index_of(cidr) else {
            return false;
        };
        match self.used.get(&index) {
            Some(holder) if holder != node => false,
            _ => {
                self.release(node);
                self.used.insert(index, node.to_string());
                self.owned.insert(node.to_string(), index);
                true
            }
        }
    }

    /// The node's block, allocating the next free one if it has none.
    pub fn allocate(&mut self, node: &str) -> Option<Ipv4Net> {
        if let Some(&index) = self.owned.get(node) {
            return Some(self.block(index));
        }
        let capacity = self.capacity();
        for step in 0..capacity {
            let index = ((u64::from(self.next) + step) % capacity) as u32;
            if let std::collections::btree_map::Entry::Vacant(free) = self.used.entry(index) {
                free.insert(node.to_string());
                self.owned.insert(node.to_string(), index);
                self.next = ((u64::from(index) + 1) % capacity) as u32;
                return Some(self.block(index));
            }
        }
        None
    }

    /// Release the node's block if it is `cidr` (a failed assignment).
    pub fn release_if(&mut self, node: &str, cidr: Ipv4Net) {
        if self.owned.get(node).map(|&i| self.block(i)) == Some(cidr) {
            self.release(node);
        }
    }

    pub fn release(&mut self, node: &str) {
        if let Some(index) = self.owned.remove(node) {
            self.used.remove(&index);
        }
    }
}

fn pod_cidr(node: &Node) -> Option<Ipv4Net> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|c| c.parse().ok())
}

/// Run until `shutdown` fires.
pub async fn run(client: Client, config: Config, shutdown: CancellationToken) {
    tokio::select! {
        () = allocate_loop(client, config) => {}
        () = shutdown.cancelled() => {}
    }
}

async fn allocate_loop(client: Client, config: Config) {
    let nodes: Api<Node> = Api::all(client.clone());
    let events = Recorder::new(client.clone(), "cidrAllocator");
    let mut allocator = Allocator::new(config.cluster_cidr, config.node_cidr_mask);
    let mut stream = watcher::watcher(nodes.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    // Nodes of the list being received (a relist replaces what we knew).
    let mut listing: Vec<Node> = Vec::new();
    let mut known: HashSet<String> = HashSet::new();
    // Assignments in flight: (node, block, whether it was written).
    let mut patches: JoinSet<(String, Ipv4Net, bool)> = JoinSet::new();
    loop {
        let event = tokio::select! {
            Some(done) = patches.join_next(), if !patches.is_empty() => {
                if let Ok((name, cidr, false)) = done {
                    allocator.release_if(&name, cidr);
                }
                continue;
            }
            event = stream.next() => match event {
                Some(event) => event,
                None => break,
            },
        };
        let todo: Vec<Node> = match event {
            Ok(Event::Init) => {
                listing.clear();
                Vec::new()
            }
            Ok(Event::InitApply(node)) => {
                listing.push(node);
                Vec::new()
            }
            Ok(Event::InitDone) => {
                let listed: HashSet<String> = listing.iter().map(|n| n.name_any()).collect();
                for gone in known.difference(&listed) {
                    allocator.release(gone);
                }
                known = listed;
                // Blocks in use first, then the nodes that need one.
                for node in &listing {
                    if let Some(cidr) = pod_cidr(node) {
                        occupy(&mut allocator, node, cidr);
                    }
                }
                std::mem::take(&mut listing)
            }
            Ok(Event::Apply(node)) => {
                known.insert(node.name_any());
                vec![node]
            }
            Ok(Event::Delete(node)) => {
                known.remove(&node.name_any());
                allocator.release(&node.name_any());
                Vec::new()
            }
            Err(error) => {
                tracing::debug!(%error, "node IPAM watch failed");
                Vec::new()
            }
        };
        for node in todo {
            let name = node.name_any();
            if let Some(cidr) = pod_cidr(&node) {
                occupy(&mut allocator, &node, cidr);
                continue;
            }
            if node.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(cidr) = allocator.allocate(&name) else {
                tracing::warn!(node = %name, network = %config.cluster_cidr, "no pod CIDR left");
                let regarding = ObjectReference {
                    kind: Some("Node".into()),
                    name: Some(name.clone()),
                    uid: node.metadata.uid.clone(),
                    ..Default::default()
                };
                events
                    .record(
                        regarding,
                        "Normal",
                        "CIDRNotAvailable",
                        &format!("Node {name} status is now: CIDRNotAvailable"),
                    )
                    .await;
                continue;
            };
            while patches.len() >= MAX_IN_FLIGHT {
                if let Some(Ok((name, cidr, false))) = patches.join_next().await {
                    allocator.release_if(&name, cidr);
                }
            }
            let nodes = nodes.clone();
            patches.spawn(async move {
                let patch =
                    json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
                match nodes
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(node = %name, pod_cidr = %cidr, "assigned a pod CIDR");
                        (name, cidr, true)
                    }
                    Err(error) => {
                        // Set by someone else meanwhile, or the node is gone: the watch tells.
                        tracing::debug!(node = %name, %error, "cannot assign a pod CIDR");
                        (name, cidr, false)
                    }
                }
            });
        }
    }
}

fn occupy(allocator: &mut Allocator, node: &Node, cidr: Ipv4Net) {
    let name = node.name_any();
    if !allocator.occupy(&name, cidr) && allocator.index_of(cidr).is_some() {
        tracing::warn!(node = %name, pod_cidr = %cidr, "pod CIDR already held by another node");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_are_handed_out_in_turn_and_reused_after_release() {
        let mut a = Allocator::new(net("10.42.0.0/22"), 24);
        assert_eq!(a.capacity(), 4);
        assert_eq!(a.allocate("n1"), Some(net("10.42.0.0/24")));
        assert_eq!(a.allocate("n2"), Some(net("10.42.1.0/24")));
        // Asking again gives the same block.
        assert_eq!(a.allocate("n1"), Some(net("10.42.0.0/24")));
        // A block set by hand is respected.
        assert!(a.occupy("n3", net("10.42.2.0/24")));
        assert!(!a.occupy("n4", net("10.42.2.0/24")));
        assert_eq!(a.allocate("n4"), Some(net("10.42.3.0/24")));
        assert_eq!(a.allocate("n5"), None, "exhausted");
        a.release("n2");
        assert_eq!(a.allocate("n5"), Some(net("10.42.1.0/24")));
        // Blocks outside the network, or of another size, are not tracked.
        assert!(!a.occupy("x", net("10.99.0.0/24")));
        assert!(!a.occupy("x", net("10.42.0.0/25")));
    }

    #[test]
    fn a_wide_network_gives_many_blocks() {
        let mut a = Allocator::new(net("10.64.0.0/10"), 24);
        assert_eq!(a.capacity(), 16_384);
        for i in 0..5000 {
            assert!(a.allocate(&format!("n{i}")).is_some());
        }
        assert_eq!(a.allocate("last"), Some(net("10.83.136.0/24")));
    }
}
