//! The one server binary every environment runs: `isobench-server`, linked statically so it
//! runs `FROM scratch` and in a VM with no libc, and so native, container and VM run the very
//! same bytes.
//!
//! Built on demand with cargo into `<target>/static`, without the `harness` feature so only
//! the service's dependencies compile. Cargo's own lock on that directory makes concurrent
//! callers (nextest runs each trial in its own process) wait for one build instead of racing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::report::schema::Preparation;

/// Environment variable naming a prebuilt static server to use instead of building one.
pub const SERVER_BIN_ENV: &str = "ISOBENCH_SERVER_BIN";

/// The cargo target triple of this build (the host's).
fn host_triple() -> &'static str {
    // Set by build.rs from cargo's TARGET.
    env!("ISOBENCH_TARGET")
}

/// The source checkout this binary was built from.
pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where isobench keeps what it builds and writes: `target/` of the checkout it was built
/// from. Deliberately not `CARGO_TARGET_DIR`: checkouts sharing one cargo target directory
/// must not share (and overwrite) each other's server binary, images or artifacts.
pub fn target_dir() -> PathBuf {
    manifest_dir().join("target")
}

/// Where isobench keeps its artifacts and caches: `target/isobench`.
pub fn work_dir() -> PathBuf {
    target_dir().join("isobench")
}

/// Returns the static server binary, building it first if needed, and how long that took.
pub fn static_server() -> anyhow::Result<(PathBuf, Preparation)> {
    let started = Instant::now();
    if let Some(path) = std::env::var_os(SERVER_BIN_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{SERVER_BIN_ENV}={} is not a file", path.display());
        }
        return Ok((path, preparation(started, true)));
    }
    let static_target = target_dir().join("static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(manifest_dir())
        .args(["build", "--release", "--locked", "--no-default-features"])
        .args(["--bin", "isobench-server", "--target", host_triple()])
        .arg("--target-dir")
        .arg(&static_target)
        // Only the target artifacts get crt-static; build scripts and proc macros stay
        // dynamic because of --target.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .with_context(|| format!("running {} to build the static server", cargo.display()))?;
    if !output.status.success() {
        bail!(
            "building the static isobench-server failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let path = static_target
        .join(host_triple())
        .join("release")
        .join("isobench-server");
    // Cargo prints "Compiling" only when it had work to do.
    let cached = !String::from_utf8_lossy(&output.stderr).contains("Compiling");
    Ok((path, preparation(started, cached)))
}

fn preparation(started: Instant, cached: bool) -> Preparation {
    Preparation {
        what: "static server build".into(),
        seconds: started.elapsed().as_secs_f64(),
        cached,
    }
}
