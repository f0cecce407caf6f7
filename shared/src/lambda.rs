//! The Lambda side of the REST API: converts lambda_http requests to the library's `http`
//! types and runs one endpoint per function.

use bytes::Bytes;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use lambda_http::{service_fn, Body, LambdaEvent, Request, RequestExt};

use crate::api::{self, auth, Endpoint};
use crate::AppState;

/// Converts a lambda_http request to the handlers' request type, carrying the caller the
/// Lambda authorizer identified (if API Gateway ran one) as a request extension.
pub fn to_http(req: Request) -> http::Request<Bytes> {
    let principal = req
        .request_context_ref()
        .and_then(|c| c.authorizer())
        .and_then(|a| auth::principal_from_context(&a.fields));
    let (mut parts, body) = req.into_parts();
    if let Some(p) = principal {
        parts.extensions.insert(p);
    }
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

/// The authorizer's answer to one API Gateway (HTTP API, payload 2.0, simple responses)
/// authorization request. A storage failure is an error, which API Gateway answers with
/// 500 rather than letting the request through.
pub async fn authorize(
    state: &AppState,
    request: &ApiGatewayV2CustomAuthorizerV2Request,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, api::ApiError> {
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    if let Some(p) = auth::authorize_request(state, &request.headers).await? {
        response.is_authorized = true;
        response.context = auth::authorizer_context(&p);
    }
    Ok(response)
}

/// Runs the Lambda authorizer.
pub async fn run_authorizer() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let state = &state;
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            authorize(state, &event.payload)
                .await
                .map_err(|e| -> lambda_http::Error { Box::new(e) })
        },
    ))
    .await
}
