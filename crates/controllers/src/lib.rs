//! The controller manager: one module per controller (Deployment, ReplicaSet, garbage
//! collector, namespace, node lifecycle, …), each a level-triggered reconcile loop over the
//! public API. Controllers land with their own issue; this crate holds the layering place.
