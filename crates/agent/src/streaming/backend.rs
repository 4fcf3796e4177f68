//! What the streaming server asks of the node's runtime: where a container's log file is,
//! whether the container still runs, and the runtime streaming server's URL for an exec,
//! attach or port-forward. [`CriBackend`] asks a CRI runtime (its own connection on the
//! runtime's socket, so the pod workers' client is left alone); [`SimulatedBackend`] answers
//! for simulated nodes, whose containers run nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::logs::attempt_logs;
use super::Refusal;

/// The kubelet's labels on CRI containers and sandboxes (set by [`crate::runtime::cri`]).
const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// A pod as the API server names it in a streaming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Where a container's log comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// A CRI log file, written by the container with this id (if it still exists).
    File {
        path: PathBuf,
        container_id: Option<String>,
    },
    /// A fixed text (simulated containers).
    Synthetic(String),
}

/// An interactive session to set up in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    Exec {
        command: Vec<String>,
        tty: bool,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Attach {
        tty: bool,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    PortForward,
}

/// The runtime side of the streaming server.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The log of a container's current attempt, or of the one before it (`previous`).
    async fn log_source(
        &self,
        pod: &PodRef,
        container: &str,
        previous: bool,
    ) -> Result<LogSource, Refusal>;
    /// Whether the container still runs (a log follower stops once it does not).
    async fn running(&self, container_id: &str) -> bool;
    /// The runtime streaming server's URL for `session` in `container` (none for
    /// port-forward) of `pod`.
    async fn session_url(
        &self,
        pod: &PodRef,
        container: Option<&str>,
        session: &Session,
    ) -> Result<String, Refusal>;
}

/// A CRI runtime's containers, logs and streaming server.
#[derive(Clone)]
pub struct CriBackend {
    client: RuntimeServiceClient<Channel>,
    pod_log_dir: PathBuf,
}

impl std::fmt::Debug for CriBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriBackend")
            .field("pod_log_dir", &self.pod_log_dir)
            .finish_non_exhaustive()
    }
}

impl CriBackend {
    /// A backend for the runtime on `socket` whose pods log under `pod_log_dir`. Connects
    /// when first used, so the runtime may start later.
    pub fn new(socket: &Path, pod_log_dir: &Path) -> CriBackend {
        let socket = socket.to_path_buf();
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }));
        CriBackend {
            client: RuntimeServiceClient::new(channel),
            pod_log_dir: pod_log_dir.to_path_buf(),
        }
    }

    /// The pod's log directory, as [`crate::runtime::cri`] lays it out.
    fn container_log_dir(&self, pod: &PodRef, container: &str) -> PathBuf {
        self.pod_log_dir
            .join(format!("{}_{}_{}", pod.namespace, pod.name, pod.uid))
            .join(container)
    }

    /// The pod's containers named `container`, newest attempt first.
    async fn containers(
        &self,
        pod: &PodRef,
        container: &str,
    ) -> Result<Vec<cri::Container>, Refusal> {
        let filter = cri::ContainerFilter {
            label_selector: HashMap::from([
                (LABEL_POD_UID.to_string(), pod.uid.clone()),
                (LABEL_CONTAINER_NAME.to_string(), container.to_string()),
            ]),
            ..Default::default()
        };
        let mut list = self
            .client
            .clone()
            .list_containers(cri::ListContainersRequest {
                filter: Some(filter),
            })
            .await
            .map_err(|s| Refusal::internal(format!("runtime: {}", s.message())))?
            .into_inner()
            .containers;
        list.sort_by_key(|c| std::cmp::Reverse(c.metadata.as_ref().map_or(0, |m| m.attempt)));
        Ok(list)
    }

    async fn running_container(&self, pod: &PodRef, container: &str) -> Result<String, Refusal> {
        self.containers(pod, container)
            .await?
            .into_iter()
            .find(|c| c.state == cri::ContainerState::ContainerRunning as i32)
            .map(|c| c.id)
            .ok_or_else(|| Refusal::not_found(format!("container not found ({container:?})")))
    }

    async fn ready_sandbox(&self, pod: &PodRef) -> Result<String, Refusal> {
        let filter = cri::PodSandboxFilter {
            label_selector: HashMap::from([(LABEL_POD_UID.to_string(), pod.uid.clone())]),
            state: Some(cri::PodSandboxStateValue {
                state: cri::PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        };
        self.client
            .clone()
            .list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(filter),
            })
            .await
            .map_err(|s| Refusal::internal(format!("runtime: {}", s.message())))?
            .into_inner()
            .items
            .into_iter()
            .max_by_key(|s| s.created_at)
            .map(|s| s.id)
            .ok_or_else(|| {
                Refusal::not_found(format!(
                    "pod {}/{} has no running sandbox",
                    pod.namespace, pod.name
                ))
            })
    }

    /// Ask the runtime to reopen a container's log file (after the agent rotated it).
    pub async fn reopen_log(&self, container_id: &str) -> Result<(), tonic::Status> {
        self.client
            .clone()
            .reopen_container_log(cri::ReopenContainerLogRequest {
                container_id: container_id.to_string(),
            })
            .await
            .map(|_| ())
    }

    /// Every container's id with its log file, for rotation.
    pub async fn container_logs(&self) -> Result<Vec<(String, PathBuf)>, tonic::Status> {
        let containers = self
            .client
            .clone()
            .list_containers(cri::ListContainersRequest { filter: None })
            .await?
            .into_inner()
            .containers;
        let sandboxes = self
            .client
            .clone()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await?
            .into_inner()
            .items;
        let pods: HashMap<String, PodRef> = sandboxes
            .into_iter()
            .filter_map(|s| {
                let m = s.metadata?;
                Some((
                    s.id,
                    PodRef {
                        namespace: m.namespace,
                        name: m.name,
                        uid: m.uid,
                    },
                ))
            })
            .collect();
        Ok(containers
            .into_iter()
            .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
            .filter_map(|c| {
                let pod = pods.get(&c.pod_sandbox_id)?;
                let m = c.metadata?;
                let path = self
                    .container_log_dir(pod, &m.name)
                    .join(format!("{}.log", m.attempt));
                Some((c.id, path))
            })
            .collect())
    }
}

#[async_trait]
impl Backend for CriBackend {
    async fn log_source(
        &self,
        pod: &PodRef,
        container: &str,
        previous: bool,
    ) -> Result<LogSource, Refusal> {
        let dir = self.container_log_dir(pod, container);
        let mut logs = attempt_logs(&dir);
        let current = logs.pop();
        let chosen = if previous { logs.pop() } else { current };
        let Some((attempt, path)) = chosen else {
            return Err(Refusal::bad_request(if previous {
                format!(
                    "previous terminated container {container:?} in pod {:?} not found",
                    pod.name
                )
            } else {
                format!(
                    "container {container:?} in pod {:?} is waiting to start: ContainerCreating",
                    pod.name
                )
            }));
        };
        let container_id = self
            .containers(pod, container)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.metadata.as_ref().is_some_and(|m| m.attempt == attempt))
            .map(|c| c.id);
        Ok(LogSource::File { path, container_id })
    }

    async fn running(&self, container_id: &str) -> bool {
        let filter = cri::ContainerFilter {
            id: container_id.to_string(),
            ..Default::default()
        };
        match self
            .client
            .clone()
            .list_containers(cri::ListContainersRequest {
                filter: Some(filter),
            })
            .await
        {
            Ok(list) => list.into_inner().containers.iter().any(|c| {
                c.state == cri::ContainerState::ContainerRunning as i32
                    || c.state == cri::ContainerState::ContainerCreated as i32
            }),
            // The runtime is away: keep following rather than cut the log short.
            Err(_) => true,
        }
    }

    async fn session_url(
        &self,
        pod: &PodRef,
        container: Option<&str>,
        session: &Session,
    ) -> Result<String, Refusal> {
        let call = |s: tonic::Status| Refusal::internal(format!("runtime: {}", s.message()));
        let mut client = self.client.clone();
        let url = match session {
            Session::Exec {
                command,
                tty,
                stdin,
                stdout,
                stderr,
            } => {
                let id = self
                    .running_container(pod, container.unwrap_or_default())
                    .await?;
                client
                    .exec(cri::ExecRequest {
                        container_id: id,
                        cmd: command.clone(),
                        tty: *tty,
                        stdin: *stdin,
                        stdout: *stdout,
                        stderr: *stderr,
                    })
                    .await
                    .map_err(call)?
                    .into_inner()
                    .url
            }
            Session::Attach {
                tty,
                stdin,
                stdout,
                stderr,
            } => {
                let id = self
                    .running_container(pod, container.unwrap_or_default())
                    .await?;
                client
                    .attach(cri::AttachRequest {
                        container_id: id,
                        tty: *tty,
                        stdin: *stdin,
                        stdout: *stdout,
                        stderr: *stderr,
                    })
                    .await
                    .map_err(call)?
                    .into_inner()
                    .url
            }
            Session::PortForward => {
                let id = self.ready_sandbox(pod).await?;
                client
                    .port_forward(cri::PortForwardRequest {
                        pod_sandbox_id: id,
                        port: Vec::new(),
                    })
                    .await
                    .map_err(call)?
                    .into_inner()
                    .url
            }
        };
        Ok(url)
    }
}

/// Simulated nodes: containers run nothing, so logs are one line and sessions are refused.
#[derive(Debug, Clone, Default)]
pub struct SimulatedBackend;

#[async_trait]
impl Backend for SimulatedBackend {
    async fn log_source(
        &self,
        pod: &PodRef,
        container: &str,
        _previous: bool,
    ) -> Result<LogSource, Refusal> {
        Ok(LogSource::Synthetic(format!(
            "navarch: container {container:?} of pod {}/{} runs on a simulated node, which runs no processes and keeps no logs\n",
            pod.namespace, pod.name
        )))
    }

    async fn running(&self, _container_id: &str) -> bool {
        false
    }

    async fn session_url(
        &self,
        _pod: &PodRef,
        _container: Option<&str>,
        session: &Session,
    ) -> Result<String, Refusal> {
        let what = match session {
            Session::Exec { .. } => "exec",
            Session::Attach { .. } => "attach",
            Session::PortForward => "port-forward",
        };
        Err(Refusal::bad_request(format!(
            "{what} is not available on a simulated node: its containers run no processes"
        )))
    }
}
