//! A fast path for the throughput probe: `GET /health` with no query and headers within the
//! limit is answered before the router, its layers and their per-request boxing; every other
//! request goes to the router unchanged.
//!
//! The answer is byte-for-byte the router's (status, content type, body; a unit test
//! compares them), and the bypassed layers cannot matter for it: the URI is `/health`
//! (within any URI limit), the header limit is checked here, and a static answer can
//! neither panic nor time out. [`super::serve`] uses it; [`super::app`] stays the plain
//! router that tests drive in-process.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use tower::Service;
use tower::util::{Oneshot, ServiceExt};

use super::endpoints::health::BODY;

/// The router with `/health` answered in front of it.
#[derive(Debug, Clone)]
pub struct WithHealthFastPath {
    router: Router,
    max_header_bytes: u64,
}

impl WithHealthFastPath {
    /// Wraps `router`; requests with more header bytes than `max_header_bytes` go to the
    /// router, whose guard answers them.
    pub fn new(router: Router, max_header_bytes: u64) -> Self {
        Self {
            router,
            max_header_bytes,
        }
    }

    fn is_plain_health_probe(&self, request: &Request) -> bool {
        request.method() == Method::GET
            && request.uri().path() == "/health"
            && request.uri().query().is_none()
            && request
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().len() + value.len()) as u64)
                .sum::<u64>()
                <= self.max_header_bytes
    }
}

/// The healthy answer, as the router's `/health` handler gives it.
fn healthy() -> Response {
    let mut response = Response::new(Body::from(BODY));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The answer of [`WithHealthFastPath`]: ready at once, or the router's (boxed, off the hot
/// path, so no pin projection is needed).
pub enum FastPathFuture {
    /// The healthy answer (taken on the first poll).
    Ready(Option<Response>),
    /// The router's answer.
    Routed(Pin<Box<Oneshot<Router, Request>>>),
}

impl Future for FastPathFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            FastPathFuture::Ready(response) => Poll::Ready(Ok(response
                .take()
                .expect("FastPathFuture polled after completion"))),
            FastPathFuture::Routed(future) => future.as_mut().poll(cx),
        }
    }
}

impl Service<Request> for WithHealthFastPath {
    type Response = Response;
    type Error = Infallible;
    type Future = FastPathFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Router is always ready; each request gets its own clone below.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if self.is_plain_health_probe(&request) {
            FastPathFuture::Ready(Some(healthy()))
        } else {
            FastPathFuture::Routed(Box::pin(self.router.clone().oneshot(request)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Config, app};
    use http_body_util::BodyExt;

    async fn parts(response: Response) -> (u16, Option<HeaderValue>, axum::body::Bytes) {
        let status = response.status().as_u16();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, body)
    }

    fn get(uri: &str) -> Request {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn fast_answer_equals_the_routers() {
        let config = Config::default();
        let fast = WithHealthFastPath::new(app(config.clone()), config.max_header_bytes);
        let routed = parts(app(config).oneshot(get("/health")).await.unwrap()).await;
        let fast_answer = parts(fast.oneshot(get("/health")).await.unwrap()).await;
        assert_eq!(fast_answer, routed);
    }

    #[tokio::test]
    async fn everything_else_goes_to_the_router() {
        let config = Config {
            max_header_bytes: 100,
            ..Config::default()
        };
        let fast = WithHealthFastPath::new(app(config.clone()), config.max_header_bytes);
        let big = Request::get("/health")
            .header("x-pad", "a".repeat(200))
            .body(Body::empty())
            .unwrap();
        for (request, status) in [
            (get("/health?x=1"), 400),
            (get("/nowhere"), 404),
            (Request::post("/health").body(Body::empty()).unwrap(), 405),
            (big, 431),
            (get("/cpu?n=100"), 200),
        ] {
            let response = fast.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status);
        }
    }
}
