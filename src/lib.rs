//! isobench: what does isolation cost a web service?
//!
//! The same small axum service ([`service`]) runs as a native process, in Docker containers
//! and in a virtual machine ([`env`](mod@env)); a load generator ([`load`]) drives it while [`probe`]
//! reads its resources, and [`measure`] runs the one measurement protocol over them, writing
//! plain records ([`artifact`]). [`analysis`] turns the records into estimates and findings,
//! [`gate`] holds them against `--check` thresholds, and [`render`] words them once, for the
//! terminal, markdown and HTML. Data flows one way only: cli → measure → env / load / probe →
//! artifact → analysis → gate / render. The service knows nothing of environments,
//! environments know nothing of load, and nothing below [`measure`] drives the others.
//!
//! Beside the pipeline: [`subject`] (what is measured: isobench's own server, a user's
//! image or static binary), [`docker`] (the engine API client) and [`cleanup`] (everything
//! a run starts is registered and released, also on a signal) and [`format`](mod@format) (how a number
//! and an environment's name are written, in stored prose and in every report).
//!
//! Only [`service`] is built without the default `harness` feature, so the static server
//! binary that goes into the container and the VM compiles just the service's dependencies.

pub mod service;

#[cfg(feature = "harness")]
pub mod analysis;
#[cfg(feature = "harness")]
pub mod artifact;
#[cfg(feature = "harness")]
pub mod cleanup;
#[cfg(feature = "harness")]
pub mod cli;
#[cfg(feature = "harness")]
pub mod docker;
#[cfg(feature = "harness")]
pub mod env;
#[cfg(feature = "harness")]
pub mod format;
#[cfg(feature = "harness")]
pub mod gate;
#[cfg(feature = "harness")]
pub mod load;
#[cfg(feature = "harness")]
pub mod measure;
#[cfg(feature = "harness")]
pub mod probe;
#[cfg(feature = "harness")]
pub mod render;
#[cfg(feature = "harness")]
pub mod subject;
