//! Container: the server in a Docker container.
