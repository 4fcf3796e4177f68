//! The embedded SQLite backend (placeholder: being written).
