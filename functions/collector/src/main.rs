//! The scheduled collector. Wiring only; the work is `shared::lambda::collect`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run_collector().await
}
