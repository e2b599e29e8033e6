//! Resource readings: the host ([`host`]), a process and its peak ([`process`]), and
//! containers through the engine's stats ([`container`]).

pub mod container;
pub mod host;
pub mod process;
pub mod tree;
