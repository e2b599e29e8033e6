//! Resource readings: the host, processes (sysinfo), containers (engine stats).
