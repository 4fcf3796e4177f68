//! Compaction and the edges of history: `Compacted` below it, `FutureRevision` beyond the head.

use std::sync::Arc;

use navarch_store::{Error, RangeOptions, Store};

use crate::harness::{create, current, get, next_event, update};

fn at(revision: i64) -> RangeOptions {
    RangeOptions {
        revision: Some(revision),
        ..Default::default()
    }
}

pub async fn watch_from_a_compacted_revision_fails_with_compacted(store: Arc<dyn Store>) {
    let before = current(&store).await;
    let mut kv = create(&store, "/c/a", "0").await;
    for i in 1..5 {
        kv = update(&store, &kv, &i.to_string()).await;
    }
    store.compact(kv.mod_revision).await.unwrap();

    let err = match store.watch("/c/", before).await {
        Err(e) => e,
        Ok(_) => panic!("watch from compacted revision {before} started"),
    };
    assert!(
        matches!(err, Error::Compacted { requested, .. } if requested == before),
        "{err:?}"
    );

    // From the compaction revision on, history is there.
    let mut events = store.watch("/c/", kv.mod_revision).await.unwrap();
    let next = update(&store, &kv, "after").await;
    let event = next_event(&mut events).await;
    assert_eq!(event.kv, next);
    assert_eq!(event.prev_kv, Some(kv));
}

pub async fn reads_at_a_compacted_revision_fail_with_compacted(store: Arc<dyn Store>) {
    let v1 = create(&store, "/c/a", "v1").await;
    let v2 = update(&store, &v1, "v2").await;
    let v3 = update(&store, &v2, "v3").await;
    store.compact(v3.mod_revision).await.unwrap();

    let err = store.get("/c/a", Some(v1.mod_revision)).await.unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err:?}");
    let err = store.range("/c/", at(v2.mod_revision)).await.unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err:?}");
    // Reads at the head are unaffected.
    assert_eq!(get(&store, "/c/a").await, Some(v3));
}

pub async fn reads_and_watches_beyond_the_current_revision_fail_with_future_revision(
    store: Arc<dyn Store>,
) {
    create(&store, "/f/a", "v").await;
    let head = current(&store).await;

    let err = store.get("/f/a", Some(head + 1)).await.unwrap_err();
    assert!(
        matches!(err, Error::FutureRevision { requested, .. } if requested == head + 1),
        "{err:?}"
    );
    let err = store.range("/f/", at(head + 10)).await.unwrap_err();
    assert!(matches!(err, Error::FutureRevision { .. }), "{err:?}");
    let err = match store.watch("/f/", head + 1).await {
        Err(e) => e,
        Ok(_) => panic!("watch from a future revision started"),
    };
    assert!(matches!(err, Error::FutureRevision { .. }), "{err:?}");

    // The head itself is fine.
    assert_eq!(store.range("/f/", at(head)).await.unwrap().kvs.len(), 1);
    let _watch = store.watch("/f/", head).await.unwrap();
}

pub async fn compaction_keeps_the_value_current_at_the_compaction_revision(store: Arc<dyn Store>) {
    let a1 = create(&store, "/k/a", "a1").await;
    let a2 = update(&store, &a1, "a2").await;
    let b = create(&store, "/k/b", "b").await;
    let (_, b_deleted) = store.delete("/k/b", Some(b.mod_revision)).await.unwrap();
    let untouched = create(&store, "/k/c", "c").await;
    let compact_at = current(&store).await;
    assert_eq!(compact_at, untouched.mod_revision);
    let a3 = update(&store, &a2, "a3").await;
    let d = create(&store, "/k/d", "d").await;

    store.compact(compact_at).await.unwrap();

    // At the compaction revision: a2, no b, c.
    assert_eq!(
        store.get("/k/a", Some(compact_at)).await.unwrap(),
        (compact_at, Some(a2.clone()))
    );
    assert_eq!(store.get("/k/b", Some(compact_at)).await.unwrap().1, None);
    let then = store.range("/k/", at(compact_at)).await.unwrap();
    assert_eq!(then.kvs, [a2.clone(), untouched.clone()]);
    assert!(b_deleted <= compact_at);

    // Later history and the head are intact.
    assert_eq!(
        store.get("/k/a", Some(a3.mod_revision)).await.unwrap().1,
        Some(a3.clone())
    );
    let now = store.range("/k/", RangeOptions::default()).await.unwrap();
    assert_eq!(now.kvs, [a3.clone(), untouched, d]);
    let a4 = update(&store, &a3, "a4").await;
    assert_eq!(a4.version, 4);
}

pub async fn compacted_revision_reports_the_last_compaction(store: Arc<dyn Store>) {
    let mut kv = create(&store, "/k/a", "0").await;
    for i in 1..4 {
        kv = update(&store, &kv, &i.to_string()).await;
    }
    let first = kv.mod_revision - 2;
    store.compact(first).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), first);
    store.compact(kv.mod_revision).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), kv.mod_revision);
    assert_eq!(get(&store, "/k/a").await, Some(kv));
}
