//! Container memory and CPU from the Docker engine.
