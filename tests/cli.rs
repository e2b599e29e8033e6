//! `isobench run` end to end: outputs, unavailable environments, bad options, and an
//! interrupt in the middle of a measurement.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isobench::report::schema::Artifact;

#[path = "support/processes.rs"]
mod processes;

use processes::{MARKER_ENV, marked_servers};

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
    for round in &mock.rounds {
        let names: Vec<_> = round
            .scenarios
            .iter()
            .map(|s| s.scenario.as_str())
            .collect();
        assert_eq!(names, ["health", "mixed", "fixed-rate"]);
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

/// SIGINT in the middle of a measurement: isobench exits within seconds, stops the server it
/// started, and leaves the artifact it had already written intact.
#[test]
fn an_interrupted_run_cleans_up_and_keeps_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("cli-test-{}", std::process::id());
    let mut child = isobench()
        .args(["run", "--env", "mock,native", "-n", "3", "--duration", "3s"])
        .args(["--warmup", "0s", "--scenarios", "health"])
        .arg("--output-dir")
        .arg(dir.path())
        .env(MARKER_ENV, &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let artifact = dir.path().join("isobench.json");
    let deadline = Instant::now() + Duration::from_secs(180);
    // Wait until a first round is on disk and the native server is being measured.
    while !artifact.exists() || marked_servers(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the run never got going");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let before = std::fs::read_to_string(&artifact).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
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
    let after = read_artifact(&artifact);
    assert!(!after.environments.is_empty());
    assert!(
        std::fs::read_to_string(&artifact).unwrap().len() >= before.len() / 2,
        "the artifact was not cut short"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !marked_servers(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "a server outlived the interrupted run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
