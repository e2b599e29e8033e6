//! The service image, built offline from the repository's `Dockerfile` and cached by content.
//!
//! The build context holds only the Dockerfile and `dist/isobench-server` (the static binary
//! built on the host), and the build stops at the `prebuilt` stage, which starts `FROM
//! scratch`: nothing is pulled. The tag is a hash of both files, so an unchanged binary and
//! Dockerfile reuse the image, and a file lock makes parallel test processes build it once.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::artifact::Preparation;
use crate::docker::Engine;
use crate::subject::server_binary;

/// Repository of the images isobench builds.
pub const IMAGE_REPOSITORY: &str = "isobench-server";
/// The Dockerfile stage that packages a prebuilt binary.
pub const PREBUILT_STAGE: &str = "prebuilt";

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Repository of the image.
    pub repository: String,
    /// Content-hash tag.
    pub tag: String,
    /// Image size as the engine reports it, bytes.
    pub size_bytes: u64,
}

impl BuiltImage {
    /// `repository:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// Builds (or reuses) the image for `server`, returning it and the timed preparation step.
pub fn ensure_image(engine: &Engine, server: &Path) -> anyhow::Result<(BuiltImage, Preparation)> {
    let started = Instant::now();
    let dockerfile_path = server_binary::manifest_dir().join("Dockerfile");
    let dockerfile = std::fs::read(&dockerfile_path)
        .with_context(|| format!("reading {}", dockerfile_path.display()))?;
    let binary = std::fs::read(server).with_context(|| format!("reading {}", server.display()))?;
    let tag = content_tag(&dockerfile, &binary);
    let reference = format!("{IMAGE_REPOSITORY}:{tag}");

    let lock_dir = server_binary::work_dir();
    std::fs::create_dir_all(&lock_dir)?;
    let lock = File::create(lock_dir.join("image.lock"))?;
    lock.lock().context("locking the image cache")?;

    let mut cached = true;
    let size_bytes = match engine.image_size(&reference)? {
        Some(size) => size,
        None => {
            cached = false;
            engine.build_image(
                build_context(&dockerfile, &binary)?,
                PREBUILT_STAGE,
                &reference,
            )?;
            engine
                .image_size(&reference)?
                .context("the engine does not list the image it just built")?
        }
    };
    drop(lock);
    let image = BuiltImage {
        repository: IMAGE_REPOSITORY.into(),
        tag,
        size_bytes,
    };
    let preparation = Preparation {
        what: "image build".into(),
        seconds: started.elapsed().as_secs_f64(),
        cached,
    };
    Ok((image, preparation))
}

/// First 16 hex digits of SHA-256 over the Dockerfile and the binary.
fn content_tag(dockerfile: &[u8], binary: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update((dockerfile.len() as u64).to_le_bytes());
    hasher.update(dockerfile);
    hasher.update(binary);
    let digest = hasher.finalize();
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A tar holding `Dockerfile` and `dist/isobench-server` (executable).
fn build_context(dockerfile: &[u8], binary: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for (path, data, mode) in [
        ("Dockerfile", dockerfile, 0o644),
        ("dist/isobench-server", binary, 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        archive.append_data(&mut header, path, data)?;
    }
    Ok(archive.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_changes_with_either_input() {
        let base = content_tag(b"FROM scratch", b"binary");
        assert_eq!(base.len(), 16);
        assert_eq!(base, content_tag(b"FROM scratch", b"binary"));
        assert_ne!(base, content_tag(b"FROM scratch ", b"binary"));
        assert_ne!(base, content_tag(b"FROM scratch", b"binary2"));
    }

    #[test]
    fn the_context_holds_the_dockerfile_and_an_executable_server() {
        let tar = build_context(b"FROM scratch", b"\x7fELF").unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let path = entry.path().unwrap().display().to_string();
                (path, entry.header().mode().unwrap())
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("Dockerfile".to_owned(), 0o644),
                ("dist/isobench-server".to_owned(), 0o755)
            ]
        );
    }
}
