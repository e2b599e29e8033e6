//! `Artifact::now`: a new artifact stamped with this host's reading. It lives here, with the
//! code that drives the probes, so `artifact` stays plain data and depends on no probe.

use crate::artifact::{Artifact, EnvironmentResult, HostInfo};
use crate::probe::host;

impl Artifact {
    /// A new artifact of this isobench, written now on this host, holding `environments`.
    pub fn now(environments: Vec<EnvironmentResult>) -> Self {
        Artifact::on_host(host_info(), environments)
    }
}

/// This host, as the artifact records it.
pub fn host_info() -> HostInfo {
    host::read()
}
