//! `isobench run` end to end: outputs, unavailable environments, bad options, and an
//! interrupt in the middle of a measurement.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isobench::artifact::Artifact;

#[path = "support/processes.rs"]
mod processes;

use processes::{MARKER_ENV, containers_of, marked_processes};

fn isobench() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_isobench"));
    command.stdin(Stdio::null());
    command
}

fn read_artifact(path: &Path) -> Artifact {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `isobench run ARGS --output-dir DIR` with `envs` set, expects success, and returns
/// the artifact it wrote.
fn run_ok(args: &[&str], dir: &Path, envs: &[(&str, &str)]) -> Artifact {
    let output = isobench()
        .arg("run")
        .args(args)
        .arg("--output-dir")
        .arg(dir)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_artifact(&dir.join("isobench.json"))
}

#[test]
fn a_mock_run_writes_json_markdown_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--env",
        "mock",
        "-n",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ];
    let artifact = run_ok(&args, dir.path(), &[]);
    assert_eq!(artifact.environments.len(), 1);
    let mock = &artifact.environments[0];
    assert_eq!(mock.rounds.len(), 2);
    for (index, round) in mock.rounds.iter().enumerate() {
        // The latency-under-load sweep's steps follow the named scenarios.
        let names: Vec<_> = round
            .scenarios
            .iter()
            .filter(|s| s.sweep.is_none())
            .map(|s| s.scenario.as_str())
            .collect();
        assert_eq!(names, ["health", "mixed", "fixed-rate"]);
        assert_eq!(
            round.scenarios.iter().any(|s| s.sweep.is_some()),
            index == 0,
            "the latency sweep runs after `health` in the first round only (--sweep-rounds 1)"
        );
        for scenario in &round.scenarios {
            assert!(
                scenario.load.ok > 0,
                "{} had no successful request",
                scenario.scenario
            );
        }
    }
    assert!(
        artifact.summary.is_some(),
        "the artifact carries its summary"
    );
    for file in ["report.md", "report.html"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(text.contains("mock"), "{file} names the environment");
    }
}

#[test]
fn an_environment_that_cannot_run_is_listed_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--env",
        "mock,container",
        "-n",
        "1",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ];
    let no_engine = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let artifact = run_ok(
        &[&args[..], &["--scenarios", "health"]].concat(),
        dir.path(),
        &no_engine,
    );
    assert_eq!(artifact.unavailable.len(), 1);
    assert_eq!(artifact.unavailable[0].name, "container");
    assert!(!artifact.unavailable[0].reason.is_empty());
}

/// Off a terminal (stderr is a pipe here, as in a CI log) the run prints one plain line per
/// finished round, with its headline figure and the time left, instead of a hidden bar.
#[test]
fn a_run_off_a_terminal_prints_one_line_per_finished_round() {
    let dir = tempfile::tempdir().unwrap();
    let output = isobench()
        .args(["run", "--env", "native", "-n", "3", "--duration", "1s"])
        .args(["--warmup", "0s", "--scenarios", "health", "--no-sweep"])
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A round may fail on a busy machine (exit 1, recorded): it gets its line all the same.
    assert!(matches!(output.status.code(), Some(0 | 1)), "{stderr}");
    let rounds: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("isobench: round "))
        .collect();
    assert_eq!(rounds.len(), 3, "{stderr}");
    for (index, line) in rounds.iter().enumerate() {
        let start = format!("isobench: round {}/3 native ", index + 1);
        let outcome = line
            .strip_prefix(&start)
            .unwrap_or_else(|| panic!("{line}"));
        assert!(
            (outcome.starts_with("done in ") && outcome.contains(" req/s health, p99 "))
                || outcome.starts_with("FAILED at "),
            "{line}"
        );
    }
    assert!(rounds[0].ends_with(" left"), "{}", rounds[0]);
    assert!(
        rounds[2].ends_with("that was the last round"),
        "{}",
        rounds[2]
    );
    assert!(stderr.contains("isobench: preparing native\n"), "{stderr}");
}

/// `isobench doctor` on this machine: every rung with a status, and an exit code that agrees
/// with the statuses (0 when every rung can run, 1 when one cannot).
#[test]
fn doctor_reports_every_rung_and_exits_by_their_readiness() {
    let output = isobench().arg("doctor").output().unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "{code:?}: {table}");
    let mut not_ready = 0;
    for rung in ["native", "container-host", "container", "gvisor", "vm"] {
        let line = table
            .lines()
            .find(|line| line.split_whitespace().next() == Some(rung))
            .unwrap_or_else(|| panic!("no line for {rung}:\n{table}"));
        let status = line[rung.len()..].trim();
        assert!(
            ["ready", "ready, on a fallback", "NOT READY"].contains(&status),
            "{line}"
        );
        not_ready += usize::from(status == "NOT READY");
    }
    assert_eq!(code == Some(0), not_ready == 0, "{table}");
    if not_ready > 0 {
        assert!(table.contains("isobench runs none of these"), "{table}");
    }

    let output = isobench().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(output.status.code(), code);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rungs: Vec<&str> = json["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rung| rung["rung"].as_str().unwrap())
        .collect();
    assert_eq!(
        rungs,
        ["native", "container-host", "container", "gvisor", "vm"]
    );
}

#[test]
fn bad_options_are_refused_with_a_message() {
    for args in [
        &["run", "--rate", "-5"][..],
        &["run", "--duration", "soon"],
        &["run", "--env", "mainframe"],
        &["run", "-n", "0", "--env", "mock"],
    ] {
        let output = isobench().args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `--image` naming an image the engine lacks: refused at once, the image named, nothing
/// pulled, no environment started.
#[test]
fn a_missing_image_is_named_and_nothing_runs() {
    let started = Instant::now();
    let output = isobench()
        .args([
            "run",
            "--image",
            "isobench-no-such-image:never",
            "--env",
            "native,container",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("image isobench-no-such-image:never is not on the local Docker engine"),
        "{stderr}"
    );
    assert!(stderr.contains("never pulls"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

/// A scenario file with a misspelt key: refused before anything starts, naming the key.
#[test]
fn a_scenario_file_with_an_unknown_key_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my.toml");
    std::fs::write(
        &file,
        "[[scenario]]\nname = \"browse\"\nloop = \"closed\"\nconections = 8\npaths = [\"/health\"]\n",
    )
    .unwrap();
    let output = isobench()
        .args(["run", "--env", "mock", "--scenarios"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `conections`"), "{stderr}");
    assert!(stderr.contains("my.toml"), "{stderr}");
}

/// SIGINT in the middle of a measurement: isobench exits within seconds, stops every server,
/// container and VM it started, and leaves the artifact it had already written intact.
#[test]
fn an_interrupted_run_cleans_up_and_keeps_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("cli-test-{}", std::process::id());
    let envs = if cfg!(feature = "vm") {
        "native,container,vm"
    } else {
        "native,container"
    };
    let mut child = isobench()
        .args(["run", "--env", envs, "-n", "3", "--duration", "3s"])
        .args(["--warmup", "0s", "--scenarios", "health"])
        .arg("--output-dir")
        .arg(dir.path())
        .env(MARKER_ENV, &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let artifact = dir.path().join("isobench.json");
    let running =
        || !marked_processes(&marker).is_empty() || !containers_of(pid).unwrap().is_empty();
    let deadline = Instant::now() + Duration::from_secs(300);
    // Wait until a first round is on disk and an instance is being measured.
    while !artifact.exists() || !running() {
        assert!(Instant::now() < deadline, "the run never got going");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let interrupted = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if interrupted.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("isobench run did not exit within 5 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let written = read_artifact(&artifact);
    assert!(
        written
            .environments
            .iter()
            .any(|env| !env.rounds.is_empty())
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while running() {
        assert!(
            Instant::now() < deadline,
            "left behind: processes {:?}, containers {:?}",
            marked_processes(&marker),
            containers_of(pid)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The original report's workflow: bench one service to `docker_results.json`, another to
/// `vm_results.json`, then `isobench compare` the two files.
#[test]
fn bench_two_urls_then_compare_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    let mut files = Vec::new();
    for name in ["docker_results.json", "vm_results.json"] {
        let (server, address) = spawn_server();
        servers.push(server);
        let file = dir.path().join(name);
        let output = isobench()
            .args(["bench", "--url", &format!("http://{address}/health")])
            .args(["--duration", "1s", "--warmup", "0s", "--connections", "4"])
            .arg("--output")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        files.push(file);
    }
    let report_dir = dir.path().join("report");
    let output = isobench()
        .arg("compare")
        .args(&files)
        .arg("--output-dir")
        .arg(&report_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("throughput (bench)"), "{table}");
    let merged = read_artifact(&report_dir.join("isobench.json"));
    assert_eq!(merged.environments.len(), 2);
    assert!(report_dir.join("report.md").exists() && report_dir.join("report.html").exists());
    for mut server in servers {
        let _ = server.kill();
        let _ = server.wait();
    }
}

/// Starts the real server on a free loopback port; returns it and its address.
fn spawn_server() -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut server = Command::new(env!("CARGO_BIN_EXE_isobench-server"))
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("listening on "))
        .expect("the server announces its address");
    let address = line.trim_start_matches("listening on ").trim().to_owned();
    (server, address)
}

/// `isobench density` on the mock writes its JSON, markdown and HTML and prints the table;
/// the mock reads 8 MiB per instance, so the marginal cost is exactly 8 MiB, 128 per GiB.
#[test]
fn a_mock_density_run_writes_its_report_with_the_known_slope() {
    use isobench::artifact::density::{DensityArtifact, RampEnd};
    let dir = tempfile::tempdir().unwrap();
    let output = isobench()
        .args([
            "density",
            "--env",
            "mock",
            "--instances",
            "3",
            "--settle",
            "0s",
        ])
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("marginal MiB (a)"), "{stdout}");
    assert!(stdout.contains("128"), "{stdout}");
    let text = std::fs::read_to_string(dir.path().join("density.json")).unwrap();
    let artifact: DensityArtifact = serde_json::from_str(&text).unwrap();
    assert_eq!(artifact.rungs.len(), 1);
    assert_eq!(
        artifact.settings.instances,
        isobench::artifact::density::InstanceCount::Requested { instances: 3 }
    );
    let rung = &artifact.rungs[0];
    assert_eq!(rung.end, RampEnd::Reached);
    assert_eq!(rung.steps.len(), 3);
    assert_eq!(rung.target.instances, 3);
    assert_eq!(rung.concurrent.as_ref().unwrap().instances, 3);
    let fit = artifact.summary[0].instances_fit.unwrap();
    assert!((fit.slope_mib - 8.0).abs() < 1e-9, "{fit:?}");
    assert!((artifact.summary[0].instances_per_gib.unwrap() - 128.0).abs() < 1e-9);
    let markdown = std::fs::read_to_string(dir.path().join("density.md")).unwrap();
    assert!(markdown.contains("| mock | 3 |"), "{markdown}");
    let html = std::fs::read_to_string(dir.path().join("density.html")).unwrap();
    assert!(html.contains("<svg"), "no chart in the HTML");
}

/// The anchors' figures are quoted in `density --help`, labelled as theirs.
#[test]
fn density_help_quotes_the_anchors_as_theirs() {
    let output = isobench().args(["density", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    for anchor in [
        "theirs, not measured here",
        "23.7 MB",
        "Firecracker",
        "150 microVMs",
    ] {
        assert!(help.contains(anchor), "{anchor:?} missing from:\n{help}");
    }
}
