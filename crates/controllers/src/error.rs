//! The controllers' error type.

/// What a reconcile can fail at; each is retried with back-off by the controller loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("no watched resource for owner kind {0}")]
    UnknownOwnerKind(String),
    #[error("{0} kept changing under a read-modify-write")]
    Conflict(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
