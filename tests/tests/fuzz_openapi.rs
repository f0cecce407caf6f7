//! Generated requests from the served OpenAPI document (schemathesis, from PyPI; the test
//! command installs it) against the local stack: no 5xx, no status the document does not
//! list, every response body and header as documented, schema-violating requests refused,
//! and unsupported methods answered 405.
//!
//! One check is left out: `positive_data_acceptance` (every schema-valid request must be
//! accepted). Some valid-looking inputs are refused for reasons a schema cannot state: a
//! probe URL that does not resolve or resolves to a private address, a timestamp more than
//! 7 days old or 5 minutes ahead, an `entity_id` that only agent and integration history
//! require. The document says so in those fields' descriptions.

use std::process::Command;

#[tokio::test]
async fn generated_requests_get_only_documented_answers() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let base = app.url();
    let key = app.api_key.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("schemathesis")
            .args(["run", &format!("{base}/api/openapi.json"), "-u", &base])
            .args(["-H", &format!("Authorization: Bearer {key}")])
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            // A fixed seed: the same requests every run, so a failure reproduces.
            .args(["--max-examples", "60", "--seed", "20261130", "--no-color"])
            .output()
    })
    .await
    .expect("the schemathesis task panicked")
    .unwrap_or_else(|e| {
        panic!("cannot run schemathesis (the test command installs it into .tools/venv): {e}")
    });
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let operations = shared::api::Endpoint::ALL.len();
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "not every operation was tested:\n{report}"
    );
}
