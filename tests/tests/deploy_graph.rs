//! The deploy graph: infra/template.yaml as `sam deploy` hands it to CloudFormation
//! (transformed by aws-sam-translator, pinned), checked for what CloudFormation refuses
//! before creating anything (dependency cycles, references to nothing) and for what breaks
//! once created (a route, authorizer or WebSocket integration API Gateway may not invoke; a
//! function whose HEALTH_FUNCTION names no handler of the binary). cfn-lint is no guard
//! here: 1.58 reported none of the four cycles the template once had.

use e2e_tests::{deploy_graph, deployed_handlers};

/// What is wrong with the handlers a transformed template deploys: a `HEALTH_FUNCTION` the
/// binary does not serve (the function would fail every cold start), and a handler of the
/// binary no function deploys.
fn handler_findings(template: &serde_json::Value, expect_all: bool) -> Vec<String> {
    let names = shared::lambda::function_names();
    let deployed = deployed_handlers(template);
    let mut findings: Vec<String> = deployed
        .iter()
        .filter(|(_, handler)| !names.contains(&handler.as_str()))
        .map(|(function, handler)| {
            format!("{function} runs HEALTH_FUNCTION={handler}, which the binary does not serve")
        })
        .collect();
    if expect_all {
        for name in &names {
            let count = deployed.iter().filter(|(_, h)| h == name).count();
            if count != 1 {
                findings.push(format!("{count} functions run {name} (expected one)"));
            }
        }
    }
    findings
}

#[test]
fn the_deployed_template_has_no_cycle_dangling_reference_or_uninvokable_function() {
    let graph = deploy_graph("infra/template.yaml");
    assert!(
        graph.template["Resources"]["HttpApi"]["Type"] == "AWS::ApiGatewayV2::Api",
        "the transform did not produce the HTTP API: {:?}",
        graph.findings
    );
    let mut findings = graph.findings;
    findings.extend(handler_findings(&graph.template, true));
    assert!(
        findings.is_empty(),
        "infra/template.yaml, as sam deploy transforms it, would not deploy or not work:\n{}",
        findings.join("\n")
    );
}

/// The checks find each kind of mistake (tests/support/deploy-graph-mistakes.yaml holds
/// one of each), so an empty list above means a sound graph, not a blind check.
#[test]
fn the_check_finds_each_kind_of_mistake() {
    let graph = deploy_graph("tests/support/deploy-graph-mistakes.yaml");
    let mut findings = graph.findings;
    findings.extend(handler_findings(&graph.template, false));
    for expected in [
        "dependency cycle: Api -> LinkFunction -> Api",
        "LinkFunction refers to MissingTable",
        "LinkFunction reads Queue.Url, but AWS::SQS::Queue has no attribute Url",
        "LinkFunction uses condition NoSuchCondition",
        "Api authorizer KeyAuthorizer runs AuthFunction, which API Gateway may not invoke",
        "RawApi route GET /raw integrates RawFunction, which API Gateway may not invoke",
        "WsIntegration integrates RawFunction, which API Gateway may not invoke",
        "LinkFunction runs HEALTH_FUNCTION=no-such-handler",
    ] {
        assert!(
            findings.iter().any(|f| f.contains(expected)),
            "the deploy graph check missed \"{expected}\"; it found:\n{}",
            findings.join("\n")
        );
    }
    assert_eq!(
        findings.len(),
        8,
        "unexpected findings in the mistakes template:\n{}",
        findings.join("\n")
    );
}

/// The transform is the one `sam deploy` runs: the translator version pinned for the
/// tests is the one the pinned SAM CLI requires (aws-sam-cli 1.170.0 requires
/// aws-sam-translator==1.115.0), and the one installed.
#[test]
fn the_translator_is_the_pinned_one() {
    let requirements = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/requirements-test.txt"
    ))
    .unwrap_or_else(|e| panic!("reading scripts/requirements-test.txt: {e}"));
    let pinned = requirements
        .lines()
        .find_map(|l| l.trim().strip_prefix("aws-sam-translator=="))
        .unwrap_or_else(|| panic!("scripts/requirements-test.txt does not pin aws-sam-translator"));
    let graph = deploy_graph("infra/template.yaml");
    assert_eq!(
        graph.translator, pinned,
        "the installed aws-sam-translator is not the pinned one"
    );
}
