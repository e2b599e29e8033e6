//! What every connection sends, and the two HTTP/1.1 clients that can send it: the lean one
//! (default, [`super::lean_client`]) and hyper ([`super::hyper_client`]). Both send the same
//! GET requests and classify every answer into the same [`Outcome`]s; the test suite runs
//! both against the same servers.

use std::net::SocketAddr;
use std::time::Instant;

use http::Uri;
use http::header::HeaderValue;

use super::recorder::Outcome;
use super::{hyper_client, lean_client};

/// Which HTTP client drives the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClientKind {
    /// Request bytes prepared once, responses parsed with `httparse` (status line and body
    /// framing only) into one reused buffer per connection: no allocation per request.
    #[default]
    Lean,
    /// hyper's low-level HTTP/1.1 client: a full client, the reference.
    Hyper,
}

/// Where to connect and what to put in every request.
#[derive(Debug)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// `Host` header value (`host:port` from the URL).
    pub host: HeaderValue,
    /// The scenario's request targets, by path index.
    pub uris: Vec<Uri>,
    /// The scenario's complete requests (`GET … HTTP/1.1`, `Host`, `Connection: close` when
    /// not keeping alive), by path index: built once, written as they are.
    pub requests: Vec<Box<[u8]>>,
    /// Reuse connections between requests.
    pub keep_alive: bool,
    /// The client that sends them.
    pub client: ClientKind,
}

impl Target {
    /// A target for `uris`, with each request's bytes prepared.
    pub fn new(
        addr: SocketAddr,
        host: HeaderValue,
        uris: Vec<Uri>,
        keep_alive: bool,
        client: ClientKind,
    ) -> Self {
        let requests = uris
            .iter()
            .map(|uri| request_bytes(uri, &host, keep_alive))
            .collect();
        Self {
            addr,
            host,
            uris,
            requests,
            keep_alive,
            client,
        }
    }
}

/// One GET request as it goes on the wire.
fn request_bytes(uri: &Uri, host: &HeaderValue, keep_alive: bool) -> Box<[u8]> {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut bytes = Vec::with_capacity(64 + target.len());
    bytes.extend_from_slice(b"GET ");
    bytes.extend_from_slice(target.as_bytes());
    bytes.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    bytes.extend_from_slice(host.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    if !keep_alive {
        bytes.extend_from_slice(b"Connection: close\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.into_boxed_slice()
}

/// One connection of either client, (re)opened on demand.
pub enum Connection<'a> {
    /// The lean client.
    Lean(lean_client::Connection<'a>),
    /// hyper.
    Hyper(hyper_client::Connection<'a>),
}

impl<'a> Connection<'a> {
    /// Not connected yet; the first request connects.
    pub fn new(target: &'a Target) -> Self {
        match target.client {
            ClientKind::Lean => Self::Lean(lean_client::Connection::new(target)),
            ClientKind::Hyper => Self::Hyper(hyper_client::Connection::new(target)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_complete_http11_gets() {
        let uri: Uri = "/cpu?n=5".parse().unwrap();
        let host = HeaderValue::from_static("127.0.0.1:80");
        assert_eq!(
            &*request_bytes(&uri, &host, true),
            b"GET /cpu?n=5 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"
        );
        assert_eq!(
            &*request_bytes(&uri, &host, false),
            b"GET /cpu?n=5 HTTP/1.1\r\nHost: 127.0.0.1:80\r\nConnection: close\r\n\r\n"
        );
    }
}
