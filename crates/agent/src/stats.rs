//! CPU and memory statistics of pods and containers, read from their cgroups and kept in
//! memory ([`StatsStore`]) for a metrics API to serve later (the kubelet's resource metrics:
//! cumulative CPU time, memory working set).
//!
//! [`Collector::collect`] lists the runtime's running containers and reads each pod's cgroup
//! (`/navarch/pod<UID>`) and each container's below it (`…/<container id>`, where runc puts
//! it with the cgroupfs driver), in cgroup v1 (`cpuacct.usage`, `memory.usage_in_bytes`,
//! `memory.stat`'s `total_inactive_file`) or v2 (`cpu.stat`'s `usage_usec`,
//! `memory.current`, `memory.stat`'s `inactive_file`). The working set is usage less
//! inactive file pages, as the kubelet computes it. Under the systemd driver nothing is read
//! yet. [`run`] collects every 10 s; the store swaps in each complete collection at once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::containerd::CgroupDriver;
use crate::runtime::cri::cgroup_parent;
use crate::runtime::{ContainerState, Runtime};

/// How often [`run`] collects (the kubelet's housekeeping interval).
pub const INTERVAL: Duration = Duration::from_secs(10);

/// One reading of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub timestamp: Timestamp,
    /// CPU time used since the cgroup was created, in nanoseconds.
    pub cpu_usage_ns: u64,
    pub memory_usage: u64,
    /// Usage less inactive file pages: what the kubelet reports and evicts on.
    pub memory_working_set: u64,
}

/// A pod's usage and its running containers' (by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodStats {
    pub pod_uid: String,
    pub usage: Usage,
    pub containers: BTreeMap<String, Usage>,
}

/// The latest statistics of every pod; cheap to clone (one writer, many readers).
#[derive(Debug, Clone, Default)]
pub struct StatsStore {
    pods: Arc<RwLock<HashMap<String, PodStats>>>,
}

impl StatsStore {
    pub fn pod(&self, pod_uid: &str) -> Option<PodStats> {
        self.pods.read().ok()?.get(pod_uid).cloned()
    }

    pub fn all(&self) -> Vec<PodStats> {
        self.pods
            .read()
            .map(|pods| pods.values().cloned().collect())
            .unwrap_or_default()
    }

    fn replace(&self, pods: HashMap<String, PodStats>) {
        if let Ok(mut current) = self.pods.write() {
            *current = pods;
        }
    }
}

/// `KEY VALUE` lines (`cpu.stat`, `memory.stat`).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

fn read(path: PathBuf) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The usage of the cgroup at `relative` (below each hierarchy) under `root`.
pub fn read_usage(root: &Path, unified: bool, relative: &str, now: Timestamp) -> Option<Usage> {
    let relative = relative.trim_start_matches('/');
    let (cpu_usage_ns, memory_usage, inactive) = if unified {
        let dir = root.join(relative);
        let cpu = stat_value(&read(dir.join("cpu.stat"))?, "usage_usec")? * 1000;
        let memory = read(dir.join("memory.current"))?.trim().parse().ok()?;
        let inactive = read(dir.join("memory.stat"))
            .and_then(|s| stat_value(&s, "inactive_file"))
            .unwrap_or(0);
        (cpu, memory, inactive)
    } else {
        let cpu = read(root.join("cpuacct").join(relative).join("cpuacct.usage"))?;
        let memory_dir = root.join("memory").join(relative);
        let memory = read(memory_dir.join("memory.usage_in_bytes"))?;
        let inactive = read(memory_dir.join("memory.stat"))
            .and_then(|s| stat_value(&s, "total_inactive_file"))
            .unwrap_or(0);
        (
            cpu.trim().parse().ok()?,
            memory.trim().parse().ok()?,
            inactive,
        )
    };
    Some(Usage {
        timestamp: now,
        cpu_usage_ns,
        memory_usage,
        memory_working_set: memory_usage.saturating_sub(inactive),
    })
}

/// Reads the pods' cgroups of one runtime.
#[derive(Clone)]
pub struct Collector {
    pub runtime: Arc<dyn Runtime>,
    pub driver: CgroupDriver,
    /// Where the cgroup hierarchies are mounted (`/sys/fs/cgroup`).
    pub root: PathBuf,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("driver", &self.driver)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// One collection: every pod with a running container.
    pub async fn collect(&self) -> HashMap<String, PodStats> {
        let mut pods: HashMap<String, PodStats> = HashMap::new();
        if self.driver != CgroupDriver::Cgroupfs {
            return pods;
        }
        let Ok(containers) = self.runtime.list_containers(None).await else {
            return pods;
        };
        let unified = self.root.join("cgroup.controllers").exists();
        let now = Timestamp::now();
        for container in containers {
            if container.state != ContainerState::Running || container.pod_uid.is_empty() {
                continue;
            }
            let parent = cgroup_parent(CgroupDriver::Cgroupfs, &container.pod_uid);
            if !pods.contains_key(&container.pod_uid) {
                let Some(usage) = read_usage(&self.root, unified, &parent, now) else {
                    continue;
                };
                pods.insert(
                    container.pod_uid.clone(),
                    PodStats {
                        pod_uid: container.pod_uid.clone(),
                        usage,
                        containers: BTreeMap::new(),
                    },
                );
            }
            let relative = format!("{parent}/{}", container.id);
            if let (Some(usage), Some(pod)) = (
                read_usage(&self.root, unified, &relative, now),
                pods.get_mut(&container.pod_uid),
            ) {
                pod.containers.insert(container.name.clone(), usage);
            }
        }
        pods
    }
}

/// Collect into `store` every [`INTERVAL`] until `cancel`.
pub async fn run(collector: Collector, store: StatsStore, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        store.replace(collector.collect().await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn v1_and_v2_cgroups_give_cpu_time_and_working_set() {
        let now = Timestamp::UNIX_EPOCH;
        let v1 = tempfile::tempdir().unwrap();
        write(v1.path(), "cpuacct/navarch/podu/cpuacct.usage", "1500\n");
        write(
            v1.path(),
            "memory/navarch/podu/memory.usage_in_bytes",
            "10000\n",
        );
        write(
            v1.path(),
            "memory/navarch/podu/memory.stat",
            "cache 5\ninactive_file 1\ntotal_inactive_file 4000\n",
        );
        let usage = read_usage(v1.path(), false, "/navarch/podu", now).unwrap();
        assert_eq!(
            (
                usage.cpu_usage_ns,
                usage.memory_usage,
                usage.memory_working_set
            ),
            (1500, 10000, 6000)
        );
        assert_eq!(read_usage(v1.path(), false, "/navarch/other", now), None);

        let v2 = tempfile::tempdir().unwrap();
        write(
            v2.path(),
            "navarch/podu/cpu.stat",
            "usage_usec 7\nuser_usec 5\n",
        );
        write(v2.path(), "navarch/podu/memory.current", "8192\n");
        write(
            v2.path(),
            "navarch/podu/memory.stat",
            "anon 1\ninactive_file 10000\n",
        );
        let usage = read_usage(v2.path(), true, "/navarch/podu", now).unwrap();
        assert_eq!(
            (
                usage.cpu_usage_ns,
                usage.memory_usage,
                usage.memory_working_set
            ),
            (7000, 8192, 0)
        );
    }

    #[test]
    fn the_store_swaps_in_whole_collections() {
        let store = StatsStore::default();
        let usage = Usage {
            timestamp: Timestamp::UNIX_EPOCH,
            cpu_usage_ns: 1,
            memory_usage: 2,
            memory_working_set: 2,
        };
        let pod = |uid: &str| PodStats {
            pod_uid: uid.into(),
            usage,
            containers: BTreeMap::from([("app".to_string(), usage)]),
        };
        store.replace(HashMap::from([("a".to_string(), pod("a"))]));
        assert_eq!(store.pod("a"), Some(pod("a")));
        store.replace(HashMap::from([("b".to_string(), pod("b"))]));
        assert_eq!(store.pod("a"), None);
        assert_eq!(store.all(), [pod("b")]);
    }
}
