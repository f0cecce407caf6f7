//! Checks of infra/template.yaml that cfn-lint does not make: every endpoint has its function
//! with the right route and build settings, every function crate is deployed, and runtime,
//! architecture and authorizer are what the design asks for.

use shared::api::Endpoint;

fn template() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .unwrap_or_else(|e| panic!("cannot read infra/template.yaml: {e}"))
}

/// The text of the resource whose build binary is `binary`: the block from its two-space
/// indented name to the next one.
fn resource(template: &str, binary: &str) -> String {
    let mut blocks: Vec<String> = Vec::new();
    for line in template.lines() {
        let top_level =
            line.starts_with("  ") && line[2..].starts_with(|c: char| c.is_ascii_alphabetic());
        match blocks.last_mut() {
            Some(block) if !top_level => {
                block.push_str(line);
                block.push('\n');
            }
            _ => blocks.push(format!("{line}\n")),
        }
    }
    let marker = format!("Binary: {binary}\n");
    blocks
        .into_iter()
        .find(|b| b.contains(&marker))
        .unwrap_or_else(|| panic!("no function builds binary {binary}"))
}

#[test]
fn every_endpoint_is_a_function_with_its_route() {
    let t = template();
    for endpoint in Endpoint::ALL {
        let (method, path) = endpoint.route();
        let block = resource(&t, endpoint.function());
        assert!(
            block.contains(&format!("Path: {path}\n")),
            "{} lacks Path {path}",
            endpoint.function()
        );
        assert!(
            block.contains(&format!("Method: {method}\n")),
            "{} lacks Method {method}",
            endpoint.function()
        );
        assert!(
            block.contains("BuildMethod: rust-cargolambda"),
            "{} is not built with cargo-lambda",
            endpoint.function()
        );
    }
}

#[test]
fn every_function_crate_is_deployed() {
    let t = template();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions");
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            t.contains(&format!("Binary: {name}\n")),
            "functions/{name} is not in the template"
        );
    }
}

#[test]
fn runtime_architecture_and_authorizer_are_as_designed() {
    let t = template();
    assert!(t.contains("Runtime: provided.al2023\n"));
    assert!(t.contains("Architectures:\n      - arm64\n"));
    assert!(t.contains("DefaultAuthorizer: ApiKeyAuthorizer"));
    assert!(t.contains("EnableSimpleResponses: true"));
    assert!(
        t.contains("ReauthorizeEvery: 300"),
        "authorizer results are cached"
    );
    assert!(
        t.contains("AttributeName: expires_at\n        Enabled: true"),
        "the table has its TTL"
    );
}

#[test]
fn the_collector_runs_every_minute_for_a_minute_within_its_timeout() {
    let collector = resource(&template(), "collector");
    assert!(collector.contains("Type: Schedule\n"), "{collector}");
    assert!(
        collector.contains("Schedule: rate(1 minute)\n"),
        "{collector}"
    );
    let number = |key: &str| -> u64 {
        collector
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {collector}"))
    };
    // The invocation runs cycles for a minute, then needs time for its last cycle.
    let window = number("COLLECTOR_INVOCATION_SECONDS:");
    assert_eq!(window, 60);
    assert!(number("Timeout:") >= window + 20);
    // It writes (alerts, probe results), and lists tenants and entities through GSI1.
    for action in ["dynamodb:PutItem", "dynamodb:Query", "index/GSI1"] {
        assert!(collector.contains(action), "collector lacks {action}");
    }
}
