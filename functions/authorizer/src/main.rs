//! The HTTP API's Lambda authorizer. Wiring only; the logic is `shared::lambda::authorize`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run_authorizer().await
}
