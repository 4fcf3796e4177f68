//! `securityContext` turned into the runtime's container security settings, as the kubelet
//! computes them: the container's own context wins over the pod's for the user, group and
//! `runAsNonRoot` ([`effective`]); the pod's `fsGroup` and `supplementalGroups` become
//! supplemental groups; `allowPrivilegeEscalation: false` becomes `no_new_privs`
//! ([`container_security`]). [`verify_run_as_non_root`] is the kubelet's check of
//! `runAsNonRoot` against the user the container would run as, made before the container is
//! created (a failure leaves it waiting in `CreateContainerConfigError`). Pure functions.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use crate::runtime::{ContainerSecurity, Image};

/// The settings that the pod's and the container's contexts both may set, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effective {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: bool,
}

/// The container's user, group and `runAsNonRoot`: its own where it sets them, else the
/// pod's.
pub fn effective(spec: &PodSpec, container: &Container) -> Effective {
    let pod = spec.security_context.as_ref();
    let own = container.security_context.as_ref();
    Effective {
        run_as_user: own
            .and_then(|c| c.run_as_user)
            .or_else(|| pod.and_then(|p| p.run_as_user)),
        run_as_group: own
            .and_then(|c| c.run_as_group)
            .or_else(|| pod.and_then(|p| p.run_as_group)),
        run_as_non_root: own
            .and_then(|c| c.run_as_non_root)
            .or_else(|| pod.and_then(|p| p.run_as_non_root))
            .unwrap_or(false),
    }
}

/// What the runtime applies to `container`.
pub fn container_security(spec: &PodSpec, container: &Container) -> ContainerSecurity {
    let resolved = effective(spec, container);
    let own = container.security_context.clone().unwrap_or_default();
    let pod = spec.security_context.clone().unwrap_or_default();
    let mut supplemental_groups: Vec<i64> = pod.fs_group.into_iter().collect();
    supplemental_groups.extend(pod.supplemental_groups.iter().flatten());
    let capabilities = own.capabilities.unwrap_or_default();
    ContainerSecurity {
        run_as_user: resolved.run_as_user,
        run_as_group: resolved.run_as_group,
        supplemental_groups,
        readonly_rootfs: own.read_only_root_filesystem.unwrap_or(false),
        privileged: own.privileged.unwrap_or(false),
        // Unset means the runtime's default (privileges may be gained), as upstream.
        no_new_privs: own.allow_privilege_escalation == Some(false),
        add_capabilities: capabilities.add.unwrap_or_default(),
        drop_capabilities: capabilities.drop.unwrap_or_default(),
    }
}

/// Whether any container of the pod (init containers included) is privileged: its sandbox
/// must be too.
pub fn pod_privileged(spec: &PodSpec) -> bool {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        })
}

/// Whether [`verify_run_as_non_root`] needs the image's user: `runAsNonRoot` is on and no
/// `runAsUser` says who the container runs as.
pub fn needs_image_user(spec: &PodSpec, container: &Container) -> bool {
    let resolved = effective(spec, container);
    resolved.run_as_non_root && resolved.run_as_user.is_none()
}

/// The kubelet's `runAsNonRoot` check: the container must not run as uid 0, whether
/// `runAsUser` or the image says so; an image user given by name cannot be checked and
/// fails too; an image with no user runs as root. `image` is the image's status (`None`:
/// unknown, treated as root). Errors carry the kubelet's messages.
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    image: Option<&Image>,
) -> Result<(), String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let resolved = effective(&spec, container);
    if !resolved.run_as_non_root {
        return Ok(());
    }
    let meta = &pod.metadata;
    let pod_name = format!(
        "{}_{}({})",
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default()
    );
    if let Some(uid) = resolved.run_as_user {
        if uid == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy (pod: {pod_name:?}, container: {})",
                container.name
            ));
        }
        return Ok(());
    }
    let (uid, username) = match image {
        Some(image) if image.uid.is_some() => (image.uid, ""),
        Some(image) if !image.username.is_empty() => (None, image.username.as_str()),
        _ => (Some(0), ""),
    };
    match uid {
        Some(0) => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {})",
            container.name
        )),
        None => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({username}), cannot verify user is non-root (pod: {pod_name:?}, container: {})",
            container.name
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn image(uid: Option<i64>, username: &str) -> Image {
        Image {
            id: "sha256:1".into(),
            repo_tags: vec![],
            repo_digests: vec![],
            size: 0,
            uid,
            username: username.into(),
        }
    }

    #[test]
    fn the_container_context_wins_over_the_pod_context() {
        let pod = pod(json!({
            "securityContext": {
                "runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 4000,
                "supplementalGroups": [3000, 3001],
            },
            "containers": [
                {"name": "a", "securityContext": {"runAsUser": 1001}},
                {"name": "b"},
            ],
        }));
        let spec = pod.spec.unwrap();
        let a = container_security(&spec, &spec.containers[0]);
        assert_eq!(a.run_as_user, Some(1001));
        assert_eq!(a.run_as_group, Some(2000));
        assert_eq!(a.supplemental_groups, [4000, 3000, 3001]);
        let b = container_security(&spec, &spec.containers[1]);
        assert_eq!(b.run_as_user, Some(1000));
        assert!(!b.no_new_privs && !b.privileged && !b.readonly_rootfs);
    }

    #[test]
    fn container_only_settings_pass_through() {
        let pod = pod(json!({
            "initContainers": [{"name": "i", "securityContext": {"privileged": true}}],
            "containers": [{"name": "a", "securityContext": {
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            }}],
        }));
        let spec = pod.spec.unwrap();
        let a = container_security(&spec, &spec.containers[0]);
        assert!(a.readonly_rootfs && a.no_new_privs && !a.privileged);
        assert_eq!(a.add_capabilities, ["NET_ADMIN"]);
        assert_eq!(a.drop_capabilities, ["ALL"]);
        assert!(a.supplemental_groups.is_empty());
        assert!(pod_privileged(&spec));
        let plain = self::pod(json!({"containers": [{"name": "a"}]}));
        assert!(!pod_privileged(&plain.spec.unwrap()));
        let allowed = self::pod(json!({"containers": [
            {"name": "a", "securityContext": {"allowPrivilegeEscalation": true}},
        ]}));
        let spec = allowed.spec.unwrap();
        assert!(!container_security(&spec, &spec.containers[0]).no_new_privs);
    }

    #[test]
    fn run_as_non_root_refuses_root_from_the_spec_or_the_image() {
        let check = |spec: Value, image: Option<Image>| {
            let pod = pod(spec);
            let container = pod.spec.as_ref().unwrap().containers[0].clone();
            verify_run_as_non_root(&pod, &container, image.as_ref())
        };
        let non_root = |container: Value| json!({"securityContext": {"runAsNonRoot": true}, "containers": [container]});
        assert_eq!(
            check(non_root(json!({"name": "c"})), Some(image(None, ""))),
            Err("container has runAsNonRoot and image will run as root (pod: \"p_ns(u-1)\", container: c)".into())
        );
        assert!(check(non_root(json!({"name": "c"})), Some(image(Some(0), ""))).is_err());
        assert!(check(non_root(json!({"name": "c"})), None).is_err());
        assert_eq!(
            check(non_root(json!({"name": "c"})), Some(image(Some(65534), ""))),
            Ok(())
        );
        assert_eq!(
            check(non_root(json!({"name": "c"})), Some(image(None, "nobody"))),
            Err("container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: \"p_ns(u-1)\", container: c)".into())
        );
        let root_user = non_root(json!({"name": "c", "securityContext": {"runAsUser": 0}}));
        assert_eq!(
            check(root_user, Some(image(Some(1000), ""))),
            Err(
                "container's runAsUser breaks non-root policy (pod: \"p_ns(u-1)\", container: c)"
                    .into()
            )
        );
        let user = non_root(json!({"name": "c", "securityContext": {"runAsUser": 1000}}));
        assert_eq!(check(user, None), Ok(()));
        // The container may turn the pod's requirement off.
        let off = non_root(json!({"name": "c", "securityContext": {"runAsNonRoot": false}}));
        assert_eq!(check(off, None), Ok(()));
        assert_eq!(check(json!({"containers": [{"name": "c"}]}), None), Ok(()));
        let pod = pod(non_root(json!({"name": "c"})));
        let spec = pod.spec.unwrap();
        assert!(needs_image_user(&spec, &spec.containers[0]));
    }
}
