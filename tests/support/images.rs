//! Foreign images for the tests, built offline `FROM scratch` around Debian's static busybox
//! (nothing is pulled): busybox's httpd from `examples/busybox-httpd/`, and small broken
//! images for the bad-input trials. Tags are content hashes, so parallel test processes and
//! later runs reuse an image instead of rebuilding it.

use std::path::Path;

use isobench::docker::Engine;
use sha2::{Digest, Sha256};

/// The stage every test Dockerfile names, so the build stops there.
const STAGE: &str = "image";

/// Debian's static busybox (`busybox-static`), or the one `ISOBENCH_VM_BUSYBOX` names.
pub fn busybox() -> Result<Vec<u8>, String> {
    let path = std::env::var("ISOBENCH_VM_BUSYBOX").unwrap_or_else(|_| "/bin/busybox".into());
    std::fs::read(&path)
        .map_err(|e| format!("reading {path} (apt-get install busybox-static): {e}"))
}

/// Builds (or reuses) `repository:<hash>` from `dockerfile` (which must name its stage
/// `image`) and `files` (path in the context, contents, mode); returns the reference.
pub fn scratch_image(
    engine: &Engine,
    repository: &str,
    dockerfile: &str,
    files: &[(&str, Vec<u8>, u32)],
) -> Result<String, String> {
    let mut hasher = Sha256::new();
    hasher.update(dockerfile.as_bytes());
    for (path, data, mode) in files {
        hasher.update(path.as_bytes());
        hasher.update(mode.to_le_bytes());
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(data);
    }
    let tag: String = hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let reference = format!("{repository}:{tag}");
    if engine
        .image_size(&reference)
        .map_err(|e| format!("{e:#}"))?
        .is_some()
    {
        return Ok(reference);
    }
    let mut archive = tar::Builder::new(Vec::new());
    let dockerfile_entry = ("Dockerfile", dockerfile.as_bytes().to_vec(), 0o644);
    for (path, data, mode) in std::iter::once(&dockerfile_entry).chain(files) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        archive
            .append_data(&mut header, path, data.as_slice())
            .map_err(|e| e.to_string())?;
    }
    let context = archive.into_inner().map_err(|e| e.to_string())?;
    engine
        .build_image(context, STAGE, &reference)
        .map_err(|e| format!("building {reference}: {e:#}"))?;
    Ok(reference)
}

/// busybox httpd exactly as `examples/busybox-httpd/` defines it (its Dockerfile, with the
/// stage renamed), serving `/health`.
pub fn busybox_httpd(engine: &Engine) -> Result<String, String> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/busybox-httpd");
    let dockerfile = std::fs::read_to_string(example.join("Dockerfile"))
        .map_err(|e| format!("reading the example's Dockerfile: {e}"))?
        .replace("FROM scratch AS httpd", "FROM scratch AS image");
    let health = std::fs::read(example.join("www/health")).map_err(|e| e.to_string())?;
    scratch_image(
        engine,
        "isobench-busybox-httpd",
        &dockerfile,
        &[
            ("busybox", busybox()?, 0o755),
            ("www/health", health, 0o644),
        ],
    )
}

/// The port busybox httpd listens on in the example image.
pub const BUSYBOX_HTTPD_PORT: u16 = 18080;

/// An image whose entrypoint exits at once with status 3, saying why on stderr.
pub fn exiting(engine: &Engine) -> Result<String, String> {
    scratch_image(
        engine,
        "isobench-test-exits",
        "FROM scratch AS image\nCOPY busybox /bin/busybox\nUSER 65534:65534\nEXPOSE 18081\n\
         ENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\", \"echo config missing >&2; exit 3\"]\n",
        &[("busybox", busybox()?, 0o755)],
    )
}

/// An image whose entrypoint names a file it does not hold: the engine creates the container,
/// and the runtime refuses to start it.
pub fn missing_entrypoint(engine: &Engine) -> Result<String, String> {
    scratch_image(
        engine,
        "isobench-test-no-entrypoint",
        "FROM scratch AS image\nCOPY busybox /bin/busybox\nEXPOSE 18082\n\
         ENTRYPOINT [\"/bin/no-such-server\"]\n",
        &[("busybox", busybox()?, 0o755)],
    )
}
