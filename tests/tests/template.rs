//! Checks of infra/template.yaml that cfn-lint does not make: every endpoint has its function
//! with the right route and build settings, every function the Lambda binary serves is
//! deployed and all share one build, and runtime, architecture and authorizer are what the
//! design asks for.

use shared::api::Endpoint;

fn template() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .unwrap_or_else(|e| panic!("cannot read infra/template.yaml: {e}"))
}

/// The text of the resource that runs function `function` (its `HEALTH_FUNCTION`): the
/// block from its two-space indented name to the next one.
fn resource(template: &str, function: &str) -> String {
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
    let marker = format!("HEALTH_FUNCTION: {function}\n");
    blocks
        .into_iter()
        .find(|b| b.contains(&marker))
        .unwrap_or_else(|| panic!("no function runs {function}"))
}

#[test]
fn every_endpoint_is_a_function_with_its_route() {
    let t = template();
    for endpoint in Endpoint::ALL {
        let (method, path) = endpoint.route();
        let block = resource(&t, endpoint.function());
        if endpoint == Endpoint::Export {
            // Streamed through its function URL, which checks the key itself.
            assert!(
                block.contains("FunctionUrlConfig:\n        AuthType: NONE\n        InvokeMode: RESPONSE_STREAM\n"),
                "the export streams through its URL:\n{block}"
            );
            assert!(
                !block.contains("Type: HttpApi"),
                "an HTTP API would buffer it"
            );
            assert!(
                t.contains("!GetAtt ExportFunctionUrl.FunctionUrl"),
                "its URL is an output"
            );
            continue;
        }
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
fn every_function_is_deployed_from_one_shared_build() {
    let t = template();
    let names = shared::lambda::function_names();
    for name in &names {
        let block = resource(&t, name);
        // Identical build settings make `sam build` build the binary once for all.
        assert!(
            block.contains(
                "    Metadata:\n      BuildMethod: rust-cargolambda\n      BuildProperties:\n        Binary: health-lambda\n"
            ),
            "{name} does not build the shared binary:\n{block}"
        );
        assert!(
            block.contains("      CodeUri: ../functions/health-lambda\n"),
            "{name} has another CodeUri"
        );
    }
    let deployed: Vec<&str> = t
        .lines()
        .filter_map(|l| l.trim().strip_prefix("HEALTH_FUNCTION: "))
        .collect();
    assert_eq!(deployed.len(), names.len(), "{deployed:?}");
    for name in deployed {
        assert!(names.contains(&name), "the binary has no function {name}");
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

/// Its schedule (a workflow EventBridge starts every minute, run against the collector in
/// tests/tests/deploy_graph.rs) invokes it per cycle; invoked otherwise, one invocation
/// runs the minute, within its timeout.
#[test]
fn the_collector_runs_every_minute_for_a_minute_within_its_timeout() {
    let template = template();
    let collector = resource(&template, "collector");
    let schedule = named(&template, "CollectorSchedule");
    assert!(schedule.contains("Type: Schedule\n"), "{schedule}");
    assert!(
        schedule.contains("Schedule: rate(1 minute)\n"),
        "{schedule}"
    );
    assert!(
        !collector.contains("Type: Schedule\n"),
        "the collector is scheduled twice: {collector}"
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

/// The text of the resource named `name`.
fn named(template: &str, name: &str) -> String {
    let head = format!("  {name}:\n");
    let start = template
        .find(&head)
        .unwrap_or_else(|| panic!("no resource {name}"));
    let rest = &template[start + head.len()..];
    let end = rest
        .lines()
        .scan(0, |offset, line| {
            let at = *offset;
            *offset += line.len() + 1;
            Some((at, line))
        })
        .find(|(_, line)| {
            line.starts_with("  ") && line[2..].starts_with(|c: char| c.is_ascii_alphabetic())
        })
        .map_or(rest.len(), |(at, _)| at);
    format!("{head}{}", &rest[..end])
}

/// The WebSocket API as the design asks: a WEBSOCKET protocol API (cfn-lint accepts any
/// protocol string), `$connect`, `$disconnect` and `watch` routed to their functions with
/// permission to invoke them, a broadcaster that may post to connections of this API's
/// stage only, and a collector that hands over to it.
#[test]
fn the_websocket_api_routes_connect_and_disconnect_and_the_broadcaster_may_post() {
    let t = template();
    let api = named(&t, "WebSocketApi");
    assert!(api.contains("ProtocolType: WEBSOCKET\n"), "{api}");
    for (route, integration, function) in [
        ("ConnectRoute", "ConnectIntegration", "WsConnectFunction"),
        (
            "DisconnectRoute",
            "DisconnectIntegration",
            "WsDisconnectFunction",
        ),
        ("WatchRoute", "WatchIntegration", "WsWatchFunction"),
    ] {
        let key = match route {
            "ConnectRoute" => "$connect",
            "DisconnectRoute" => "$disconnect",
            _ => "watch",
        };
        let r = named(&t, route);
        assert!(r.contains(&format!("RouteKey: {key}\n")), "{r}");
        assert!(
            r.contains(&format!("integrations/${{{integration}}}")),
            "{r}"
        );
        let i = named(&t, integration);
        assert!(i.contains("IntegrationType: AWS_PROXY"), "{i}");
        assert!(i.contains(&format!("${{{function}.Arn}}")), "{i}");
        let permission = named(&t, &route.replace("Route", "Permission"));
        assert!(
            permission.contains(&format!("FunctionName: !Ref {function}")),
            "{permission}"
        );
        assert!(
            permission.contains(&format!("${{WebSocketApi}}/*/{key}")),
            "{permission}"
        );
    }
    let connect = resource(&t, "ws-connect");
    assert!(connect.contains("dynamodb:PutItem") && connect.contains("dynamodb:BatchGetItem"));
    assert!(resource(&t, "ws-disconnect").contains("dynamodb:DeleteItem"));
    // The watch route reads the connection and writes what it watches.
    let watch = resource(&t, "ws-watch");
    assert!(watch.contains("dynamodb:GetItem") && watch.contains("dynamodb:PutItem"));

    let broadcaster = resource(&t, "broadcaster");
    assert!(
        broadcaster.contains("WEBSOCKET_MANAGEMENT_ENDPOINT: !Sub \"https://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${WebSocketStage}\""),
        "{broadcaster}"
    );
    assert!(
        broadcaster.contains("execute-api:ManageConnections")
            && broadcaster.contains("${WebSocketApi}/${WebSocketStage}/POST/@connections/*"),
        "{broadcaster}"
    );
    for action in ["dynamodb:Query", "index/GSI1", "dynamodb:DeleteItem"] {
        assert!(broadcaster.contains(action), "broadcaster lacks {action}");
    }
    let collector = resource(&t, "collector");
    assert!(collector.contains("BROADCASTER_FUNCTION: !Ref BroadcasterFunction"));
    assert!(
        collector.contains("lambda:InvokeFunction")
            && collector.contains("BroadcasterFunction.Arn")
    );
    assert!(named(&t, "WebSocketStage").contains("AutoDeploy: true"));
    assert!(t.contains("WebSocketUrl:"));
}

/// The longest a revoked key keeps working in AWS is the authorizer's cache time: the
/// documentation states the template's value.
#[test]
fn the_documented_revocation_delay_is_the_authorizer_cache_time() {
    let seconds: u64 = template()
        .lines()
        .find_map(|l| l.trim().strip_prefix("ReauthorizeEvery:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ReauthorizeEvery in the template"));
    let api = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"))
        .expect("reading docs/api.md");
    let unwrapped = api.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        unwrapped.contains(&format!(
            "a revoked key keeps working on REST routes for at most {seconds} s"
        )),
        "docs/api.md does not state the {seconds} s authorizer cache"
    );
}

/// The deploy step the README gives for notifications names parameters the template has,
/// and the notifier runs on a schedule with sending rights scoped by them.
#[test]
fn notification_parameters_and_the_notifier_are_as_documented() {
    let t = template();
    for parameter in [
        "EmailSender",
        "EmailSenderAddress",
        "EmailIdentity",
        "NotificationTopicPrefix",
    ] {
        assert!(
            t.contains(&format!("\n  {parameter}:\n    Type: String")),
            "no parameter {parameter}"
        );
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("reading README.md");
    assert!(readme.contains(
        "--parameter-overrides EmailSender=\"Ops <alerts@example.com>\" EmailSenderAddress=alerts@example.com EmailIdentity=example.com"
    ));
    for function in ["notifier", "test-channel"] {
        let block = resource(&t, function);
        assert!(block.contains("- ses:SendEmail"), "{function}");
        assert!(
            block.contains("ses:FromAddress: !Ref EmailSenderAddress"),
            "{function}"
        );
        assert!(block.contains("identity/${EmailIdentity}"), "{function}");
        assert!(
            block.contains("- sns:Publish") && block.contains(":${NotificationTopicPrefix}*"),
            "{function}"
        );
    }
    // Links in messages: the PublicUrl parameter, else the HTTP API's URL for the notifier
    // (not on the API, so no cycle) and the request's own address for the channel test.
    assert!(
        resource(&t, "notifier").contains(
            "HEALTH_PUBLIC_URL: !If\n            - HasPublicUrl\n            - !Ref PublicUrl\n            - !Sub \"https://${HttpApi}."
        ),
        "the notifier's links"
    );
    assert!(
        resource(&t, "test-channel")
            .contains("HEALTH_PUBLIC_URL: !If [HasPublicUrl, !Ref PublicUrl, !Ref AWS::NoValue]"),
        "the channel test's links"
    );
    let notifier = resource(&t, "notifier");
    assert!(notifier.contains("Schedule: rate(1 minute)"));
    // No other function may send mail or publish.
    let senders = t.matches("- ses:SendEmail").count();
    assert_eq!(senders, 2);
}

/// The evaluator reads the table's stream (new images only, filtered to live items and the
/// gauges, batched for at most a second) with rights to read it and nothing else of streams.
#[test]
fn the_evaluator_reads_the_tables_stream_of_live_items() {
    let t = template();
    assert!(t.contains("      StreamSpecification:\n        StreamViewType: NEW_AND_OLD_IMAGES\n"));
    let block = resource(&t, "evaluator");
    for needed in [
        "Type: DynamoDB",
        "Stream: !GetAtt HealthTable.StreamArn",
        "MaximumBatchingWindowInSeconds: 1",
        r#""kind": {"S": ["agent", "integration", "host", "system"]}"#,
        "- dynamodb:GetRecords",
        "Resource: !GetAtt HealthTable.StreamArn",
        "BROADCASTER_FUNCTION: !Ref BroadcasterFunction",
    ] {
        assert!(
            block.contains(needed),
            "the evaluator lacks {needed}:\n{block}"
        );
    }
    assert_eq!(t.matches("- dynamodb:GetRecords").count(), 1);
}

/// The monitor watches itself: dead-letter queues for the notifier and the evaluator,
/// alarms on its functions' errors and throttles, on those queues and on the collector's
/// own figures (failed, slow or stopped cycles, from the EMF lines it prints), all
/// publishing to the AlarmTopic parameter when one is given.
#[test]
fn the_monitor_alarms_on_itself() {
    let t = template();
    assert!(t.contains("  AlarmTopic:\n    Type: String\n"));
    assert!(t.contains("  HasAlarmTopic: !Not [!Equals [!Ref AlarmTopic, \"\"]]\n"));
    let notifier = resource(&t, "notifier");
    assert!(notifier.contains("DeadLetterQueue:\n        Type: SQS\n        TargetArn: !GetAtt NotifierDeadLetterQueue.Arn"));
    let evaluator = resource(&t, "evaluator");
    assert!(evaluator.contains("Destination: !GetAtt EvaluatorDeadLetterQueue.Arn"));
    assert!(evaluator.contains("- sqs:SendMessage"));
    for (alarm, needed) in [
        ("FunctionErrorsAlarm", "MetricName: Errors"),
        ("FunctionThrottlesAlarm", "MetricName: Throttles"),
        (
            "NotifierDeadLetterAlarm",
            "Value: !GetAtt NotifierDeadLetterQueue.QueueName",
        ),
        (
            "EvaluatorDeadLetterAlarm",
            "Value: !GetAtt EvaluatorDeadLetterQueue.QueueName",
        ),
        ("CollectorFailedCyclesAlarm", "MetricName: FailedCycles"),
        ("CollectorSlowAlarm", "MetricName: CycleTimeMax"),
        ("CollectorStoppedAlarm", "TreatMissingData: breaching"),
        (
            "CollectorScheduleFailedAlarm",
            "Value: !Ref CollectorSchedule",
        ),
        ("ApiServerErrorsAlarm", "MetricName: 5xx"),
    ] {
        let block = named(&t, alarm);
        assert!(
            block.contains("Type: AWS::CloudWatch::Alarm"),
            "{alarm}:\n{block}"
        );
        assert!(block.contains(needed), "{alarm} lacks {needed}:\n{block}");
        assert!(
            block.contains(
                "AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopic], !Ref AWS::NoValue]"
            ),
            "{alarm} does not publish to the topic"
        );
    }
    // Every function the errors alarm sums is one of the template's.
    for f in named(&t, "FunctionErrorsAlarm")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Value: !Ref "))
    {
        assert!(t.contains(&format!("\n  {f}:\n")), "no resource {f}");
    }
    // What the alarms read is what the functions print.
    let line = shared::telemetry::emf_line("collector", 0, &[("FailedCycles", "Count", 0.0)]);
    assert!(line.contains(&format!(
        "\"Namespace\":\"{}\"",
        shared::telemetry::EMF_NAMESPACE
    )));
    assert!(t.contains(&format!(
        "Namespace: {}\n",
        shared::telemetry::EMF_NAMESPACE
    )));
}

/// A channel test answers through the HTTP API, which gives up after 30 s: the function's
/// timeout is under that, and its send deadline leaves it time to answer.
#[test]
fn the_channel_test_answers_within_the_http_apis_30_s() {
    let block = resource(&template(), "test-channel");
    let timeout: u64 = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("Timeout:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Timeout for test-channel:\n{block}"));
    assert!(
        timeout < 30,
        "test-channel may run {timeout} s, past the HTTP API's 30 s"
    );
    let deadline_s = shared::notify::TEST_SEND_DEADLINE_MS / 1000;
    assert!(
        deadline_s + 5 <= timeout,
        "the send deadline ({deadline_s} s) leaves test-channel ({timeout} s) no time to answer"
    );
}

/// The export's public URL runs up to 900 s per request; its concurrency is reserved (and
/// so capped) by a parameter with a default, which the README documents.
#[test]
fn the_public_export_has_reserved_concurrency() {
    let t = template();
    let parameter = named(&t, "ExportReservedConcurrency");
    assert!(
        parameter.contains("Type: Number\n    Default: 10\n    MinValue: 0\n"),
        "{parameter}"
    );
    let export = resource(&t, "export");
    assert!(
        export.contains("ReservedConcurrentExecutions: !If [HasExportReservation, !Ref ExportReservedConcurrency, !Ref AWS::NoValue]"),
        "{export}"
    );
    assert!(
        t.contains("HasExportReservation: !Not [!Equals [!Ref ExportReservedConcurrency, \"0\"]]")
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .unwrap_or_else(|e| panic!("reading README.md: {e}"));
    assert!(
        readme.contains("ExportReservedConcurrency"),
        "the README does not document ExportReservedConcurrency"
    );
}

/// A dashboard served from another origin (scripts/publish-dashboard) reads the lists'
/// paging headers: the HTTP API's CORS configuration exposes them.
#[test]
fn the_http_api_lets_a_dashboard_on_another_origin_read_the_paging_headers() {
    let t = template();
    let api = named(&t, "HttpApi");
    let cors = api
        .split_once("CorsConfiguration:")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("the HTTP API has no CORS configuration: {api}"));
    let exposed = cors
        .split_once("ExposeHeaders:")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("the HTTP API's CORS exposes no headers: {cors}"));
    for header in ["- link", "- x-total-count"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
}
