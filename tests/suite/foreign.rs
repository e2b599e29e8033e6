//! Foreign services: busybox's httpd (a tiny static image built `FROM scratch` offline) in
//! every environment, the VM with the image as its guest's root, — correctness and a short performance run through the same protocol as
//! isobench's own server — and the bad-input classes of `--image`: a missing image, a port
//! that never answers, a health path that answers 404, an entrypoint that exits and one that
//! is missing, each a clear error within a bounded wait with nothing left running.

use std::time::{Duration, Instant};

use isobench::docker::Engine;
use isobench::env::factory::{self, EnvName};
use isobench::env::foreign::ForeignRun;
use isobench::env::{Budget, Environment, Instance};
use isobench::subject::{self, Subject, SubjectError};
use libtest_mimic::{Failed, Trial};

use super::images;

/// The environments a foreign image runs in: every rung of the ladder.
pub const FOREIGN_ENVIRONMENTS: &[&str] =
    &["native", "container-host", "container", "gvisor", "vm"];

/// A short startup bound for the bad-input trials: long enough for a container or a
/// chrooted busybox to come up on a busy machine, short enough that the suite does not wait.
/// (The VM keeps its boot timeout beyond this: a boot is not a startup it could cut short.)
const BAD_INPUT_STARTUP: Duration = Duration::from_secs(8);

/// How much longer than the startup bound a failing start may take: the container's or
/// chroot's teardown, or under TCG a VM's boot up to the point where the failure shows.
fn failure_slack(env: &str) -> Duration {
    Duration::from_secs(if env == "vm" { 60 } else { 20 })
}

/// Every foreign trial of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    if !FOREIGN_ENVIRONMENTS.contains(&env) {
        return Vec::new();
    }
    let mut trials = vec![
        Trial::test(format!("{env}::foreign::busybox_httpd"), move || {
            busybox_correctness(env)
        }),
        Trial::test(format!("{env}::foreign::perf::busybox_httpd"), move || {
            busybox_perf(env)
        }),
    ];
    // The bad-input classes that start something: where the chroot, the container and the
    // VM's guest init differ. (In the VM, a port that never answers waits out the boot
    // timeout, minutes under TCG, for nothing the other two do not already show.)
    if matches!(env, "native" | "container") {
        trials.push(Trial::test(
            format!("{env}::foreign::port_never_answers"),
            move || port_never_answers(env),
        ));
    }
    if matches!(env, "native" | "container" | "vm") {
        trials.extend([
            Trial::test(format!("{env}::foreign::health_404"), move || {
                health_404(env)
            }),
            Trial::test(format!("{env}::foreign::entrypoint_exits"), move || {
                entrypoint_exits(env)
            }),
            Trial::test(format!("{env}::foreign::entrypoint_missing"), move || {
                entrypoint_missing(env)
            }),
        ]);
    }
    if env == "container" {
        trials.push(Trial::test(
            "container::foreign::missing_image",
            missing_image,
        ));
    }
    // The seed's own service, in the environments of the seed's table and its native
    // baseline; its endpoints under gVisor too, whose gofer its data directory crosses.
    let mut flask = Vec::new();
    if matches!(env, "native" | "container" | "gvisor" | "vm") {
        flask.push(Trial::test(format!("{env}::foreign::flask"), move || {
            flask_correctness(env)
        }));
    }
    if matches!(env, "native" | "container" | "vm") {
        flask.push(Trial::test(
            format!("{env}::foreign::perf::flask"),
            move || flask_perf(env),
        ));
    }
    trials.extend(flask.into_iter().map(|trial| match flask_skip_reason() {
        Some(reason) => {
            eprintln!("skipping {}: {reason}", trial.name());
            trial.with_ignored_flag(true)
        }
        None => trial,
    }));
    trials
}

/// The seed's Flask image, built offline by `examples/flask/build-image.sh` (debootstrap).
pub const FLASK_IMAGE: &str = "isobench-flask:latest";

/// Set by `.ci/run` once it has built [`FLASK_IMAGE`]: the Flask trials must then run (and
/// fail if the image is missing), instead of being skipped.
pub const REQUIRE_FLASK_ENV: &str = "ISOBENCH_REQUIRE_FLASK";

/// Why the Flask trials are skipped here: the image is not on the engine and `.ci/run`
/// ([`REQUIRE_FLASK_ENV`]), which builds it, did not demand it. (Not `CI=true` as for gVisor:
/// the GitHub jobs have no debootstrap'd image, and building one there costs a Debian mirror.)
fn flask_skip_reason() -> Option<String> {
    let required = std::env::var(REQUIRE_FLASK_ENV).is_ok_and(|v| v == "1");
    if required {
        return None;
    }
    let present = Engine::connect()
        .ok()
        .and_then(|engine| engine.image_size(FLASK_IMAGE).ok())
        .is_some_and(|size| size.is_some());
    (!present).then(|| {
        format!("{FLASK_IMAGE} is not built (examples/flask/build-image.sh; .ci/run builds it)")
    })
}

fn flask_subject() -> Result<Subject, Failed> {
    let engine = engine()?;
    subject::resolve_image(&engine, FLASK_IMAGE, None, Some("/health"))
        .map_err(|e| format!("{e:#} (build it with examples/flask/build-image.sh)").into())
}

/// The Flask example's scenario file, as a user hands it over: it names the service's
/// `data_dir`.
fn flask_run() -> Result<ForeignRun, Failed> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flask/scenarios.toml");
    let file = isobench::measure::scenario_file::load(&path).map_err(|e| format!("{e}"))?;
    if file.data_dir.as_deref() != Some("/data") {
        return Err(format!("{} names data_dir {:?}", path.display(), file.data_dir).into());
    }
    Ok(ForeignRun {
        data_dir: file.data_dir,
        ..ForeignRun::default()
    })
}

/// This process's data directories and VM instance directories left in the temp directory.
fn instance_dirs_left() -> Vec<String> {
    let me = std::process::id();
    let prefixes = [
        isobench::env::orphans::data_dir_prefix(me),
        isobench::env::orphans::vm_instance_dir_prefix(me),
    ];
    std::fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| prefixes.iter().any(|prefix| name.starts_with(prefix)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every endpoint of the seed's service answers as the seed describes, as user `app`; with
/// the example's `data_dir`, `/files` writes, fsyncs, reads back and verifies 64 KiB in the
/// instance's own data directory, which the label names and the stop removes.
fn flask_correctness(env: &str) -> Result<(), Failed> {
    let subject = flask_subject()?;
    let environment = prepared(env, &subject, &flask_run()?)?;
    let before = instance_dirs_left();
    if !before.is_empty() {
        return Err(format!("instance directories before the start: {before:?}").into());
    }
    let instance = environment.start().map_err(|e| format!("{e:#}"))?;
    let outcome = (|| {
        let field = |path: &str, pointer: &str| -> Result<serde_json::Value, Failed> {
            let (status, body) = get(instance.as_ref(), path)?;
            let json: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| format!("{path} answered {status} with no JSON ({e}): {body:?}"))?;
            match (status, json.pointer(pointer)) {
                (200, Some(value)) => Ok(value.clone()),
                _ => Err(format!("{path} answered {status} {body:?}, without {pointer}").into()),
            }
        };
        let checks = [
            ("/health", "/status", serde_json::json!("ok")),
            ("/cpu?n=1000", "/primes_below_n", serde_json::json!(168)),
            ("/memory?mb=2", "/pages_touched", serde_json::json!(512)),
            (
                "/parallel?tasks=2&n=1000",
                "/results",
                serde_json::json!([168, 168]),
            ),
            // The image's user, as the seed's Dockerfile has it, in every environment.
            ("/status", "/uid", serde_json::json!(1000)),
        ];
        for (path, pointer, expected) in checks {
            let got = field(path, pointer)?;
            if got != expected {
                return Err(format!("{path}: {pointer} is {got}, expected {expected}").into());
            }
        }
        let (status, _) = get(instance.as_ref(), "/cpu?n=0")?;
        if status != 400 {
            return Err(format!("/cpu?n=0 answered {status}, expected 400").into());
        }
        // The root is read-only (container, VM) or not the service user's (the chroot's
        // /data, made by root): a 200 here is the data directory's.
        let (status, body) = get(instance.as_ref(), "/files?kb=64&fsync=true")?;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let expected = serde_json::json!({"bytes": 65536, "fsync": true, "verified": true});
        let got = serde_json::json!({
            "bytes": json["bytes"], "fsync": json["fsync"], "verified": json["verified"]
        });
        if status != 200 || got != expected {
            return Err(format!("/files?kb=64&fsync=true answered {status} {body}").into());
        }
        let label = environment.label();
        let words = label.data_dir.unwrap_or_default();
        let disk = env == "vm";
        let names_it = words.contains("/data")
            && if disk {
                words.contains("ext4 virtio-blk disk")
            } else {
                words.contains("bind mount at /data")
            };
        if !names_it {
            return Err(format!("the label's data directory: {words:?}").into());
        }
        // Natively and in a container the directory is the host's: one, left empty.
        if !disk {
            let dirs: Vec<String> = instance_dirs_left()
                .into_iter()
                .filter(|name| name.starts_with("isobench-data-"))
                .collect();
            let [dir] = dirs.as_slice() else {
                return Err(format!("data directories of this instance: {dirs:?}").into());
            };
            let left = std::fs::read_dir(std::env::temp_dir().join(dir))
                .map_err(|e| e.to_string())?
                .count();
            if left != 0 {
                return Err(format!("/files left {left} entries in {dir}").into());
            }
        }
        Ok::<(), Failed>(())
    })();
    instance.stop().map_err(|e| format!("stopping: {e:#}"))?;
    outcome?;
    let left = instance_dirs_left();
    if !left.is_empty() {
        return Err(format!("left behind after the stop: {left:?}").into());
    }
    Ok(())
}

/// A short load on the Flask service's `/health`: every request answered, none failed.
fn flask_perf(env: &str) -> Result<(), Failed> {
    short_load(
        env,
        "flask",
        &flask_subject()?,
        Duration::from_secs(2),
        Duration::from_millis(500),
    )
    .map(drop)
}

fn engine() -> Result<Engine, Failed> {
    Engine::connect().map_err(|e| format!("{e:#}").into())
}

fn busybox_subject(port: Option<u16>, health: &str) -> Result<Subject, Failed> {
    let engine = engine()?;
    let reference = images::busybox_httpd(&engine)?;
    subject::resolve_image(&engine, &reference, port, Some(health))
        .map_err(|e| format!("{e:#}").into())
}

fn prepared(
    env: &str,
    subject: &Subject,
    run: &ForeignRun,
) -> Result<Box<dyn Environment>, Failed> {
    let name: EnvName = env.parse().map_err(|e| format!("{e}"))?;
    let prepared = factory::prepared(name, Budget::for_host(), subject, run)
        .map_err(|e| format!("preparing {env} for {}: {e:#}", subject.name()))?;
    Ok(prepared.env)
}

fn get(instance: &dyn Instance, path: &str) -> Result<(u16, String), Failed> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let url = format!("{}{path}", instance.base_url());
    let mut response = agent
        .get(&url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// busybox httpd answers its health file and a 404 elsewhere; the label names the image.
fn busybox_correctness(env: &str) -> Result<(), Failed> {
    let subject = busybox_subject(None, "/health")?;
    let Subject::Image(image) = &subject else {
        return Err("not an image".into());
    };
    if image.port != images::BUSYBOX_HTTPD_PORT {
        return Err(format!("the port should come from EXPOSE: {}", image.port).into());
    }
    let environment = prepared(env, &subject, &ForeignRun::default())?;
    let label = environment.label();
    let named = label
        .notes
        .iter()
        .any(|note| note.contains(&image.image.reference) && note.contains(image.image.short_id()));
    if !named {
        return Err(format!("the label does not name the image: {:?}", label.notes).into());
    }
    if label.image_size_bytes != Some(image.image.size_bytes) {
        return Err(format!("image size {:?} in the label", label.image_size_bytes).into());
    }
    let instance = environment.start().map_err(|e| format!("{e:#}"))?;
    let outcome = (|| {
        let (status, body) = get(instance.as_ref(), "/health")?;
        if (status, body.as_str()) != (200, "{\"status\":\"ok\"}\n") {
            return Err(format!("/health answered {status} {body:?}").into());
        }
        let (status, _) = get(instance.as_ref(), "/no-such-file")?;
        if status != 404 {
            return Err(format!("/no-such-file answered {status}, expected 404").into());
        }
        if instance.startup().is_zero() {
            return Err("startup not measured".into());
        }
        let reading = instance.resources().map_err(|e| format!("{e:#}"))?;
        if reading.memory_bytes == 0 {
            return Err("no memory reading".into());
        }
        Ok::<(), Failed>(())
    })();
    instance.stop().map_err(|e| format!("stopping: {e:#}"))?;
    outcome
}

/// A short load run on busybox's health file: every request answered, none failed.
fn busybox_perf(env: &str) -> Result<(), Failed> {
    let after = short_load(
        env,
        "busybox httpd",
        &busybox_subject(None, "/health")?,
        Duration::from_secs(1),
        Duration::from_millis(200),
    )?;
    if after.cpu_seconds <= 0.0 {
        return Err("the service used no CPU under load".into());
    }
    Ok(())
}

/// Starts `subject` in `env`, loads its `/health` with 4 connections for `window` after
/// `warmup`, stops it, and fails unless requests were answered and none failed; returns the
/// instance's resource reading taken right after the load.
fn short_load(
    env: &str,
    what: &str,
    subject: &Subject,
    window: Duration,
    warmup: Duration,
) -> Result<isobench::env::ResourceReading, Failed> {
    let environment = prepared(env, subject, &ForeignRun::default())?;
    let instance = environment.start().map_err(|e| format!("{e:#}"))?;
    let mut options = isobench::load::LoadOptions::new(instance.base_url());
    options.connections = 4;
    options.duration = Some(window);
    options.warmup = warmup;
    options.cpus = Budget::for_host().generator_cpus;
    let report = isobench::load::run(&options);
    let after = instance.resources();
    let startup = instance.startup();
    instance.stop().map_err(|e| format!("stopping: {e:#}"))?;
    let report = report.map_err(|e| format!("{e:#}"))?;
    let after = after.map_err(|e| format!("{e:#}"))?;
    eprintln!(
        "{env} {what} /health: startup {startup:?}, {} ok, {} errors, {:.0} req/s, {:.1} MB",
        report.ok,
        report.errors.total(),
        report.throughput_rps,
        after.memory_bytes as f64 / 1e6
    );
    if report.ok == 0 || report.errors.total() != 0 {
        return Err(format!(
            "{} requests with {:?} errors",
            report.requests_sent, report.errors
        )
        .into());
    }
    Ok(after)
}

/// Starting must fail within `bound`, with an error containing every one of `expected`,
/// leaving no container of this process, no process chrooted into the image, and none of
/// the data directories or disks it was given (each start has one, at `/data`).
fn fails_cleanly(
    env: &str,
    subject: &Subject,
    bound: Duration,
    expected: &[&str],
) -> Result<(), Failed> {
    let run = ForeignRun {
        startup_timeout: BAD_INPUT_STARTUP,
        data_dir: Some("/data".into()),
        ..ForeignRun::default()
    };
    let environment = prepared(env, subject, &run)?;
    let started = Instant::now();
    let error = match environment.start() {
        Ok(instance) => {
            let _ = instance.stop();
            return Err("the start succeeded; it should have failed".into());
        }
        Err(error) => format!("{error:#}"),
    };
    let took = started.elapsed();
    for part in expected {
        if !error.contains(part) {
            return Err(format!("the error should say {part:?}: {error}").into());
        }
    }
    if took > bound {
        return Err(format!("failing took {took:?}, beyond {bound:?}: {error}").into());
    }
    // A failed VM boot keeps its console log for the user and says where; the trial has
    // read the error, so it removes the directory rather than leave one per run in /tmp.
    if let Some((_, rest)) = error.split_once("console log kept in ")
        && let Some((dir, _)) = rest.split_once(')')
        && dir.contains(&isobench::env::orphans::vm_instance_dir_prefix(
            std::process::id(),
        ))
    {
        std::fs::remove_dir_all(dir).map_err(|e| format!("removing {dir}: {e}"))?;
    }
    nothing_left(subject)
}

/// No container owned by this process, no process whose root is the image's export, no QEMU
/// this process started, no data directory or VM instance directory of this process.
fn nothing_left(subject: &Subject) -> Result<(), Failed> {
    let dirs = instance_dirs_left();
    if !dirs.is_empty() {
        return Err(format!("left in the temp directory: {dirs:?}").into());
    }
    let me = std::process::id();
    let qemus: Vec<u32> = isobench::env::orphans::qemu_processes()
        .into_iter()
        .filter(|&(_, owner)| owner == me)
        .map(|(pid, _)| pid)
        .collect();
    if !qemus.is_empty() {
        return Err(format!("QEMU left running: {qemus:?}").into());
    }
    let owned = engine()?
        .containers_labelled(
            isobench::cleanup::OWNER_LABEL,
            &std::process::id().to_string(),
        )
        .map_err(|e| format!("{e:#}"))?;
    if !owned.is_empty() {
        return Err(format!("containers left behind: {owned:?}").into());
    }
    if let Subject::Image(image) = subject {
        let root = isobench::subject::rootfs::cache_dir()
            .join(isobench::subject::rootfs::cache_key(&image.image.id))
            .join("root");
        let left: Vec<u32> = std::fs::read_dir("/proc")
            .map_err(|e| e.to_string())?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .filter(|pid: &u32| {
                std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r == root)
            })
            .collect();
        if !left.is_empty() {
            return Err(format!("processes left chrooted in {}: {left:?}", root.display()).into());
        }
    }
    Ok(())
}

/// `--port` names a port the service does not listen on.
fn port_never_answers(env: &str) -> Result<(), Failed> {
    let subject = busybox_subject(Some(18089), "/health")?;
    fails_cleanly(
        env,
        &subject,
        BAD_INPUT_STARTUP + failure_slack(env),
        &["did not answer 2xx within", "is the port right? (--port)"],
    )
}

/// `--health` names a path the service answers 404 on: an early, named failure.
fn health_404(env: &str) -> Result<(), Failed> {
    let subject = busybox_subject(None, "/healthz")?;
    fails_cleanly(
        env,
        &subject,
        BAD_INPUT_STARTUP + failure_slack(env),
        &[
            "/healthz answered 404",
            "is the health path right? (--health)",
        ],
    )
}

/// The image's entrypoint exits at once: the failure says so, with what it printed.
fn entrypoint_exits(env: &str) -> Result<(), Failed> {
    let engine = engine()?;
    let reference = images::exiting(&engine)?;
    let subject =
        subject::resolve_image(&engine, &reference, None, None).map_err(|e| format!("{e:#}"))?;
    let said = match env {
        "container" => "the container exited during startup",
        "vm" => "the guest's service exited during startup",
        _ => "exited during startup",
    };
    fails_cleanly(
        env,
        &subject,
        BAD_INPUT_STARTUP + failure_slack(env),
        &[said, "config missing"],
    )
}

/// The image's entrypoint is not in it: the start fails, naming the file, and the container
/// the engine created before the runtime refused it is not left behind (it was, in the
/// `Created` state).
fn entrypoint_missing(env: &str) -> Result<(), Failed> {
    let engine = engine()?;
    let reference = images::missing_entrypoint(&engine)?;
    let subject =
        subject::resolve_image(&engine, &reference, None, None).map_err(|e| format!("{e:#}"))?;
    fails_cleanly(
        env,
        &subject,
        BAD_INPUT_STARTUP + failure_slack(env),
        &["/bin/no-such-server"],
    )
}

/// An image the engine does not have: named, never pulled, no wait.
fn missing_image() -> Result<(), Failed> {
    let engine = engine()?;
    let started = Instant::now();
    let error = subject::resolve_image(&engine, "isobench-no-such-image:never", None, None)
        .expect_err("a missing image must not resolve");
    if !matches!(error, SubjectError::ImageNotFound { .. }) {
        return Err(format!("wrong error: {error}").into());
    }
    let text = error.to_string();
    if !text.contains("isobench-no-such-image:never") || !text.contains("never pulls") {
        return Err(format!("the error should name the image: {text}").into());
    }
    if started.elapsed() > Duration::from_secs(10) {
        return Err("resolving a missing image waited".into());
    }
    Ok(())
}
