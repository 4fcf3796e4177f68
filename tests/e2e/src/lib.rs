//! Whole-cluster tests driven by the real kubectl live in `tests/`.
