//! The machine under a real node, as the kubelet reports it: capacity from the machine (CPUs,
//! `/proc/meminfo`, the data dir's filesystem, the pod limit), allocatable after the
//! reservations (`--system-reserved`, `--kube-reserved`) and the kubelet's default hard
//! eviction thresholds, and the pressure conditions from real usage ([`HostView::from`]).
//!
//! Thresholds, as the kubelet's defaults: `memory.available < 100Mi` is memory pressure;
//! `nodefs.available < 10%` or `nodefs.inodesFree < 5%` is disk pressure. The kubelet has no
//! default PID threshold; Navarch reports PID pressure when fewer than 5% of `pid_max` are
//! free.
//!
//! [`sample`] reads the machine; everything else is pure.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;

/// `memory.available` below this is memory pressure (and is kept out of allocatable).
pub const EVICTION_MEMORY: i64 = 100 << 20;
/// `nodefs.available` below this share (percent) is disk pressure.
pub const EVICTION_NODEFS_PERCENT: u64 = 10;
/// `nodefs.inodesFree` below this share (percent) is disk pressure.
pub const EVICTION_INODES_PERCENT: u64 = 5;
/// Free PIDs below this share (percent) of `pid_max` is PID pressure.
pub const PID_PRESSURE_PERCENT: u64 = 5;

/// What `--system-reserved` and `--kube-reserved` keep from the pods (summed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserved {
    pub cpu_milli: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
}

impl Reserved {
    /// `cpu=100m,memory=256Mi,ephemeral-storage=1Gi` (the kubelet's flag format).
    pub fn parse(text: &str) -> Result<Reserved, String> {
        let mut reserved = Reserved::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not NAME=QUANTITY"))?;
            let bad = || format!("{value:?} is not a quantity");
            match name.trim() {
                "cpu" => reserved.cpu_milli = quantity::milli_value(value).ok_or_else(bad)?,
                "memory" => reserved.memory = quantity::value(value).ok_or_else(bad)?,
                "ephemeral-storage" => {
                    reserved.ephemeral_storage = quantity::value(value).ok_or_else(bad)?
                }
                other => return Err(format!("cannot reserve {other:?}")),
            }
        }
        Ok(reserved)
    }

    /// Both reservations together.
    pub fn plus(self, other: Reserved) -> Reserved {
        Reserved {
            cpu_milli: self.cpu_milli + other.cpu_milli,
            memory: self.memory + other.memory,
            ephemeral_storage: self.ephemeral_storage + other.ephemeral_storage,
        }
    }
}

/// One reading of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostSample {
    pub cpus: u64,
    pub memory_total: i64,
    pub memory_available: i64,
    /// The data dir's filesystem (the kubelet's nodefs), bytes and inodes.
    pub fs_total: u64,
    pub fs_available: u64,
    pub inodes_total: u64,
    pub inodes_free: u64,
    pub pid_max: u64,
    pub pids: u64,
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> (i64, i64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<i64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// Read the machine: CPUs, memory, the filesystem holding `data_dir`, PIDs.
pub fn sample(data_dir: &Path) -> HostSample {
    let (memory_total, memory_available) =
        parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let mut dir = data_dir;
    // The data dir may not exist yet: its nearest existing ancestor is on the same disk.
    while !dir.exists() {
        match dir.parent() {
            Some(parent) => dir = parent,
            None => break,
        }
    }
    let fs = rustix::fs::statvfs(dir).ok();
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let pids = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        })
        .unwrap_or(0);
    HostSample {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        memory_total,
        memory_available,
        fs_total: fs.as_ref().map_or(0, |f| f.f_blocks * f.f_frsize),
        fs_available: fs.as_ref().map_or(0, |f| f.f_bavail * f.f_frsize),
        inodes_total: fs.as_ref().map_or(0, |f| f.f_files),
        inodes_free: fs.as_ref().map_or(0, |f| f.f_favail),
        pid_max,
        pids,
    }
}

/// The node's resources and conditions from a [`HostSample`].
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    pub capacity: BTreeMap<String, Quantity>,
    pub allocatable: BTreeMap<String, Quantity>,
    pub memory_pressure: bool,
    pub disk_pressure: bool,
    pub pid_pressure: bool,
}

impl HostView {
    pub fn from(sample: &HostSample, reserved: Reserved, max_pods: u32) -> HostView {
        let q = |s: String| Quantity(s);
        let base = |cpu: String, memory: i64, storage: i64| {
            BTreeMap::from([
                ("cpu".to_string(), q(cpu)),
                ("ephemeral-storage".to_string(), q(storage.to_string())),
                ("hugepages-1Gi".to_string(), q("0".to_string())),
                ("hugepages-2Mi".to_string(), q("0".to_string())),
                ("memory".to_string(), q(format!("{}Ki", memory / 1024))),
                ("pods".to_string(), q(max_pods.to_string())),
            ])
        };
        let fs_total = sample.fs_total as i64;
        let capacity = base(sample.cpus.to_string(), sample.memory_total, fs_total);
        let cpu = (sample.cpus as i64 * 1000 - reserved.cpu_milli).max(0);
        let memory = (sample.memory_total - reserved.memory - EVICTION_MEMORY).max(0);
        let nodefs_eviction = fs_total * EVICTION_NODEFS_PERCENT as i64 / 100;
        let storage = (fs_total - reserved.ephemeral_storage - nodefs_eviction).max(0);
        let allocatable = base(format!("{cpu}m"), memory, storage);
        let below = |free: u64, total: u64, percent: u64| total > 0 && free * 100 < total * percent;
        HostView {
            capacity,
            allocatable,
            memory_pressure: sample.memory_available < EVICTION_MEMORY,
            disk_pressure: below(
                sample.fs_available,
                sample.fs_total,
                EVICTION_NODEFS_PERCENT,
            ) || below(
                sample.inodes_free,
                sample.inodes_total,
                EVICTION_INODES_PERCENT,
            ),
            pid_pressure: below(
                sample.pid_max.saturating_sub(sample.pids),
                sample.pid_max,
                PID_PRESSURE_PERCENT,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HostSample {
        HostSample {
            cpus: 2,
            memory_total: 4 << 30,
            memory_available: 3 << 30,
            fs_total: 100 << 30,
            fs_available: 50 << 30,
            inodes_total: 1000,
            inodes_free: 500,
            pid_max: 1000,
            pids: 100,
        }
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let text = "MemTotal:        4028440 kB\nMemFree:  1 kB\nMemAvailable:    3000000 kB\n";
        assert_eq!(parse_meminfo(text), (4028440 * 1024, 3000000 * 1024));
        assert_eq!(parse_meminfo(""), (0, 0));
    }

    #[test]
    fn reservations_parse_like_the_kubelet_flags() {
        let system = Reserved::parse("cpu=100m,memory=256Mi").unwrap();
        let kube = Reserved::parse("cpu=1, ephemeral-storage=1Gi").unwrap();
        assert_eq!(
            system.plus(kube),
            Reserved {
                cpu_milli: 1100,
                memory: 256 << 20,
                ephemeral_storage: 1 << 30
            }
        );
        assert!(Reserved::parse("gpu=1").is_err());
        assert!(Reserved::parse("cpu").is_err());
        assert_eq!(Reserved::parse("").unwrap(), Reserved::default());
    }

    #[test]
    fn allocatable_is_capacity_less_reservations_and_eviction_thresholds() {
        let reserved = Reserved::parse("cpu=500m,memory=1Gi,ephemeral-storage=10Gi").unwrap();
        let view = HostView::from(&sample(), reserved, 110);
        let get = |map: &BTreeMap<String, Quantity>, key: &str| map[key].0.clone();
        assert_eq!(get(&view.capacity, "cpu"), "2");
        assert_eq!(get(&view.capacity, "memory"), "4194304Ki");
        assert_eq!(
            get(&view.capacity, "ephemeral-storage"),
            (100u64 << 30).to_string()
        );
        assert_eq!(get(&view.capacity, "pods"), "110");
        assert_eq!(get(&view.allocatable, "cpu"), "1500m");
        // 4 Gi − 1 Gi − 100 Mi.
        assert_eq!(
            get(&view.allocatable, "memory"),
            format!("{}Ki", (3072 - 100) * 1024)
        );
        // 100 Gi − 10 Gi − 10%.
        assert_eq!(
            get(&view.allocatable, "ephemeral-storage"),
            (80u64 << 30).to_string()
        );
        assert!(!view.memory_pressure && !view.disk_pressure && !view.pid_pressure);
    }

    #[test]
    fn pressure_follows_the_eviction_thresholds() {
        let view = |change: fn(&mut HostSample)| {
            let mut s = sample();
            change(&mut s);
            HostView::from(&s, Reserved::default(), 110)
        };
        assert!(view(|s| s.memory_available = 99 << 20).memory_pressure);
        assert!(!view(|s| s.memory_available = 100 << 20).memory_pressure);
        assert!(view(|s| s.fs_available = 9 << 30).disk_pressure);
        assert!(view(|s| s.inodes_free = 49).disk_pressure);
        assert!(!view(|s| s.inodes_free = 50).disk_pressure);
        assert!(view(|s| s.pids = 951).pid_pressure);
        assert!(!view(|s| s.pids = 950).pid_pressure);
    }
}
