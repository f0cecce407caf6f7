//! The WebSocket `$connect` route. Wiring only; the work is `shared::ws::connect`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run_ws(true).await
}
