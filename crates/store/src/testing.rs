//! Test helpers (placeholder: being written).
