//! The full client ([`super::target::ClientKind::Hyper`]): one HTTP/1.1 connection driven by
//! hyper's low-level client, a `TcpStream` with TCP_NODELAY,
//! `hyper::client::conn::http1::handshake`, no pool (what oha uses). It is the reference the
//! lean client is tested against, and the one to use for anything beyond a plain GET.
//!
//! Each request is classified into exactly one [`Outcome`]; the connection is dropped after
//! anything but a clean response, so the next request starts on a fresh one.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http::header::{CONNECTION, HOST, HeaderValue};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::target::Target;
use crate::load::recorder::Outcome;

/// A connection that is (re)opened on demand.
pub struct Connection<'a> {
    target: &'a Target,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

enum Failure {
    Connect,
    Io,
}

impl<'a> Connection<'a> {
    /// Not connected yet; the first request connects.
    pub fn new(target: &'a Target) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    /// Sends one GET to path `path` and reads the whole response by `deadline`
    /// (connecting included when needed).
    pub async fn request(&mut self, path: usize, deadline: Instant) -> Outcome {
        match tokio::time::timeout_at(deadline.into(), self.exchange(path)).await {
            Ok(outcome) => {
                if outcome != Outcome::Ok && !matches!(outcome, Outcome::Status(_)) {
                    self.sender = None;
                }
                if !self.target.keep_alive {
                    self.sender = None;
                }
                outcome
            }
            Err(_elapsed) => {
                // The response may still arrive on this connection; never reuse it.
                self.sender = None;
                Outcome::Timeout
            }
        }
    }

    async fn exchange(&mut self, path: usize) -> Outcome {
        let target = self.target;
        let sender = match self.ready_sender().await {
            Ok(sender) => sender,
            Err(Failure::Connect) => return Outcome::Connect,
            Err(Failure::Io) => return Outcome::Io,
        };
        let mut request = Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = target.uris[path].clone();
        request.headers_mut().insert(HOST, target.host.clone());
        if !target.keep_alive {
            request
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(_) => return Outcome::Io,
        };
        let status = response.status();
        let mut body = response.into_body();
        // Read the body frame by frame and drop it: only its completeness matters, and
        // collecting it would allocate for nothing.
        let mut body_ok = true;
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                body_ok = false;
                break;
            }
        }
        if !body_ok {
            // The connection is unusable after a broken body whatever the status.
            self.sender = None;
        }
        match (status.is_success(), body_ok) {
            (true, true) => Outcome::Ok,
            (true, false) => Outcome::Body,
            (false, _) => Outcome::Status(status.as_u16()),
        }
    }

    /// The current connection if it can take a request, else a fresh one. A kept-alive
    /// connection the server closed while idle is replaced silently: that is not a failed
    /// request, just the end of that connection's life.
    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Empty<Bytes>>, Failure> {
        if let Some(sender) = &mut self.sender
            && sender.ready().await.is_err()
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            let mut sender = connect(self.target.addr).await?;
            sender.ready().await.map_err(|_| Failure::Io)?;
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected just above"))
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, Failure> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|_| Failure::Connect)?;
    // Small requests must leave at once, not wait for Nagle's algorithm.
    stream.set_nodelay(true).map_err(|_| Failure::Connect)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Connect)?;
    // The connection task ends when the sender is dropped or the peer closes.
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
