//! Hostile input against every endpoint, in-process through `tower::ServiceExt::oneshot`:
//! random bytes, huge and negative numbers, repeated, missing and unknown parameters, bad
//! percent-encoding, overlong targets and headers. Whatever arrives, the service never
//! panics and never answers 5xx: valid input gets a 200, anything else a JSON 4xx that
//! names the problem, and for structured queries an oracle says which of the two it must be.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use isobench::service::{Config, app};
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

/// Small caps so that valid requests stay cheap even in a debug build; limits small enough
/// that generated targets and headers cross them.
fn config() -> Config {
    Config {
        default_cpu_n: 500,
        max_cpu_n: 3_000,
        default_memory_mb: 1,
        max_memory_mb: 2,
        memory_budget_mb: 64,
        default_parallel_tasks: 2,
        max_parallel_tasks: 4,
        max_cpu_jobs: 64,
        max_uri_bytes: 1_024,
        max_header_bytes: 2_048,
        ..Config::default()
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn router() -> Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| app(config())).clone()
}

/// A parameter an endpoint accepts: name, min and max under [`config`].
type Param = (&'static str, u64, u64);

/// The endpoints and the parameters each accepts.
const ENDPOINTS: [(&str, &[Param]); 5] = [
    ("/health", &[]),
    ("/status", &[]),
    ("/cpu", &[("n", 1, 3_000)]),
    ("/memory", &[("mb", 1, 2)]),
    ("/parallel", &[("tasks", 1, 4), ("n", 1, 3_000)]),
];

/// Sends the request and returns status and parsed JSON body; fails the case if the body
/// is not JSON or the status is a 5xx.
fn exchange(request: Request<Body>) -> Result<(StatusCode, Value), TestCaseError> {
    let described = format!("{} {}", request.method(), request.uri());
    let (status, bytes) = runtime().block_on(async {
        let response = router().oneshot(request).await.unwrap();
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    });
    let body: Value = serde_json::from_slice(&bytes).map_err(|error| {
        TestCaseError::fail(format!("{described}: body {bytes:?} is not JSON: {error}"))
    })?;
    prop_assert!(!status.is_server_error(), "{described}: {status} {body}");
    prop_assert!(
        status == StatusCode::OK || status.is_client_error(),
        "{described}: {status} {body}"
    );
    if status.is_client_error() {
        let error = body["error"].as_str().unwrap_or_default();
        prop_assert!(
            !error.is_empty(),
            "{described}: {status} without error: {body}"
        );
        if status == StatusCode::BAD_REQUEST {
            let param = body["param"].as_str().unwrap_or_default();
            prop_assert!(!param.is_empty(), "{described}: 400 names no param: {body}");
        }
    }
    Ok((status, body))
}

fn get(path_and_query: &str) -> Result<(StatusCode, Value), TestCaseError> {
    exchange(Request::get(path_and_query).body(Body::empty()).unwrap())
}

fn endpoint() -> impl Strategy<Value = usize> {
    0..ENDPOINTS.len()
}

/// Characters legal in a URI query, `%` and `+` included, so escapes go wrong in every way.
fn query_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z0-9%&=+._~!$'()*,;:@/?-]{0,80}").unwrap()
}

/// Arbitrary bytes, percent-encoded (so they reach the parser, invalid UTF-8 and all).
fn encoded_bytes() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 0..60)
        .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect())
}

/// A value for a numeric parameter: valid, boundary, negative, huge, malformed.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..5_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (1u64..u64::MAX).prop_map(|n| format!("-{n}")),
        "[0-9]{20,40}",
        Just(String::new()),
        query_text(),
        encoded_bytes(),
    ]
}

/// A parameter name: one an endpoint takes, or not.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["n", "mb", "tasks"]).prop_map(str::to_owned),
        1 => "[a-z]{1,8}",
        1 => query_text(),
    ]
}

/// What the service must answer for structured `pairs` on `endpoint`: `Ok(values)` in the
/// order of the endpoint's parameters (`None` = default), or `Err(())` for a 400.
fn oracle(endpoint: usize, pairs: &[(String, String)]) -> Result<Vec<Option<u64>>, ()> {
    let params = ENDPOINTS[endpoint].1;
    let mut values = vec![None; params.len()];
    for (name, value) in pairs {
        // Only names and values made of plain safe characters are predicted here.
        let index = params.iter().position(|(p, _, _)| p == name).ok_or(())?;
        if values[index].is_some() {
            return Err(());
        }
        let (_, min, max) = params[index];
        let number: u64 = value.parse().map_err(|_| ())?;
        if !value.bytes().all(|b| b.is_ascii_digit()) || number < min || number > max {
            return Err(());
        }
        values[index] = Some(number);
    }
    Ok(values)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Unstructured garbage after `?` on every endpoint.
    #[test]
    fn random_queries_never_break_the_service(
        endpoint in endpoint(),
        query in prop_oneof![query_text(), encoded_bytes()],
    ) {
        let path = ENDPOINTS[endpoint].0;
        get(&format!("{path}?{query}"))?;
    }

    /// Structured queries: the answer is exactly what the oracle predicts.
    #[test]
    fn structured_queries_get_exactly_the_predicted_answer(
        endpoint in endpoint(),
        pairs in proptest::collection::vec(
            (prop_oneof![
                prop::sample::select(vec!["n", "mb", "tasks"]).prop_map(str::to_owned),
                "[a-z]{1,6}",
            ],
            prop_oneof![
                3 => (0u64..4_000).prop_map(|n| n.to_string()),
                1 => (1u64..u64::MAX).prop_map(|n| format!("-{n}")),
                1 => "[0-9]{19,30}",
                1 => "[a-z0-9.]{0,6}",
            ]),
            0..4,
        ),
    ) {
        let (path, params) = ENDPOINTS[endpoint];
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let uri = format!("{path}?{}", query.join("&"));
        let (status, body) = get(&uri)?;
        match oracle(endpoint, &pairs) {
            Ok(values) => {
                prop_assert_eq!(status, StatusCode::OK, "{}: {}", uri, body);
                for ((name, _, _), value) in params.iter().zip(values) {
                    if let Some(value) = value {
                        prop_assert_eq!(&body[*name], value, "{}: {}", uri, body);
                    }
                }
            }
            Err(()) => {
                prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {}", uri, body);
                let param = body["param"].as_str().unwrap();
                prop_assert!(
                    pairs.iter().any(|(name, _)| name == param),
                    "{}: names {:?}, not one of the query's parameters: {}", uri, param, body
                );
            }
        }
    }

    /// Names and values from every class, percent-encoding mishaps included.
    #[test]
    fn mixed_parameters_never_break_the_service(
        endpoint in endpoint(),
        pairs in proptest::collection::vec((name(), value()), 0..5),
        separator_only in any::<bool>(),
    ) {
        let path = ENDPOINTS[endpoint].0;
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| if separator_only && v.is_empty() { k.clone() } else { format!("{k}={v}") })
            .collect();
        get(&format!("{path}?{}", query.join("&")))?;
    }

    /// Targets around and beyond the length limit: 414 beyond it, never a 5xx.
    #[test]
    fn overlong_targets_are_refused(endpoint in endpoint(), extra in 0usize..3_000) {
        let path = ENDPOINTS[endpoint].0;
        let uri = format!("{path}?pad={}", "x".repeat(extra));
        let (status, _) = get(&uri)?;
        if uri.len() > 1_024 {
            prop_assert_eq!(status, StatusCode::URI_TOO_LONG);
        } else {
            prop_assert_eq!(status, StatusCode::BAD_REQUEST);
        }
    }

    /// Headers around and beyond the size limit: 431 beyond it, the normal answer below it.
    #[test]
    fn oversized_headers_are_refused(endpoint in endpoint(), sizes in proptest::collection::vec(0usize..1_500, 1..4)) {
        let path = ENDPOINTS[endpoint].0;
        let mut request = Request::get(path);
        let mut total = 0;
        for (i, size) in sizes.iter().enumerate() {
            let name = format!("x-pad-{i}");
            total += name.len() + size;
            request = request.header(name, "v".repeat(*size));
        }
        let (status, _) = exchange(request.body(Body::empty()).unwrap())?;
        if total > 2_048 {
            prop_assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        } else {
            prop_assert_eq!(status, StatusCode::OK);
        }
    }

    /// Any method but GET and HEAD on a known path is a JSON 405; unknown paths a JSON 404.
    #[test]
    fn wrong_methods_and_paths_are_json_errors(
        endpoint in endpoint(),
        method in prop::sample::select(vec!["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        path in "/[a-z0-9._~-]{0,30}",
    ) {
        let request = Request::builder().method(method).uri(ENDPOINTS[endpoint].0).body(Body::empty()).unwrap();
        let (status, _) = exchange(request)?;
        prop_assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let known = ENDPOINTS.iter().any(|(known, _)| *known == path);
        let (status, _) = get(&path)?;
        if !known {
            prop_assert_eq!(status, StatusCode::NOT_FOUND);
        }
    }
}
