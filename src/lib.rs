//! isobench: what does isolation cost a web service?
//!
//! The same small axum service ([`service`]) runs as a native process, in a Docker container
//! and in a virtual machine ([`env`]); a load generator ([`load`]) drives it while [`probe`]
//! reads its resources, [`measure`] runs the one measurement protocol over them, and [`report`] turns the measurements into JSON artifacts and a
//! side-by-side comparison. Data flows one way only: the service knows nothing of
//! environments, environments know nothing of load, and the report reads measurements and
//! nothing else.
//!
//! Only [`service`] is built without the default `harness` feature, so the static server
//! binary that goes into the container and the VM compiles just the service's dependencies.

pub mod service;

#[cfg(feature = "harness")]
pub mod cli;
#[cfg(feature = "harness")]
pub mod env;
#[cfg(feature = "harness")]
pub mod load;
#[cfg(feature = "harness")]
pub mod measure;
#[cfg(feature = "harness")]
pub mod probe;
#[cfg(feature = "harness")]
pub mod report;
#[cfg(feature = "harness")]
pub mod subject;
