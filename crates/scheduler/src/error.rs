//! The crate's error type: failures of the scheduler's I/O, never "the pod does not fit".

/// What went wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding pod {pod} to node {node} failed: {source}")]
    BindFailed {
        pod: String,
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("recording the selected node on claim {claim} failed: {source}")]
    ClaimUpdateFailed {
        claim: String,
        #[source]
        source: kube::Error,
    },
    #[error("updating the status of pod {pod} failed: {source}")]
    StatusUpdateFailed {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
