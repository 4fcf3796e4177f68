//! One conformance suite for every store backend (kine's approach: the same scripts against each
//! driver). Each case is an `async fn(Arc<dyn Store>)` in one of the modules under
//! `conformance/`; `conformance!` instantiates every case once per backend, as
//! `sqlite::<case>` (a fresh database in a temporary directory) and `etcd::<case>` (a throwaway
//! etcd started for that test alone).
//!
//! Cases assume nothing about absolute revisions (etcd starts at 1, SQLite at 0): they compare
//! revisions with ones they observed.

#[path = "conformance/compaction.rs"]
mod compaction;
#[path = "conformance/concurrency.rs"]
mod concurrency;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/kv.rs"]
mod kv;
#[path = "conformance/range.rs"]
mod range;
#[path = "conformance/watch.rs"]
mod watch;

/// Instantiates each `module::case` for every backend.
macro_rules! conformance {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::run(crate::harness::sqlite, crate::$module::$case).await;
                }
            )*
        }

        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::run(crate::harness::etcd, crate::$module::$case).await;
                }
            )*
        }
    };
}

conformance! {
    kv::create_then_get_returns_the_value,
    kv::create_of_an_existing_key_fails_with_already_exists,
    kv::update_with_the_current_mod_revision_replaces_the_value,
    kv::update_with_stale_revision_is_rejected,
    kv::update_of_a_missing_key_is_not_found,
    kv::guarded_delete_checks_the_mod_revision,
    kv::unguarded_delete_removes_the_key,
    kv::delete_of_a_missing_key_is_not_found,
    kv::recreating_a_deleted_key_resets_version_and_create_revision,
    kv::every_write_increments_the_revision_and_nothing_else_does,
    kv::get_at_an_older_revision_sees_the_value_of_then,
    kv::keys_and_values_may_hold_arbitrary_text_and_bytes,
    range::range_returns_only_keys_under_the_prefix,
    range::range_pages_with_limit_and_start_after,
    range::paging_at_a_revision_is_consistent_while_writes_happen,
    range::count_counts_keys_under_the_prefix,
    watch::watch_delivers_every_later_event_once_in_order_with_prev_kv,
    watch::watch_replays_history_the_same_as_it_delivers_live_events,
    watch::watch_resumes_from_the_last_seen_revision,
    watch::watch_at_the_current_revision_sees_only_later_writes,
    watch::watch_of_a_prefix_ignores_other_keys,
    compaction::watch_from_a_compacted_revision_fails_with_compacted,
    compaction::reads_at_a_compacted_revision_fail_with_compacted,
    compaction::reads_and_watches_beyond_the_current_revision_fail_with_future_revision,
    compaction::compaction_keeps_the_value_current_at_the_compaction_revision,
    compaction::compacted_revision_reports_the_last_compaction,
    concurrency::concurrent_compare_and_swap_writers_lose_no_update,
    concurrency::concurrent_creates_of_one_key_have_exactly_one_winner,
}
