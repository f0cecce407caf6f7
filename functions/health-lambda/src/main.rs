//! The one Lambda binary: every function of the template runs it, and `HEALTH_FUNCTION`
//! selects the handler (`get-agent-health`, `collector`, ...). Wiring only; the dispatch is
//! `shared::lambda::run_from_env`.

// The dispatch's future nests every handler's: more than the default 128 levels of layout
// queries since the handlers' long functions were split into smaller async ones.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run_from_env().await
}
