//! Finding what a test's child started, whatever became of the child: server and QEMU
//! processes carry the child's unique marker in their environment (inherited), containers
//! carry the child's pid in their owner label.

/// The environment variable carrying the marker.
pub const MARKER_ENV: &str = "ISOBENCH_CLEANUP_MARKER";

/// Pids of `isobench-server` and QEMU processes whose environment holds `marker`.
pub fn marked_processes(marker: &str) -> Vec<u32> {
    let needle = format!("{MARKER_ENV}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_instance(*pid) && environ_has(*pid, &needle))
        .collect()
}

/// Whether `pid` is something an environment starts: the server itself, or QEMU.
fn is_instance(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
        exe.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name == "isobench-server" || name.starts_with("qemu-system"))
    })
}

fn environ_has(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
        environ
            .split(|&byte| byte == 0)
            .any(|entry| entry == needle.as_bytes())
    })
}

/// Ids of the containers that isobench process `pid` started (their owner label), none when
/// no Docker engine answers.
pub fn containers_of(pid: u32) -> Result<Vec<String>, String> {
    use isobench::cleanup::OWNER_LABEL;
    use isobench::docker::Engine;
    let Ok(engine) = Engine::connect() else {
        return Ok(Vec::new());
    };
    let containers = engine
        .containers_labelled(OWNER_LABEL, &pid.to_string())
        .map_err(|e| format!("{e:#}"))?;
    Ok(containers.into_iter().map(|(id, _)| id).collect())
}
