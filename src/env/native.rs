//! Native: the server as a plain process on the host.
