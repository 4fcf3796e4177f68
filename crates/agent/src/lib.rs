//! The node agent (kubelet): node registration and lease, pod workers, and the `Runtime` trait
//! with CRI (containerd) and simulated implementations. Lands with its own issue; this crate
//! holds the layering place.
