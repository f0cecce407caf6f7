//! `GET /api/health/agents`. Wiring only; the handler is `shared::api::agents::list`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::GetAllAgents).await
}
