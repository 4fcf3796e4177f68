//! Many concurrent clients: compare-and-swap must not lose updates, and a concurrent watch must
//! see every revision.

use std::sync::Arc;

use navarch_store::{Error, EventKind, Store};

use crate::harness::{bytes, create, get, next_event, watch};

const WRITERS: usize = 32;
const INCREMENTS: usize = 10;

fn number(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a counter value: {value:?}"))
}

/// 32 clients each add 1 to a shared counter 10 times by read-modify-write with retries on
/// `Conflict`; a watcher started before them sees every increment, in order.
pub async fn concurrent_compare_and_swap_writers_lose_no_update(store: Arc<dyn Store>) {
    let counter = create(&store, "/counter", "0").await;
    let mut events = watch(&store, "/counter", counter.mod_revision).await;

    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..INCREMENTS {
                    loop {
                        let (_, kv) = store.get("/counter", None).await.unwrap();
                        let kv = kv.expect("counter exists");
                        let next = (number(&kv.value) + 1).to_string();
                        match store
                            .update("/counter", bytes(&next), kv.mod_revision)
                            .await
                        {
                            Ok(_) => break,
                            Err(Error::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("update failed: {e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();

    let total = (WRITERS * INCREMENTS) as u64;
    let mut previous = counter.clone();
    for expected in 1..=total {
        let event = next_event(&mut events).await;
        assert_eq!(event.kind, EventKind::Put);
        assert_eq!(number(&event.kv.value), expected);
        assert_eq!(
            event.kv.mod_revision,
            previous.mod_revision + 1,
            "a revision was skipped"
        );
        assert_eq!(event.kv.version, previous.version + 1);
        assert_eq!(event.prev_kv.as_ref(), Some(&previous));
        previous = event.kv;
    }

    let mut conflicts = 0;
    for writer in writers {
        conflicts += writer.await.unwrap();
    }
    let last = get(&store, "/counter").await.unwrap();
    assert_eq!(number(&last.value), total, "lost updates");
    assert_eq!(last, previous);
    // With 32 clients racing on one key, compare-and-swap must have turned some away.
    assert!(conflicts > 0);
}

/// 16 clients race to create the same key: exactly one wins, the rest see `AlreadyExists`.
pub async fn concurrent_creates_of_one_key_have_exactly_one_winner(store: Arc<dyn Store>) {
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create("/race", bytes(&i.to_string())).await })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(kv) => winners.push(kv),
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("create failed: {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(get(&store, "/race").await, Some(winners.remove(0)));
}
