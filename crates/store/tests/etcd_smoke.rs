//! The etcd backend against a real etcd: the guarded writes, reads at revisions, watch
//! semantics, compaction and failure kinds. The shared conformance suite covers the contract in
//! depth; these pin the etcd-specific mapping (revision probes, delete events, a dying server).

use std::time::Duration;

use futures::StreamExt;
use navarch_store::etcd::{EtcdOptions, EtcdStore};
use navarch_store::testing::EtcdServer;
use navarch_store::{Error, EventKind, RangeOptions, Store, WatchStream};

const STEP: Duration = Duration::from_secs(10);

async fn start() -> (EtcdServer, EtcdStore) {
    let server = EtcdServer::start().expect("start etcd");
    let store = EtcdStore::connect(&[server.endpoint()])
        .await
        .expect("connect");
    (server, store)
}

async fn next(watch: &mut WatchStream) -> navarch_store::Result<navarch_store::Event> {
    tokio::time::timeout(STEP, watch.next())
        .await
        .expect("watch event in time")
        .expect("watch stream not ended")
}

#[tokio::test]
async fn create_then_create_again_is_already_exists() {
    let (_etcd, store) = start().await;
    let before = store.current_revision().await.unwrap();
    let kv = store
        .create("/registry/pods/a", b"one".to_vec())
        .await
        .unwrap();
    assert_eq!(kv.create_revision, before + 1);
    assert_eq!(kv.mod_revision, before + 1);
    assert_eq!(kv.version, 1);
    assert_eq!(kv.value, b"one");
    let err = store
        .create("/registry/pods/a", b"two".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { ref key } if key == "/registry/pods/a"),
        "{err}"
    );
    let (rev, got) = store.get("/registry/pods/a", None).await.unwrap();
    assert_eq!(rev, before + 1);
    assert_eq!(got, Some(kv));
}

#[tokio::test]
async fn update_with_stale_revision_is_rejected_with_the_actual_one() {
    let (_etcd, store) = start().await;
    let v1 = store.create("/k", b"1".to_vec()).await.unwrap();
    let v2 = store
        .update("/k", b"2".to_vec(), v1.mod_revision)
        .await
        .unwrap();
    assert_eq!(v2.create_revision, v1.create_revision);
    assert_eq!(v2.mod_revision, v1.mod_revision + 1);
    assert_eq!(v2.version, 2);
    let err = store
        .update("/k", b"3".to_vec(), v1.mod_revision)
        .await
        .unwrap_err();
    match err {
        Error::Conflict {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, "/k");
            assert_eq!(expected, v1.mod_revision);
            assert_eq!(actual, v2.mod_revision);
        }
        other => panic!("expected Conflict, got {other}"),
    }
    assert_eq!(store.get("/k", None).await.unwrap().1, Some(v2));
}

#[tokio::test]
async fn update_or_delete_of_an_absent_key_is_not_found() {
    let (_etcd, store) = start().await;
    // Expected revision 0 must not turn an update into a create.
    for expected in [0, 1, 42] {
        let err = store
            .update("/nope", b"x".to_vec(), expected)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
    let err = store.delete("/nope", None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = store.delete("/nope", Some(3)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(store.get("/nope", None).await.unwrap().1, None);
}

#[tokio::test]
async fn delete_is_guarded_and_returns_the_last_value() {
    let (_etcd, store) = start().await;
    let v1 = store.create("/k", b"1".to_vec()).await.unwrap();
    let v2 = store
        .update("/k", b"2".to_vec(), v1.mod_revision)
        .await
        .unwrap();
    let err = store.delete("/k", Some(v1.mod_revision)).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict { actual, .. } if actual == v2.mod_revision),
        "{err}"
    );
    let (last, rev) = store.delete("/k", Some(v2.mod_revision)).await.unwrap();
    assert_eq!(last, v2);
    assert_eq!(rev, v2.mod_revision + 1);
    assert_eq!(store.current_revision().await.unwrap(), rev);
    assert_eq!(store.get("/k", None).await.unwrap().1, None);
    // The old value stays readable at its revision.
    assert_eq!(
        store.get("/k", Some(v2.mod_revision)).await.unwrap(),
        (v2.mod_revision, Some(v2))
    );
}

#[tokio::test]
async fn range_pages_through_a_prefix_at_one_revision() {
    let (_etcd, store) = start().await;
    for name in ["a", "b", "c", "d", "e"] {
        store
            .create(&format!("/registry/pods/{name}"), name.into())
            .await
            .unwrap();
    }
    store
        .create("/registry/podsx", b"outside".to_vec())
        .await
        .unwrap();
    store
        .create("/registry/pod", b"outside".to_vec())
        .await
        .unwrap();
    assert_eq!(store.count("/registry/pods/").await.unwrap(), 5);

    let first = store
        .range(
            "/registry/pods/",
            RangeOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(first.more);
    let keys: Vec<_> = first.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/registry/pods/a", "/registry/pods/b"]);

    // A write between pages is not seen by a list pinned at the first page's revision.
    store
        .create("/registry/pods/bb", b"late".to_vec())
        .await
        .unwrap();
    let rest = store
        .range(
            "/registry/pods/",
            RangeOptions {
                start_after: Some("/registry/pods/b".into()),
                limit: 0,
                revision: Some(first.revision),
            },
        )
        .await
        .unwrap();
    assert!(!rest.more);
    assert_eq!(rest.revision, first.revision);
    let keys: Vec<_> = rest.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        ["/registry/pods/c", "/registry/pods/d", "/registry/pods/e"]
    );

    let all = store.range("", RangeOptions::default()).await.unwrap();
    assert_eq!(all.kvs.len(), 8);
}

#[tokio::test]
async fn reads_beyond_the_current_revision_are_future_revision() {
    let (_etcd, store) = start().await;
    store.create("/k", b"1".to_vec()).await.unwrap();
    let current = store.current_revision().await.unwrap();
    let err = store.get("/k", Some(current + 10)).await.unwrap_err();
    assert!(
        matches!(err, Error::FutureRevision { requested, current: c } if requested == current + 10 && c == current),
        "{err}"
    );
    let err = store.watch("/", current + 1).await.err().expect("refused");
    assert!(matches!(err, Error::FutureRevision { .. }), "{err}");
}

#[tokio::test]
async fn watch_delivers_puts_and_deletes_after_the_revision_with_previous_values() {
    let (_etcd, store) = start().await;
    let a1 = store.create("/w/a", b"1".to_vec()).await.unwrap();
    let mut watch = store.watch("/w/", a1.mod_revision).await.unwrap();
    let a2 = store
        .update("/w/a", b"2".to_vec(), a1.mod_revision)
        .await
        .unwrap();
    store.create("/other", b"x".to_vec()).await.unwrap();
    let b1 = store.create("/w/b", b"b".to_vec()).await.unwrap();
    let (_, del_rev) = store.delete("/w/a", None).await.unwrap();

    let e = next(&mut watch).await.unwrap();
    assert_eq!(e.kind, EventKind::Put);
    assert_eq!(e.kv, a2);
    assert_eq!(e.prev_kv, Some(a1.clone()));

    let e = next(&mut watch).await.unwrap();
    assert_eq!((e.kind, &e.kv, &e.prev_kv), (EventKind::Put, &b1, &None));

    let e = next(&mut watch).await.unwrap();
    assert_eq!(e.kind, EventKind::Delete);
    assert_eq!(e.revision(), del_rev);
    assert_eq!(e.kv.value, b"2");
    assert_eq!(e.kv.create_revision, a1.create_revision);
    assert_eq!(e.prev_kv, Some(a2));

    // Resuming from an earlier revision replays the history in order.
    let mut replay = store.watch("/w/", 0).await.unwrap();
    let revisions = [
        a1.mod_revision,
        a1.mod_revision + 1,
        b1.mod_revision,
        del_rev,
    ];
    for want in revisions {
        assert_eq!(next(&mut replay).await.unwrap().revision(), want);
    }
}

#[tokio::test]
async fn compaction_hides_old_revisions_from_reads_and_watches() {
    let (etcd, store) = start().await;
    let v1 = store.create("/k", b"1".to_vec()).await.unwrap();
    let v2 = store
        .update("/k", b"2".to_vec(), v1.mod_revision)
        .await
        .unwrap();
    let v3 = store
        .update("/k", b"3".to_vec(), v2.mod_revision)
        .await
        .unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 0);

    store.compact(v2.mod_revision).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), v2.mod_revision);
    // Compacting again at or below is refused, as etcd does.
    for again in [v1.mod_revision, v2.mod_revision] {
        let err = store.compact(again).await.unwrap_err();
        assert!(
            matches!(err, Error::Compacted { requested, compacted } if requested == again && compacted == v2.mod_revision),
            "{err}"
        );
    }

    let err = store.get("/k", Some(v1.mod_revision)).await.unwrap_err();
    assert!(
        matches!(err, Error::Compacted { requested, compacted } if requested == v1.mod_revision && compacted == v2.mod_revision),
        "{err}"
    );
    // The value current at the compacted revision stays readable.
    assert_eq!(
        store.get("/k", Some(v2.mod_revision)).await.unwrap().1,
        Some(v2.clone())
    );

    let err = store
        .watch("/", v1.mod_revision)
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Compacted { .. }), "{err}");
    let mut watch = store.watch("/", v2.mod_revision).await.unwrap();
    assert_eq!(next(&mut watch).await.unwrap().kv, v3);

    // A second client learns the compacted revision another client made.
    let other = EtcdStore::connect(&[etcd.endpoint()]).await.unwrap();
    assert_eq!(other.compacted_revision().await.unwrap(), v2.mod_revision);
    store.compact(v3.mod_revision).await.unwrap();
    assert_eq!(other.compacted_revision().await.unwrap(), v3.mod_revision);
    let err = other
        .watch("/", v2.mod_revision)
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Compacted { .. }), "{err}");

    // etcd refuses to compact again what another client compacted, whatever this one tracked.
    let v4 = store
        .update("/k", b"4".to_vec(), v3.mod_revision)
        .await
        .unwrap();
    store.compact(v4.mod_revision).await.unwrap();
    let err = other.compact(v4.mod_revision).await.unwrap_err();
    assert!(
        matches!(err, Error::Compacted { compacted, .. } if compacted == v4.mod_revision),
        "{err}"
    );
    let err = other.compact(v4.mod_revision + 5).await.unwrap_err();
    assert!(matches!(err, Error::FutureRevision { .. }), "{err}");
}

#[tokio::test]
async fn watch_ends_with_unavailable_when_etcd_dies() {
    let (etcd, store) = start().await;
    let rev = store.current_revision().await.unwrap();
    let mut watch = store.watch("/", rev).await.unwrap();
    store.create("/k", b"1".to_vec()).await.unwrap();
    assert!(next(&mut watch).await.is_ok());
    drop(etcd);
    let err = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("watch fails in time")
        .expect("an error before the end")
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    assert!(
        watch.next().await.is_none(),
        "the stream ends after the error"
    );
    let err = store.create("/k2", Vec::new()).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn background_compactor_keeps_the_retention_window() {
    let etcd = EtcdServer::start().unwrap();
    let options = EtcdOptions {
        compaction_interval: Duration::from_millis(100),
        retention: Duration::from_secs(1),
    };
    let store = EtcdStore::connect_with(&[etcd.endpoint()], options)
        .await
        .unwrap();
    let first = store.create("/k", b"0".to_vec()).await.unwrap();
    let mut last = first.clone();
    for i in 1..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = store
            .update("/k", vec![i], last.mod_revision)
            .await
            .unwrap();
    }
    // The last write is far younger than the retention: still readable.
    assert!(store.compacted_revision().await.unwrap() < last.mod_revision);
    assert!(store.get("/k", Some(first.mod_revision)).await.is_ok());
    // Once it ages past the retention, everything up to it is compacted.
    let deadline = tokio::time::Instant::now() + STEP;
    while store.compacted_revision().await.unwrap() < last.mod_revision {
        assert!(
            tokio::time::Instant::now() < deadline,
            "compactor never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = store.get("/k", Some(first.mod_revision)).await.unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err}");
}

#[tokio::test]
async fn an_unpaginated_range_may_exceed_grpcs_default_message_size() {
    let (_etcd, store) = start().await;
    let value = vec![b'x'; 256 * 1024];
    for i in 0..24 {
        store
            .create(&format!("/big/{i:02}"), value.clone())
            .await
            .unwrap();
    }
    let all = store.range("/big/", RangeOptions::default()).await.unwrap();
    assert_eq!(all.kvs.len(), 24);
}
