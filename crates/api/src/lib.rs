//! The API's vocabulary, with no I/O: the registry of kinds ([`Registry`], start there) with
//! each kind's behaviour ([`KindOps`]: normalisation, defaulting, validation, table columns,
//! field selectors), label and field selectors, metadata accessors, and field errors.

pub mod kinds;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quota;
pub mod registry;
pub mod selector;
pub mod table;
pub mod validation;

pub use registry::{
    Conversion, GroupVersion, KindOps, Registry, ResourceDef, Scope, StoredAs, Subresource,
};
pub use validation::{FieldError, Reason};
