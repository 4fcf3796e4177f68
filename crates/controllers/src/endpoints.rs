//! The Endpoints controller: for every Service with a selector, a core/v1 `Endpoints` object of
//! the same name listing the addresses of the pods it selects, ready ones under `addresses`
//! and the others under `notReadyAddresses`, grouped into subsets by the ports they serve.
//!
//! [`plan`] decides (pure, unit-tested); [`run`] is the loop: a kube-runtime `Controller` over
//! Services, with pod changes mapped to the Services whose selector matches (before and after
//! a label change). Services without a selector are left alone (their Endpoints are managed by
//! users), ExternalName Services get none, and the Endpoints of a deleted Service are deleted.
//!
//! The helpers shared with the EndpointSlice controller live here too: which pods count
//! ([`should_pod_be_in_endpoints`]), port resolution ([`find_port`]), the pod → Service
//! mapping ([`Memberships`]), the `last-change-trigger-time` bookkeeping ([`TriggerTimes`])
//! and the per-Service retry back-off ([`Backoff`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{future, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{self, Action as Requeue, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::pods;

/// Label set on the Endpoints (and EndpointSlices) of a Service without a cluster IP.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// When the change that led to this version of the object happened (a pod's readiness
/// transition or the Service's creation), for latency measurements.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Set to `truncated` when the Endpoints would hold more than [`MAX_CAPACITY`] addresses.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// Endpoints carrying this annotation are leader-election records, never Service endpoints.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Upstream's cap on the addresses of one Endpoints object.
pub const MAX_CAPACITY: usize = 1000;

/// One API call, in the order the controller makes them.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Create(Endpoints),
    /// Replace the existing object (carries its `resourceVersion`).
    Update(Endpoints),
}

/// The Endpoints `svc` should have, as at most one create or update of `current`.
/// `pods` may hold any pods of the namespace; those the selector does not match are ignored.
/// `trigger` is the [`TriggerTimes`] result for this sync. Nothing is written when the subsets,
/// labels and capacity annotation already agree, whatever else changed.
pub fn plan(
    svc: &Service,
    pods: &[Pod],
    current: Option<&Endpoints>,
    trigger: Option<Timestamp>,
) -> Vec<Action> {
    let Some(selector) = managed_selector(svc) else {
        return Vec::new();
    };
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.clone().unwrap_or_default();
    let headless_without_ports = ports.is_empty() && spec.cluster_ip.as_deref() == Some("None");

    // One single-address, single-port subset per (pod, port); repacking merges them.
    let mut raw: Vec<(EndpointAddress, bool, Option<EndpointPort>)> = Vec::new();
    for pod in pods.iter().filter(|p| selects(selector, svc, p)) {
        if !should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(ip) = pod_ip_for_service(svc, pod) else {
            continue;
        };
        let address = EndpointAddress {
            ip,
            hostname: should_set_hostname(pod, svc)
                .then(|| pod_spec_str(pod, |s| s.hostname.as_deref())),
            node_name: Some(pods::node_name(pod).unwrap_or_default().to_string()),
            target_ref: Some(pod_reference(pod)),
        };
        let ready = publish_not_ready || pods::ready_since(pod).is_some();
        if ports.is_empty() {
            if headless_without_ports {
                raw.push((address, ready, None));
            }
            continue;
        }
        for port in &ports {
            let Some(number) = find_port(pod, port) else {
                continue;
            };
            raw.push((
                address.clone(),
                ready,
                Some(EndpointPort {
                    name: port.name.clone(),
                    port: number,
                    protocol: port.protocol.clone(),
                    app_protocol: port.app_protocol.clone(),
                }),
            ));
        }
    }
    let subsets = repack(raw);

    let service_labels = svc.metadata.labels.clone().unwrap_or_default();
    if let Some(current) = current {
        let mut labels = current.metadata.labels.clone().unwrap_or_default();
        labels.remove(HEADLESS_LABEL);
        let existing = normalize(current.subsets.clone().unwrap_or_default());
        let annotations = current.metadata.annotations.clone().unwrap_or_default();
        if existing == subsets
            && labels == service_labels
            && capacity_annotation_correct(&annotations, &existing)
        {
            return Vec::new();
        }
    }

    let mut endpoints = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: Some(svc.name_any()),
            namespace: svc.namespace(),
            ..Default::default()
        },
        subsets: None,
    });
    let mut labels = service_labels;
    if is_service_ip_set(svc) {
        labels.remove(HEADLESS_LABEL);
    } else {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    endpoints.metadata.labels = Some(labels);
    let annotations = endpoints
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => annotations.insert(TRIGGER_TIME_ANNOTATION.into(), t.to_string()),
        None => annotations.remove(TRIGGER_TIME_ANNOTATION),
    };
    let (subsets, truncated) = truncate(subsets);
    if truncated {
        annotations.insert(OVER_CAPACITY_ANNOTATION.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    endpoints.subsets = (!subsets.is_empty()).then_some(subsets);
    vec![match current {
        Some(_) => Action::Update(endpoints),
        None => Action::Create(endpoints),
    }]
}

/// Merge single-address subsets into the fewest subsets: addresses offering the same set of
/// ports share a subset; an address that is ready for a port stays ready even if it also
/// shows up not ready. The result is sorted so that equal contents compare equal.
fn repack(raw: Vec<(EndpointAddress, bool, Option<EndpointPort>)>) -> Vec<EndpointSubset> {
    type AddressKey = (String, String);
    let key_of = |a: &EndpointAddress| {
        (
            a.ip.clone(),
            a.target_ref
                .as_ref()
                .and_then(|r| r.uid.clone())
                .unwrap_or_default(),
        )
    };
    // The first address seen under a key is the one kept.
    let mut addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    // Port (None: the no-port sentinel) → address → ready.
    let mut by_port: BTreeMap<PortKey, (Option<EndpointPort>, BTreeMap<AddressKey, bool>)> =
        BTreeMap::new();
    for (address, ready, port) in raw {
        let key = key_of(&address);
        addresses.entry(key.clone()).or_insert(address);
        let entry = by_port
            .entry(port_key(port.as_ref()))
            .or_insert_with(|| (port, BTreeMap::new()))
            .1
            .entry(key)
            .or_insert(ready);
        *entry |= ready;
    }
    // Group ports by identical address sets.
    let mut groups: BTreeMap<Vec<(AddressKey, bool)>, Vec<EndpointPort>> = BTreeMap::new();
    for (_, (port, set)) in by_port {
        let ports = groups.entry(set.into_iter().collect()).or_default();
        ports.extend(port);
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(set, mut ports)| {
            ports.sort_by_key(|p| port_key(Some(p)));
            let pick = |want: bool| {
                let mut list: Vec<EndpointAddress> = set
                    .iter()
                    .filter(|(_, ready)| *ready == want)
                    .map(|(k, _)| addresses[k].clone())
                    .collect();
                list.sort_by_key(key_of);
                (!list.is_empty()).then_some(list)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    sort_subsets(&mut subsets);
    subsets
}

type PortKey = Option<(String, i32, String, String)>;

fn port_key(p: Option<&EndpointPort>) -> PortKey {
    p.map(|p| {
        (
            p.name.clone().unwrap_or_default(),
            p.port,
            p.protocol.clone().unwrap_or_default(),
            p.app_protocol.clone().unwrap_or_default(),
        )
    })
}

fn sort_subsets(subsets: &mut [EndpointSubset]) {
    subsets.sort_by_cached_key(|s| serde_json::to_string(s).unwrap_or_default());
}

/// Subsets as read from the API in the form [`plan`] builds them: empty lists absent and the
/// pods' `resourceVersion` ignored (a pod update that changes nothing else is no change).
fn normalize(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    let addresses = |list: Option<Vec<EndpointAddress>>| {
        let list: Vec<EndpointAddress> = list
            .unwrap_or_default()
            .into_iter()
            .map(|mut a| {
                if let Some(r) = a.target_ref.as_mut() {
                    r.resource_version = None;
                }
                a
            })
            .collect();
        (!list.is_empty()).then_some(list)
    };
    subsets
        .into_iter()
        .map(|s| EndpointSubset {
            addresses: addresses(s.addresses),
            not_ready_addresses: addresses(s.not_ready_addresses),
            ports: s.ports.filter(|p| !p.is_empty()),
        })
        .collect()
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

fn capacity_annotation_correct(
    annotations: &BTreeMap<String, String>,
    subsets: &[EndpointSubset],
) -> bool {
    let (ready, not_ready) = count(subsets);
    ready + not_ready <= MAX_CAPACITY && !annotations.contains_key(OVER_CAPACITY_ANNOTATION)
}

/// Cut the subsets down to [`MAX_CAPACITY`] addresses, ready ones first, each subset keeping a
/// share proportional to its size (rounded up, so the last ones may get less).
fn truncate(mut subsets: Vec<EndpointSubset>) -> (Vec<EndpointSubset>, bool) {
    let (ready, not_ready) = count(&subsets);
    if ready + not_ready <= MAX_CAPACITY {
        return (subsets, false);
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut left = max;
    for s in &mut subsets {
        let list = if truncate_ready {
            s.not_ready_addresses = None;
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let n = list.as_ref().map_or(0, Vec::len);
        let share = (n * max).div_ceil(total).min(left);
        if let Some(l) = list.as_mut() {
            l.truncate(share);
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
        left -= list.as_ref().map_or(0, Vec::len);
    }
    (subsets, true)
}

// ---- Shared with the EndpointSlice controller ----

/// The selector of a Service this controller (and the EndpointSlice controller) manages:
/// `None` for ExternalName Services and Services without a selector. An empty selector counts
/// as none, as it does upstream once stored.
pub(crate) fn managed_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether `selector` (of `svc`) selects `pod`: same namespace, every label equal.
pub(crate) fn selects(selector: &BTreeMap<String, String>, svc: &Service, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    pod.metadata.namespace == svc.metadata.namespace
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Pods count when they are not finished, have an IP, and (unless `include_terminating`) are
/// not being deleted.
pub(crate) fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if pods::is_terminal(pod) {
        return false;
    }
    let status = pod.status.as_ref();
    let has_ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty())
        || status
            .and_then(|s| s.pod_ips.as_ref())
            .is_some_and(|ips| !ips.is_empty());
    has_ip && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// A pod publishes its hostname when it set `spec.hostname` and its `spec.subdomain` names
/// this Service (in its own namespace).
pub(crate) fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.hostname.as_deref())
        .is_some_and(|h| !h.is_empty())
        && spec.and_then(|s| s.subdomain.as_deref()) == Some(svc.name_any().as_str())
        && pod.metadata.namespace == svc.metadata.namespace
}

fn pod_spec_str(
    pod: &Pod,
    f: impl Fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<&str>,
) -> String {
    pod.spec
        .as_ref()
        .and_then(f)
        .unwrap_or_default()
        .to_string()
}

/// `clusterIP` set and not `None`.
pub(crate) fn is_service_ip_set(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The pod's IPs (`status.podIPs`, else `status.podIP`).
pub(crate) fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    match status.pod_ips.as_ref().filter(|ips| !ips.is_empty()) {
        Some(ips) => ips.iter().map(|i| i.ip.clone()).collect(),
        None => status.pod_ip.iter().cloned().collect(),
    }
}

fn is_ipv6(ip: &str) -> bool {
    ip.contains(':')
}

/// The pod IP of the Service's primary family (its first `ipFamilies` entry; without one, the
/// cluster IP's family, or for headless Services the pod's own).
fn pod_ip_for_service(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = svc.spec.as_ref();
    let v6 = match spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        Some(family) => family == "IPv6",
        None if is_service_ip_set(svc) => {
            is_ipv6(spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or(""))
        }
        None => pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .is_some_and(is_ipv6),
    };
    pod_ips(pod).into_iter().find(|ip| is_ipv6(ip) == v6)
}

pub(crate) fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The container port a Service port sends to on this pod: a numeric `targetPort` as is
/// (absent: the Service port), a named one looked up among the ports of the containers (and
/// of sidecar init containers) with the same protocol. `None` when the pod lacks that name.
pub(crate) fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Upstream's trigger-time tracker: per Service, the pods' Ready transition times and the
/// Service's creation time seen at the last sync. A sync reports the earliest of those that
/// moved since (the creation time at a Service's first sync), `None` when nothing moved.
#[derive(Default)]
pub(crate) struct TriggerTimes {
    states: Mutex<HashMap<(String, String), TriggerState>>,
}

#[derive(Clone, Default)]
struct TriggerState {
    service: Option<Timestamp>,
    pods: HashMap<String, Timestamp>,
}

impl TriggerTimes {
    /// Must not be called concurrently for one Service (the controller guarantees that).
    pub(crate) fn compute(&self, svc: &Service, pods: &[&Pod]) -> Option<Timestamp> {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        let known = self.states.lock().expect("poisoned").get(&key).cloned();
        let state = known.clone().unwrap_or_default();
        let mut min: Option<Timestamp> = None;
        let mut pod_times = HashMap::new();
        for pod in pods {
            let Some(t) = ready_transition(pod) else {
                continue;
            };
            let name = pod.name_any();
            if state.pods.get(&name).is_none_or(|old| t > *old) {
                min = Some(min.map_or(t, |m| m.min(t)));
            }
            pod_times.insert(name, t);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(c) = created {
            if state.service.is_none_or(|old| c > old) {
                min = Some(min.map_or(c, |m| m.min(c)));
            }
        }
        self.states.lock().expect("poisoned").insert(
            key,
            TriggerState {
                service: created,
                pods: pod_times,
            },
        );
        match known {
            None => created,
            Some(_) => min,
        }
    }

    pub(crate) fn forget(&self, namespace: &str, name: &str) {
        self.states
            .lock()
            .expect("poisoned")
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

fn ready_transition(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

type ServiceSet = HashSet<ObjectRef<Service>>;

/// Maps pod events to the Services they concern: those whose selector matches the pod now,
/// plus those it matched at its previous event (so a pod whose labels changed leaves the
/// Services it no longer matches).
#[derive(Clone)]
pub(crate) struct Memberships {
    services: Store<Service>,
    pods: Store<Pod>,
    last: Arc<Mutex<HashMap<ObjectRef<Pod>, ServiceSet>>>,
}

impl Memberships {
    pub(crate) fn new(services: Store<Service>, pods: Store<Pod>) -> Self {
        Memberships {
            services,
            pods,
            last: Arc::default(),
        }
    }

    pub(crate) fn services_for(&self, pod: &Pod) -> Vec<ObjectRef<Service>> {
        let now: HashSet<ObjectRef<Service>> = self
            .services
            .state()
            .iter()
            .filter(|s| managed_selector(s).is_some_and(|sel| selects(sel, s, pod)))
            .map(|s| ObjectRef::from_obj(&**s))
            .collect();
        let pod_ref = ObjectRef::from_obj(pod);
        // The reflector applied the event before it reaches us: a pod missing from the
        // store was deleted.
        let gone = self.pods.get(&pod_ref).is_none();
        let mut last = self.last.lock().expect("poisoned");
        let before = if gone {
            last.remove(&pod_ref).unwrap_or_default()
        } else {
            last.insert(pod_ref, now.clone()).unwrap_or_default()
        };
        now.union(&before).cloned().collect()
    }
}

/// Per-Service exponential back-off for failed syncs: 1 s, doubling, at most 1000 s (the
/// EndpointSlice controller's limits); reset by a successful sync.
#[derive(Default)]
pub(crate) struct Backoff {
    failures: Mutex<HashMap<ObjectRef<Service>, u32>>,
}

impl Backoff {
    pub(crate) fn failed(&self, svc: &Service) -> Duration {
        let mut failures = self.failures.lock().expect("poisoned");
        let n = failures.entry(ObjectRef::from_obj(svc)).or_default();
        let delay = Duration::from_secs(1u64 << (*n).min(10)).min(Duration::from_secs(1000));
        *n += 1;
        delay
    }

    pub(crate) fn succeeded(&self, svc: &Service) {
        self.failures
            .lock()
            .expect("poisoned")
            .remove(&ObjectRef::from_obj(svc));
    }
}

/// A 404 means the object is already gone: not an error.
pub(crate) fn ignore_not_found<T: Default>(r: kube::Result<T>) -> Result<T> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(T::default()),
        other => Ok(other?),
    }
}

/// A create refused because the namespace is being deleted: it will keep failing, so the
/// sync is dropped, as upstream does.
pub(crate) fn namespace_terminating(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            s.code == 403
                && s.details
                    .as_ref()
                    .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
        }
        _ => false,
    }
}

// ---- The loop ----

struct Context {
    client: Client,
    pods: Store<Pod>,
    triggers: TriggerTimes,
    backoff: Backoff,
}

/// Run the controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let (pod_store, writer) = reflector::store();
    let pod_events = reflector::reflector(
        writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    // Endpoints deletions resync their Service (recreating them); the first full list
    // also brings Endpoints whose Service is gone, which are then deleted.
    let mut listed = false;
    let endpoints_events = watcher(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .filter_map(move |event| {
        future::ready(match event {
            Ok(watcher::Event::Delete(ep)) => Some(Ok(ep)),
            Ok(watcher::Event::InitApply(ep)) if !listed => Some(Ok(ep)),
            Ok(watcher::Event::InitDone) => {
                listed = true;
                None
            }
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    });
    // Deleted Services must reach the loop too (as "not found"), so the Controller is fed
    // every touched Service, not only applied ones.
    let (service_store, service_writer) = reflector::store();
    let services = reflector::reflector(
        service_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let controller = Controller::for_stream(services, service_store);
    let memberships = Memberships::new(controller.store(), pod_store.clone());
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: pod_store,
        triggers: TriggerTimes::default(),
        backoff: Backoff::default(),
    });
    let cleanup = ctx.clone();
    controller
        .watches_stream(pod_events, move |pod: Pod| memberships.services_for(&pod))
        .watches_stream(endpoints_events, |ep: Endpoints| {
            let leader = ep.annotations().contains_key(LEADER_ANNOTATION);
            let ns = ep.namespace().filter(|_| !leader)?;
            Some(ObjectRef::new(&ep.name_any()).within(&ns))
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            reconcile,
            |svc, _, ctx: Arc<Context>| Requeue::requeue(ctx.backoff.failed(&svc)),
            ctx,
        )
        .for_each(|result| {
            let ctx = cleanup.clone();
            async move {
                match result {
                    Ok(_) => {}
                    // The Service is gone: so are its Endpoints.
                    Err(controller::Error::ObjectNotFound(r)) => {
                        let Some(ns) = r.namespace.as_deref() else {
                            return;
                        };
                        ctx.triggers.forget(ns, &r.name);
                        let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
                        let deleted = api.delete(&r.name, &DeleteParams::default()).await;
                        if let Err(error) = ignore_not_found(deleted.map(|_| ())) {
                            tracing::debug!(%error, endpoints.name = %r.name, "endpoints delete failed");
                        }
                    }
                    Err(error) => tracing::debug!(%error, "endpoints reconcile failed"),
                }
            }
        })
        .await;
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
    let pods: Vec<Pod> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| selects(selector, &svc, p))
        .map(|p| (**p).clone())
        .collect();
    let trigger = ctx.triggers.compute(&svc, &pods.iter().collect::<Vec<_>>());
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    // A consistent read, so that our own last write is never mistaken for missing.
    let current = api.get_opt(&name).await?;
    for action in plan(&svc, &pods, current.as_ref(), trigger) {
        match action {
            Action::Create(ep) => match api.create(&PostParams::default(), &ep).await {
                Err(e) if namespace_terminating(&e) => {}
                other => {
                    other?;
                }
            },
            Action::Update(ep) => {
                api.replace(&name, &PostParams::default(), &ep).await?;
            }
        }
    }
    ctx.backoff.succeeded(&svc);
    Ok(Requeue::await_change())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};

    pub(crate) fn service(name: &str, spec: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "labels": {"app": name},
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": spec,
        }))
        .unwrap()
    }

    /// A pod labelled `app: web` on `node`, with `ip`, Ready as given; `extra` is merged into
    /// the pod's JSON.
    pub(crate) fn pod(name: &str, ip: &str, ready: bool, extra: Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "resourceVersion": "7", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "i",
                     "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                                       "lastTransitionTime": "2025-01-02T00:00:00Z"}]},
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn web(extra: Value) -> Service {
        let mut spec = json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.5",
            "ipFamilies": ["IPv4"],
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]});
        merge(&mut spec, extra);
        service("web", spec)
    }

    fn created(actions: Vec<Action>) -> Endpoints {
        match actions.as_slice() {
            [Action::Create(ep)] => ep.clone(),
            other => panic!("expected one create, got {other:?}"),
        }
    }

    fn subsets(ep: &Endpoints) -> Value {
        serde_json::to_value(&ep.subsets).unwrap()
    }

    #[test]
    fn ready_and_unready_pods_fill_addresses_and_not_ready_addresses() {
        let pods = [
            pod("b", "10.42.0.2", true, json!({})),
            pod("a", "10.42.0.1", true, json!({})),
            pod("c", "10.42.0.3", false, json!({})),
            pod(
                "other",
                "10.42.0.9",
                true,
                json!({"metadata": {"labels": {"app": "x"}}}),
            ),
        ];
        let t: Timestamp = "2025-01-03T00:00:00.5Z".parse().unwrap();
        let ep = created(plan(&web(json!({})), &pods, None, Some(t)));
        assert_eq!(ep.metadata.name.as_deref(), Some("web"));
        assert_eq!(
            ep.metadata.labels,
            Some(BTreeMap::from([("app".into(), "web".into())]))
        );
        assert_eq!(
            ep.metadata.annotations.as_ref().unwrap()[TRIGGER_TIME_ANNOTATION],
            "2025-01-03T00:00:00.5Z"
        );
        let addr = |ip: &str, name: &str| {
            json!({"ip": ip, "nodeName": "node-a",
            "targetRef": {"kind": "Pod", "namespace": "ns", "name": name, "uid": format!("uid-{name}")}})
        };
        assert_eq!(
            subsets(&ep),
            json!([{
                "addresses": [addr("10.42.0.1", "a"), addr("10.42.0.2", "b")],
                "notReadyAddresses": [addr("10.42.0.3", "c")],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }])
        );
    }

    #[test]
    fn excluded_pods_terminating_terminal_or_without_ip() {
        let pods = [
            pod(
                "gone",
                "10.42.0.1",
                true,
                json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
            ),
            pod(
                "done",
                "10.42.0.2",
                true,
                json!({"status": {"phase": "Succeeded"}}),
            ),
            pod("noip", "", true, json!({"status": {"podIPs": []}})),
        ];
        let ep = created(plan(&web(json!({})), &pods, None, None));
        assert_eq!(ep.subsets, None);
        assert!(!ep
            .metadata
            .annotations
            .unwrap()
            .contains_key(TRIGGER_TIME_ANNOTATION));
    }

    #[test]
    fn publish_not_ready_addresses_lists_every_pod_as_ready_including_terminating() {
        let pods = [
            pod("a", "10.42.0.1", false, json!({})),
            pod(
                "b",
                "10.42.0.2",
                true,
                json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
            ),
        ];
        let ep = created(plan(
            &web(json!({"publishNotReadyAddresses": true})),
            &pods,
            None,
            None,
        ));
        let s = &ep.subsets.unwrap()[0];
        assert_eq!(s.addresses.as_ref().unwrap().len(), 2);
        assert_eq!(s.not_ready_addresses, None);
    }

    #[test]
    fn named_target_port_resolves_per_pod_and_skips_pods_without_it() {
        let svc = web(json!({"ports": [
            {"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}]}));
        let other_port = json!({"spec": {"containers": [{"name": "c", "image": "i",
            "ports": [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]}]}});
        let no_port = json!({"spec": {"containers": [{"name": "c", "image": "i"}]}});
        let pods = [
            pod("a", "10.42.0.1", true, json!({})),
            pod("b", "10.42.0.2", true, other_port),
            pod("c", "10.42.0.3", true, no_port),
        ];
        let ep = created(plan(&svc, &pods, None, None));
        type Subset = (Vec<String>, Vec<(String, i32)>);
        let got: Vec<Subset> = ep
            .subsets
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s.addresses.iter().flatten().map(|a| a.ip.clone()).collect(),
                    s.ports
                        .iter()
                        .flatten()
                        .map(|p| (p.name.clone().unwrap(), p.port))
                        .collect(),
                )
            })
            .collect();
        // Ports with the same set of addresses share a subset.
        let s = |ips: &[&str], ports: &[(&str, i32)]| {
            (
                ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                ports
                    .iter()
                    .map(|(n, p)| (n.to_string(), *p))
                    .collect::<Vec<_>>(),
            )
        };
        let mut want = vec![
            s(&["10.42.0.1"], &[("web", 8080)]),
            s(
                &["10.42.0.1", "10.42.0.2", "10.42.0.3"],
                &[("metrics", 9090)],
            ),
            s(&["10.42.0.2"], &[("web", 9000)]),
        ];
        let mut got = got;
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn headless_service_gets_the_label_and_pod_hostnames() {
        let svc = service(
            "db",
            json!({"selector": {"app": "web"}, "clusterIP": "None",
            "ipFamilies": ["IPv4"]}),
        );
        let pods = [
            pod(
                "db-0",
                "10.42.0.1",
                true,
                json!({"spec": {"hostname": "db-0", "subdomain": "db"}}),
            ),
            pod(
                "x",
                "10.42.0.2",
                true,
                json!({"spec": {"hostname": "x", "subdomain": "other"}}),
            ),
        ];
        let ep = created(plan(&svc, &pods, None, None));
        assert_eq!(ep.metadata.labels.as_ref().unwrap()[HEADLESS_LABEL], "");
        let s = &ep.subsets.unwrap()[0];
        assert_eq!(s.ports, None);
        let hostnames: Vec<_> = s
            .addresses
            .iter()
            .flatten()
            .map(|a| a.hostname.clone())
            .collect();
        assert_eq!(hostnames, [Some("db-0".to_string()), None]);
    }

    #[test]
    fn services_without_selector_or_external_name_are_left_alone() {
        let pods = [pod("a", "10.42.0.1", true, json!({}))];
        let bare = service(
            "kubernetes",
            json!({"clusterIP": "10.43.0.1", "ports": [{"port": 443}]}),
        );
        assert_eq!(plan(&bare, &pods, None, None), []);
        let ext = web(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert_eq!(plan(&ext, &pods, None, None), []);
    }

    #[test]
    fn unchanged_endpoints_are_not_rewritten_even_when_pod_versions_move() {
        let svc = web(json!({}));
        let pods = [pod("a", "10.42.0.1", true, json!({}))];
        let mut current = created(plan(&svc, &pods, None, None));
        current.metadata.resource_version = Some("10".into());
        // Stored objects carry the pod's resourceVersion in targetRef.
        let mut stored = current.clone();
        stored.subsets.as_mut().unwrap()[0]
            .addresses
            .as_mut()
            .unwrap()[0]
            .target_ref
            .as_mut()
            .unwrap()
            .resource_version = Some("99".into());
        let t: Timestamp = "2025-02-01T00:00:00Z".parse().unwrap();
        assert_eq!(plan(&svc, &pods, Some(&stored), Some(t)), []);

        // A readiness change is an update of the existing object.
        let pods = [pod("a", "10.42.0.1", false, json!({}))];
        match plan(&svc, &pods, Some(&stored), Some(t)).as_slice() {
            [Action::Update(ep)] => {
                assert_eq!(ep.metadata.resource_version.as_deref(), Some("10"));
                let s = &ep.subsets.as_ref().unwrap()[0];
                assert_eq!(s.addresses, None);
                assert_eq!(s.not_ready_addresses.as_ref().unwrap().len(), 1);
            }
            other => panic!("{other:?}"),
        }

        // So is a change of the Service's labels.
        let mut relabelled = svc.clone();
        relabelled.metadata.labels = Some(BTreeMap::from([("tier".into(), "front".into())]));
        let pods = [pod("a", "10.42.0.1", true, json!({}))];
        assert!(matches!(
            plan(&relabelled, &pods, Some(&stored), None).as_slice(),
            [Action::Update(_)]
        ));
    }

    #[test]
    fn more_than_a_thousand_addresses_are_truncated_and_annotated() {
        let pods: Vec<Pod> = (0..1100)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.42.{}.{}", i / 250, i % 250 + 1),
                    i % 2 == 0,
                    json!({}),
                )
            })
            .collect();
        let ep = created(plan(&web(json!({})), &pods, None, None));
        assert_eq!(
            ep.metadata.annotations.as_ref().unwrap()[OVER_CAPACITY_ANNOTATION],
            "truncated"
        );
        let (ready, not_ready) = count(ep.subsets.as_ref().unwrap());
        assert_eq!((ready, not_ready), (550, 450));
        // Once the object is written truncated, nothing changes; below capacity the
        // annotation goes away.
        let mut current = ep.clone();
        current.metadata.resource_version = Some("3".into());
        assert!(matches!(
            plan(&web(json!({})), &pods, Some(&current), None).as_slice(),
            [Action::Update(_)]
        ));
        match plan(&web(json!({})), &pods[..10], Some(&current), None).as_slice() {
            [Action::Update(ep)] => assert!(!ep
                .metadata
                .annotations
                .as_ref()
                .unwrap()
                .contains_key(OVER_CAPACITY_ANNOTATION)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trigger_time_is_the_creation_first_then_the_earliest_changed_readiness() {
        let tracker = TriggerTimes::default();
        let svc = web(json!({}));
        let a = pod("a", "10.42.0.1", true, json!({}));
        assert_eq!(
            tracker.compute(&svc, &[&a]),
            Some("2025-01-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(tracker.compute(&svc, &[&a]), None);
        let b = pod(
            "b",
            "10.42.0.2",
            true,
            json!({"status": {"conditions": [{"type": "Ready",
            "status": "True", "lastTransitionTime": "2025-01-05T00:00:00Z"}]}}),
        );
        assert_eq!(
            tracker.compute(&svc, &[&a, &b]),
            Some("2025-01-05T00:00:00Z".parse().unwrap())
        );
    }
}
