//! Scenario benchmarks over whole components; the benchmarks are the `[[bench]]` targets beside
//! this file (`api.rs`: API latency, large lists and watch fan-out over HTTPS). This library is
//! empty: it exists because a package needs one target that is not a benchmark.
