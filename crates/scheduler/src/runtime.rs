//! placeholder
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
pub struct Scheduler;
