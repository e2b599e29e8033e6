//! How a foreign service (a user's image or static binary) runs in every environment: the
//! options every rung shares, its image's exported root filesystem, and a static binary
//! wrapped into an image. The environments themselves are made by [`crate::env::factory`].

use std::time::Duration;

use anyhow::Context;

use crate::artifact::Preparation;
use crate::docker::Engine;
use crate::env::EnvError;
use crate::subject::rootfs::{self, RootFs};
use crate::subject::user::{self, ResolvedUser};
use crate::subject::{BinarySubject, ImageConfig, ImageSubject};

/// How a foreign service is run, in every environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignRun {
    /// Bound on start → first 2xx on the health path.
    pub startup_timeout: Duration,
    /// The container's hardening.
    pub hardening: Hardening,
    /// Where the service keeps its files, a path inside it (the scenario file's `data_dir`,
    /// checked by [`crate::env::data_dir::service_path`]): every instance gets a fresh data
    /// directory there, in every rung. `None`: no data directory.
    pub data_dir: Option<String>,
}

impl Default for ForeignRun {
    fn default() -> Self {
        Self {
            startup_timeout: Duration::from_secs(60),
            hardening: Hardening::default(),
            data_dir: None,
        }
    }
}

/// What a foreign service's label says of its data directory when its scenario file names
/// none.
pub const NO_DATA_DIR: &str = "none: the scenario file names no data_dir";

/// The image's environment (`NAME=VALUE`) with [`crate::env::data_dir::ENV_VAR`] set to
/// `data_dir` when there is one, replacing the image's own value, as `docker run -e` does.
pub fn with_data_dir_env(image_env: &[String], data_dir: Option<&str>) -> Vec<String> {
    let var = crate::env::data_dir::ENV_VAR;
    let mut env: Vec<String> = image_env
        .iter()
        .filter(|pair| data_dir.is_none() || pair.split_once('=').map(|(n, _)| n) != Some(var))
        .cloned()
        .collect();
    if let Some(dir) = data_dir {
        env.push(format!("{var}={dir}"));
    }
    env
}

/// The container's hardening, each part on unless a flag turned it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardening {
    /// `--read-only`.
    pub read_only_root: bool,
    /// `--cap-drop ALL`.
    pub drop_capabilities: bool,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
}

impl Default for Hardening {
    fn default() -> Self {
        Self {
            read_only_root: true,
            drop_capabilities: true,
            no_new_privileges: true,
        }
    }
}

impl Hardening {
    /// The hardening as the label states it.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        parts.push(if self.read_only_root {
            "read-only root filesystem"
        } else {
            "writable root filesystem (--writable-root)"
        });
        parts.push(if self.drop_capabilities {
            "all capabilities dropped"
        } else {
            "Docker's default capabilities (--keep-capabilities)"
        });
        parts.push(if self.no_new_privileges {
            "no-new-privileges"
        } else {
            "new privileges allowed (--allow-new-privileges)"
        });
        parts.join(", ")
    }
}

/// The image's root filesystem, exported through the engine (cached by image id), and the
/// image's user resolved in it: what the native chroot and the VM's disk both start from.
/// `env` names the environment in the error when no engine answers.
pub fn exported_root(
    env: &str,
    image: &ImageConfig,
) -> Result<(RootFs, ResolvedUser, Preparation), EnvError> {
    let engine = Engine::connect().map_err(|error| EnvError::Unavailable {
        env: env.into(),
        reason: format!(
            "the image's root filesystem is exported through the Docker engine: {}",
            EnvError::from(error)
        ),
    })?;
    let (root, exported) = rootfs::ensure(&engine, image)?;
    let user = user::resolve(&root.dir, &image.user)
        .map_err(|error| anyhow::anyhow!("image {}: {error}", image.reference))?;
    Ok((root, user, exported))
}

/// Wraps a static binary into an image `FROM scratch` (the binary, uid 65534, its port
/// exposed, the binary and its arguments as the entrypoint), tagged by content so it is
/// built once; returns it resolved, and the timed step.
pub fn wrap_binary(
    engine: &Engine,
    binary: &BinarySubject,
) -> anyhow::Result<(ImageSubject, Preparation)> {
    use sha2::{Digest, Sha256};
    let started = std::time::Instant::now();
    let bytes = std::fs::read(&binary.path)
        .with_context(|| format!("reading {}", binary.path.display()))?;
    let entrypoint: Vec<String> = std::iter::once("/service".to_owned())
        .chain(binary.args.iter().cloned())
        .collect();
    let dockerfile = format!(
        "FROM scratch AS service\nCOPY service /service\nUSER 65534:65534\nEXPOSE {}\nENTRYPOINT {}\n",
        binary.port,
        serde_json::to_string(&entrypoint)?
    );
    let mut hasher = Sha256::new();
    hasher.update(dockerfile.as_bytes());
    hasher.update(&bytes);
    let tag: String = hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let reference = format!("isobench-binary:{tag}");
    let cached = engine.image_size(&reference)?.is_some();
    if !cached {
        let mut archive = tar::Builder::new(Vec::new());
        for (path, data, mode) in [
            ("Dockerfile", dockerfile.as_bytes(), 0o644),
            ("service", bytes.as_slice(), 0o755),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_cksum();
            archive.append_data(&mut header, path, data)?;
        }
        engine.build_image(archive.into_inner()?, "service", &reference)?;
    }
    let image = crate::subject::image::inspect(engine, &reference)?;
    Ok((
        ImageSubject {
            image,
            port: binary.port,
            health_path: binary.health_path.clone(),
        },
        Preparation {
            what: format!("image wrapping {} FROM scratch", binary.path.display()),
            seconds: started.elapsed().as_secs_f64(),
            cached,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_variable_replaces_the_images_own() {
        let image = vec!["A=1".to_owned(), "ISOBENCH_DATA_DIR=/old".to_owned()];
        assert_eq!(with_data_dir_env(&image, None), image);
        assert_eq!(
            with_data_dir_env(&image, Some("/data")),
            ["A=1", "ISOBENCH_DATA_DIR=/data"]
        );
    }
}
