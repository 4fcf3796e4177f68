//! The etcd backend (placeholder: being written).
