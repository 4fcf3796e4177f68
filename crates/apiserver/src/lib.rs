//! The HTTP API server (placeholder: being written).
