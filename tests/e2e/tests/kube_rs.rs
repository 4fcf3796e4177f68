//! kube-rs — the client the controllers are built on — against `navarch server`, configured
//! from the admin kubeconfig the server writes: typed CRUD with every patch type kube offers,
//! paginated lists, `kube::runtime::watcher` (list-then-watch and streaming lists), and a raw
//! watch that the server closes after `timeoutSeconds` and that resumes from the last
//! resourceVersion.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use navarch_e2e::Server;
use serde_json::json;

/// Bound on any single step, so that a hung request fails the test instead of hanging it.
const STEP: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(STEP, fut)
        .await
        .map_err(|_| anyhow!("{what} did not finish within {STEP:?}"))
}

async fn client_for(server: &Server) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Start a server, create namespace `ns` and return a client for it.
async fn start(ns: &str) -> Result<(tempfile::TempDir, Server, Client)> {
    let root = tempfile::tempdir()?;
    // The API as clients see it: no controller writes the same objects (a Deployment
    // controller would race the resourceVersion checks these tests make).
    let server = Server::start(
        &root.path().join("data"),
        &["--disable-controllers", "--disable-scheduler"],
    )?;
    let client = client_for(&server).await?;
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    within(
        "namespace create",
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace),
    )
    .await??;
    Ok((root, server, client))
}

fn configmap(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn data(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The API error a call failed with, which must exist.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> Result<Box<kube::core::Status>> {
    match result {
        Err(kube::Error::Api(status)) => Ok(status),
        other => bail!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn configmap_crud_with_every_patch_type() -> Result<()> {
    let (_root, _server, client) = start("kube-rs").await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "kube-rs");
    let pp = PostParams::default();

    let created = within(
        "create",
        api.create(&pp, &configmap("crud", &[], &[("a", "1")])),
    )
    .await??;
    assert!(created.uid().is_some());
    let rv1 = created.resource_version().context("no resourceVersion")?;
    let exists = api_error(within("create again", api.create(&pp, &created)).await?)?;
    assert_eq!(
        (exists.code, exists.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut got = within("get", api.get("crud")).await??;
    assert_eq!(data(&got), map(&[("a", "1")]));
    got.data
        .get_or_insert_default()
        .insert("b".into(), "2".into());
    let replaced = within("replace", api.replace("crud", &pp, &got)).await??;
    assert_eq!(data(&replaced), map(&[("a", "1"), ("b", "2")]));
    assert_ne!(replaced.resource_version().as_deref(), Some(rv1.as_str()));

    // `got` still carries the first resourceVersion.
    let stale = api_error(within("stale replace", api.replace("crud", &pp, &got)).await?)?;
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert!(
        stale.message.contains("the object has been modified"),
        "{}",
        stale.message
    );

    let merge = Patch::Merge(json!({"data": {"a": null, "c": "3"}}));
    let patched = within(
        "merge patch",
        api.patch("crud", &PatchParams::default(), &merge),
    )
    .await??;
    assert_eq!(data(&patched), map(&[("b", "2"), ("c", "3")]));

    let strategic = Patch::Strategic(json!({"metadata": {"labels": {"x": "y"}}}));
    let patched = within(
        "strategic patch",
        api.patch("crud", &PatchParams::default(), &strategic),
    )
    .await??;
    assert_eq!(patched.labels(), &map(&[("x", "y")]));

    // A stale resourceVersion inside a patch body is a conflict too.
    let stale_patch =
        Patch::Merge(json!({"metadata": {"resourceVersion": rv1}, "data": {"d": "4"}}));
    let stale = api_error(
        within(
            "stale patch",
            api.patch("crud", &PatchParams::default(), &stale_patch),
        )
        .await?,
    )?;
    assert_eq!(stale.code, 409);

    // Dry run answers with the would-be object and writes nothing.
    let dry = within(
        "dry-run patch",
        api.patch(
            "crud",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"data": {"e": "5"}})),
        ),
    )
    .await??;
    assert_eq!(data(&dry).get("e").map(String::as_str), Some("5"));
    assert!(!data(&within("get", api.get("crud")).await??).contains_key("e"));

    let deleted = within("delete", api.delete("crud", &DeleteParams::default())).await??;
    assert!(deleted.is_left() || deleted.right().is_some_and(|s| s.is_success()));
    let missing = api_error(within("get deleted", api.get("crud")).await?)?;
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert!(within("get_opt", api.get_opt("crud")).await??.is_none());
    Ok(())
}

fn deployment(name: &str) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}
            }
        }
    }))?)
}

fn container_images(d: &Deployment) -> Vec<(String, String)> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn deployment_crud_with_strategic_and_merge_patches() -> Result<()> {
    let (_root, _server, client) = start("kube-rs").await?;
    let api: Api<Deployment> = Api::namespaced(client, "kube-rs");
    let pp = PostParams::default();

    let created = within("create", api.create(&pp, &deployment("web")?)).await??;
    assert_eq!(created.metadata.generation, Some(1));
    let spec = created.spec.as_ref().context("no spec")?;
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .context("no rollingUpdate default")?;
    assert_eq!(
        serde_json::to_value(rolling)?,
        json!({"maxSurge": "25%", "maxUnavailable": "25%"})
    );

    // Strategic merge: containers merge by name, so a new one is added beside the old one.
    let sidecar = Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "busybox:1.37"}
    ]}}}}));
    let patched = within(
        "strategic patch",
        api.patch("web", &PatchParams::default(), &sidecar),
    )
    .await??;
    let mut images = container_images(&patched);
    images.sort();
    assert_eq!(
        images,
        vec![
            ("main".to_string(), "busybox:1.36".to_string()),
            ("sidecar".to_string(), "busybox:1.37".to_string())
        ]
    );
    assert_eq!(patched.metadata.generation, Some(2));

    // JSON merge patch: a list is replaced whole.
    let only = Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "only", "image": "busybox:1.38"}
    ]}}}}));
    let patched = within(
        "merge patch",
        api.patch("web", &PatchParams::default(), &only),
    )
    .await??;
    assert_eq!(
        container_images(&patched),
        vec![("only".to_string(), "busybox:1.38".to_string())]
    );

    // A metadata-only change does not bump the generation.
    let label = Patch::Merge(json!({"metadata": {"labels": {"tier": "web"}}}));
    let labelled = within(
        "label patch",
        api.patch("web", &PatchParams::default(), &label),
    )
    .await??;
    assert_eq!(labelled.metadata.generation, patched.metadata.generation);

    let mut current = within("get", api.get("web")).await??;
    current.spec.as_mut().context("no spec")?.replicas = Some(4);
    let replaced = within("replace", api.replace("web", &pp, &current)).await??;
    assert_eq!(replaced.spec.as_ref().and_then(|s| s.replicas), Some(4));

    let mut moved = replaced.clone();
    let spec = moved.spec.as_mut().context("no spec")?;
    spec.selector.match_labels = Some(map(&[("app", "other")]));
    spec.template.metadata.get_or_insert_default().labels = Some(map(&[("app", "other")]));
    let invalid = api_error(within("immutable selector", api.replace("web", &pp, &moved)).await?)?;
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));

    let scale = within("get_scale", api.get_scale("web")).await??;
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(4));
    let scale_patch = Patch::Merge(json!({"spec": {"replicas": 1}}));
    within(
        "patch_scale",
        api.patch_scale("web", &PatchParams::default(), &scale_patch),
    )
    .await??;
    let after = within("get", api.get("web")).await??;
    assert_eq!(after.spec.and_then(|s| s.replicas), Some(1));

    within("delete", api.delete("web", &DeleteParams::foreground())).await??;
    // Foreground deletion with no dependents (and no garbage collector yet) either removed the
    // object or left it with a deletionTimestamp.
    if let Some(left) = within("get_opt", api.get_opt("web")).await?? {
        assert!(left.metadata.deletion_timestamp.is_some(), "{left:?}");
    }
    Ok(())
}

#[tokio::test]
async fn paginated_lists_are_one_snapshot() -> Result<()> {
    let (_root, _server, client) = start("kube-rs").await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "kube-rs");
    let mut names: Vec<String> = (0..25).map(|i| format!("page-{i:02}")).collect();
    for name in &names {
        within(
            "create",
            api.create(
                &PostParams::default(),
                &configmap(name, &[("set", "paged")], &[]),
            ),
        )
        .await??;
    }

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut params = ListParams::default().labels("set=paged").limit(10);
    let mut list_rv = None;
    loop {
        let page = within("list page", api.list(&params)).await??;
        pages.push(page.items.len());
        seen.extend(page.items.iter().map(|cm| cm.name_any()));
        let rv = page.metadata.resource_version.clone();
        match &list_rv {
            None => {
                list_rv = rv;
                // Written between pages: invisible to the rest of this list.
                within(
                    "create",
                    api.create(
                        &PostParams::default(),
                        &configmap("page-00a", &[("set", "paged")], &[]),
                    ),
                )
                .await??;
                within("delete", api.delete("page-24", &DeleteParams::default())).await??;
            }
            Some(first) => assert_eq!(rv.as_ref(), Some(first), "every page at one revision"),
        }
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
        assert!(pages.len() < 10, "pagination does not end: {pages:?}");
    }
    assert_eq!(pages, vec![10, 10, 5]);
    assert_eq!(seen, names);

    let fresh = within("list", api.list(&ListParams::default().labels("set=paged"))).await??;
    names.retain(|n| n != "page-24");
    names.insert(1, "page-00a".into());
    assert_eq!(
        fresh
            .items
            .iter()
            .map(|cm| cm.name_any())
            .collect::<Vec<_>>(),
        names
    );
    Ok(())
}

/// What a watcher event says, reduced to something comparable.
fn summarize(event: &watcher::Event<ConfigMap>) -> String {
    let value = |cm: &ConfigMap| data(cm).get("v").cloned().unwrap_or_default();
    match event {
        watcher::Event::Init => "Init".into(),
        watcher::Event::InitApply(cm) => format!("InitApply {} {}", cm.name_any(), value(cm)),
        watcher::Event::InitDone => "InitDone".into(),
        watcher::Event::Apply(cm) => format!("Apply {} {}", cm.name_any(), value(cm)),
        watcher::Event::Delete(cm) => format!("Delete {} {}", cm.name_any(), value(cm)),
    }
}

/// Collect events from `stream` until one equals `last`.
async fn events_until(
    stream: &mut (impl Stream<Item = watcher::Result<watcher::Event<ConfigMap>>> + Unpin),
    last: &str,
) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some(last) {
        let event = within(&format!("watcher event after {seen:?}"), stream.try_next())
            .await??
            .ok_or_else(|| anyhow!("watcher ended after {seen:?}"))?;
        seen.push(summarize(&event));
    }
    Ok(seen)
}

/// The watcher lists (or streams the initial list), then sees an add, a change and a delete.
async fn watcher_sees_add_modify_delete(
    api: &Api<ConfigMap>,
    config: watcher::Config,
) -> Result<()> {
    let mut stream = watcher(api.clone(), config).boxed();
    let initial = events_until(&mut stream, "InitDone").await?;
    assert_eq!(initial, vec!["Init", "InitApply before 0", "InitDone"]);

    within(
        "create",
        api.create(
            &PostParams::default(),
            &configmap("watched", &[("set", "watched")], &[("v", "1")]),
        ),
    )
    .await??;
    assert_eq!(
        events_until(&mut stream, "Apply watched 1").await?,
        vec!["Apply watched 1"]
    );
    let change = Patch::Merge(json!({"data": {"v": "2"}}));
    within(
        "patch",
        api.patch("watched", &PatchParams::default(), &change),
    )
    .await??;
    assert_eq!(
        events_until(&mut stream, "Apply watched 2").await?,
        vec!["Apply watched 2"]
    );
    within("delete", api.delete("watched", &DeleteParams::default())).await??;
    assert_eq!(
        events_until(&mut stream, "Delete watched 2").await?,
        vec!["Delete watched 2"]
    );
    Ok(())
}

#[tokio::test]
async fn runtime_watcher_sees_add_modify_delete() -> Result<()> {
    let (_root, _server, client) = start("kube-rs").await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "kube-rs");
    within(
        "create",
        api.create(
            &PostParams::default(),
            &configmap("before", &[("set", "watched")], &[("v", "0")]),
        ),
    )
    .await??;
    let selector = watcher::Config::default().labels("set=watched");
    watcher_sees_add_modify_delete(&api, selector.clone()).await?;
    // The same through a streaming list (sendInitialEvents with the initial-events-end
    // bookmark), which kube's watcher uses when asked to.
    watcher_sees_add_modify_delete(&api, selector.streaming_lists()).await?;
    Ok(())
}

/// Watch from `rv` until the server ends the stream; returns the events and the last
/// resourceVersion seen (from objects or bookmarks).
async fn watch_until_closed(
    api: &Api<ConfigMap>,
    rv: &str,
) -> Result<(Vec<String>, String, Duration)> {
    let params = WatchParams::default()
        .labels("set=raw")
        .timeout(2)
        .disable_bookmarks();
    let started = Instant::now();
    let mut stream = within("watch", api.watch(&params, rv)).await??.boxed();
    let mut events = Vec::new();
    let mut last = rv.to_string();
    while let Some(event) = within("watch event", stream.next()).await? {
        let (summary, seen_rv) = match event? {
            WatchEvent::Added(cm) => (format!("Added {}", data(&cm)["v"]), cm.resource_version()),
            WatchEvent::Modified(cm) => (
                format!("Modified {}", data(&cm)["v"]),
                cm.resource_version(),
            ),
            WatchEvent::Deleted(cm) => {
                (format!("Deleted {}", data(&cm)["v"]), cm.resource_version())
            }
            WatchEvent::Bookmark(b) => ("Bookmark".into(), Some(b.metadata.resource_version)),
            WatchEvent::Error(status) => bail!("watch error: {status:?}"),
        };
        events.push(summary);
        last = seen_rv.context("event without resourceVersion")?;
    }
    Ok((events, last, started.elapsed()))
}

#[tokio::test]
async fn raw_watch_resumes_after_the_server_closes_it() -> Result<()> {
    let (_root, _server, client) = start("kube-rs").await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "kube-rs");
    let listed = within("list", api.list(&ListParams::default().labels("set=raw"))).await??;
    let list_rv = listed
        .metadata
        .resource_version
        .context("list without RV")?;
    within(
        "create",
        api.create(
            &PostParams::default(),
            &configmap("raw", &[("set", "raw")], &[("v", "1")]),
        ),
    )
    .await??;

    let (events, last, took) = watch_until_closed(&api, &list_rv).await?;
    assert_eq!(events, vec!["Added 1"]);
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(15),
        "asked the server to close the watch after 2 s; it took {took:?}"
    );

    // Changes made while no watch is open arrive on resume, and nothing is replayed.
    let change = Patch::Merge(json!({"data": {"v": "2"}}));
    within("patch", api.patch("raw", &PatchParams::default(), &change)).await??;
    within("delete", api.delete("raw", &DeleteParams::default())).await??;
    let (events, _, _) = watch_until_closed(&api, &last).await?;
    assert_eq!(events, vec!["Modified 2", "Deleted 2"]);
    Ok(())
}
