//! Correctness trials: every endpoint and every bad-input class, in every environment.
//!
//! Each trial starts a fresh instance, so a failure in one never leaks state into another.

use isobench::cleanup::OWNER_LABEL;
use isobench::docker::Engine;
use isobench::env::Instance;
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use super::envs;

type Check = fn(&dyn Instance, &str) -> Result<(), Failed>;

const CHECKS: &[(&str, Check)] = &[
    ("health", health),
    ("cpu", cpu),
    ("cpu_bad_input", cpu_bad_input),
    ("memory", memory),
    ("memory_bad_input", memory_bad_input),
    ("parallel", parallel),
    ("parallel_bad_input", parallel_bad_input),
    ("status", status),
    ("syscalls", syscalls),
    ("syscalls_bad_input", syscalls_bad_input),
    ("files", files),
    ("files_bad_input", files_bad_input),
    ("not_found", not_found),
    ("method_not_allowed", method_not_allowed),
];

/// The correctness trials of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    let extra: &[(&str, Check)] = match env {
        "container" | "gvisor" => &[("least_privilege", container_least_privilege)],
        "container-host" => &[("least_privilege", host_network_least_privilege)],
        _ => &[],
    };
    let mut trials: Vec<Trial> = CHECKS
        .iter()
        .chain(extra)
        .map(|&(check, run)| {
            let name = format!("{env}::{check}");
            Trial::test(name.clone(), move || {
                let (environment, _) = envs::prepared(env)?;
                envs::with_instance(&name, environment.as_ref(), |instance| run(instance, env))
            })
        })
        .collect();
    if env == "vm" {
        trials.push(Trial::test(
            "vm::snapshot::restores_the_service",
            vm_snapshot_restores_the_service,
        ));
    }
    trials
}

/// The VM from snapshot: prepared (boot, save), then started twice from the same saved
/// state; each restore answers like the booted VM, with its own two startup phases.
fn vm_snapshot_restores_the_service() -> Result<(), Failed> {
    const NAME: &str = "vm::snapshot::restores_the_service";
    let (environment, steps) = envs::prepared("vm-snapshot")?;
    expect(
        steps
            .iter()
            .any(|step| step.what.starts_with("vm snapshot")),
        || format!("no snapshot step among {steps:?}"),
    )?;
    let label = environment.label();
    expect(label.name == "vm-snapshot" && label.rung.is_none(), || {
        format!("label {} with rung {:?}", label.name, label.rung)
    })?;
    expect(label.notes.iter().any(|n| n.contains("-incoming")), || {
        format!("no note on the restore: {:?}", label.notes)
    })?;
    for _ in 0..2 {
        envs::with_instance(NAME, environment.as_ref(), |instance| {
            health(instance, "vm")?;
            status(instance, "vm")?;
            parallel(instance, "vm")?;
            let phases = instance.startup_phases();
            let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
            expect(names == ["qemu exec", "restore + first 200"], || {
                format!("phases {names:?}")
            })?;
            let sum: f64 = phases.iter().map(|p| p.duration_ms).sum();
            let startup = instance.startup().as_secs_f64() * 1e3;
            expect((sum - startup).abs() < 1.0, || {
                format!("phases sum to {sum} ms, startup {startup} ms")
            })
        })?;
    }
    Ok(())
}

/// A response as the checks see it.
struct Response {
    status: u16,
    content_type: String,
    body: String,
}

impl Response {
    fn json(&self) -> Result<Value, Failed> {
        serde_json::from_str(&self.body)
            .map_err(|e| format!("body is not JSON ({e}): {:?}", self.body).into())
    }
}

fn request(instance: &dyn Instance, method: &str, path: &str) -> Result<Response, Failed> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("{}{path}", instance.base_url());
    let result = match method {
        "GET" => agent.get(&url).call(),
        "POST" => agent.post(&url).send_empty(),
        other => return Err(format!("unsupported method {other}").into()),
    };
    let mut response = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{method} {url}: reading body: {e}"))?;
    Ok(Response {
        status,
        content_type,
        body,
    })
}

fn get(instance: &dyn Instance, path: &str) -> Result<Response, Failed> {
    request(instance, "GET", path)
}

fn expect(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

fn expect_ok_json(instance: &dyn Instance, path: &str) -> Result<Value, Failed> {
    let response = get(instance, path)?;
    expect(response.status == 200, || {
        format!(
            "GET {path}: status {} body {}",
            response.status, response.body
        )
    })?;
    expect(
        response.content_type.starts_with("application/json"),
        || format!("GET {path}: content-type {:?}", response.content_type),
    )?;
    response.json()
}

/// Bad input must be a 400 JSON answer naming the parameter.
fn expect_bad_param(instance: &dyn Instance, path: &str, param: &str) -> Result<(), Failed> {
    let response = get(instance, path)?;
    expect(response.status == 400, || {
        format!(
            "GET {path}: expected 400, got {} {}",
            response.status, response.body
        )
    })?;
    let body = response.json()?;
    expect(body["param"] == param, || {
        format!("GET {path}: expected param {param:?} in {body}")
    })?;
    expect(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        || format!("GET {path}: no error message in {body}"),
    )
}

fn field_u64(body: &Value, field: &str) -> Result<u64, Failed> {
    body[field]
        .as_u64()
        .ok_or_else(|| format!("no unsigned field {field:?} in {body}").into())
}

fn health(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    let response = get(instance, "/health")?;
    expect(response.status == 200, || {
        format!("status {}", response.status)
    })?;
    expect(response.body == r#"{"status":"ok"}"#, || {
        format!("body {:?}", response.body)
    })?;
    expect(
        response.content_type.starts_with("application/json"),
        || format!("content-type {:?}", response.content_type),
    )
}

fn cpu(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    // Known prime counts: π(100) = 25, π(1000) = 168, π(100000) = 9592.
    for (n, primes) in [(100, 25), (1000, 168), (100_000, 9592)] {
        let body = expect_ok_json(instance, &format!("/cpu?n={n}"))?;
        expect(field_u64(&body, "n")? == n, || format!("n in {body}"))?;
        expect(field_u64(&body, "primes_below_n")? == primes, || {
            format!("π({n}) should be {primes}: {body}")
        })?;
        field_u64(&body, "elapsed_us")?;
    }
    let default = expect_ok_json(instance, "/cpu")?;
    expect(field_u64(&default, "n")? > 0, || {
        format!("default n in {default}")
    })
}

fn cpu_bad_input(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    for value in [
        "abc",
        "-5",
        "0",
        "1.5",
        "99999999999999999999999",
        "4000000000",
        "",
    ] {
        expect_bad_param(instance, &format!("/cpu?n={value}"), "n")?;
    }
    Ok(())
}

fn memory(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    let body = expect_ok_json(instance, "/memory?mb=16")?;
    expect(field_u64(&body, "mb")? == 16, || format!("mb in {body}"))?;
    // Every 4 KiB page of 16 MiB is written.
    expect(field_u64(&body, "pages_touched")? >= 16 * 256, || {
        format!("pages_touched in {body}")
    })?;
    field_u64(&body, "elapsed_us").map(drop)
}

fn syscalls(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    for n in [1, 1000, 20_000] {
        let body = expect_ok_json(instance, &format!("/syscalls?n={n}"))?;
        expect(field_u64(&body, "calls")? == n, || {
            format!("calls in {body}")
        })?;
        expect(body["call"] == "getppid", || format!("call in {body}"))?;
        expect(field_u64(&body, "elapsed_ns")? > 0, || {
            format!("elapsed_ns in {body}")
        })?;
    }
    let default = expect_ok_json(instance, "/syscalls")?;
    expect(field_u64(&default, "calls")? == 1000, || {
        format!("default n in {default}")
    })
}

fn syscalls_bad_input(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    for value in ["", "x", "-1", "0", "2.5", "100001", "18446744073709551616"] {
        expect_bad_param(instance, &format!("/syscalls?n={value}"), "n")?;
    }
    expect_bad_param(instance, "/syscalls?count=5", "count")
}

/// Entries in the data directory, as the service reports it.
fn data_dir_entries(instance: &dyn Instance) -> Result<u64, Failed> {
    let status = expect_ok_json(instance, "/status")?;
    status["data_dir"]["entries"]
        .as_u64()
        .ok_or_else(|| format!("no data directory entries in {status}").into())
}

fn files(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    let before = data_dir_entries(instance)?;
    for (query, bytes, fsync) in [
        ("kb=64&fsync=true", 64 * 1024, true),
        ("kb=64&fsync=false", 64 * 1024, false),
        ("kb=0&fsync=1", 0, true),
        ("kb=1024", 1024 * 1024, false),
        ("", 64 * 1024, false),
    ] {
        let body = expect_ok_json(instance, &format!("/files?{query}"))?;
        expect(field_u64(&body, "bytes")? == bytes, || {
            format!("/files?{query}: bytes in {body}")
        })?;
        expect(body["fsync"] == fsync && body["verified"] == true, || {
            format!("/files?{query}: {body}")
        })?;
    }
    let after = data_dir_entries(instance)?;
    expect(after == before, || {
        format!(
            "/files left {} entries behind ({before} before)",
            after - before
        )
    })
}

fn files_bad_input(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    for value in ["x", "-1", "4097", "1.5", ""] {
        expect_bad_param(instance, &format!("/files?kb={value}"), "kb")?;
    }
    for value in ["yes", "TRUE", "2", ""] {
        expect_bad_param(instance, &format!("/files?fsync={value}"), "fsync")?;
    }
    expect_bad_param(instance, "/files?path=/etc/passwd", "path")
}

fn memory_bad_input(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    for value in ["x", "-1", "0", "1e3", "18446744073709551616", "1000000"] {
        expect_bad_param(instance, &format!("/memory?mb={value}"), "mb")?;
    }
    Ok(())
}

fn parallel(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    let body = expect_ok_json(instance, "/parallel?tasks=4&n=1000")?;
    expect(field_u64(&body, "tasks")? == 4, || {
        format!("tasks in {body}")
    })?;
    expect(
        body["results"] == serde_json::json!([168, 168, 168, 168]),
        || format!("four tasks of π(1000) = 168: {body}"),
    )?;
    expect(field_u64(&body, "threads")? >= 1, || {
        format!("threads in {body}")
    })?;
    field_u64(&body, "elapsed_us").map(drop)
}

fn parallel_bad_input(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    for value in ["0", "-3", "many", "1000000"] {
        expect_bad_param(instance, &format!("/parallel?tasks={value}&n=100"), "tasks")?;
    }
    for value in ["0", "x", "99999999999"] {
        expect_bad_param(instance, &format!("/parallel?tasks=2&n={value}"), "n")?;
    }
    Ok(())
}

fn status(instance: &dyn Instance, env: &str) -> Result<(), Failed> {
    let body = expect_ok_json(instance, "/status")?;
    for field in ["version", "hostname", "kernel"] {
        expect(body[field].is_string(), || format!("{field} in {body}"))?;
    }
    for field in ["pid", "cpus"] {
        field_u64(&body, field)?;
    }
    // Least privilege: isolated services never run as root.
    let uid = field_u64(&body, "uid")?;
    if env != "native" {
        expect(uid != 0, || {
            format!("{env}: the service runs as root: {body}")
        })?;
    }
    expect(body["uptime_s"].is_number(), || {
        format!("uptime_s in {body}")
    })?;
    for field in ["total_bytes", "available_bytes", "process_rss_bytes"] {
        expect(
            body["memory"][field].as_u64().is_some_and(|v| v > 0),
            || format!("memory.{field} in {body}"),
        )?;
    }
    let kind = body["environment"]["kind"].as_str().unwrap_or_default();
    expect(body["environment"]["evidence"].is_array(), || {
        format!("environment.evidence in {body}")
    })?;
    let expected = match env {
        // A native server sees exactly what this (host) process sees, which on a host that is
        // itself a VM is `vm`: detection must agree with the host, not with our label.
        "native" => isobench::service::detect::detect().kind.to_string(),
        // Every container rung (host network, gVisor, other runtimes) is a container.
        "container-host" | "gvisor" => "container".to_owned(),
        other => other.to_owned(),
    };
    expect(kind == expected, || {
        format!("{env}: /status detected {kind:?}, expected {expected:?}: {body}")
    })?;
    if env == "vm" {
        let host_kernel = sysinfo::System::kernel_version().unwrap_or_default();
        expect(body["kernel"] != host_kernel.as_str(), || {
            format!("the VM reports the host's kernel {host_kernel}: {body}")
        })?;
    }
    Ok(())
}

fn not_found(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    let response = get(instance, "/no/such/path")?;
    expect(response.status == 404, || {
        format!("status {}", response.status)
    })?;
    let body = response.json()?;
    expect(body["error"].is_string(), || format!("error in {body}"))
}

fn method_not_allowed(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    let response = request(instance, "POST", "/health")?;
    expect(response.status == 405, || {
        format!("status {}", response.status)
    })?;
    let body = response.json()?;
    expect(body["error"].is_string(), || format!("error in {body}"))
}

/// The container runs as a non-root user, on a read-only root filesystem, with every
/// capability dropped and no-new-privileges, published on loopback only; under gVisor, with
/// the engine's runsc runtime.
fn container_least_privilege(instance: &dyn Instance, env: &str) -> Result<(), Failed> {
    let port = port_of(instance);
    let inspect = our_container(|inspect| {
        let published = inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.ports.as_ref());
        published.is_some_and(|ports| {
            ports
                .values()
                .flatten()
                .flatten()
                .any(|binding| binding.host_port.as_deref() == Some(port.as_str()))
        })
    })
    .ok_or_else(|| format!("no container of this trial publishes port {port}"))?;
    let host = hardened(inspect)?;
    if env == "gvisor" {
        let runtime = host.runtime.clone().unwrap_or_default();
        expect(runtime == "runsc", || {
            format!("the gvisor container runs under {runtime:?}, not runsc")
        })?;
    }
    let bindings = host.port_bindings.unwrap_or_default();
    let all_loopback = bindings
        .values()
        .flatten()
        .flatten()
        .all(|binding| binding.host_ip.as_deref() == Some("127.0.0.1"));
    expect(!bindings.is_empty() && all_loopback, || {
        format!("port bindings {bindings:?} are not all on 127.0.0.1")
    })
}

/// The host-network container has the same hardening, shares the host's network namespace,
/// and its server listens on 127.0.0.1 only: the kernel's socket table has no listener on
/// its port at any other address.
fn host_network_least_privilege(instance: &dyn Instance, _env: &str) -> Result<(), Failed> {
    let port = port_of(instance);
    let inspect = our_container(|inspect| {
        let host_network = inspect
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.as_deref())
            == Some("host");
        let args = inspect
            .config
            .as_ref()
            .and_then(|c| c.cmd.clone())
            .unwrap_or_default();
        host_network
            && args
                .windows(2)
                .any(|pair| pair[0] == "--port" && pair[1] == port)
    })
    .ok_or_else(|| format!("no host-network container of this trial serves port {port}"))?;
    hardened(inspect)?;
    let port: u16 = port.parse().map_err(|e| format!("port {port}: {e}"))?;
    let listening = isobench::env::container::listeners::listening_on(port)?;
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    expect(
        !listening.is_empty() && listening.iter().all(|address| *address == loopback),
        || format!("port {port} listens on {listening:?}, not on 127.0.0.1 alone"),
    )
}

/// The port of the instance's base URL.
fn port_of(instance: &dyn Instance) -> String {
    instance
        .base_url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The container of this process that `is_ours` picks. Several trials of this process may
/// run containers at once (`cargo test`).
fn our_container(
    is_ours: impl Fn(&bollard::models::ContainerInspectResponse) -> bool,
) -> Option<bollard::models::ContainerInspectResponse> {
    let engine = Engine::connect().ok()?;
    let ours = engine
        .containers_labelled(OWNER_LABEL, &std::process::id().to_string())
        .ok()?;
    ours.iter()
        .filter_map(|(id, _)| engine.inspect_container(id).ok())
        .find(|inspect| is_ours(inspect))
}

/// Non-root user, read-only root filesystem, no capabilities, no-new-privileges; returns the
/// host config for the network checks.
fn hardened(
    inspect: bollard::models::ContainerInspectResponse,
) -> Result<bollard::models::HostConfig, Failed> {
    let user = inspect
        .config
        .and_then(|config| config.user)
        .unwrap_or_default();
    expect(
        !user.is_empty() && !user.starts_with("0") && user != "root",
        || format!("runs as user {user:?}"),
    )?;
    let host = inspect.host_config.unwrap_or_default();
    expect(host.readonly_rootfs == Some(true), || {
        "root filesystem is writable".into()
    })?;
    expect(host.cap_drop == Some(vec!["ALL".into()]), || {
        format!("capabilities dropped: {:?}", host.cap_drop)
    })?;
    expect(
        host.security_opt
            .clone()
            .unwrap_or_default()
            .iter()
            .any(|opt| opt.starts_with("no-new-privileges")),
        || "no-new-privileges is not set".into(),
    )?;
    Ok(host)
}
