//! Docker's userland proxy, which carries loopback traffic to a published port.
//!
//! A container port published on 127.0.0.1 is served by a `docker-proxy` process on the host
//! (iptables DNAT does not apply to loopback), so every request to the container crosses it.
//! It is part of what the container costs, just as QEMU's user-mode network stack is part of
//! the VM, so it is pinned to the service's CPUs like the container and its CPU time and
//! memory are added to the container's readings. Where the engine runs without the proxy, or
//! it cannot be found or pinned, the container's label says so.

use std::path::Path;

use crate::probe::pin;

/// The `docker-proxy` serving host port `port` on 127.0.0.1, if there is one.
pub fn find(port: u16) -> Option<u32> {
    let port = port.to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|&byte| byte == 0).collect();
            let is_proxy = args.first().is_some_and(|exe| {
                Path::new(std::str::from_utf8(exe).unwrap_or_default()).ends_with("docker-proxy")
            });
            is_proxy
                && args
                    .windows(2)
                    .any(|pair| pair[0] == b"-host-port" && pair[1] == port.as_bytes())
        })
}

/// Pins every thread of `pid` (the proxy is a Go program with threads already running, and a
/// process's affinity applies only to the thread it is set on).
pub fn pin_all_threads(pid: u32, cpus: &[usize]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let tid = entry?.file_name().to_string_lossy().parse::<u32>();
        if let Ok(tid) = tid {
            pin::pin_pid(tid, cpus)?;
        }
    }
    Ok(())
}
