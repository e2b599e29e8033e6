//! Resource readings: the host ([`host`]), an instance's host memory ([`footprint`]), a process ([`process`]), a cgroup ([`cgroup`]),
//! containers through the engine's stats ([`container`]); and CPU pinning ([`pin`]), which
//! everything that starts threads or processes needs. It depends on no other isobench module.

pub mod cgroup;
pub mod container;
pub mod footprint;
pub mod host;
pub mod pin;
pub mod process;
pub mod tree;
pub mod usage;
