//! `GET /api/health/system`. Wiring only; the handler is `shared::api::read::system`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::GetSystem).await
}
