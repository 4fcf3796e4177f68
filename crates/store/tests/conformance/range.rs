//! Listing: prefix ranges, paging, consistent pages at one revision, counting.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use navarch_store::{Error, KeyValue, RangeOptions, Store};

use crate::harness::{bytes, create, STEP_TIMEOUT};

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

pub async fn range_returns_only_keys_under_the_prefix(store: Arc<dyn Store>) {
    for key in [
        "/a/2",
        "/ab",
        "/a",
        "/a/1",
        "/b/1",
        "/a/é",
        "/a/z/deep",
        "/",
    ] {
        create(&store, key, key).await;
    }
    let under = |prefix: &'static str| {
        let store = store.clone();
        async move {
            let result = store.range(prefix, RangeOptions::default()).await.unwrap();
            assert!(!result.more);
            result
                .kvs
                .iter()
                .map(|kv| {
                    assert_eq!(kv.value, kv.key.as_bytes());
                    kv.key.clone()
                })
                .collect::<Vec<_>>()
        }
    };
    // Ascending byte order: "é" (0xc3 0xa9) sorts after "z".
    assert_eq!(under("/a/").await, ["/a/1", "/a/2", "/a/z/deep", "/a/é"]);
    assert_eq!(
        under("/a").await,
        ["/a", "/a/1", "/a/2", "/a/z/deep", "/a/é", "/ab"]
    );
    assert_eq!(under("/b/").await, ["/b/1"]);
    assert_eq!(under("/c/").await, Vec::<String>::new());
    assert_eq!(under("/").await.len(), 8);
}

pub async fn range_pages_with_limit_and_start_after(store: Arc<dyn Store>) {
    let mut all = Vec::new();
    for i in 0..25 {
        all.push(create(&store, &format!("/p/k{i:02}"), "v").await);
    }
    create(&store, "/q/outside", "v").await;

    let mut pages = Vec::new();
    let mut opts = RangeOptions {
        limit: 10,
        ..Default::default()
    };
    loop {
        let page = store.range("/p/", opts.clone()).await.unwrap();
        assert!(page.kvs.len() <= 10);
        let more = page.more;
        opts.start_after = page.kvs.last().map(|kv| kv.key.clone());
        opts.revision = Some(page.revision);
        pages.push(page);
        if !more {
            break;
        }
    }
    let sizes: Vec<usize> = pages.iter().map(|p| p.kvs.len()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let listed: Vec<KeyValue> = pages.into_iter().flat_map(|p| p.kvs).collect();
    assert_eq!(listed, all);

    let exact = store
        .range(
            "/p/",
            RangeOptions {
                limit: 25,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((exact.kvs.len(), exact.more), (25, false));

    let unlimited = store.range("/p/", RangeOptions::default()).await.unwrap();
    assert_eq!((unlimited.kvs.len(), unlimited.more), (25, false));

    let from_middle = store
        .range(
            "/p/",
            RangeOptions {
                start_after: Some("/p/k19x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        keys(&from_middle.kvs),
        ["/p/k20", "/p/k21", "/p/k22", "/p/k23", "/p/k24"]
    );

    let past_the_end = store
        .range(
            "/p/",
            RangeOptions {
                start_after: Some("/p/k24".into()),
                limit: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((past_the_end.kvs.len(), past_the_end.more), (0, false));
}

/// A writer keeps changing the listed keys (updates, deletes, re-creates, new keys that sort
/// between the pages) while a reader pages through them at the revision of its first page. The
/// pages together must be exactly the state at that revision, rebuilt from the writer's own
/// record of what it did.
pub async fn paging_at_a_revision_is_consistent_while_writes_happen(store: Arc<dyn Store>) {
    let mut initial = BTreeMap::new();
    for i in 0..40 {
        let kv = create(&store, &format!("/list/k{i:02}"), "v0").await;
        initial.insert(kv.key.clone(), kv);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (progress, mut progress_rx) = tokio::sync::watch::channel(0usize);
    let writer = tokio::spawn({
        let store = store.clone();
        let stop = stop.clone();
        let mut state = initial.clone();
        async move {
            // (revision, key, value after the write; None for a delete)
            let mut log: Vec<(i64, String, Option<Vec<u8>>)> = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let value = bytes(&format!("w{i}"));
                let key = match i % 3 {
                    0 => format!("/list/k{:02}", (i * 7) % 40),
                    1 => format!("/list/k{:02}", (i * 11 + 3) % 40),
                    _ => format!("/list/k{:02}+{i}", (i * 13) % 40),
                };
                let (revision, after) = match state.get(&key) {
                    Some(kv) if i % 3 == 1 => {
                        let (_, at) = store.delete(&key, Some(kv.mod_revision)).await.unwrap();
                        (at, None)
                    }
                    Some(kv) => {
                        let kv = store
                            .update(&key, value.clone(), kv.mod_revision)
                            .await
                            .unwrap();
                        (kv.mod_revision, Some(kv))
                    }
                    None => {
                        let kv = store.create(&key, value.clone()).await.unwrap();
                        (kv.mod_revision, Some(kv))
                    }
                };
                log.push((
                    revision,
                    key.clone(),
                    after.as_ref().map(|kv| kv.value.clone()),
                ));
                match after {
                    Some(kv) => state.insert(key, kv),
                    None => state.remove(&key),
                };
                i += 1;
                progress.send_replace(i);
            }
            log
        }
    });

    wait_for_writes(&mut progress_rx, 3).await;
    let mut opts = RangeOptions {
        limit: 7,
        ..Default::default()
    };
    let mut listed = Vec::new();
    let mut pages = 0;
    let snapshot = loop {
        let page = store.range("/list/", opts.clone()).await.unwrap();
        pages += 1;
        listed.extend(page.kvs.iter().cloned());
        if !page.more {
            break page.revision;
        }
        opts.start_after = page.kvs.last().map(|kv| kv.key.clone());
        opts.revision = Some(page.revision);
        // Make sure the store moves on between pages.
        let done = *progress_rx.borrow();
        wait_for_writes(&mut progress_rx, done + 2).await;
    };
    stop.store(true, Ordering::SeqCst);
    let log = writer.await.unwrap();

    assert!(pages >= 5, "expected several pages, got {pages}");
    assert!(
        log.iter().any(|(revision, _, _)| *revision > snapshot),
        "no write happened after the snapshot"
    );
    let mut expected: BTreeMap<String, Vec<u8>> = initial
        .into_iter()
        .map(|(key, kv)| (key, kv.value))
        .collect();
    for (_, key, value) in log.into_iter().filter(|(r, _, _)| *r <= snapshot) {
        match value {
            Some(value) => expected.insert(key, value),
            None => expected.remove(&key),
        };
    }
    for kv in &listed {
        assert!(
            kv.mod_revision <= snapshot,
            "{kv:?} is newer than {snapshot}"
        );
    }
    let listed: Vec<(String, Vec<u8>)> = listed.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let expected: Vec<(String, Vec<u8>)> = expected.into_iter().collect();
    assert_eq!(listed, expected);

    // The same snapshot in one page agrees.
    let whole = store
        .range(
            "/list/",
            RangeOptions {
                revision: Some(snapshot),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let whole: Vec<(String, Vec<u8>)> =
        whole.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(whole, expected);
}

async fn wait_for_writes(progress: &mut tokio::sync::watch::Receiver<usize>, at_least: usize) {
    tokio::time::timeout(STEP_TIMEOUT, progress.wait_for(|n| *n >= at_least))
        .await
        .expect("writer made no progress")
        .expect("writer stopped");
}

pub async fn count_counts_keys_under_the_prefix(store: Arc<dyn Store>) {
    assert_eq!(store.count("/c/").await.unwrap(), 0);
    for key in ["/c/1", "/c/2", "/c/3", "/cd", "/d/1"] {
        create(&store, key, "v").await;
    }
    assert_eq!(store.count("/c/").await.unwrap(), 3);
    assert_eq!(store.count("/c").await.unwrap(), 4);
    store.delete("/c/2", None).await.unwrap();
    assert_eq!(store.count("/c/").await.unwrap(), 2);
    let err = store.create("/c/1", bytes("again")).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }));
    assert_eq!(store.count("/c/").await.unwrap(), 2);
}
