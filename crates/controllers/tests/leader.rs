//! Leader election against a real API server, in-process: one holder at a time, a released
//! Lease passes at once, an abandoned one after its duration.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use navarch_controllers::leader::{Elector, Timing};
use tokio_util::sync::CancellationToken;

use common::{eventually, start};

const TIMING: Timing = Timing {
    lease_duration: Duration::from_secs(2),
    renew_deadline: Duration::from_millis(1500),
    retry_period: Duration::from_millis(200),
};

#[tokio::test]
async fn one_leader_at_a_time_and_handover() {
    let cluster = start().await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-system");
    let mut a = Elector::new(cluster.client.clone(), "test-lock", "a".into(), TIMING);
    let mut b = Elector::new(cluster.client.clone(), "test-lock", "b".into(), TIMING);
    assert!(a.try_acquire_or_renew().await);
    assert!(!b.try_acquire_or_renew().await, "held by a");
    assert!(a.try_acquire_or_renew().await, "a renews");
    let lease = leases.get("test-lock").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("a"));
    assert_eq!(lease.lease_transitions, Some(0));

    // Released: b takes it at once.
    a.release().await;
    assert!(b.try_acquire_or_renew().await);
    let lease = leases.get("test-lock").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("b"));
    assert_eq!(lease.lease_transitions, Some(1));

    // Abandoned (b stops renewing): a takes it once it has seen it unchanged for 2 s.
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(20);
    while !a.try_acquire_or_renew().await {
        assert!(tokio::time::Instant::now() < deadline, "a never took over");
        tokio::time::sleep(TIMING.retry_period).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
    cluster.shutdown.cancel();
}

#[tokio::test]
async fn the_work_runs_only_while_leading() {
    let cluster = start().await;
    let running = Arc::new(AtomicUsize::new(0));
    let starts = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    let mut stops = Vec::new();
    for id in ["x", "y"] {
        let elector = Elector::new(cluster.client.clone(), "work-lock", id.into(), TIMING);
        let stop = CancellationToken::new();
        let (running, starts) = (running.clone(), starts.clone());
        stops.push(stop.clone());
        handles.push(tokio::spawn(elector.run(stop, move |term| {
            let (running, starts) = (running.clone(), starts.clone());
            async move {
                starts.fetch_add(1, Ordering::SeqCst);
                assert_eq!(running.fetch_add(1, Ordering::SeqCst), 0, "two leaders");
                term.cancelled().await;
                running.fetch_sub(1, Ordering::SeqCst);
            }
        })));
    }
    eventually("one leads", || async {
        (starts.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-system");
    let holder = leases
        .get("work-lock")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    // The leader shuts down and releases; the other one follows.
    let leader = if holder == "x" { 0 } else { 1 };
    stops[leader].cancel();
    eventually("the other one leads", || async {
        (starts.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    stops[1 - leader].cancel();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(running.load(Ordering::SeqCst), 0);
    cluster.shutdown.cancel();
}
