//! The one server binary every environment runs: `isobench-server`, linked statically so it
//! runs `FROM scratch` and in a VM with no libc, and so native, container and VM run the very
//! same bytes. Beside it, the static `isobench-exec`, which a VM guest uses to run a user's
//! image's entrypoint as the image's user.
//!
//! Built on demand with cargo into `<target>/static`, without the `harness` feature so only
//! the service's dependencies compile. Cargo's own lock on that directory makes concurrent
//! callers (nextest runs each trial in its own process) wait for one build instead of racing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::artifact::Preparation;

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
    if let Some(path) = std::env::var_os(SERVER_BIN_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{SERVER_BIN_ENV}={} is not a file", path.display());
        }
        return Ok((
            path,
            preparation("static server build", Instant::now(), true),
        ));
    }
    static_binary("isobench-server", "static server build")
}

/// Returns the static `isobench-exec` (the VM guest's way into a user's image as its user),
/// building it first if needed, and how long that took.
pub fn static_exec() -> anyhow::Result<(PathBuf, Preparation)> {
    static_binary("isobench-exec", "static isobench-exec build")
}

/// Builds (or finds up to date) the static `bin` with cargo; `what` names the step.
fn static_binary(bin: &str, what: &str) -> anyhow::Result<(PathBuf, Preparation)> {
    let started = Instant::now();
    let static_target = target_dir().join("static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(manifest_dir())
        .args(["build", "--release", "--locked", "--no-default-features"])
        .args(["--bin", bin, "--target", host_triple()])
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
            "building the static {bin} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let path = static_target.join(host_triple()).join("release").join(bin);
    // Cargo prints "Compiling" only when it had work to do.
    let cached = !String::from_utf8_lossy(&output.stderr).contains("Compiling");
    Ok((path, preparation(what, started, cached)))
}

fn preparation(what: &str, started: Instant, cached: bool) -> Preparation {
    Preparation {
        what: what.into(),
        seconds: started.elapsed().as_secs_f64(),
        cached,
    }
}
