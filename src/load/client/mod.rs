//! What every connection sends, and the two HTTP/1.1 clients that can send it: the lean one
//! (default, [`lean`]) and hyper ([`hyper`]). Both send the same
//! GET requests and classify every answer into the same [`Outcome`]s; the test suite runs
//! both against the same servers.

mod hyper;
mod lean;
mod target;

use std::time::Instant;

pub use target::{ClientKind, Target};

use super::recorder::Outcome;

/// One connection of either client, (re)opened on demand.
pub enum Connection<'a> {
    /// The lean client.
    Lean(lean::Connection<'a>),
    /// hyper.
    Hyper(hyper::Connection<'a>),
}

impl<'a> Connection<'a> {
    /// Not connected yet; the first request connects.
    pub fn new(target: &'a Target) -> Self {
        match target.client {
            ClientKind::Lean => Self::Lean(lean::Connection::new(target)),
            ClientKind::Hyper => Self::Hyper(hyper::Connection::new(target)),
        }
    }

    /// Sends one GET to path `path` and reads the whole response by `deadline` (connecting
    /// included when needed); [`Outcome::Timeout`] when the deadline comes first.
    pub async fn request(&mut self, path: usize, deadline: Instant) -> Outcome {
        match self {
            Self::Lean(connection) => connection.request(path, deadline).await,
            Self::Hyper(connection) => connection.request(path, deadline).await,
        }
    }
}
