//! Finding the server processes a test's child started, whatever became of the child: each
//! child gets a unique marker in its environment, which every process it starts inherits.

/// The environment variable carrying the marker.
pub const MARKER_ENV: &str = "ISOBENCH_CLEANUP_MARKER";

/// Pids of `isobench-server` processes whose environment holds `marker`.
pub fn marked_servers(marker: &str) -> Vec<u32> {
    let needle = format!("{MARKER_ENV}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_server(*pid) && environ_has(*pid, &needle))
        .collect()
}

fn is_server(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
        exe.file_name()
            .is_some_and(|name| name == "isobench-server")
    })
}

fn environ_has(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
        environ
            .split(|&byte| byte == 0)
            .any(|entry| entry == needle.as_bytes())
    })
}
