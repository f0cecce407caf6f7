//! `GET /api/health/alerts`. Wiring only; the handler is `shared::api::alerts::list`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::GetAlerts).await
}
