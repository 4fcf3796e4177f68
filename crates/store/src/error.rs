//! The store's errors, by kind rather than by backend (etcd's and kine's vocabulary), so that the
//! API server maps each to one Kubernetes status without knowing which backend answered.

/// What went wrong with a store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create` found the key already present.
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    /// The key is absent (update, delete, or a guarded get).
    #[error("key {key} not found")]
    NotFound { key: String },
    /// A compare-and-swap guard failed: the key exists but its mod_revision differs.
    #[error("key {key} was modified: expected mod_revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: i64,
        actual: i64,
    },
    /// The requested revision was compacted away.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    /// The requested revision is newer than the store's current revision.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision { requested: i64, current: i64 },
    /// The backend cannot serve the request (I/O failure, connection lost, closed store).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
