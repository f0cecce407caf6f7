//! `PUT /api/health/integrations/{integration_id}`. Wiring only; the handler is `shared::api::integrations::put`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::PutIntegration).await
}
