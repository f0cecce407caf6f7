//! `GET /api/health/integrations`. Wiring only; the handler is `shared::api::integrations::list`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::GetIntegrations).await
}
