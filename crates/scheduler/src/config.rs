//! `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`): profiles, each a scheduler
//! name and a [`Framework`] built from upstream's default plugin set, changed by
//! `plugins.multiPoint` and then by per-extension-point `enabled`/`disabled` lists (`"*"`
//! disables all defaults), with score weights and `pluginConfig` arguments for NodeResourcesFit,
//! InterPodAffinity and PodTopologySpread.
//!
//! In-tree plugins this scheduler does not implement (ImageLocality, VolumeRestrictions, ...)
//! are accepted and ignored; unknown names are an error, as upstream.

use std::sync::Arc;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use serde_json::Value;

use crate::framework::{
    FilterPlugin, Framework, PostFilterPlugin, PreFilterPlugin, PreScorePlugin, QueueSortPlugin,
    ScorePlugin,
};
use crate::plugins::node_resources_fit::{NodeResourcesFit, ScoringStrategy};
use crate::plugins::pod_topology_spread::{Defaults, PodTopologySpread};
use crate::plugins::{
    balanced_allocation, default_preemption, inter_pod_affinity, node_affinity, node_name,
    node_ports, node_resources_fit, node_unschedulable, pod_topology_spread, priority_sort,
    taint_toleration, volume_binding,
};
use crate::runtime::DEFAULT_SCHEDULER_NAME;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("parsing the scheduler configuration: {0}")]
    Parse(String),
    #[error("unsupported scheduler configuration {0}, want kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration")]
    WrongKind(String),
    #[error("profile {profile}: plugin {plugin:?} not found")]
    UnknownPlugin { profile: String, plugin: String },
    #[error("profile {profile}: invalid args for {plugin}: {reason}")]
    InvalidArgs {
        profile: String,
        plugin: String,
        reason: String,
    },
    #[error("all profiles must use the same queue sort plugin")]
    QueueSortDiffers,
    #[error("duplicate profile {0}")]
    DuplicateProfile(String),
}

/// Upstream in-tree plugins that exist there but not here.
const IGNORED: &[&str] = &[
    "ImageLocality",
    "VolumeRestrictions",
    "NodeVolumeLimits",
    "EBSLimits",
    "GCEPDLimits",
    "AzureDiskLimits",
    "CinderLimits",
    "VolumeZone",
    "DefaultBinder",
    "SchedulingGates",
    "DynamicResources",
    "NodeDeclaredFeatures",
];

/// Extension points, in the config's spelling.
const POINTS: &[&str] = &[
    "queueSort",
    "preFilter",
    "filter",
    "postFilter",
    "preScore",
    "score",
];

/// One instantiated plugin and the extension points it serves.
#[derive(Clone, Default)]
struct Entry {
    name: &'static str,
    queue_sort: Option<Arc<dyn QueueSortPlugin>>,
    pre_filter: Option<Arc<dyn PreFilterPlugin>>,
    filter: Option<Arc<dyn FilterPlugin>>,
    post_filter: Option<Arc<dyn PostFilterPlugin>>,
    pre_score: Option<Arc<dyn PreScorePlugin>>,
    score: Option<Arc<dyn ScorePlugin>>,
}

impl Entry {
    fn serves(&self, point: &str) -> bool {
        match point {
            "queueSort" => self.queue_sort.is_some(),
            "preFilter" => self.pre_filter.is_some(),
            "filter" => self.filter.is_some(),
            "postFilter" => self.post_filter.is_some(),
            "preScore" => self.pre_score.is_some(),
            "score" => self.score.is_some(),
            _ => false,
        }
    }
}

/// Upstream's default plugins in multiPoint order, with default score weights.
const DEFAULTS: &[(&str, i64)] = &[
    (priority_sort::NAME, 0),
    (node_unschedulable::NAME, 0),
    (node_name::NAME, 0),
    (taint_toleration::NAME, 3),
    (node_affinity::NAME, 2),
    (node_ports::NAME, 0),
    (node_resources_fit::NAME, 1),
    (volume_binding::NAME, 0),
    (pod_topology_spread::NAME, 2),
    (inter_pod_affinity::NAME, 2),
    (default_preemption::NAME, 0),
    (balanced_allocation::NAME, 1),
];

/// Instantiates the named plugin with its `pluginConfig` args, if it exists here.
fn instantiate(name: &str, args: Option<&Value>) -> Result<Option<Entry>, String> {
    let e = match name {
        priority_sort::NAME => {
            let p = Arc::new(priority_sort::PrioritySort::new());
            Entry {
                name: priority_sort::NAME,
                queue_sort: Some(p),
                ..Default::default()
            }
        }
        node_unschedulable::NAME => Entry {
            name: node_unschedulable::NAME,
            filter: Some(Arc::new(node_unschedulable::NodeUnschedulable::new())),
            ..Default::default()
        },
        node_name::NAME => Entry {
            name: node_name::NAME,
            filter: Some(Arc::new(node_name::NodeName::new())),
            ..Default::default()
        },
        taint_toleration::NAME => {
            let p = Arc::new(taint_toleration::TaintToleration::new());
            Entry {
                name: taint_toleration::NAME,
                filter: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            }
        }
        node_affinity::NAME => {
            let p = Arc::new(node_affinity::NodeAffinity::new());
            Entry {
                name: node_affinity::NAME,
                filter: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            }
        }
        node_ports::NAME => Entry {
            name: node_ports::NAME,
            filter: Some(Arc::new(node_ports::NodePorts::new())),
            ..Default::default()
        },
        node_resources_fit::NAME => {
            let p = Arc::new(fit_from_args(args)?);
            Entry {
                name: node_resources_fit::NAME,
                pre_filter: Some(p.clone()),
                filter: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            }
        }
        volume_binding::NAME => {
            let p = Arc::new(volume_binding::VolumeBinding::new());
            Entry {
                name: volume_binding::NAME,
                pre_filter: Some(p.clone()),
                filter: Some(p),
                ..Default::default()
            }
        }
        pod_topology_spread::NAME => {
            let p = Arc::new(spread_from_args(args)?);
            Entry {
                name: pod_topology_spread::NAME,
                pre_filter: Some(p.clone()),
                filter: Some(p.clone()),
                pre_score: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            }
        }
        inter_pod_affinity::NAME => {
            let weight = args
                .and_then(|a| a.get("hardPodAffinityWeight"))
                .map(|w| w.as_i64().ok_or("hardPodAffinityWeight must be an integer"))
                .transpose()?
                .unwrap_or(inter_pod_affinity::DEFAULT_HARD_POD_AFFINITY_WEIGHT);
            if !(0..=100).contains(&weight) {
                return Err("hardPodAffinityWeight must be in the range 0-100".into());
            }
            let p = Arc::new(inter_pod_affinity::InterPodAffinity::with_hard_weight(
                weight,
            ));
            Entry {
                name: inter_pod_affinity::NAME,
                pre_filter: Some(p.clone()),
                filter: Some(p.clone()),
                pre_score: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            }
        }
        default_preemption::NAME => Entry {
            name: default_preemption::NAME,
            post_filter: Some(Arc::new(default_preemption::DefaultPreemption::new())),
            ..Default::default()
        },
        balanced_allocation::NAME => {
            let p = Arc::new(balanced_allocation::BalancedAllocation::new());
            Entry {
                name: balanced_allocation::NAME,
                pre_score: Some(p.clone()),
                score: Some(p),
                ..Default::default()
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(e))
}

fn fit_from_args(args: Option<&Value>) -> Result<NodeResourcesFit, String> {
    let Some(strategy) = args.and_then(|a| a.get("scoringStrategy")) else {
        return Ok(NodeResourcesFit::new());
    };
    let kind = strategy
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("LeastAllocated");
    let strategy_kind = match kind {
        "LeastAllocated" => ScoringStrategy::LeastAllocated,
        "MostAllocated" => ScoringStrategy::MostAllocated,
        "RequestedToCapacityRatio" => {
            let shape = strategy
                .pointer("/requestedToCapacityRatio/shape")
                .and_then(Value::as_array)
                .ok_or("requestedToCapacityRatio.shape is required")?;
            let mut points = Vec::new();
            for p in shape {
                let u = p.get("utilization").and_then(Value::as_i64).unwrap_or(0);
                let s = p.get("score").and_then(Value::as_i64).unwrap_or(0);
                if !(0..=100).contains(&u) || !(0..=10).contains(&s) {
                    return Err("shape points need utilization 0-100 and score 0-10".into());
                }
                if points.last().is_some_and(|(pu, _)| *pu >= u) {
                    return Err("shape utilization must be strictly increasing".into());
                }
                points.push((u, s));
            }
            if points.is_empty() {
                return Err("requestedToCapacityRatio.shape is required".into());
            }
            ScoringStrategy::RequestedToCapacityRatio(points)
        }
        other => return Err(format!("unknown scoringStrategy type {other:?}")),
    };
    let resources = strategy
        .get("resources")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    let name = r.get("name")?.as_str()?.to_string();
                    let weight = r.get("weight").and_then(Value::as_i64).unwrap_or(1);
                    Some((name, weight))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(NodeResourcesFit::with_strategy(strategy_kind).with_resources(resources))
}

fn spread_from_args(args: Option<&Value>) -> Result<PodTopologySpread, String> {
    let Some(args) = args else {
        return Ok(PodTopologySpread::new());
    };
    match args.get("defaultingType").and_then(Value::as_str) {
        None | Some("System") => Ok(PodTopologySpread::new()),
        Some("List") => {
            let list: Vec<TopologySpreadConstraint> = match args.get("defaultConstraints") {
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| e.to_string())?,
                None => Vec::new(),
            };
            Ok(PodTopologySpread::with_defaults(Defaults::List(list)))
        }
        Some(other) => Err(format!("unknown defaultingType {other:?}")),
    }
}

/// A plugin named in an `enabled` list, with its weight (0 when unset).
fn named(list: Option<&Value>) -> Vec<(String, i64)> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("name")?.as_str()?.to_string(),
                p.get("weight").and_then(Value::as_i64).unwrap_or(0),
            ))
        })
        .collect()
}

/// Applies one `{enabled, disabled}` set to a point's `(name, weight)` list.
fn apply(list: &mut Vec<(String, i64)>, set: Option<&Value>, serves: impl Fn(&str) -> bool) {
    let Some(set) = set else {
        return;
    };
    for (name, _) in named(set.get("disabled")) {
        if name == "*" {
            list.clear();
        } else {
            list.retain(|(n, _)| *n != name);
        }
    }
    for (name, weight) in named(set.get("enabled")) {
        if !serves(&name) {
            continue;
        }
        match list.iter_mut().find(|(n, _)| *n == name) {
            Some(e) if weight != 0 => e.1 = weight,
            Some(_) => {}
            None => list.push((name, weight)),
        }
    }
}

/// Builds one profile's framework from its `plugins` and `pluginConfig`.
pub fn build_profile(name: &str, profile: &Value) -> Result<Framework, ConfigError> {
    let args_of = |plugin: &str| {
        profile
            .get("pluginConfig")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(plugin))
            .and_then(|c| c.get("args"))
    };
    let plugins = profile.get("plugins");
    // Every plugin mentioned anywhere, instantiated once.
    let mut names: Vec<String> = DEFAULTS.iter().map(|(n, _)| n.to_string()).collect();
    for point in std::iter::once("multiPoint").chain(POINTS.iter().copied()) {
        for (n, _) in named(plugins.and_then(|p| p.pointer(&format!("/{point}/enabled")))) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let mut entries: Vec<Entry> = Vec::new();
    for n in &names {
        match instantiate(n, args_of(n)) {
            Ok(Some(e)) => entries.push(e),
            Ok(None) if IGNORED.contains(&n.as_str()) => {
                tracing::info!(plugin = %n, "scheduler plugin not implemented; ignored")
            }
            Ok(None) => {
                return Err(ConfigError::UnknownPlugin {
                    profile: name.to_string(),
                    plugin: n.clone(),
                })
            }
            Err(reason) => {
                return Err(ConfigError::InvalidArgs {
                    profile: name.to_string(),
                    plugin: n.clone(),
                    reason,
                })
            }
        }
    }
    let entry = |n: &str| entries.iter().find(|e| e.name == n);
    let mut fw: Option<Framework> = None;
    let mut lists: Vec<Vec<(String, i64)>> = Vec::new();
    for point in POINTS {
        let serves = |n: &str| entry(n).is_some_and(|e| e.serves(point));
        let mut list: Vec<(String, i64)> = DEFAULTS
            .iter()
            .filter(|(n, _)| serves(n))
            .map(|(n, w)| (n.to_string(), *w))
            .collect();
        apply(&mut list, plugins.and_then(|p| p.get("multiPoint")), serves);
        apply(&mut list, plugins.and_then(|p| p.get(*point)), serves);
        lists.push(list);
    }
    for (point, list) in POINTS.iter().zip(lists) {
        let mut plugins_here = list.iter().filter_map(|(n, w)| Some((entry(n)?, *w)));
        match *point {
            "queueSort" => {
                let sort = plugins_here
                    .next()
                    .and_then(|(e, _)| e.queue_sort.clone())
                    .unwrap_or_else(|| Arc::new(priority_sort::PrioritySort::new()));
                fw = Some(Framework::new(sort));
            }
            _ => {
                let f = fw.as_mut().expect("queueSort comes first");
                for (e, w) in plugins_here {
                    match *point {
                        "preFilter" => f.pre_filter.extend(e.pre_filter.clone()),
                        "filter" => f.filter.extend(e.filter.clone()),
                        "postFilter" => f.post_filter.extend(e.post_filter.clone()),
                        "preScore" => f.pre_score.extend(e.pre_score.clone()),
                        _ => f
                            .score
                            .extend(e.score.clone().map(|s| (s, if w == 0 { 1 } else { w }))),
                    }
                }
            }
        }
    }
    Ok(fw.expect("queueSort is a point"))
}

/// Parses a configuration file's text (YAML or JSON) into `(schedulerName, framework)`
/// profiles. No profiles means one default profile.
pub fn profiles_from_str(text: &str) -> Result<Vec<(String, Framework)>, ConfigError> {
    let v: Value = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api = v
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "KubeSchedulerConfiguration" || api != "kubescheduler.config.k8s.io/v1" {
        return Err(ConfigError::WrongKind(format!("{api} {kind}")));
    }
    let mut out: Vec<(String, Framework)> = Vec::new();
    for p in v
        .get("profiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = p
            .get("schedulerName")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_SCHEDULER_NAME)
            .to_string();
        if out.iter().any(|(n, _)| *n == name) {
            return Err(ConfigError::DuplicateProfile(name));
        }
        let fw = build_profile(&name, p)?;
        if let Some((_, first)) = out.first() {
            if first.queue_sort.name() != fw.queue_sort.name() {
                return Err(ConfigError::QueueSortDiffers);
            }
        }
        out.push((name, fw));
    }
    if out.is_empty() {
        out.push((
            DEFAULT_SCHEDULER_NAME.to_string(),
            build_profile(DEFAULT_SCHEDULER_NAME, &Value::Null)?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T: ?Sized + crate::framework::Plugin>(v: &[Arc<T>]) -> Vec<&'static str> {
        v.iter().map(|p| p.name()).collect()
    }

    fn scores(fw: &Framework) -> Vec<(&'static str, i64)> {
        fw.score.iter().map(|(p, w)| (p.name(), *w)).collect()
    }

    #[test]
    fn an_empty_profile_is_the_default_profile() {
        let fw = build_profile("default-scheduler", &Value::Null).unwrap();
        assert_eq!(
            names(&fw.filter),
            [
                "NodeUnschedulable",
                "NodeName",
                "TaintToleration",
                "NodeAffinity",
                "NodePorts",
                "NodeResourcesFit",
                "VolumeBinding",
                "PodTopologySpread",
                "InterPodAffinity"
            ]
        );
        assert_eq!(
            scores(&fw),
            [
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1)
            ]
        );
        assert_eq!(names(&fw.post_filter), ["DefaultPreemption"]);
    }

    #[test]
    fn profiles_enable_disable_and_weigh_plugins() {
        let text = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: packer
  plugins:
    multiPoint:
      disabled:
      - name: PodTopologySpread
    score:
      disabled:
      - name: "*"
      enabled:
      - name: NodeResourcesFit
        weight: 5
      - name: ImageLocality
        weight: 1
    postFilter:
      disabled:
      - name: DefaultPreemption
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources:
        - name: cpu
          weight: 1
"#;
        let profiles = profiles_from_str(text).unwrap();
        assert_eq!(
            profiles.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["default-scheduler", "packer"]
        );
        let packer = &profiles[1].1;
        assert_eq!(scores(packer), [("NodeResourcesFit", 5)]);
        assert!(packer.post_filter.is_empty());
        assert!(!names(&packer.filter).contains(&"PodTopologySpread"));
        assert!(names(&packer.filter).contains(&"InterPodAffinity"));
    }

    #[test]
    fn bad_configurations_are_rejected() {
        let head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n";
        let cases = [
            ("kind: Other\n".to_string(), "unsupported"),
            (
                format!("{head}profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: Nope\n"),
                "plugin \"Nope\" not found",
            ),
            (
                format!("{head}profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        type: Weird\n"),
                "unknown scoringStrategy",
            ),
            (
                format!("{head}profiles:\n- schedulerName: a\n- schedulerName: a\n"),
                "duplicate profile",
            ),
        ];
        for (text, want) in cases {
            let err = profiles_from_str(&text).err().expect(want).to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
