//! `POST /api/health/alerts/{alert_id}/acknowledge`. Wiring only; the handler is `shared::api::alerts::acknowledge`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::AcknowledgeAlert).await
}
