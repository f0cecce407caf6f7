//! The broadcaster, invoked by the collector. Wiring only; the work is `shared::ws::broadcaster`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run_broadcaster().await
}
