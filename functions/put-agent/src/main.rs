//! `PUT /api/health/agents/{agent_id}`. Wiring only; the handler is `shared::api::agents::put`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::PutAgent).await
}
