//! Watches: every event after a revision, exactly once, in order, with the previous value.

use std::sync::Arc;

use navarch_store::{Event, EventKind, KeyValue, Store};

use crate::harness::{create, current, next_event, next_events, update, watch};

/// Writes a fixed history under `/w/` and returns what each event must look like.
async fn write_history(store: &Arc<dyn Store>) -> Vec<Event> {
    let a1 = create(store, "/w/a", "a1").await;
    let b1 = create(store, "/w/b", "b1").await;
    let a2 = update(store, &a1, "a2").await;
    let (b_last, b_deleted) = store.delete("/w/b", Some(b1.mod_revision)).await.unwrap();
    let a3 = update(store, &a2, "a3").await;
    let b2 = create(store, "/w/b", "b2").await;
    let (a_last, a_deleted) = store.delete("/w/a", None).await.unwrap();
    let put = |kv: &KeyValue, prev: Option<&KeyValue>| Event {
        kind: EventKind::Put,
        kv: kv.clone(),
        prev_kv: prev.cloned(),
    };
    let delete = |last: &KeyValue, at: i64| Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            mod_revision: at,
            ..last.clone()
        },
        prev_kv: Some(last.clone()),
    };
    vec![
        put(&a1, None),
        put(&b1, None),
        put(&a2, Some(&a1)),
        delete(&b_last, b_deleted),
        put(&a3, Some(&a2)),
        put(&b2, None),
        delete(&a_last, a_deleted),
    ]
}

fn assert_in_order(events: &[Event]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].revision() < pair[1].revision(),
            "out of order: {:?} then {:?}",
            pair[0].revision(),
            pair[1].revision()
        );
    }
}

/// Writes a marker under `prefix` and checks that it is the very next event: nothing was
/// delivered twice or beyond what the case expected.
async fn assert_next_is_marker(
    store: &Arc<dyn Store>,
    events: &mut navarch_store::WatchStream,
    prefix: &str,
) {
    let key = format!("{prefix}zz-marker");
    let marker = create(store, &key, "marker").await;
    let event = next_event(events).await;
    assert_eq!(event.kv, marker, "expected the marker, got {event:?}");
}

pub async fn watch_delivers_every_later_event_once_in_order_with_prev_kv(store: Arc<dyn Store>) {
    create(&store, "/w/before", "not delivered").await;
    let after = current(&store).await;
    let mut events = watch(&store, "/w/", after).await;
    let expected = write_history(&store).await;

    let seen = next_events(&mut events, expected.len()).await;
    assert_in_order(&seen);
    assert_eq!(seen, expected);
    assert_eq!(seen[3].kv.value, b"b1", "a delete carries the last value");
    assert_next_is_marker(&store, &mut events, "/w/").await;
}

pub async fn watch_replays_history_the_same_as_it_delivers_live_events(store: Arc<dyn Store>) {
    let after = current(&store).await;
    let mut live = watch(&store, "/w/", after).await;
    let expected = write_history(&store).await;
    let live_events = next_events(&mut live, expected.len()).await;

    // Started after the writes: everything comes from history.
    let mut replayed = watch(&store, "/w/", after).await;
    let replayed_events = next_events(&mut replayed, expected.len()).await;
    assert_eq!(live_events, expected);
    assert_eq!(replayed_events, expected);
    assert_next_is_marker(&store, &mut replayed, "/w/").await;
}

pub async fn watch_resumes_from_the_last_seen_revision(store: Arc<dyn Store>) {
    let after = current(&store).await;
    let expected = write_history(&store).await;

    let mut first = watch(&store, "/w/", after).await;
    let seen = next_events(&mut first, 3).await;
    drop(first);
    assert_eq!(seen, expected[..3]);

    let resume_at = seen.last().unwrap().revision();
    let mut second = watch(&store, "/w/", resume_at).await;
    let rest = next_events(&mut second, expected.len() - 3).await;
    assert_eq!(rest, expected[3..]);
    assert_next_is_marker(&store, &mut second, "/w/").await;
}

pub async fn watch_at_the_current_revision_sees_only_later_writes(store: Arc<dyn Store>) {
    let a = create(&store, "/w/a", "a1").await;
    let mut events = watch(&store, "/w/", a.mod_revision).await;
    let a2 = update(&store, &a, "a2").await;
    let event = next_event(&mut events).await;
    assert_eq!(event.kv, a2);
    assert_eq!(event.prev_kv, Some(a));
}

pub async fn watch_of_a_prefix_ignores_other_keys(store: Arc<dyn Store>) {
    let after = current(&store).await;
    let mut events = watch(&store, "/x/", after).await;
    for key in ["/y/1", "/x/1", "/xy", "/x", "/x/2", "/w/x/3"] {
        create(&store, key, "v").await;
    }
    let seen = next_events(&mut events, 2).await;
    let keys: Vec<_> = seen.iter().map(|e| e.kv.key.as_str()).collect();
    assert_eq!(keys, ["/x/1", "/x/2"]);
    assert_next_is_marker(&store, &mut events, "/x/").await;
}
