//! The WebSocket `$disconnect` route. Wiring only; the work is `shared::ws::disconnect`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run_ws(false).await
}
