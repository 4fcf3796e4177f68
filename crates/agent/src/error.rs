//! The agent's errors: what failed, in the runtime or talking to the API server.

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The container runtime failed an operation.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A setting is unusable (a quantity, a CIDR).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file or directory of the agent's could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A host program the agent drives (`containerd`, `ctr`, `ip`) could not run or failed.
    #[error("{command}: {message}")]
    Command { command: String, message: String },
    /// containerd did not come up or answer on its socket.
    #[error("containerd: {0}")]
    Containerd(String),
}

/// What a [`crate::runtime::Runtime`] operation can fail with, in CRI's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// No sandbox, container or image with that id.
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    /// The image could not be pulled.
    #[error("failed to pull image {image:?}: {message}")]
    ImagePull { image: String, message: String },
    /// The pod network has no free address left.
    #[error("no free address in pod network {cidr}")]
    AddressesExhausted { cidr: String },
    /// The operation is not valid in the object's current state.
    #[error("{0}")]
    InvalidState(String),
    /// The runtime failed a call for another reason (CRI: the gRPC status).
    #[error("{operation}: {message}")]
    Call {
        operation: &'static str,
        message: String,
    },
}
