//! The one Lambda binary: every function of the template runs it, and `HEALTH_FUNCTION`
//! selects the handler (`get-agent-health`, `collector`, ...). Wiring only; the dispatch is
//! `shared::lambda::run_from_env`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run_from_env().await
}
