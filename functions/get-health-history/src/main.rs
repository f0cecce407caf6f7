//! `GET /api/health/history/{type}`. Wiring only; the handler is `shared::api::read::history`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::GetHistory).await
}
