//! The EndpointSlice controller: for every Service with a selector, discovery.k8s.io/v1
//! EndpointSlices (at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints each) listing the pods it
//! selects with their conditions (`ready`, `serving`, `terminating`), node, zone and ports.
//!
//! [`plan`] is upstream's reconciler without I/O: per address type, existing slices are kept
//! where they still fit, endpoints that changed are updated in place, new endpoints first fill
//! slices that are being updated anyway, then the unchanged slice closest to full, then new
//! slices; slices left empty are deleted (or recycled for a slice that would be created); a
//! Service with no endpoints keeps one empty placeholder slice. Nothing is written when
//! nothing changed. [`run`] is the loop, shaped like the Endpoints controller's (see
//! [`crate::endpoints`], which also holds the helpers both share). Slices of a deleted Service
//! are left to the garbage collector through their owner reference, as upstream does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::{future, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForZone,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::endpoints::{
    find_port, ignore_not_found, is_service_ip_set, managed_selector, namespace_terminating,
    pod_ips, pod_reference, selects, should_pod_be_in_endpoints, should_set_hostname, Backoff,
    Memberships, TriggerTimes, HEADLESS_LABEL, TRIGGER_TIME_ANNOTATION,
};
use crate::error::Result;
use crate::pods;

/// Upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager, and this controller's value for it.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// One API call, in the order the controller makes them.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create a slice (`generateName: <service>-`).
    Create(EndpointSlice),
    /// Replace an existing slice (carries its name and `resourceVersion`).
    Update(EndpointSlice),
    Delete {
        name: String,
    },
}

/// What a sync decided. `missing_nodes`: pods skipped because their node is not known (yet);
/// the sync is retried with back-off, as upstream does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub missing_nodes: Vec<String>,
}

/// The slices `svc` should have, given the pods of its namespace (those the selector does not
/// match are ignored), the nodes they run on, and `existing`: the slices labelled with this
/// Service's name and managed by this controller, not being deleted.
pub fn plan(
    svc: &Service,
    pods: &[Pod],
    nodes: &[Node],
    existing: &[EndpointSlice],
    trigger: Option<Timestamp>,
) -> Plan {
    let mut out = Plan::default();
    let Some(selector) = managed_selector(svc) else {
        return out;
    };
    let pods: Vec<&Pod> = pods.iter().filter(|p| selects(selector, svc, p)).collect();
    let nodes: BTreeMap<&str, &Node> = nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n)))
        .collect();
    let types = address_types(svc);
    let mut by_type: BTreeMap<&str, Vec<&EndpointSlice>> = BTreeMap::new();
    let mut unsupported = Vec::new();
    for slice in existing {
        match types.get(slice.address_type.as_str()) {
            Some(t) => by_type.entry(t).or_default().push(slice),
            None => unsupported.push(slice.metadata.name.clone().unwrap_or_default()),
        }
    }
    for address_type in &types {
        let existing = by_type.remove(address_type).unwrap_or_default();
        let step = reconcile_address_type(svc, &pods, &nodes, &existing, address_type, trigger);
        out.actions.extend(step.actions);
        for n in step.missing_nodes {
            if !out.missing_nodes.contains(&n) {
                out.missing_nodes.push(n);
            }
        }
    }
    out.actions
        .extend(unsupported.into_iter().map(|name| Action::Delete { name }));
    out
}

/// The address types a Service's slices carry: from `ipFamilies`; without them, the cluster
/// IP's family, or both for a headless Service.
fn address_types(svc: &Service) -> BTreeSet<&'static str> {
    let spec = svc.spec.as_ref();
    let families: BTreeSet<&'static str> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some("IPv4"),
            "IPv6" => Some("IPv6"),
            _ => None,
        })
        .collect();
    if !families.is_empty() {
        return families;
    }
    if is_service_ip_set(svc) {
        let ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
        return BTreeSet::from([if ip.contains(':') { "IPv6" } else { "IPv4" }]);
    }
    BTreeSet::from(["IPv4", "IPv6"])
}

/// Endpoints are the same endpoint when these agree (upstream's endpoint hash).
type EndpointKey = (Vec<String>, String, String, String);

fn endpoint_key(e: &Endpoint) -> EndpointKey {
    let mut addresses = e.addresses.clone();
    addresses.sort();
    let r = e.target_ref.as_ref();
    (
        addresses,
        e.hostname.clone().unwrap_or_default(),
        r.and_then(|r| r.namespace.clone()).unwrap_or_default(),
        r.and_then(|r| r.name.clone()).unwrap_or_default(),
    )
}

/// Slices are grouped by their exact set of ports (order-insensitive).
type PortsKey = Vec<(String, String, i32, String)>;

fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut key: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    key.sort();
    key
}

/// Equal apart from what the key already covers; the pod's resourceVersion is ignored.
fn equal_beyond_key(a: &Endpoint, b: &Endpoint) -> bool {
    let target = |e: &Endpoint| {
        e.target_ref.clone().map(|mut r| {
            r.resource_version = None;
            r
        })
    };
    let conditions = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    a.node_name == b.node_name
        && a.zone == b.zone
        && conditions(a) == conditions(b)
        && target(a) == target(b)
}

fn reconcile_address_type(
    svc: &Service,
    pods: &[&Pod],
    nodes: &BTreeMap<&str, &Node>,
    existing: &[&EndpointSlice],
    address_type: &str,
    trigger: Option<Timestamp>,
) -> Plan {
    let mut missing_nodes = Vec::new();
    let mut to_delete: Vec<EndpointSlice> = Vec::new();
    let mut existing_by_ports: BTreeMap<PortsKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, svc) {
            existing_by_ports
                .entry(ports_key(slice.ports.as_deref().unwrap_or_default()))
                .or_default()
                .push(slice);
        } else {
            to_delete.push((*slice).clone());
        }
    }

    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut desired: BTreeMap<PortsKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)> =
        BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let group = desired
            .entry(ports_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()));
        let node_name = pods::node_name(pod).unwrap_or_default();
        let node = nodes.get(node_name).copied();
        if node.is_none() && !publish_not_ready {
            missing_nodes.push(node_name.to_string());
            continue;
        }
        let endpoint = pod_to_endpoint(pod, node, svc, address_type);
        if !endpoint.addresses.is_empty() {
            group.1.insert(endpoint_key(&endpoint), endpoint);
        }
    }

    let mut to_create = Vec::new();
    let mut to_update = Vec::new();
    for (key, (ports, endpoints)) in desired.iter_mut() {
        let (c, u, d) = reconcile_ports(
            svc,
            existing_by_ports
                .get(key)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            std::mem::take(endpoints),
            ports,
            address_type,
        );
        to_create.extend(c);
        to_update.extend(u);
        to_delete.extend(d);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            to_delete.extend(slices.iter().map(|s| (*s).clone()));
        }
    }

    // A Service with no endpoints keeps exactly one empty slice.
    if existing.len() == to_delete.len() && to_create.is_empty() {
        let placeholder = new_slice(svc, &[], address_type);
        if to_delete.len() == 1 && same_placeholder(&to_delete[0], &placeholder) {
            to_delete.clear();
        } else {
            to_create.push(placeholder);
        }
    }

    // Hints: zone hints for ready endpoints with `trafficDistribution: PreferClose`, none
    // otherwise (slices left unchanged but carrying the wrong hints are updated too).
    let prefer_close = svc
        .spec
        .as_ref()
        .and_then(|s| s.traffic_distribution.as_deref())
        == Some("PreferClose")
        && !topology_annotation(svc);
    let changed: BTreeSet<String> = to_update
        .iter()
        .chain(&to_delete)
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        if !changed.contains(&name) && hints_need_update(slice, prefer_close) {
            to_update.push((*slice).clone());
        }
    }
    for slice in to_create.iter_mut().chain(to_update.iter_mut()) {
        set_hints(slice, prefer_close);
    }

    Plan {
        actions: finalize(svc, to_create, to_update, to_delete, trigger),
        missing_nodes,
    }
}

/// Upstream's `reconcileByPortMapping`: returns slices to create, update and delete for one
/// set of ports.
fn reconcile_ports(
    svc: &Service,
    existing: &[&EndpointSlice],
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: &[EndpointPort],
    address_type: &str,
) -> (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<EndpointSlice>) {
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    // 1. Keep the endpoints still wanted (in their new form), drop the others.
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::new();
        let mut updated = false;
        for endpoint in &slice.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(endpoint)) {
                updated |= !equal_beyond_key(&want, endpoint);
                kept.push(want);
            }
        }
        let (labels, labels_changed) = slice_labels(slice.metadata.labels.as_ref(), svc);
        let mut copy = (*slice).clone();
        if updated || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
            } else {
                copy.endpoints = kept;
                copy.metadata.labels = Some(labels);
                to_update.insert(name.clone());
            }
        } else if labels_changed {
            copy.metadata.labels = Some(labels);
            to_update.insert(name.clone());
        } else {
            unchanged.insert(name.clone());
        }
        by_name.insert(name, copy);
    }

    let pop = |desired: &mut BTreeMap<EndpointKey, Endpoint>| desired.pop_first().map(|e| e.1);

    // 2. Fill the slices being updated anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<&String> = to_update.iter().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name[*n].endpoints.len()));
        for name in names {
            let slice = by_name.get_mut(name).expect("listed above");
            while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
                let Some(e) = pop(&mut desired) else { break };
                slice.endpoints.push(e);
            }
        }
    }

    // 3. The rest: into the unchanged slice that ends up closest to full, else new slices.
    let mut to_create = Vec::new();
    while !desired.is_empty() {
        let mut target = None;
        if desired.len() < MAX_ENDPOINTS_PER_SLICE {
            let mut closest = MAX_ENDPOINTS_PER_SLICE;
            for name in &unchanged {
                let room = MAX_ENDPOINTS_PER_SLICE as isize
                    - (desired.len() + by_name[name].endpoints.len()) as isize;
                if room >= 0 && (room as usize) < closest {
                    closest = room as usize;
                    target = Some(name.clone());
                    if closest == 0 {
                        break;
                    }
                }
            }
        }
        let mut slice = match &target {
            Some(name) => by_name[name].clone(),
            None => new_slice(svc, ports, address_type),
        };
        while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
            let Some(e) = pop(&mut desired) else { break };
            slice.endpoints.push(e);
        }
        match target {
            Some(name) => {
                unchanged.remove(&name);
                to_update.insert(name.clone());
                by_name.insert(name, slice);
            }
            None => to_create.push(slice),
        }
    }

    let take = |names: BTreeSet<String>, by_name: &BTreeMap<String, EndpointSlice>| {
        names.iter().map(|n| by_name[n].clone()).collect::<Vec<_>>()
    };
    (
        to_create,
        take(to_update, &by_name),
        take(to_delete, &by_name),
    )
}

/// Recycle slices about to be deleted for slices about to be created (same address type,
/// owned by this Service), then order the calls: creates (not while the Service is being
/// deleted, so as not to race the garbage collector), updates, deletes. Every written slice
/// gets the trigger-time annotation (or loses a stale one).
fn finalize(
    svc: &Service,
    mut to_create: Vec<EndpointSlice>,
    mut to_update: Vec<EndpointSlice>,
    mut to_delete: Vec<EndpointSlice>,
    trigger: Option<Timestamp>,
) -> Vec<Action> {
    let mut i = 0;
    while i < to_delete.len() && !to_create.is_empty() {
        let old = &to_delete[i];
        let last = to_create.last().expect("not empty");
        if old.address_type == last.address_type && owned_by(old, svc) {
            let mut slice = to_create.pop().expect("not empty");
            slice.metadata.name = old.metadata.name.clone();
            slice.metadata.generate_name = old.metadata.generate_name.clone();
            slice.metadata.resource_version = old.metadata.resource_version.clone();
            slice.metadata.annotations = old.metadata.annotations.clone();
            to_update.push(slice);
            to_delete.remove(i);
        } else {
            i += 1;
        }
    }
    let annotate = |mut slice: EndpointSlice| {
        let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
        match trigger {
            Some(t) => annotations.insert(TRIGGER_TIME_ANNOTATION.into(), t.to_string()),
            None => annotations.remove(TRIGGER_TIME_ANNOTATION),
        };
        slice
    };
    let mut actions = Vec::new();
    if svc.metadata.deletion_timestamp.is_none() {
        actions.extend(to_create.into_iter().map(|s| Action::Create(annotate(s))));
    }
    actions.extend(to_update.into_iter().map(|s| Action::Update(annotate(s))));
    actions.extend(to_delete.into_iter().map(|s| Action::Delete {
        name: s.metadata.name.unwrap_or_default(),
    }));
    actions
}

/// An empty slice for this Service: its labels, `generateName: <service>-`, and the Service as
/// controller owner.
fn new_slice(svc: &Service, ports: &[EndpointPort], address_type: &str) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.namespace(),
            labels: Some(slice_labels(None, svc).0),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: svc.name_any(),
                uid: svc.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: Vec::new(),
        ports: Some(ports.to_vec()),
    }
}

/// The labels a slice should carry (the Service's, minus reserved keys, plus the headless
/// marker, service name and manager) and whether the Service's own labels differ from the
/// slice's (changes to reserved keys alone do not count, as upstream).
fn slice_labels(
    current: Option<&BTreeMap<String, String>>,
    svc: &Service,
) -> (BTreeMap<String, String>, bool) {
    let reserved =
        |k: &str| k == SERVICE_NAME_LABEL || k == MANAGED_BY_LABEL || k == HEADLESS_LABEL;
    let strip = |labels: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        labels
            .into_iter()
            .flatten()
            .filter(|(k, _)| !reserved(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut labels = strip(svc.metadata.labels.as_ref());
    let changed = strip(current) != labels;
    if !is_service_ip_set(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    (labels, changed)
}

/// Whether an existing slice already is the placeholder we would create: same labels, owner
/// references, address type, and no ports or endpoints.
fn same_placeholder(existing: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    existing.metadata.namespace == placeholder.metadata.namespace
        && existing.metadata.labels.clone().unwrap_or_default()
            == placeholder.metadata.labels.clone().unwrap_or_default()
        && existing
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default()
            == placeholder
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default()
        && existing.address_type == placeholder.address_type
        && existing.endpoints.is_empty()
        && existing.ports.as_ref().is_none_or(Vec::is_empty)
}

fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    slice.metadata.owner_references.iter().flatten().any(|o| {
        Some(&o.uid) == svc.metadata.uid.as_ref() && o.kind == "Service" && o.api_version == "v1"
    })
}

/// The Service's ports as this pod serves them; ports whose named target the pod lacks are
/// left out (so such pods land in a slice with fewer ports). A headless Service may have none.
fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(find_port(pod, p)?),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

fn pod_to_endpoint(pod: &Pod, node: Option<&Node>, svc: &Service, address_type: &str) -> Endpoint {
    let serving = pods::ready_since(pod).is_some();
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let want_v6 = address_type == "IPv6";
    Endpoint {
        addresses: pod_ips(pod)
            .into_iter()
            .filter(|ip| ip.contains(':') == want_v6)
            .collect(),
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(pod_reference(pod)),
        node_name: pods::node_name(pod).map(str::to_string),
        zone: node
            .and_then(|n| n.metadata.labels.as_ref())
            .and_then(|l| l.get(ZONE_LABEL))
            .filter(|z| !z.is_empty())
            .cloned(),
        hostname: should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten(),
        ..Default::default()
    }
}

/// The deprecated topology-aware-hints annotations (`Auto`) take precedence over
/// `trafficDistribution`.
fn topology_annotation(svc: &Service) -> bool {
    let annotations = svc.annotations();
    let value = annotations
        .get("service.kubernetes.io/topology-aware-hints")
        .or_else(|| annotations.get("service.kubernetes.io/topology-mode"));
    matches!(value.map(String::as_str), Some("Auto" | "auto"))
}

fn wanted_hints(e: &Endpoint, prefer_close: bool) -> Option<EndpointHints> {
    let zone = e.zone.clone().filter(|_| prefer_close)?;
    Some(EndpointHints {
        for_zones: Some(vec![ForZone { name: zone }]),
        for_nodes: None,
    })
}

fn endpoint_ready(e: &Endpoint) -> bool {
    e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
}

fn hints_need_update(slice: &EndpointSlice, prefer_close: bool) -> bool {
    slice.endpoints.iter().any(|e| {
        if !prefer_close {
            return e.hints.is_some();
        }
        endpoint_ready(e) && e.hints != wanted_hints(e, true)
    })
}

fn set_hints(slice: &mut EndpointSlice, prefer_close: bool) {
    for e in &mut slice.endpoints {
        if !prefer_close {
            e.hints = None;
        } else if endpoint_ready(e) {
            e.hints = wanted_hints(e, true);
        }
    }
}

// ---- The loop ----

struct Context {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    triggers: TriggerTimes,
    backoff: Backoff,
}

/// Run the controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let (pod_store, pod_writer) = reflector::store();
    let pod_events = reflector::reflector(
        pod_writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    let (node_store, node_writer) = reflector::store();
    let nodes = reflector::reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|_| future::ready(()));
    // Changes to our slices made by others (or their deletion) resync the Service.
    let slice_events = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}")),
    )
    .default_backoff()
    .touched_objects();
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let memberships = Memberships::new(controller.store(), pod_store.clone());
    let ctx = Arc::new(Context {
        client,
        pods: pod_store,
        nodes: node_store,
        triggers: TriggerTimes::default(),
        backoff: Backoff::default(),
    });
    let cleanup = ctx.clone();
    let slices = controller
        .watches_stream(pod_events, move |pod: Pod| memberships.services_for(&pod))
        .watches_stream(slice_events, |slice: EndpointSlice| {
            let service = slice.labels().get(SERVICE_NAME_LABEL)?;
            Some(ObjectRef::new(service).within(&slice.namespace()?))
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            reconcile,
            |svc, _, ctx: Arc<Context>| Requeue::requeue(ctx.backoff.failed(&svc)),
            ctx,
        )
        .for_each(|result| {
            match result {
                Ok(_) => {}
                Err(kube::runtime::controller::Error::ObjectNotFound(r)) => {
                    if let Some(ns) = r.namespace.as_deref() {
                        cleanup.triggers.forget(ns, &r.name);
                    }
                }
                Err(error) => tracing::debug!(%error, "endpointslice reconcile failed"),
            }
            future::ready(())
        });
    tokio::select! {
        () = slices => {}
        () = nodes => {}
    }
}

#[tracing::instrument(skip_all, fields(service.namespace, service.name))]
async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Requeue> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    tracing::Span::current()
        .record("service.namespace", ns.as_str())
        .record("service.name", name.as_str());
    let Some(selector) = managed_selector(&svc) else {
        ctx.backoff.succeeded(&svc);
        return Ok(Requeue::await_change());
    };
    let _ = ctx.pods.wait_until_ready().await;
    let _ = ctx.nodes.wait_until_ready().await;
    let pods: Vec<Pod> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| selects(selector, &svc, p))
        .map(|p| (**p).clone())
        .collect();
    let nodes: Vec<Node> = pods
        .iter()
        .filter_map(|p| pods::node_name(p))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|n| ctx.nodes.get(&ObjectRef::new(n)))
        .map(|n| (*n).clone())
        .collect();
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    // A consistent list, so that slices we just wrote are never mistaken for missing.
    let existing: Vec<EndpointSlice> = api
        .list(&ListParams::default().labels(&format!(
            "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={CONTROLLER_NAME}"
        )))
        .await?
        .items
        .into_iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    let trigger = ctx.triggers.compute(&svc, &pods.iter().collect::<Vec<_>>());
    let plan = plan(&svc, &pods, &nodes, &existing, trigger);
    for action in plan.actions {
        match action {
            Action::Create(slice) => match api.create(&PostParams::default(), &slice).await {
                Err(e) if namespace_terminating(&e) => return Ok(Requeue::await_change()),
                other => {
                    other?;
                }
            },
            Action::Update(slice) => {
                let slice_name = slice.metadata.name.clone().unwrap_or_default();
                api.replace(&slice_name, &PostParams::default(), &slice)
                    .await?;
            }
            Action::Delete { name } => {
                ignore_not_found(
                    api.delete(&name, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )?;
            }
        }
    }
    if !plan.missing_nodes.is_empty() {
        tracing::debug!(nodes = ?plan.missing_nodes, "pods on unknown nodes skipped");
        return Ok(Requeue::requeue(ctx.backoff.failed(&svc)));
    }
    ctx.backoff.succeeded(&svc);
    Ok(Requeue::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::tests::{pod, service};
    use serde_json::{json, Value};

    fn web(extra: Value) -> Service {
        let mut spec = json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.5",
            "ipFamilies": ["IPv4"],
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]});
        if let (Value::Object(a), Value::Object(b)) = (&mut spec, extra) {
            a.extend(b);
        }
        service("web", spec)
    }

    fn node(name: &str, zone: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {"topology.kubernetes.io/zone": zone}}}))
        .unwrap()
    }

    fn nodes() -> Vec<Node> {
        vec![node("node-a", "zone-1")]
    }

    fn pods(n: usize) -> Vec<Pod> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.42.{}.{}", i / 200, i % 200 + 1),
                    true,
                    json!({}),
                )
            })
            .collect()
    }

    /// Pretend the API server stored `actions`' creates and updates: names for the created
    /// ones, a resourceVersion for all.
    fn apply(existing: &mut Vec<EndpointSlice>, actions: &[Action]) {
        for (i, a) in actions.iter().enumerate() {
            match a {
                Action::Create(s) => {
                    let mut s = s.clone();
                    s.metadata.name = Some(format!("web-{}{i}", existing.len()));
                    s.metadata.resource_version = Some("1".into());
                    existing.push(s);
                }
                Action::Update(s) => {
                    let at = existing
                        .iter()
                        .position(|e| e.metadata.name == s.metadata.name)
                        .unwrap();
                    existing[at] = s.clone();
                }
                Action::Delete { name } => {
                    existing.retain(|e| e.metadata.name.as_ref() != Some(name))
                }
            }
        }
    }

    fn sizes(actions: &[Action]) -> Vec<(&'static str, usize)> {
        actions
            .iter()
            .map(|a| match a {
                Action::Create(s) => ("create", s.endpoints.len()),
                Action::Update(s) => ("update", s.endpoints.len()),
                Action::Delete { .. } => ("delete", 0),
            })
            .collect()
    }

    #[test]
    fn a_new_service_gets_one_slice_with_labels_owner_ports_and_endpoints() {
        let svc = web(json!({}));
        let t: Timestamp = "2025-01-03T00:00:00Z".parse().unwrap();
        let p = plan(
            &svc,
            &[pod("a", "10.42.0.1", true, json!({}))],
            &nodes(),
            &[],
            Some(t),
        );
        assert_eq!(p.missing_nodes, Vec::<String>::new());
        let [Action::Create(slice)] = p.actions.as_slice() else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(
            serde_json::to_value(slice).unwrap(),
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "generateName": "web-",
                    "namespace": "ns",
                    "labels": {"app": "web", "kubernetes.io/service-name": "web",
                               "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                    "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2025-01-03T00:00:00Z"},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                        "uid": "uid-web", "controller": true, "blockOwnerDeletion": true}],
                },
                "addressType": "IPv4",
                "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{
                    "addresses": ["10.42.0.1"],
                    "conditions": {"ready": true, "serving": true, "terminating": false},
                    "nodeName": "node-a",
                    "zone": "zone-1",
                    "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"},
                }],
            })
        );
    }

    #[test]
    fn unready_and_terminating_pods_are_listed_with_their_conditions() {
        let pods = [
            pod("unready", "10.42.0.1", false, json!({})),
            pod(
                "leaving",
                "10.42.0.2",
                true,
                json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
            ),
            pod(
                "done",
                "10.42.0.3",
                true,
                json!({"status": {"phase": "Failed"}}),
            ),
        ];
        let conditions = |svc: &Service| -> Vec<(Option<bool>, Option<bool>, Option<bool>)> {
            let p = plan(svc, &pods, &nodes(), &[], None);
            let [Action::Create(slice)] = p.actions.as_slice() else {
                panic!()
            };
            slice
                .endpoints
                .iter()
                .map(|e| {
                    let c = e.conditions.clone().unwrap();
                    (c.ready, c.serving, c.terminating)
                })
                .collect()
        };
        assert_eq!(
            conditions(&web(json!({}))),
            [
                (Some(false), Some(false), Some(false)),
                (Some(false), Some(true), Some(true))
            ]
        );
        assert_eq!(
            conditions(&web(json!({"publishNotReadyAddresses": true}))),
            [
                (Some(true), Some(false), Some(false)),
                (Some(true), Some(true), Some(true))
            ]
        );
    }

    #[test]
    fn a_service_without_pods_keeps_one_placeholder_slice() {
        let svc = web(json!({}));
        let p = plan(&svc, &[], &nodes(), &[], None);
        assert_eq!(sizes(&p.actions), [("create", 0)]);
        let mut existing = Vec::new();
        apply(&mut existing, &p.actions);
        assert_eq!(existing[0].ports.as_deref(), Some(&[][..]));
        assert_eq!(plan(&svc, &[], &nodes(), &existing, None), Plan::default());

        // Pods arriving reuse the placeholder instead of deleting it and creating another.
        let p = plan(&svc, &pods(3), &nodes(), &existing, None);
        let [Action::Update(slice)] = p.actions.as_slice() else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(slice.metadata.name, existing[0].metadata.name);
        assert_eq!(slice.metadata.resource_version.as_deref(), Some("1"));
        assert_eq!(slice.endpoints.len(), 3);
        assert_eq!(slice.ports.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn unchanged_slices_are_not_rewritten() {
        let svc = web(json!({}));
        let pods = pods(3);
        let mut existing = Vec::new();
        apply(
            &mut existing,
            &plan(&svc, &pods, &nodes(), &[], None).actions,
        );
        // The stored targetRef carries the pod's resourceVersion; that is no change.
        existing[0].endpoints[0]
            .target_ref
            .as_mut()
            .unwrap()
            .resource_version = Some("42".into());
        let t: Timestamp = "2025-03-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            plan(&svc, &pods, &nodes(), &existing, Some(t)),
            Plan::default()
        );

        // A readiness change updates that slice in place.
        let mut changed = pods.clone();
        changed[1] = pod("p001", "10.42.0.2", false, json!({}));
        let p = plan(&svc, &changed, &nodes(), &existing, Some(t));
        let [Action::Update(slice)] = p.actions.as_slice() else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(
            slice.endpoints[1].conditions.as_ref().unwrap().ready,
            Some(false)
        );
        assert_eq!(
            slice.metadata.annotations.as_ref().unwrap()[TRIGGER_TIME_ANNOTATION],
            "2025-03-01T00:00:00Z"
        );
    }

    #[test]
    fn endpoints_are_packed_a_hundred_per_slice_with_minimal_churn() {
        let svc = web(json!({}));
        let all = pods(250);
        let p = plan(&svc, &all, &nodes(), &[], None);
        assert_eq!(
            sizes(&p.actions),
            [("create", 100), ("create", 100), ("create", 50)]
        );
        let mut existing = Vec::new();
        apply(&mut existing, &p.actions);

        // Ten pods of the first slice go away and five new ones come: they refill the slice
        // that is being updated anyway; nothing is created or deleted.
        let first: BTreeSet<String> = existing[0]
            .endpoints
            .iter()
            .map(|e| e.target_ref.as_ref().unwrap().name.clone().unwrap())
            .take(10)
            .collect();
        let mut next: Vec<Pod> = all
            .iter()
            .filter(|p| !first.contains(&p.name_any()))
            .cloned()
            .collect();
        next.extend((0..5).map(|i| {
            pod(
                &format!("new{i}"),
                &format!("10.42.9.{}", i + 1),
                true,
                json!({}),
            )
        }));
        let p = plan(&svc, &next, &nodes(), &existing, None);
        assert_eq!(sizes(&p.actions), [("update", 95)]);
        apply(&mut existing, &p.actions);

        // Forty new pods fit into the unchanged slice closest to full (the one with 50).
        next.extend((0..40).map(|i| {
            pod(
                &format!("more{i}"),
                &format!("10.42.8.{}", i + 1),
                true,
                json!({}),
            )
        }));
        let p = plan(&svc, &next, &nodes(), &existing, None);
        assert_eq!(sizes(&p.actions), [("update", 90)]);
        let [Action::Update(slice)] = p.actions.as_slice() else {
            panic!()
        };
        assert_eq!(slice.metadata.name, existing[2].metadata.name);
        apply(&mut existing, &p.actions);

        // All pods gone: every slice but one placeholder goes (one slice is recycled as it).
        let p = plan(&svc, &[], &nodes(), &existing, None);
        assert_eq!(
            sizes(&p.actions),
            [("update", 0), ("delete", 0), ("delete", 0)]
        );
        apply(&mut existing, &p.actions);
        assert_eq!(existing.len(), 1);
        assert_eq!(plan(&svc, &[], &nodes(), &existing, None), Plan::default());
    }

    #[test]
    fn slices_of_another_service_with_the_same_name_are_replaced() {
        let svc = web(json!({}));
        let mut existing = Vec::new();
        apply(
            &mut existing,
            &plan(&svc, &pods(2), &nodes(), &[], None).actions,
        );
        existing[0].metadata.owner_references.as_mut().unwrap()[0].uid = "old".into();
        let p = plan(&svc, &pods(2), &nodes(), &existing, None);
        assert_eq!(sizes(&p.actions), [("create", 2), ("delete", 0)]);
    }

    #[test]
    fn pods_on_unknown_nodes_are_skipped_and_reported() {
        let svc = web(json!({}));
        let stray = pod(
            "stray",
            "10.42.5.5",
            true,
            json!({"spec": {"nodeName": "node-z"}}),
        );
        let p = plan(
            &svc,
            &[pod("a", "10.42.0.1", true, json!({})), stray.clone()],
            &nodes(),
            &[],
            None,
        );
        assert_eq!(p.missing_nodes, ["node-z"]);
        assert_eq!(sizes(&p.actions), [("create", 1)]);
        // Unless not-ready addresses are published anyway.
        let p = plan(
            &web(json!({"publishNotReadyAddresses": true})),
            &[stray],
            &nodes(),
            &[],
            None,
        );
        assert!(p.missing_nodes.is_empty());
        assert_eq!(sizes(&p.actions), [("create", 1)]);
    }

    #[test]
    fn pods_lacking_a_named_port_go_to_a_slice_with_fewer_ports() {
        let svc = web(json!({"ports": [
            {"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "admin", "port": 81, "targetPort": 9000, "protocol": "TCP"}]}));
        let bare = pod(
            "bare",
            "10.42.0.2",
            true,
            json!({"spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        let p = plan(
            &svc,
            &[pod("a", "10.42.0.1", true, json!({})), bare],
            &nodes(),
            &[],
            None,
        );
        let mut ports: Vec<Vec<(String, i32)>> = p
            .actions
            .iter()
            .map(|a| {
                let Action::Create(s) = a else { panic!() };
                s.ports
                    .iter()
                    .flatten()
                    .map(|p| (p.name.clone().unwrap(), p.port.unwrap()))
                    .collect()
            })
            .collect();
        ports.sort();
        assert_eq!(
            ports,
            [
                vec![("admin".to_string(), 9000)],
                vec![("web".to_string(), 8080), ("admin".to_string(), 9000)]
            ]
        );
    }

    #[test]
    fn headless_services_get_the_label_hostnames_and_no_ports() {
        let svc = service(
            "db",
            json!({"selector": {"app": "web"}, "clusterIP": "None", "ipFamilies": ["IPv4"]}),
        );
        let p = plan(
            &svc,
            &[pod(
                "db-0",
                "10.42.0.1",
                true,
                json!({"spec": {"hostname": "db-0", "subdomain": "db"}}),
            )],
            &nodes(),
            &[],
            None,
        );
        let [Action::Create(slice)] = p.actions.as_slice() else {
            panic!()
        };
        assert_eq!(slice.metadata.labels.as_ref().unwrap()[HEADLESS_LABEL], "");
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("db-"));
        assert_eq!(slice.ports.as_deref(), Some(&[][..]));
        assert_eq!(slice.endpoints[0].hostname.as_deref(), Some("db-0"));
    }

    #[test]
    fn services_without_selector_or_external_name_get_nothing() {
        let bare = service(
            "kubernetes",
            json!({"clusterIP": "10.43.0.1", "ports": [{"port": 443}]}),
        );
        assert_eq!(plan(&bare, &pods(1), &nodes(), &[], None), Plan::default());
        let ext = web(json!({"type": "ExternalName"}));
        assert_eq!(plan(&ext, &pods(1), &nodes(), &[], None), Plan::default());
    }

    #[test]
    fn prefer_close_sets_zone_hints_and_their_removal_clears_them() {
        let svc = web(json!({"trafficDistribution": "PreferClose"}));
        let p = plan(&svc, &pods(1), &nodes(), &[], None);
        let [Action::Create(slice)] = p.actions.as_slice() else {
            panic!()
        };
        let hints = slice.endpoints[0].hints.as_ref().unwrap();
        assert_eq!(hints.for_zones.as_ref().unwrap()[0].name, "zone-1");
        let mut existing = Vec::new();
        apply(&mut existing, &p.actions);
        assert_eq!(
            plan(&svc, &pods(1), &nodes(), &existing, None),
            Plan::default()
        );
        let p = plan(&web(json!({})), &pods(1), &nodes(), &existing, None);
        let [Action::Update(slice)] = p.actions.as_slice() else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(slice.endpoints[0].hints, None);
    }

    #[test]
    fn creates_wait_while_the_service_is_being_deleted() {
        let mut svc = web(json!({}));
        svc.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2025-01-01T00:00:00Z")).unwrap());
        assert_eq!(plan(&svc, &pods(1), &nodes(), &[], None), Plan::default());
    }
}
