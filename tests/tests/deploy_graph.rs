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

/// A state of the transformed CollectorSchedule, by name.
fn workflow_state<'a>(definition: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    definition["States"]
        .get(name)
        .unwrap_or_else(|| panic!("the collector's workflow has no state {name}: {definition}"))
}

/// What a JSONPath of the workflow (`$` or `$.a.b`) selects.
fn select<'a>(input: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let rest = path.strip_prefix('$')?;
    rest.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(input, |v, key| v.get(key))
}

/// The collector's schedule, as CloudFormation receives it, is run here against the real
/// collector: EventBridge starts the workflow once a minute with `{"steps": true}`, the
/// workflow may invoke the collector, and its Task, Choice, Wait and Succeed states (read
/// from the transformed definition, not restated) drive the steps the collector hands
/// back. The minute's cycles all run, one per slot, and the workflow ends.
#[tokio::test]
async fn the_collectors_schedule_runs_the_steps_the_collector_hands_it() {
    let graph = deploy_graph("infra/template.yaml");
    let resources = &graph.template["Resources"];
    let machine = &resources["CollectorSchedule"];
    assert_eq!(
        machine["Type"], "AWS::StepFunctions::StateMachine",
        "{machine}"
    );
    assert_eq!(
        machine["Properties"]["StateMachineType"], "EXPRESS",
        "{machine}"
    );
    assert_eq!(
        machine["Properties"]["DefinitionSubstitutions"]["CollectorFunctionArn"],
        serde_json::json!({"Fn::GetAtt": ["CollectorFunction", "Arn"]})
    );
    // The workflow's role may invoke the collector.
    let role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap_or_else(|| panic!("the workflow has no role of this stack: {machine}"));
    let grants = resources[role]["Properties"]["Policies"].to_string();
    assert!(
        grants.contains("lambda:InvokeFunction")
            && grants.contains(r#"{"Fn::GetAtt":["CollectorFunction","Arn"]}"#),
        "{role} may not invoke the collector: {grants}"
    );
    // EventBridge starts it once a minute with the first step.
    let rule = resources
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, r)| r)
        .find(|r| {
            r["Type"] == "AWS::Events::Rule"
                && r["Properties"]["Targets"][0]["Arn"]
                    == serde_json::json!({"Ref": "CollectorSchedule"})
        })
        .unwrap_or_else(|| panic!("no rule starts the collector's workflow"));
    assert_eq!(rule["Properties"]["ScheduleExpression"], "rate(1 minute)");
    let first: serde_json::Value = serde_json::from_str(
        rule["Properties"]["Targets"][0]["Input"]
            .as_str()
            .unwrap_or_else(|| panic!("the rule passes no input: {rule}")),
    )
    .unwrap_or_else(|e| panic!("the rule's input is not JSON: {e}"));

    let lines = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
        .as_array()
        .unwrap_or_else(|| panic!("no definition: {machine}"));
    let text: Vec<&str> = lines.iter().filter_map(|l| l.as_str()).collect();
    let definition: serde_json::Value = serde_json::from_str(&text.join("\n"))
        .unwrap_or_else(|e| panic!("the workflow's definition is not JSON: {e}"));

    // The collector over one tenant, a cycle every 4 s, minutes of 8 s.
    let (store, _dir) = e2e_tests::embedded_store();
    let now = chrono::Utc::now().timestamp_millis();
    store
        .register_tenant("acme", now)
        .await
        .expect("registering tenant acme");
    let state = shared::AppState::new(
        store,
        shared::config::Config {
            polling_interval_secs: 4,
            collector_invocation_secs: 8,
            ..shared::config::Config::default()
        },
    );
    let collector = shared::collector::Collector::new(&state).expect("building the collector");

    let mut name = definition["StartAt"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut input = first;
    let (mut invocations, mut cycles) = (0, 0);
    loop {
        let s = workflow_state(&definition, &name);
        let next = match s["Type"].as_str().unwrap_or_default() {
            "Task" => {
                assert_eq!(s["Resource"], "arn:aws:states:::lambda:invoke", "{s}");
                assert_eq!(
                    s["Parameters"]["FunctionName"], "${CollectorFunctionArn}",
                    "{s}"
                );
                let path = s["Parameters"]["Payload.$"].as_str().unwrap_or_default();
                let payload = select(&input, path).cloned().unwrap_or_default();
                // What the Lambda runtime hands the handler.
                let step: shared::lambda::Step =
                    serde_json::from_value(payload).unwrap_or_default();
                let summary =
                    shared::lambda::collect_step(&state, &collector, None, step, i64::MAX).await;
                invocations += 1;
                cycles += summary.cycles;
                let result = serde_json::json!({
                    "Payload": serde_json::to_value(&summary).expect("the summary as JSON"),
                    "StatusCode": 200,
                });
                let out = s["OutputPath"].as_str().unwrap_or("$");
                input = select(&result, out).cloned().unwrap_or_default();
                s["Next"].as_str().map(str::to_owned)
            }
            "Choice" => {
                let chosen = s["Choices"].as_array().into_iter().flatten().find(|c| {
                    let v = select(&input, c["Variable"].as_str().unwrap_or_default());
                    c["IsPresent"].as_bool() == Some(v.is_some())
                });
                chosen
                    .map_or(&s["Default"], |c| &c["Next"])
                    .as_str()
                    .map(str::to_owned)
            }
            "Wait" => {
                let seconds = select(&input, s["SecondsPath"].as_str().unwrap_or_default())
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or_else(|| panic!("{name} waits for no number of seconds: {input}"));
                assert!(seconds <= 4, "a wait longer than a slot: {seconds} s");
                tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
                let out = s["OutputPath"].as_str().unwrap_or("$");
                input = select(&input, out).cloned().unwrap_or_default();
                s["Next"].as_str().map(str::to_owned)
            }
            "Succeed" => None,
            other => panic!("the collector's workflow has a state of type {other}: {s}"),
        };
        let Some(next) = next else { break };
        name = next;
        assert!(invocations < 10, "the workflow does not end");
    }
    // A cycle at once, then one at each 4-second slot that starts within the 8 s, over
    // more than one invocation (the workflow waited between them).
    assert!(
        (2..=3).contains(&cycles),
        "{cycles} cycles in {invocations} invocations"
    );
    assert!(
        invocations >= 2,
        "the workflow never waited: {invocations} invocation"
    );
}
