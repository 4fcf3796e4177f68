//! The resource registry: kinds, group/version/resource, scope, short names, defaulting,
//! validation and table columns, built on k8s-openapi. No I/O.
