//! What every request of a run is: the address, the `Host` header and the requests' bytes,
//! prepared once and shared by every connection, and which client sends them.

use std::net::SocketAddr;

use http::Uri;
use http::header::HeaderValue;

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
