//! What is measured: isobench's own server, a Docker image on the local engine, or a static
//! binary, together with the port it listens on and the path that says it is healthy.
//!
//! A subject is resolved once, before any environment starts: an image is inspected through
//! the engine (id, size, entrypoint, command, environment, working directory, user, exposed
//! ports) and never pulled, so a missing image is an error naming it rather than a download.
//! Environments then run the very same bytes: the image itself in a container, its root
//! filesystem ([`rootfs`]) chrooted natively or as a VM's root.

pub mod image;
pub mod rootfs;
pub mod server_binary;
pub mod user;

use std::path::PathBuf;

pub use image::ImageConfig;

/// The health path when none is given: what isobench's own server and most services answer.
pub const DEFAULT_HEALTH_PATH: &str = "/health";

/// Why a subject could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    /// The image is not on the local engine; isobench never pulls.
    #[error(
        "image {reference} is not on the local Docker engine (isobench never pulls: build or load it first, e.g. `docker build -t {reference} .`)"
    )]
    ImageNotFound {
        /// The reference as the user gave it.
        reference: String,
    },
    /// No port was given and the image does not expose exactly one.
    #[error(
        "image {reference} exposes {exposed}; say which port the service listens on with --port"
    )]
    PortUnknown {
        /// The image.
        reference: String,
        /// What it exposes, in words.
        exposed: String,
    },
    /// The image has neither an entrypoint nor a command: nothing to run.
    #[error("image {reference} has neither an entrypoint nor a command: nothing to run")]
    NothingToRun {
        /// The image.
        reference: String,
    },
    /// The health path is not an origin-form path.
    #[error("health path {path:?} must start with '/'")]
    BadHealthPath {
        /// The path as given.
        path: String,
    },
    /// The binary is missing or not a file.
    #[error("binary {path} is not a file")]
    BinaryMissing {
        /// The path as given.
        path: PathBuf,
    },
    /// The engine failed otherwise.
    #[error(transparent)]
    Engine(#[from] anyhow::Error),
}

/// The service under measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// isobench's own static server, with its own scenarios.
    Own,
    /// A Docker image on the local engine, resolved.
    Image(ImageSubject),
    /// A static binary the user hands over, run directly natively and wrapped `FROM scratch`
    /// elsewhere.
    Binary(BinarySubject),
}

/// A resolved image and how to reach the service it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSubject {
    /// What the engine says about the image.
    pub image: ImageConfig,
    /// The port the service listens on inside its environment.
    pub port: u16,
    /// The path whose 2xx answer means ready.
    pub health_path: String,
}

/// A static binary and how to reach the service it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BinarySubject {
    /// The binary.
    pub path: PathBuf,
    /// Arguments it is started with.
    pub args: Vec<String>,
    /// The port the service listens on.
    pub port: u16,
    /// The path whose 2xx answer means ready.
    pub health_path: String,
}

impl Subject {
    /// A short name for labels and the report: `isobench-server`, the image reference, or
    /// the binary's file name.
    pub fn name(&self) -> String {
        match self {
            Self::Own => "isobench-server".into(),
            Self::Image(image) => image.image.reference.clone(),
            Self::Binary(binary) => binary.path.file_name().map_or_else(
                || binary.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }
    }

    /// Whether this is a service other than isobench's own (so it gets the foreign
    /// scenarios and no `/status` detection).
    pub fn is_foreign(&self) -> bool {
        !matches!(self, Self::Own)
    }

    /// The service as the artifact records it.
    pub fn info(&self) -> crate::artifact::ServiceInfo {
        use crate::artifact::{ServiceInfo, ServiceKind};
        match self {
            Self::Own => ServiceInfo {
                name: self.name(),
                kind: ServiceKind::Own,
                image_id: None,
                size_bytes: None,
                command: Vec::new(),
                user: None,
                port: None,
                health_path: DEFAULT_HEALTH_PATH.to_owned(),
            },
            Self::Image(image) => ServiceInfo {
                name: self.name(),
                kind: ServiceKind::Image,
                image_id: Some(image.image.id.clone()),
                size_bytes: Some(image.image.size_bytes),
                command: image.image.argv(),
                user: Some(image.image.user.clone()),
                port: Some(image.port),
                health_path: image.health_path.clone(),
            },
            Self::Binary(binary) => ServiceInfo {
                name: self.name(),
                kind: ServiceKind::Binary,
                image_id: None,
                size_bytes: std::fs::metadata(&binary.path).ok().map(|m| m.len()),
                command: std::iter::once(binary.path.display().to_string())
                    .chain(binary.args.iter().cloned())
                    .collect(),
                user: None,
                port: Some(binary.port),
                health_path: binary.health_path.clone(),
            },
        }
    }

    /// The health path to wait on.
    pub fn health_path(&self) -> &str {
        match self {
            Self::Own => DEFAULT_HEALTH_PATH,
            Self::Image(image) => &image.health_path,
            Self::Binary(binary) => &binary.health_path,
        }
    }
}

/// Checks a health path: origin form, starting with `/`.
pub fn check_health_path(path: &str) -> Result<String, SubjectError> {
    if path.starts_with('/') && !path.contains(char::is_whitespace) {
        Ok(path.to_owned())
    } else {
        Err(SubjectError::BadHealthPath { path: path.into() })
    }
}

/// Resolves `--image REFERENCE [--port P] [--health PATH]` against the local engine.
pub fn resolve_image(
    engine: &crate::docker::Engine,
    reference: &str,
    port: Option<u16>,
    health_path: Option<&str>,
) -> Result<Subject, SubjectError> {
    let health_path = check_health_path(health_path.unwrap_or(DEFAULT_HEALTH_PATH))?;
    let image = image::inspect(engine, reference)?;
    if image.argv().is_empty() {
        return Err(SubjectError::NothingToRun {
            reference: reference.into(),
        });
    }
    let port = match (port, image.exposed_tcp_ports.as_slice()) {
        (Some(port), _) => port,
        (None, [only]) => *only,
        (None, exposed) => {
            return Err(SubjectError::PortUnknown {
                reference: reference.into(),
                exposed: if exposed.is_empty() {
                    "no port".into()
                } else {
                    format!("ports {exposed:?}")
                },
            });
        }
    };
    Ok(Subject::Image(ImageSubject {
        image,
        port,
        health_path,
    }))
}

/// Resolves `--binary PATH --port P [--health PATH]`.
pub fn resolve_binary(
    path: PathBuf,
    args: Vec<String>,
    port: u16,
    health_path: Option<&str>,
) -> Result<Subject, SubjectError> {
    let health_path = check_health_path(health_path.unwrap_or(DEFAULT_HEALTH_PATH))?;
    if !path.is_file() {
        return Err(SubjectError::BinaryMissing { path });
    }
    Ok(Subject::Binary(BinarySubject {
        path,
        args,
        port,
        health_path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_paths_must_be_paths() {
        assert_eq!(check_health_path("/healthz").unwrap(), "/healthz");
        assert!(matches!(
            check_health_path("health"),
            Err(SubjectError::BadHealthPath { .. })
        ));
        assert!(check_health_path("/a b").is_err());
    }

    #[test]
    fn a_missing_binary_is_named() {
        let error = resolve_binary("/nonexistent/x".into(), vec![], 80, None).unwrap_err();
        assert_eq!(error.to_string(), "binary /nonexistent/x is not a file");
    }
}
