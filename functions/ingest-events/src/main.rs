//! `POST /api/health/events`. Wiring only; the handler is `shared::api::ingest::post_events`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::api::Endpoint::IngestEvents).await
}
