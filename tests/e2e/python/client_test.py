#!/usr/bin/env python3
"""Drive a navarch server with the official Kubernetes Python client.

Usage: client_test.py KUBECONFIG

Run by tests/e2e/tests/python_client.rs against a fresh `navarch server`, with the client from
the venv that `make python-deps` installs. Plain asserts, no test framework: the script exits 0
when every check passed and prints the failing check otherwise. Each check is a function whose
name says what it proves; they share one namespace, which is deleted at the end.
"""

import sys
import time
import traceback

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NAMESPACE = "python-client"


def expect_api_error(status, call, *args, **kwargs):
    """Run `call` and return the ApiException it raises, which must carry `status`."""
    try:
        call(*args, **kwargs)
    except ApiException as e:
        assert e.status == status, f"expected {status}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected an error {status}, the call succeeded")


def configmap(name, data, labels=None):
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {}), data=data
    )


def configmap_crud(api_client):
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(NAMESPACE, configmap("crud", {"a": "1"}))
    assert created.metadata.uid, "the server assigns a uid"
    assert created.metadata.resource_version, "the server assigns a resourceVersion"
    assert created.metadata.creation_timestamp is not None
    expect_api_error(
        409, core.create_namespaced_config_map, NAMESPACE, configmap("crud", {})
    )

    read = core.read_namespaced_config_map("crud", NAMESPACE)
    assert read.data == {"a": "1"}, read.data
    assert read.metadata.resource_version == created.metadata.resource_version

    read.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("crud", NAMESPACE, read)
    assert replaced.data == {"a": "1", "b": "2"}, replaced.data
    assert replaced.metadata.resource_version != read.metadata.resource_version

    # Replacing with the resourceVersion the first replace consumed is a conflict.
    read.data["c"] = "3"
    conflict = expect_api_error(
        409, core.replace_namespaced_config_map, "crud", NAMESPACE, read
    )
    assert "the object has been modified" in conflict.body, conflict.body

    # A dict body is sent as a strategic merge patch, a list as a JSON patch.
    patched = core.patch_namespaced_config_map(
        "crud", NAMESPACE, {"data": {"c": "3"}, "metadata": {"labels": {"x": "y"}}}
    )
    assert patched.data == {"a": "1", "b": "2", "c": "3"}, patched.data
    assert patched.metadata.labels == {"x": "y"}
    patched = core.patch_namespaced_config_map(
        "crud", NAMESPACE, [{"op": "remove", "path": "/data/a"}]
    )
    assert patched.data == {"b": "2", "c": "3"}, patched.data
    # The typed API has no merge-patch switch; users go through call_api.
    patched, code, _ = api_client.call_api(
        "/api/v1/namespaces/{namespace}/configmaps/{name}",
        "PATCH",
        path_params={"namespace": NAMESPACE, "name": "crud"},
        header_params={
            "Content-Type": "application/merge-patch+json",
            "Accept": "application/json",
        },
        body={"data": {"b": None}},
        response_type="V1ConfigMap",
        auth_settings=["BearerToken"],
        _return_http_data_only=False,
    )
    assert code == 200, code
    assert patched.data == {"c": "3"}, patched.data

    status = core.delete_namespaced_config_map("crud", NAMESPACE)
    assert status.status == "Success" or status.kind == "ConfigMap", status
    expect_api_error(404, core.read_namespaced_config_map, "crud", NAMESPACE)
    expect_api_error(404, core.delete_namespaced_config_map, "crud", NAMESPACE)


def deployment_crud(api_client):
    apps = client.AppsV1Api(api_client)
    labels = {"app": "web"}
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="busybox:1.36")]
                ),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(NAMESPACE, body)
    assert created.metadata.generation == 1, created.metadata.generation
    # Upstream defaulting, decoded into the client's typed model.
    strategy = created.spec.strategy
    assert strategy.type == "RollingUpdate", strategy
    assert strategy.rolling_update.max_surge == "25%", strategy
    assert strategy.rolling_update.max_unavailable == "25%", strategy
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600
    container = created.spec.template.spec.containers[0]
    assert container.image_pull_policy == "IfNotPresent", container.image_pull_policy
    assert created.spec.template.spec.restart_policy == "Always"

    # Strategic merge patch on the containers list merges by name.
    patched = apps.patch_namespaced_deployment(
        "web",
        NAMESPACE,
        {
            "spec": {
                "replicas": 3,
                "template": {
                    "spec": {"containers": [{"name": "web", "image": "busybox:1.37"}]}
                },
            }
        },
    )
    assert patched.spec.replicas == 3
    assert len(patched.spec.template.spec.containers) == 1
    assert patched.spec.template.spec.containers[0].image == "busybox:1.37"
    assert patched.metadata.generation == 2, patched.metadata.generation

    read = apps.read_namespaced_deployment("web", NAMESPACE)
    read.spec.template.metadata.annotations = {"rollout": "2"}
    replaced = apps.replace_namespaced_deployment("web", NAMESPACE, read)
    assert replaced.spec.template.metadata.annotations == {"rollout": "2"}
    assert replaced.metadata.generation == 3

    # The selector of a Deployment is immutable: 422 with a cause naming the field.
    replaced.spec.selector = client.V1LabelSelector(match_labels={"app": "other"})
    replaced.spec.template.metadata.labels = {"app": "other"}
    invalid = expect_api_error(
        422, apps.replace_namespaced_deployment, "web", NAMESPACE, replaced
    )
    assert "spec.selector" in invalid.body, invalid.body

    scale = apps.read_namespaced_deployment_scale("web", NAMESPACE)
    assert scale.spec.replicas == 3, scale
    apps.patch_namespaced_deployment_scale("web", NAMESPACE, {"spec": {"replicas": 1}})
    assert apps.read_namespaced_deployment("web", NAMESPACE).spec.replicas == 1

    listed = apps.list_namespaced_deployment(NAMESPACE)
    assert [d.metadata.name for d in listed.items] == ["web"]

    apps.delete_namespaced_deployment("web", NAMESPACE)
    expect_api_error(404, apps.read_namespaced_deployment, "web", NAMESPACE)


def paginated_list_is_one_snapshot(api_client):
    core = client.CoreV1Api(api_client)
    selector = "set=paged"
    names = [f"page-{i:02}" for i in range(25)]
    for name in names:
        core.create_namespaced_config_map(
            NAMESPACE, configmap(name, {"n": name}, {"set": "paged"})
        )

    seen = []
    pages = []
    token = None
    list_rv = None
    while True:
        page = core.list_namespaced_config_map(
            NAMESPACE, label_selector=selector, limit=10, _continue=token
        )
        pages.append(len(page.items))
        seen.extend(cm.metadata.name for cm in page.items)
        if list_rv is None:
            list_rv = page.metadata.resource_version
            # Written after the first page: a later page must not show it, because every
            # page is served at the first page's resourceVersion.
            core.create_namespaced_config_map(
                NAMESPACE, configmap("page-99", {}, {"set": "paged"})
            )
            core.delete_namespaced_config_map("page-24", NAMESPACE)
        assert page.metadata.resource_version == list_rv, (
            f"page at {page.metadata.resource_version}, first page at {list_rv}"
        )
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count is None or (
            page.metadata.remaining_item_count == 25 - len(seen)
        ), page.metadata.remaining_item_count
        assert len(pages) < 10, "pagination does not end"
    assert pages == [10, 10, 5], pages
    assert seen == names, f"every item once, in name order: {seen}"

    # A fresh list sees the writes made in between.
    fresh = core.list_namespaced_config_map(NAMESPACE, label_selector=selector)
    fresh_names = [cm.metadata.name for cm in fresh.items]
    assert "page-99" in fresh_names and "page-24" not in fresh_names, fresh_names
    assert len(fresh_names) == 25


def watch_resumes_after_the_server_closes_it(api_client):
    core = client.CoreV1Api(api_client)
    listed = core.list_namespaced_config_map(NAMESPACE, label_selector="set=watched")
    assert listed.items == []
    start_rv = listed.metadata.resource_version
    core.create_namespaced_config_map(
        NAMESPACE, configmap("watched", {"v": "1"}, {"set": "watched"})
    )

    w = watch.Watch()
    started = time.monotonic()
    events = [
        (e["type"], e["object"].metadata.name, (e["object"].data or {}).get("v"))
        for e in w.stream(
            core.list_namespaced_config_map,
            NAMESPACE,
            label_selector="set=watched",
            resource_version=start_rv,
            timeout_seconds=2,
        )
    ]
    took = time.monotonic() - started
    assert events == [("ADDED", "watched", "1")], events
    assert 1.5 <= took < 15, f"the server closed the watch after {took:.1f}s, asked 2s"
    last_rv = w.resource_version
    assert last_rv, "the watch recorded the last resourceVersion it saw"

    # Changes while no watch is open are delivered on resume, and nothing is replayed.
    core.patch_namespaced_config_map("watched", NAMESPACE, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("watched", NAMESPACE)
    resumed = [
        (e["type"], e["object"].metadata.name, (e["object"].data or {}).get("v"))
        for e in w.stream(
            core.list_namespaced_config_map,
            NAMESPACE,
            label_selector="set=watched",
            resource_version=last_rv,
            timeout_seconds=2,
        )
    ]
    assert resumed == [("MODIFIED", "watched", "2"), ("DELETED", "watched", "2")], resumed


def main(kubeconfig):
    api_client = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    checks = [
        configmap_crud,
        deployment_crud,
        paginated_list_is_one_snapshot,
        watch_resumes_after_the_server_closes_it,
    ]
    failed = 0
    for check in checks:
        started = time.monotonic()
        try:
            check(api_client)
        except Exception:  # noqa: BLE001 — report every failing check, then exit 1
            failed += 1
            print(f"FAIL {check.__name__}", flush=True)
            traceback.print_exc()
        else:
            print(f"ok   {check.__name__} ({time.monotonic() - started:.2f}s)", flush=True)
    core.delete_namespace(NAMESPACE)
    print(f"python client: {len(checks) - failed} of {len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
