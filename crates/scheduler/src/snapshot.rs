//! The scheduler's view of the cluster: nodes with the pods on them (bound or assumed) and the
//! resources and host ports those pods take. One writer (the scheduler loop), no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;

use crate::plugins::inter_pod_affinity::{PodTerms, Term};
use crate::pod_index::PodIndex;
use crate::resources::{allowed_pods, pod_requests, Resources};

/// `namespace/name`, the key pods are tracked by.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A host port a pod binds: (host IP, protocol, port). An empty IP means every address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Two ports clash when protocol and port match and either address is a wildcard or both
    /// are the same address.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (wildcard(&self.ip) || wildcard(&other.ip) || self.ip == other.ip)
    }
}

/// The host ports of a pod's containers.
pub fn pod_host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            Some(HostPort {
                ip: p.host_ip.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port,
            })
        })
        .collect()
}

/// A pod with what it takes from its node, computed once.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub requests: Resources,
    pub non_zero_requests: Resources,
    pub host_ports: Vec<HostPort>,
    /// The pod's affinity terms, resolved once; `None` when it has none.
    pub terms: Option<Arc<PodTerms>>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        let terms = PodTerms::of(&pod);
        PodInfo {
            requests: pod_requests(&pod, false),
            non_zero_requests: pod_requests(&pod, true),
            host_ports: pod_host_ports(&pod),
            terms: (!terms.is_empty()).then(|| Arc::new(terms)),
            pod,
        }
    }

    /// Whether the pod has required anti-affinity terms.
    pub fn has_required_anti_affinity(&self) -> bool {
        self.terms
            .as_ref()
            .is_some_and(|t| !t.required_anti_affinity.is_empty())
    }
}

/// A node and everything placed on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub pods: BTreeMap<String, PodInfo>,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub used_ports: Vec<HostPort>,
    /// How many of the pods have affinity terms of any kind, and required anti-affinity, so
    /// that the InterPodAffinity plugin skips nodes without any.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> Self {
        let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable: Resources::from_list(alloc),
            allowed_pods: allowed_pods(alloc),
            node,
            pods: BTreeMap::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            used_ports: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        }
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.metadata.labels.as_ref()
    }

    pub fn add_pod(&mut self, info: PodInfo) {
        let key = pod_key(&info.pod);
        self.remove_pod(&key);
        self.requested.add(&info.requests);
        self.non_zero_requested.add(&info.non_zero_requests);
        self.used_ports.extend(info.host_ports.iter().cloned());
        self.pods_with_affinity += usize::from(info.terms.is_some());
        self.pods_with_required_anti_affinity += usize::from(info.has_required_anti_affinity());
        self.pods.insert(key, info);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<PodInfo> {
        let info = self.pods.remove(key)?;
        self.requested.sub(&info.requests);
        self.non_zero_requested.sub(&info.non_zero_requests);
        self.pods_with_affinity -= usize::from(info.terms.is_some());
        self.pods_with_required_anti_affinity -= usize::from(info.has_required_anti_affinity());
        for p in &info.host_ports {
            if let Some(i) = self.used_ports.iter().position(|u| u == p) {
                self.used_ports.swap_remove(i);
            }
        }
        Some(info)
    }

    /// Replaces the node object, keeping its pods.
    fn set_node(&mut self, node: Arc<Node>) {
        let mut fresh = NodeInfo::new(node);
        fresh.pods = std::mem::take(&mut self.pods);
        fresh.requested = std::mem::take(&mut self.requested);
        fresh.non_zero_requested = std::mem::take(&mut self.non_zero_requested);
        fresh.used_ports = std::mem::take(&mut self.used_ports);
        fresh.pods_with_affinity = self.pods_with_affinity;
        fresh.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity;
        *self = fresh;
    }
}

/// All nodes in a stable order, the pods placed on them, and which placements are only assumed
/// (decided by the scheduler, binding not yet observed). Pods may reference a node that is not
/// known yet; they are kept aside and attached when it appears.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    index: foldhash::HashMap<String, usize>,
    /// Pod key → node name, for every placed pod (bound or assumed).
    placed: foldhash::HashMap<String, String>,
    /// Pods on nodes not (yet) known.
    orphans: HashMap<String, PodInfo>,
    assumed: HashSet<String>,
    /// Pending pods nominated to a node by preemption: pod key → (node, pod). Filters count
    /// those of at least the incoming pod's priority as if placed, so lower-priority pods do not
    /// take the room preemption made.
    nominated: HashMap<String, (String, Arc<Pod>)>,
    /// Every placed pod (on a known node or not) by label, and required anti-affinity terms
    /// by the labels they demand.
    pub pod_index: PodIndex,
    /// Other objects plugins consult: namespaces (for affinity namespace selectors), disruption
    /// budgets (preemption) and the workloads that give pods default spreading.
    pub objects: ClusterObjects,
}

/// Objects besides nodes and pods, each keyed by `namespace/name` (cluster-scoped ones by
/// `/name`; namespaces by name).
#[derive(Debug, Default, Clone)]
pub struct ClusterObjects {
    pub namespace_labels: HashMap<String, BTreeMap<String, String>>,
    pub pdbs: BTreeMap<String, Arc<PodDisruptionBudget>>,
    pub services: BTreeMap<String, Arc<Service>>,
    pub replica_sets: BTreeMap<String, Arc<ReplicaSet>>,
    pub stateful_sets: BTreeMap<String, Arc<StatefulSet>>,
    pub replication_controllers: BTreeMap<String, Arc<ReplicationController>>,
    pub pvcs: BTreeMap<String, Arc<PersistentVolumeClaim>>,
    pub pvs: BTreeMap<String, Arc<PersistentVolume>>,
    pub storage_classes: BTreeMap<String, Arc<StorageClass>>,
}

impl ClusterObjects {
    /// Labels of a namespace (none if it is not known).
    pub fn namespace_labels(&self, ns: &str) -> Option<&BTreeMap<String, String>> {
        self.namespace_labels.get(ns)
    }

    /// Items of one kind in a namespace.
    pub fn in_namespace<'a, T>(
        map: &'a BTreeMap<String, Arc<T>>,
        ns: &'a str,
    ) -> impl Iterator<Item = &'a Arc<T>> + 'a {
        let prefix = format!("{ns}/");
        map.range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
    }
}

impl Snapshot {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Every placed pod with its node.
    pub fn pods(&self) -> impl Iterator<Item = (&NodeInfo, &PodInfo)> {
        self.nodes
            .iter()
            .flat_map(|n| n.pods.values().map(move |p| (n, p)))
    }

    /// A placed pod and its node, when the node is known.
    pub fn placed_pod(&self, key: &str) -> Option<(&NodeInfo, &PodInfo)> {
        let node = self.node(self.placed.get(key)?)?;
        Some((node, node.pods.get(key)?))
    }

    /// The placed pods (on known nodes) that `term`'s selector may select: those carrying the
    /// label its selector demands, or every pod when it demands none. Callers still match.
    pub fn candidates(&self, term: &Term) -> Vec<(&NodeInfo, &PodInfo)> {
        if term.selects_nothing() {
            return Vec::new();
        }
        match term.required_label() {
            Some((key, values)) => self
                .pod_index
                .labelled(key, values)
                .filter_map(|k| self.placed_pod(k))
                .collect(),
            None => self.pods().collect(),
        }
    }

    /// Records (or, with `None`, forgets) a pending pod's nominated node.
    pub fn nominate(&mut self, pod: Arc<Pod>, node: Option<&str>) {
        let key = pod_key(&pod);
        match node.filter(|n| !n.is_empty()) {
            Some(n) => {
                self.nominated.insert(key, (n.to_string(), pod));
            }
            None => {
                self.nominated.remove(&key);
            }
        }
    }

    /// Whether any pending pod is nominated to a node.
    pub fn has_nominated(&self) -> bool {
        !self.nominated.is_empty()
    }

    /// Pods nominated to `node` that `pod` must leave room for: other pods of at least its
    /// priority.
    pub fn nominated_for<'a>(
        &'a self,
        node: &'a str,
        pod: &'a Pod,
    ) -> impl Iterator<Item = &'a Arc<Pod>> + 'a {
        let key = pod_key(pod);
        let prio = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        self.nominated
            .iter()
            .filter(move |(k, (n, p))| {
                n == node
                    && **k != key
                    && p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0) >= prio
            })
            .map(|(_, (_, p))| p)
    }

    /// The node a pod is placed on (bound or assumed), if known.
    pub fn node_of(&self, key: &str) -> Option<&str> {
        self.placed.get(key).map(String::as_str)
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains(key)
    }

    /// Adds or replaces a node.
    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(i) = self.index.get(&name) {
            self.nodes[*i].set_node(node);
            return;
        }
        let mut info = NodeInfo::new(node);
        let waiting: Vec<String> = self
            .orphans
            .iter()
            .filter(|(k, _)| self.placed.get(*k) == Some(&name))
            .map(|(k, _)| k.clone())
            .collect();
        for k in waiting {
            if let Some(p) = self.orphans.remove(&k) {
                info.add_pod(p);
            }
        }
        self.index.insert(name, self.nodes.len());
        self.nodes.push(info);
    }

    /// Removes a node; its pods wait for a node of that name to come back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let info = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            self.index.insert(self.nodes[i].name.clone(), i);
        }
        self.orphans.extend(info.pods);
    }

    /// Records a pod observed bound to `spec.nodeName`. Confirms an assumption if there was one.
    pub fn upsert_bound_pod(&mut self, pod: Arc<Pod>) {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let key = pod_key(&pod);
        self.remove_pod(&key);
        self.place(key, node, PodInfo::new(pod));
    }

    /// Forgets a pod (deleted, finished or un-assumed).
    pub fn remove_pod(&mut self, key: &str) -> Option<PodInfo> {
        self.assumed.remove(key);
        self.nominated.remove(key);
        let node = self.placed.remove(key)?;
        let info = match self.index.get(&node) {
            Some(i) => self.nodes[*i].remove_pod(key),
            None => self.orphans.remove(key),
        }?;
        self.pod_index.remove(key, &info);
        Some(info)
    }

    /// Places a pod on `node` before its binding is observed, so later cycles see it.
    pub fn assume(&mut self, pod: Arc<Pod>, node: &str) {
        let key = pod_key(&pod);
        self.remove_pod(&key);
        self.assumed.insert(key.clone());
        self.place(key, node.to_string(), PodInfo::new(pod));
    }

    /// Rolls back an assumption (binding failed). A confirmed placement is left alone.
    pub fn forget(&mut self, key: &str) {
        if self.assumed.contains(key) {
            self.remove_pod(key);
        }
    }

    fn place(&mut self, key: String, node: String, info: PodInfo) {
        self.pod_index.add(&key, &info);
        match self.index.get(&node) {
            Some(i) => self.nodes[*i].add_pod(info),
            None => {
                self.orphans.insert(key.clone(), info);
            }
        }
        self.placed.insert(key, node);
    }

    /// Keeps only the named nodes (after a relist).
    pub fn retain_nodes(&mut self, keep: &HashSet<String>) {
        let gone: Vec<String> = self
            .index
            .keys()
            .filter(|n| !keep.contains(*n))
            .cloned()
            .collect();
        for n in gone {
            self.remove_node(&n);
        }
    }

    /// Keeps only the listed bound pods and the assumed ones (after a relist).
    pub fn retain_pods(&mut self, keep: &HashSet<String>) {
        let gone: Vec<String> = self
            .placed
            .keys()
            .filter(|k| !keep.contains(*k) && !self.assumed.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            self.remove_pod(&k);
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for tests: nodes and pods from JSON fragments.
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};

    use super::{NodeInfo, PodInfo};

    pub fn node(name: &str, cpu: &str, memory: &str, extra: Value) -> Node {
        let mut v = json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    pub fn pod(name: &str, spec: Value) -> Pod {
        let mut v = json!({"metadata": {"name": name, "namespace": "default"},
                           "spec": {"containers": [{"name": "c"}]}});
        merge(&mut v, json!({ "spec": spec }));
        serde_json::from_value(v).unwrap()
    }

    pub fn pod_requesting(name: &str, cpu: &str, memory: &str) -> Pod {
        pod(
            name,
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}),
        )
    }

    pub fn node_info(node: Node, pods: Vec<Pod>) -> NodeInfo {
        let mut info = NodeInfo::new(Arc::new(node));
        for p in pods {
            info.add_pod(PodInfo::new(Arc::new(p)));
        }
        info
    }

    fn merge(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(b), Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::testing::*;
    use super::*;

    #[test]
    fn assumed_pod_counts_until_forgotten_and_confirmation_keeps_it() {
        let mut s = Snapshot::new();
        s.upsert_node(Arc::new(node("n1", "2", "1Gi", serde_json::json!({}))));
        let p = pod_requesting("p", "1", "0");
        s.assume(Arc::new(p.clone()), "n1");
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 1000);
        s.forget("default/p");
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 0);

        s.assume(Arc::new(p.clone()), "n1");
        let mut bound = p;
        bound.spec.as_mut().unwrap().node_name = Some("n1".into());
        s.upsert_bound_pod(Arc::new(bound));
        s.forget("default/p");
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 1000);
        assert_eq!(s.node("n1").unwrap().pods.len(), 1);
    }

    #[test]
    fn pods_on_unknown_nodes_attach_when_the_node_appears() {
        let mut s = Snapshot::new();
        let mut p = pod_requesting("p", "500m", "0");
        p.spec.as_mut().unwrap().node_name = Some("late".into());
        s.upsert_bound_pod(Arc::new(p));
        s.upsert_node(Arc::new(node("late", "2", "1Gi", serde_json::json!({}))));
        assert_eq!(s.node("late").unwrap().requested.milli_cpu, 500);
        s.remove_node("late");
        s.upsert_node(Arc::new(node("late", "2", "1Gi", serde_json::json!({}))));
        assert_eq!(s.node("late").unwrap().pods.len(), 1);
    }
}
