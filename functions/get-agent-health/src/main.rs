//! `GET /api/health/agent/{agent_id}`. Wiring only; the handler is `shared::api::agents::get`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::GetAgentHealth).await
}
