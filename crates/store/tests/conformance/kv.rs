//! Single-key reads and writes: create, compare-and-swap update and delete, and the revision
//! bookkeeping on each key.

use std::sync::Arc;

use navarch_store::{Error, EventKind, RangeOptions, Store};

use crate::harness::{bytes, create, current, get, next_event, next_events, update, watch};

pub async fn create_then_get_returns_the_value(store: Arc<dyn Store>) {
    let before = current(&store).await;
    let kv = create(&store, "/registry/pods/default/web", "v1").await;
    assert_eq!(kv.key, "/registry/pods/default/web");
    assert_eq!(kv.value, b"v1");
    assert_eq!(kv.version, 1);
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert!(kv.mod_revision > before);

    let (read_at, found) = store.get("/registry/pods/default/web", None).await.unwrap();
    assert_eq!(found, Some(kv.clone()));
    assert!(read_at >= kv.mod_revision);

    let (_, missing) = store
        .get("/registry/pods/default/other", None)
        .await
        .unwrap();
    assert_eq!(missing, None);
}

pub async fn create_of_an_existing_key_fails_with_already_exists(store: Arc<dyn Store>) {
    let kv = create(&store, "/t/a", "first").await;
    let err = store.create("/t/a", bytes("second")).await.unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists { key } if key == "/t/a"),
        "{err:?}"
    );
    assert_eq!(get(&store, "/t/a").await, Some(kv));
}

pub async fn update_with_the_current_mod_revision_replaces_the_value(store: Arc<dyn Store>) {
    let first = create(&store, "/t/a", "v1").await;
    let second = update(&store, &first, "v2").await;
    assert_eq!(second.value, b"v2");
    assert_eq!(second.version, 2);
    assert_eq!(second.create_revision, first.create_revision);
    assert!(second.mod_revision > first.mod_revision);
    let third = update(&store, &second, "v3").await;
    assert_eq!(third.version, 3);
    assert_eq!(get(&store, "/t/a").await, Some(third));
}

pub async fn update_with_stale_revision_is_rejected(store: Arc<dyn Store>) {
    let first = create(&store, "/t/a", "v1").await;
    let second = update(&store, &first, "v2").await;
    let err = store
        .update("/t/a", bytes("lost"), first.mod_revision)
        .await
        .unwrap_err();
    match err {
        Error::Conflict {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, "/t/a");
            assert_eq!(expected, first.mod_revision);
            assert_eq!(actual, second.mod_revision);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(get(&store, "/t/a").await, Some(second));
}

pub async fn update_of_a_missing_key_is_not_found(store: Arc<dyn Store>) {
    let err = store.update("/t/missing", bytes("v"), 1).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { key } if key == "/t/missing"),
        "{err:?}"
    );
    assert_eq!(get(&store, "/t/missing").await, None);
}

pub async fn guarded_delete_checks_the_mod_revision(store: Arc<dyn Store>) {
    let first = create(&store, "/t/a", "v1").await;
    let second = update(&store, &first, "v2").await;

    let err = store
        .delete("/t/a", Some(first.mod_revision))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { expected, actual, .. }
            if expected == first.mod_revision && actual == second.mod_revision),
        "{err:?}"
    );
    assert_eq!(get(&store, "/t/a").await, Some(second.clone()));

    let (last, revision) = store
        .delete("/t/a", Some(second.mod_revision))
        .await
        .unwrap();
    assert_eq!(last, second);
    assert!(revision > second.mod_revision);
    assert_eq!(get(&store, "/t/a").await, None);
}

pub async fn unguarded_delete_removes_the_key(store: Arc<dyn Store>) {
    let first = create(&store, "/t/a", "v1").await;
    let second = update(&store, &first, "v2").await;
    let (last, revision) = store.delete("/t/a", None).await.unwrap();
    assert_eq!(last, second);
    assert_eq!(revision, current(&store).await);
    assert_eq!(get(&store, "/t/a").await, None);
}

pub async fn delete_of_a_missing_key_is_not_found(store: Arc<dyn Store>) {
    for guard in [None, Some(1)] {
        let err = store.delete("/t/never", guard).await.unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { key } if key == "/t/never"),
            "{err:?}"
        );
    }
    let kv = create(&store, "/t/gone", "v").await;
    store.delete("/t/gone", None).await.unwrap();
    for guard in [None, Some(kv.mod_revision)] {
        let err = store.delete("/t/gone", guard).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }
}

pub async fn recreating_a_deleted_key_resets_version_and_create_revision(store: Arc<dyn Store>) {
    let first = create(&store, "/t/a", "v1").await;
    let second = update(&store, &first, "v2").await;
    let third = update(&store, &second, "v3").await;
    assert_eq!(
        (third.version, third.create_revision),
        (3, first.create_revision)
    );
    let (_, deleted_at) = store.delete("/t/a", None).await.unwrap();

    let again = create(&store, "/t/a", "again").await;
    assert_eq!(again.version, 1);
    assert_eq!(again.create_revision, again.mod_revision);
    assert!(again.create_revision > deleted_at);
    let updated = update(&store, &again, "again2").await;
    assert_eq!(
        (updated.version, updated.create_revision),
        (2, again.create_revision)
    );
}

pub async fn every_write_increments_the_revision_and_nothing_else_does(store: Arc<dyn Store>) {
    let r0 = current(&store).await;
    let a = create(&store, "/t/a", "v1").await;
    assert_eq!(a.mod_revision, r0 + 1);
    assert_eq!(current(&store).await, r0 + 1);

    // Reads, watches and failed writes leave the revision alone.
    get(&store, "/t/a").await;
    store.get("/t/a", Some(a.mod_revision)).await.unwrap();
    store.range("/t/", RangeOptions::default()).await.unwrap();
    store.count("/t/").await.unwrap();
    let mut events = watch(&store, "/t/", r0).await;
    assert!(store.create("/t/a", bytes("x")).await.is_err());
    assert!(store.update("/t/a", bytes("x"), r0).await.is_err());
    assert!(store.update("/t/b", bytes("x"), r0).await.is_err());
    assert!(store.delete("/t/a", Some(r0)).await.is_err());
    assert!(store.delete("/t/b", None).await.is_err());
    assert_eq!(current(&store).await, r0 + 1);

    let a2 = update(&store, &a, "v2").await;
    assert_eq!(a2.mod_revision, r0 + 2);
    let b = create(&store, "/t/b", "v1").await;
    assert_eq!(b.mod_revision, r0 + 3);
    let (_, deleted_at) = store.delete("/t/a", None).await.unwrap();
    assert_eq!(deleted_at, r0 + 4);
    assert_eq!(current(&store).await, r0 + 4);

    // The watch saw exactly those four writes, one revision each.
    let revisions: Vec<i64> = next_events(&mut events, 4)
        .await
        .iter()
        .map(|e| e.revision())
        .collect();
    assert_eq!(revisions, vec![r0 + 1, r0 + 2, r0 + 3, r0 + 4]);
}

pub async fn get_at_an_older_revision_sees_the_value_of_then(store: Arc<dyn Store>) {
    create(&store, "/t/unrelated", "x").await;
    let v1 = create(&store, "/t/a", "v1").await;
    let v2 = update(&store, &v1, "v2").await;
    let (_, deleted_at) = store.delete("/t/a", None).await.unwrap();
    create(&store, "/t/later", "x").await;

    let at = |revision: i64| {
        let store = store.clone();
        async move { store.get("/t/a", Some(revision)).await.unwrap() }
    };
    assert_eq!(at(v1.mod_revision - 1).await, (v1.mod_revision - 1, None));
    assert_eq!(
        at(v1.mod_revision).await,
        (v1.mod_revision, Some(v1.clone()))
    );
    assert_eq!(
        at(v2.mod_revision).await,
        (v2.mod_revision, Some(v2.clone()))
    );
    assert_eq!(at(deleted_at).await.1, None);
    assert_eq!(get(&store, "/t/a").await, None);

    let old = store
        .range(
            "/t/",
            RangeOptions {
                revision: Some(v1.mod_revision),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let keys: Vec<_> = old.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/t/a", "/t/unrelated"]);
    assert_eq!(old.kvs[0], v1);
    assert_eq!(old.revision, v1.mod_revision);
}

pub async fn keys_and_values_may_hold_arbitrary_text_and_bytes(store: Arc<dyn Store>) {
    let all_bytes: Vec<u8> = (0..=255u8).rev().collect();
    let big = vec![0xa5; 512 * 1024];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("/u/ünïcødé/日本語", b"plain".to_vec()),
        ("/u/emoji/😀", Vec::new()),
        ("/u/with space and 'quotes' \"\\", all_bytes.clone()),
        ("/u/nul\u{0}inside", vec![0, 0, 0]),
        ("/u/big", big.clone()),
    ];
    let after = current(&store).await;
    for (key, value) in &cases {
        let kv = store.create(key, value.clone()).await.unwrap();
        assert_eq!((kv.key.as_str(), &kv.value), (*key, value));
    }
    for (key, value) in &cases {
        assert_eq!(
            get(&store, key).await.map(|kv| kv.value).as_ref(),
            Some(value)
        );
    }
    let listed = store.range("/u/", RangeOptions::default()).await.unwrap();
    let mut expected: Vec<&str> = cases.iter().map(|(k, _)| *k).collect();
    expected.sort();
    let keys: Vec<_> = listed.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, expected);

    let mut events = watch(&store, "/u/", after).await;
    for (key, value) in &cases {
        let event = next_event(&mut events).await;
        assert_eq!(event.kind, EventKind::Put);
        assert_eq!((event.kv.key.as_str(), &event.kv.value), (*key, value));
    }
}
