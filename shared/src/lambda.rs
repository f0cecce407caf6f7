//! The Lambda side of the REST API: converts lambda_http requests to the library's `http`
//! types and runs one endpoint per function.

use bytes::Bytes;
use lambda_http::{service_fn, Body, Request};

use crate::api::{self, Endpoint};
use crate::AppState;

/// Converts a lambda_http request to the handlers' request type.
pub fn to_http(req: Request) -> http::Request<Bytes> {
    let (parts, body) = req.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    http::Request::from_parts(parts, bytes)
}

/// Runs the Lambda runtime loop for `endpoint` with state from the environment. A startup
/// error (bad configuration) fails the cold start with a message naming the variable.
pub async fn run(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let state = &state;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(api::handle(state, to_http(req), Some(endpoint)).await)
    }))
    .await
}
