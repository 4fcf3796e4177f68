//! Results of plugin calls. "Does not fit" is a status, not an error: `Unschedulable` may be
//! resolved by preemption or cluster changes, `UnschedulableAndUnresolvable` may not.

/// The outcome class of a plugin call, as upstream's framework codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success,
    /// Does not fit now; preemption or a cluster change may help.
    Unschedulable,
    /// Does not fit, and preempting pods on the node would not help.
    UnschedulableAndUnresolvable,
    /// An internal failure; the pod is retried with backoff.
    Error,
    /// Skip this plugin's later extension points for this pod.
    Skip,
}

/// A code, the human reasons (each counted in the FailedScheduling message) and the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    pub plugin: &'static str,
}

impl Status {
    pub fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn unschedulable(reasons: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::new(Code::Unschedulable, reasons)
    }

    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Self::new(Code::UnschedulableAndUnresolvable, [reason])
    }

    pub fn error(reason: impl Into<String>) -> Self {
        Self::new(Code::Error, [reason])
    }

    pub fn new(code: Code, reasons: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Status {
            code,
            reasons: reasons.into_iter().map(Into::into).collect(),
            plugin: "",
        }
    }

    pub fn with_plugin(mut self, plugin: &'static str) -> Self {
        self.plugin = plugin;
        self
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }
}
