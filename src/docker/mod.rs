//! A small blocking façade over the Docker engine API (bollard), for what testcontainers
//! does not do: building the image from our own build context with a `--target`, image
//! look-ups, stats, and forced removal during cleanup.

use std::collections::HashMap;

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, ContainerStatsResponse};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StatsOptionsBuilder,
};
use futures_util::StreamExt;

/// No Docker engine could be reached, and why, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unreachable {
    /// Why: no runtime, no engine configured, or none answers.
    pub reason: String,
}

/// A connection to the engine plus a private runtime to drive it from synchronous code.
pub struct Engine {
    docker: Docker,
    runtime: tokio::runtime::Runtime,
}

/// One OCI runtime as `docker info` lists it: what the engine knows, unresolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRuntime {
    pub name: String,
    /// The executable, when the engine names one other than `name`.
    pub path: Option<String>,
    pub args: Option<Vec<String>>,
}

impl Engine {
    /// Connects to the local engine (DOCKER_HOST or the default socket) and checks it answers.
    pub fn connect() -> Result<Self, Unreachable> {
        let unavailable = |reason: String| Unreachable { reason };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| unavailable(format!("cannot create a runtime: {error}")))?;
        let docker = Docker::connect_with_local_defaults()
            .map_err(|error| unavailable(format!("no Docker engine configured: {error}")))?;
        runtime
            .block_on(docker.ping())
            .map_err(|error| unavailable(format!("no Docker engine answers: {error}")))?;
        Ok(Self { docker, runtime })
    }

    /// The bollard client, for engine calls this façade does not wrap (image inspection,
    /// root filesystem export in [`crate::subject`]).
    pub fn api(&self) -> &Docker {
        &self.docker
    }

    /// Drives `future` (a bollard call) to completion on this engine's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// `docker <version> (API <api>)` as the engine reports it.
    pub fn describe(&self) -> anyhow::Result<String> {
        let version = self.runtime.block_on(self.docker.version())?;
        Ok(format!(
            "docker {} (API {})",
            version.version.unwrap_or_default(),
            version.api_version.unwrap_or_default()
        ))
    }

    /// The OCI runtimes the engine has registered (`docker info`), in the engine's order.
    pub fn runtimes(&self) -> anyhow::Result<Vec<EngineRuntime>> {
        let info = self
            .runtime
            .block_on(self.docker.info())
            .context("reading docker info")?;
        Ok(info
            .runtimes
            .unwrap_or_default()
            .into_iter()
            .map(|(name, runtime)| EngineRuntime {
                name,
                path: runtime.path,
                args: runtime.runtime_args,
            })
            .collect())
    }

    /// Size of an image in bytes, or `None` if the engine does not have it.
    pub fn image_size(&self, reference: &str) -> anyhow::Result<Option<u64>> {
        match self.runtime.block_on(self.docker.inspect_image(reference)) {
            Ok(image) => Ok(Some(image.size.unwrap_or(0).max(0) as u64)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("inspecting image {reference}")),
        }
    }

    /// Builds `context_tar` (a tar with a Dockerfile at its root) up to stage `target`, tagged
    /// `reference`. Never pulls: the build fails if the Dockerfile needs a base image the
    /// engine lacks.
    pub fn build_image(
        &self,
        context_tar: Vec<u8>,
        target: &str,
        reference: &str,
    ) -> anyhow::Result<()> {
        let options = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(reference)
            .target(target)
            .rm(true)
            .forcerm(true)
            .build();
        let body = bollard::body_full(context_tar.into());
        self.runtime.block_on(async {
            let mut stream = self.docker.build_image(options, None, Some(body));
            let mut log = String::new();
            while let Some(item) = stream.next().await {
                let info = item.with_context(|| format!("building image {reference}"))?;
                if let Some(line) = info.stream {
                    log.push_str(&line);
                }
                if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
                    bail!("building image {reference} failed: {error}\n{log}");
                }
            }
            Ok(())
        })
    }

    /// One stats sample of a running container.
    pub fn stats(&self, id: &str) -> anyhow::Result<ContainerStatsResponse> {
        let options = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        self.runtime.block_on(async {
            self.docker
                .stats(id, Some(options))
                .next()
                .await
                .context("the engine returned no stats")?
                .with_context(|| format!("reading stats of container {id}"))
        })
    }

    /// The engine's full description of a container.
    pub fn inspect_container(&self, id: &str) -> anyhow::Result<ContainerInspectResponse> {
        self.runtime
            .block_on(self.docker.inspect_container(id, None))
            .with_context(|| format!("inspecting container {id}"))
    }

    /// Removes a container, running or not, with its anonymous volumes.
    pub fn force_remove(&self, id: &str) -> anyhow::Result<()> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self
            .runtime
            .block_on(self.docker.remove_container(id, Some(options)))
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("removing container {id}")),
        }
    }

    /// Creates a container from `body`, returning its id (not started).
    pub fn create_container(&self, body: ContainerCreateBody) -> anyhow::Result<String> {
        let image = body.image.clone().unwrap_or_default();
        let created = self
            .runtime
            .block_on(self.docker.create_container(None, body))
            .with_context(|| format!("creating a container from {image}"))?;
        Ok(created.id)
    }

    /// Starts the created container `id`.
    pub fn start_container(&self, id: &str) -> anyhow::Result<()> {
        self.runtime
            .block_on(self.docker.start_container(id, None))
            .with_context(|| format!("starting container {id}"))
    }

    /// Ids and labels of all containers (running or not) carrying `label=value`.
    pub fn containers_labelled(
        &self,
        label: &str,
        value: &str,
    ) -> anyhow::Result<Vec<(String, HashMap<String, String>)>> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .runtime
            .block_on(self.docker.list_containers(Some(options)))
            .context("listing containers")?;
        Ok(containers
            .into_iter()
            .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
            .collect())
    }
}
