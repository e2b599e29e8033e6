//! An image's run configuration as the engine reports it (`docker image inspect`), read
//! through bollard; nothing is pulled.

use anyhow::Context;

use super::SubjectError;
use crate::docker::Engine;

/// What the engine says about an image: enough to run it the way `docker run` would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// The reference as the user gave it, e.g. `myapp:latest`.
    pub reference: String,
    /// Content-addressable id, `sha256:…`.
    pub id: String,
    /// Size as the engine reports it, bytes.
    pub size_bytes: u64,
    /// `ENTRYPOINT`, exec form.
    pub entrypoint: Vec<String>,
    /// `CMD`, exec form.
    pub cmd: Vec<String>,
    /// `ENV`, as `NAME=value`.
    pub env: Vec<String>,
    /// `WORKDIR`; empty means `/`.
    pub workdir: String,
    /// `USER` (`name`, `uid`, `name:group`, `uid:gid`); empty means root.
    pub user: String,
    /// TCP ports of `EXPOSE`, ascending.
    pub exposed_tcp_ports: Vec<u16>,
}

impl ImageConfig {
    /// The command line `docker run` executes: entrypoint followed by command.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// The first 12 hex digits of the id, as `docker images` shows it.
    pub fn short_id(&self) -> &str {
        let hex = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        &hex[..hex.len().min(12)]
    }

    /// One line naming the image for labels and reports.
    pub fn describe(&self) -> String {
        format!(
            "image {} (id {}, {:.1} MB, entrypoint {:?}, cmd {:?}, user {:?})",
            self.reference,
            self.short_id(),
            self.size_bytes as f64 / 1e6,
            self.entrypoint,
            self.cmd,
            if self.user.is_empty() {
                "root"
            } else {
                &self.user
            },
        )
    }
}

/// Inspects `reference` on the local engine.
pub fn inspect(engine: &Engine, reference: &str) -> Result<ImageConfig, SubjectError> {
    let inspected = match engine.block_on(engine.api().inspect_image(reference)) {
        Ok(image) => image,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            return Err(SubjectError::ImageNotFound {
                reference: reference.into(),
            });
        }
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context(format!("inspecting image {reference}"))
                .into());
        }
    };
    let id = inspected
        .id
        .with_context(|| format!("the engine gave image {reference} no id"))?;
    let config = inspected.config.unwrap_or_default();
    Ok(ImageConfig {
        reference: reference.into(),
        id,
        size_bytes: inspected.size.unwrap_or(0).max(0) as u64,
        entrypoint: config.entrypoint.unwrap_or_default(),
        cmd: config.cmd.unwrap_or_default(),
        env: config.env.unwrap_or_default(),
        workdir: config.working_dir.unwrap_or_default(),
        user: config.user.unwrap_or_default(),
        exposed_tcp_ports: tcp_ports(config.exposed_ports.unwrap_or_default()),
    })
}

/// `["5000/tcp", "53/udp", "8080"]` → `[5000, 8080]`.
fn tcp_ports(exposed: impl IntoIterator<Item = String>) -> Vec<u16> {
    let mut ports: Vec<u16> = exposed
        .into_iter()
        .filter_map(|spec| {
            let (port, proto) = spec.split_once('/').unwrap_or((&spec, "tcp"));
            (proto == "tcp").then(|| port.parse().ok()).flatten()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_ports_count() {
        let exposed = ["8080/tcp", "53/udp", "5000", "8080/tcp", "x/tcp"].map(String::from);
        assert_eq!(tcp_ports(exposed), vec![5000, 8080]);
    }

    #[test]
    fn argv_is_entrypoint_then_cmd() {
        let image = ImageConfig {
            reference: "a:b".into(),
            id: "sha256:0123456789abcdef".into(),
            size_bytes: 2_000_000,
            entrypoint: vec!["/bin/busybox".into(), "httpd".into()],
            cmd: vec!["-f".into()],
            env: vec![],
            workdir: String::new(),
            user: String::new(),
            exposed_tcp_ports: vec![],
        };
        assert_eq!(image.argv(), ["/bin/busybox", "httpd", "-f"]);
        assert_eq!(image.short_id(), "0123456789ab");
        assert!(image.describe().contains("id 0123456789ab, 2.0 MB"));
    }
}
