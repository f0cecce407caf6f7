//! Least privilege, checked by running: every function of the template, as `sam deploy`
//! transforms it (tests/support/deploy_graph.py), runs its handler in process the way its
//! Lambda does (an API Gateway event through the Lambda adapter, the authorizer's request,
//! a WebSocket event, a stream batch, a scheduled invocation), configured from its own
//! environment in the template, against the DynamoDB stand-in (moto) behind a recording
//! proxy. The proxy notes every AWS action performed (DynamoDB's `X-Amz-Target`, with
//! transactions counted per item as IAM counts them, Lambda `Invoke`, the Management API's
//! connection calls, SES `SendEmail`, SNS `Publish`) and the resource it acted on, and each
//! must be granted by an Allow statement of that function's role. moto enforces no IAM, so
//! without this a missing grant shows only in AWS: as a 500 after the write it should have
//! answered (an acknowledgement's Query), or as an error logged and ignored (the export's
//! key-use write). Also: API Gateway may invoke the HTTP API's authorizer.
//!
//! Its own test binary: SES and SNS clients read their endpoints from the process
//! environment, as in Lambda, so this binary points them at the proxy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{json, Value};
use shared::api::{self, Endpoint};
use shared::config::Config;
use shared::domain::alerts::AlertRecord;
use shared::domain::notify::Destination;
use shared::store::dynamodb::DynamoBackend;
use shared::store::Store;
use shared::AppState;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const TENANT: &str = "acme";

/// One AWS action a function performed, on one of `resources` (any of them will do: an
/// SES send is checked against the identity of its address or of its domain).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    action: String,
    resources: Vec<String>,
    /// The sender of an SES send (the `ses:FromAddress` condition key).
    from_address: Option<String>,
}

/// A proxy in front of the AWS stand-in that records every call. Lambda `Invoke` and the
/// Management API are answered here (the stand-in has no broadcaster function and does not
/// serve connection calls under a stage path); everything else is forwarded.
#[derive(Clone)]
struct Recorder {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    /// Starts one on a free port, forwarding to `upstream`; `websocket_api` is the API id
    /// the Management API calls are recorded against.
    async fn start(upstream: String, websocket_api: &'static str) -> Self {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let keep = Arc::clone(&calls);
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(
            move |method: http::Method, uri: http::Uri, headers: http::HeaderMap, body: Bytes| {
                let (keep, client, upstream) =
                    (Arc::clone(&keep), client.clone(), upstream.clone());
                async move {
                    let service = service_of(&headers);
                    let recorded =
                        calls_of(&service, &method, &uri, &headers, &body, websocket_api);
                    keep.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(recorded);
                    match service.as_str() {
                        // An asynchronous invocation, accepted.
                        "lambda" => (
                            http::StatusCode::ACCEPTED,
                            http::HeaderMap::new(),
                            Bytes::new(),
                        ),
                        "execute-api" if method == http::Method::DELETE => (
                            http::StatusCode::NO_CONTENT,
                            http::HeaderMap::new(),
                            Bytes::new(),
                        ),
                        "execute-api" => {
                            (http::StatusCode::OK, http::HeaderMap::new(), Bytes::new())
                        }
                        _ => forward(&client, &upstream, method, &uri, headers, body).await,
                    }
                }
            },
        );
        Self {
            url: format!("http://{}", e2e_tests::serve(app).await),
            calls,
        }
    }

    /// The calls recorded since the last take.
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The service a signed request is for, from its SigV4 credential scope
/// (`Credential=<key>/<date>/<region>/<service>/aws4_request`).
fn service_of(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unsigned")
        .to_owned()
}

fn calls_of(
    service: &str,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: &[u8],
    websocket_api: &str,
) -> Vec<Call> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let call = |action: String, resource: String| Call {
        action,
        resources: vec![resource],
        from_address: None,
    };
    let table = |name: &str| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}");
    let path = uri.path();
    match service {
        "dynamodb" => {
            let operation = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.split('.').nth(1))
                .unwrap_or("unknown")
                .to_owned();
            let mut out = Vec::new();
            match operation.as_str() {
                // IAM has no TransactWriteItems action: each item needs its own.
                "TransactWriteItems" | "TransactGetItems" => {
                    for item in json["TransactItems"].as_array().into_iter().flatten() {
                        for (kind, action) in [
                            ("Put", "PutItem"),
                            ("Update", "UpdateItem"),
                            ("Delete", "DeleteItem"),
                            ("ConditionCheck", "ConditionCheckItem"),
                            ("Get", "GetItem"),
                        ] {
                            if let Some(t) = item[kind]["TableName"].as_str() {
                                out.push(call(format!("dynamodb:{action}"), table(t)));
                            }
                        }
                    }
                }
                "BatchGetItem" | "BatchWriteItem" => {
                    for t in json["RequestItems"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(t, _)| t)
                    {
                        out.push(call(format!("dynamodb:{operation}"), table(t)));
                    }
                }
                _ => {
                    let t = json["TableName"].as_str().unwrap_or("unknown");
                    let resource = match json["IndexName"].as_str() {
                        Some(index) => format!("{}/index/{index}", table(t)),
                        None => table(t),
                    };
                    out.push(call(format!("dynamodb:{operation}"), resource));
                }
            }
            out
        }
        "lambda" => {
            let name = path
                .split("/functions/")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or("unknown");
            let arn = if name.starts_with("arn:") {
                name.to_owned()
            } else {
                format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
            };
            vec![call("lambda:InvokeFunction".to_owned(), arn)]
        }
        "execute-api" => {
            let (stage, connection) = match path.split_once("/@connections/") {
                Some((stage, id)) => (stage.trim_start_matches('/'), id),
                None => ("", path),
            };
            vec![call(
                "execute-api:ManageConnections".to_owned(),
                format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{websocket_api}/{stage}/{method}/@connections/{connection}"),
            )]
        }
        "ses" if path.ends_with("/outbound-emails") => {
            let from = json["FromEmailAddress"].as_str().unwrap_or_default();
            let address = from
                .rsplit_once('<')
                .map_or(from, |(_, a)| a.trim_end_matches('>'))
                .to_owned();
            let domain = address
                .rsplit_once('@')
                .map(|(_, d)| d.to_owned())
                .unwrap_or_default();
            let identity = |i: &str| format!("arn:aws:ses:{REGION}:{ACCOUNT}:identity/{i}");
            vec![Call {
                action: "ses:SendEmail".to_owned(),
                resources: vec![identity(&address), identity(&domain)],
                from_address: Some(address),
            }]
        }
        "sns" => {
            let form: BTreeMap<String, String> = url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let action = form
                .get("Action")
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned());
            let topic = form.get("TopicArn").cloned().unwrap_or_default();
            vec![call(format!("sns:{action}"), topic)]
        }
        other => vec![call(format!("{other}:{method} {path}"), "*".to_owned())],
    }
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    method: http::Method,
    uri: &http::Uri,
    mut headers: http::HeaderMap,
    body: Bytes,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    headers.remove(http::header::HOST);
    headers.remove(http::header::CONTENT_LENGTH);
    let target = format!(
        "{upstream}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let response = client
        .request(method, &target)
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("forwarding to the AWS stand-in at {target}: {e}"));
    let status = response.status();
    let mut headers = response.headers().clone();
    for hop in [
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
    ] {
        headers.remove(hop);
    }
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading the AWS stand-in's answer: {e}"));
    (status, headers, body)
}

/// The transformed template evaluated for one deployment: parameter values, and physical
/// names for the resources a function's environment and policies refer to.
struct Deployment<'a> {
    template: &'a Value,
    parameters: BTreeMap<String, String>,
    table: String,
}

impl Deployment<'_> {
    fn resource(&self, name: &str) -> &Value {
        &self.template["Resources"][name]
    }

    fn reference(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::Region" => REGION.to_owned(),
            "AWS::AccountId" => ACCOUNT.to_owned(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackName" => "health".to_owned(),
            "AWS::NoValue" => return None,
            "HealthTable" => self.table.clone(),
            _ => match self.parameters.get(name) {
                Some(v) => v.clone(),
                None => {
                    let r = self.resource(name);
                    assert!(
                        !r.is_null(),
                        "Ref to {name}, which is neither parameter nor resource"
                    );
                    match r["Type"].as_str() {
                        // A stage's Ref is its name, which is what URLs and ARNs carry.
                        Some("AWS::ApiGatewayV2::Stage") => r["Properties"]["StageName"]
                            .as_str()
                            .unwrap_or(name)
                            .to_owned(),
                        _ => name.to_owned(),
                    }
                }
            },
        })
    }

    fn attribute(&self, name: &str, attribute: &str) -> String {
        let kind = self.resource(name)["Type"].as_str().unwrap_or_default();
        match (kind, attribute) {
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}", self.table)
            }
            ("AWS::DynamoDB::Table", "StreamArn") => format!(
                "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}/stream/2026-01-01T00:00:00.000",
                self.table
            ),
            ("AWS::Lambda::Function", "Arn") => {
                format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
            }
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
            _ => format!("{name}.{attribute}"),
        }
    }

    fn condition(&self, name: &str) -> bool {
        let c = &self.template["Conditions"][name];
        assert!(!c.is_null(), "no condition {name}");
        self.truth(c)
    }

    fn truth(&self, v: &Value) -> bool {
        let args = |key: &str| v[key].as_array().cloned().unwrap_or_default();
        if let Some(name) = v["Condition"].as_str() {
            self.condition(name)
        } else if v.get("Fn::Equals").is_some() {
            let a = args("Fn::Equals");
            let text = |x: &Value| self.eval(x).map(|x| text_of(&x)).unwrap_or_default();
            a.len() == 2 && text(&a[0]) == text(&a[1])
        } else if v.get("Fn::Not").is_some() {
            !self.truth(&args("Fn::Not")[0])
        } else if v.get("Fn::And").is_some() {
            args("Fn::And").iter().all(|x| self.truth(x))
        } else if v.get("Fn::Or").is_some() {
            args("Fn::Or").iter().any(|x| self.truth(x))
        } else {
            panic!("not a condition: {v}")
        }
    }

    /// The value of an intrinsic tree; `None` for `AWS::NoValue`.
    fn eval(&self, v: &Value) -> Option<Value> {
        match v {
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next()?;
                match key.as_str() {
                    "Ref" => self.reference(arg.as_str()?).map(Value::String),
                    "Fn::GetAtt" => {
                        let (name, attribute) = match arg {
                            Value::String(s) => s.split_once('.')?,
                            _ => (arg[0].as_str()?, arg[1].as_str()?),
                        };
                        Some(Value::String(self.attribute(name, attribute)))
                    }
                    "Fn::Sub" => {
                        let (text, locals) = match arg {
                            Value::String(s) => (s.as_str(), serde_json::Map::new()),
                            _ => (
                                arg[0].as_str()?,
                                arg[1].as_object().cloned().unwrap_or_default(),
                            ),
                        };
                        Some(Value::String(self.substitute(text, &locals)))
                    }
                    "Fn::If" => {
                        let branch = if self.condition(arg[0].as_str()?) {
                            1
                        } else {
                            2
                        };
                        self.eval(&arg[branch])
                    }
                    "Fn::Join" => {
                        let parts: Vec<String> = arg[1]
                            .as_array()?
                            .iter()
                            .filter_map(|p| self.eval(p))
                            .map(|p| text_of(&p))
                            .collect();
                        Some(Value::String(parts.join(arg[0].as_str()?)))
                    }
                    _ => Some(Value::Object(
                        map.iter()
                            .filter_map(|(k, x)| self.eval(x).map(|x| (k.clone(), x)))
                            .collect(),
                    )),
                }
            }
            Value::Object(map) => Some(Value::Object(
                map.iter()
                    .filter_map(|(k, x)| self.eval(x).map(|x| (k.clone(), x)))
                    .collect(),
            )),
            Value::Array(items) => Some(Value::Array(
                items.iter().filter_map(|x| self.eval(x)).collect(),
            )),
            other => Some(other.clone()),
        }
    }

    fn substitute(&self, text: &str, locals: &serde_json::Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 2..start + end];
            let value = if let Some(literal) = name.strip_prefix('!') {
                format!("${{{literal}}}")
            } else if let Some(local) = locals.get(name) {
                self.eval(local).map(|v| text_of(&v)).unwrap_or_default()
            } else if let Some((resource, attribute)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                self.attribute(resource, attribute)
            } else {
                self.reference(name).unwrap_or_default()
            };
            out.push_str(&value);
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A function's environment as deployed.
    fn environment(&self, function: &str) -> BTreeMap<String, String> {
        let variables = &self.resource(function)["Properties"]["Environment"]["Variables"];
        self.eval(variables)
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, text_of(&v)))
            .collect()
    }

    /// The Allow statements of a function's role, conditions resolved.
    fn statements(&self, function: &str) -> Vec<Value> {
        let role = self.resource(function)["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function} has no role of the template"));
        let policies = self
            .eval(&self.resource(role)["Properties"]["Policies"])
            .unwrap_or(Value::Null);
        policies
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| match &p["PolicyDocument"]["Statement"] {
                Value::Array(s) => s.clone(),
                s @ Value::Object(_) => vec![s.clone()],
                _ => Vec::new(),
            })
            .filter(|s| s["Effect"] == "Allow")
            .collect()
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(text_of).collect(),
        _ => Vec::new(),
    }
}

/// Whether an Allow statement grants `call` (IAM's wildcards; actions case-insensitive).
fn grants(statement: &Value, call: &Call) -> bool {
    let action = strings(&statement["Action"])
        .iter()
        .any(|a| wildmatch::WildMatch::new(&a.to_lowercase()).matches(&call.action.to_lowercase()));
    let resource = strings(&statement["Resource"]).iter().any(|r| {
        let pattern = wildmatch::WildMatch::new(r);
        call.resources.iter().any(|c| pattern.matches(c))
    });
    let from = &statement["Condition"]["StringEquals"]["ses:FromAddress"];
    let condition = from.is_null() || call.from_address.as_deref() == from.as_str();
    action && resource && condition
}

/// What an HTTP API route's function receives: an API Gateway payload 2.0 event, with the
/// authorizer's context when the route is behind it, through the Lambda adapter.
fn http_request(
    endpoint: Endpoint,
    path_and_query: &str,
    body: Option<&Value>,
    authorizer: Option<&Value>,
    bearer: Option<&str>,
) -> http::Request<Bytes> {
    let (method, route) = endpoint.route();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let domain = if endpoint == Endpoint::Export {
        "abcdefghij.lambda-url.us-east-1.on.aws"
    } else {
        "abc123.execute-api.us-east-1.amazonaws.com"
    };
    let mut headers =
        json!({"host": domain, "user-agent": "iam-test", "accept": "application/json"});
    if body.is_some() {
        headers["content-type"] = json!("application/json");
    }
    if let Some(key) = bearer {
        headers["authorization"] = json!(format!("Bearer {key}"));
    }
    let mut context = json!({
        "accountId": ACCOUNT, "apiId": "abc123", "domainName": domain, "domainPrefix": "abc123",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "iam-test"},
        "requestId": "req", "routeKey": format!("{method} {route}"), "stage": "$default",
        "time": "30/Nov/2026:10:00:00 +0000", "timeEpoch": 1_796_032_800_000_i64,
    });
    if let Some(a) = authorizer {
        context["authorizer"] = json!({"lambda": a});
    }
    let event = json!({
        "version": "2.0", "routeKey": format!("{method} {route}"), "rawPath": path,
        "rawQueryString": query, "headers": headers, "requestContext": context,
        "body": body.map(Value::to_string), "isBase64Encoded": false,
    });
    let req = lambda_http::request::from_str(&event.to_string())
        .unwrap_or_else(|e| panic!("building the API Gateway event for {path}: {e}"));
    shared::lambda::to_http(req)
}

/// Whether the transformed template puts `endpoint`'s route behind a Lambda authorizer
/// (its HTTP API's definition names a security scheme other than `NONE`).
fn behind_authorizer(template: &Value, endpoint: Endpoint) -> bool {
    let (method, route) = endpoint.route();
    let security = &template["Resources"]["HttpApi"]["Properties"]["Body"]["paths"][route]
        [method.to_lowercase()]["security"];
    let schemes: Vec<&String> = security
        .as_array()
        .unwrap_or_else(|| panic!("the HTTP API has no route {method} {route}"))
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|s| s.keys())
        .collect();
    schemes.iter().any(|s| s.as_str() != "NONE")
}

/// Runs one HTTP function's handler as its Lambda does (`shared::lambda::run`), and
/// answers the status and body.
async fn serve(state: &AppState, endpoint: Endpoint, req: http::Request<Bytes>) -> (u16, String) {
    match endpoint {
        Endpoint::Export => {
            use futures::TryStreamExt;
            let response = api::export::serve(state, req).await;
            let status = response.status().as_u16();
            let chunks: Vec<Bytes> = response
                .into_body()
                .try_collect()
                .await
                .unwrap_or_else(|e| panic!("streaming the export: {e}"));
            (
                status,
                String::from_utf8_lossy(&chunks.concat()).into_owned(),
            )
        }
        Endpoint::IngestTraces | Endpoint::IngestMetrics => {
            let response = api::handle_bytes(state, req, Some(endpoint)).await;
            let status = response.status().as_u16();
            (
                status,
                String::from_utf8_lossy(response.body()).into_owned(),
            )
        }
        _ => {
            let response = api::handle(state, req, Some(endpoint)).await;
            (response.status().as_u16(), response.into_body())
        }
    }
}

/// A live item as the table's stream carries it (DynamoDB JSON), read straight from the
/// stand-in.
async fn stream_image(table: &str, pk: &str, sk: &str) -> Value {
    let response = reqwest::Client::new()
        .post(e2e_tests::dynamodb_endpoint())
        .header("x-amz-target", "DynamoDB_20120810.GetItem")
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=local/20261130/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(json!({"TableName": table, "Key": {"PK": {"S": pk}, "SK": {"S": sk}}}).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading {pk}/{sk} for a stream image: {e}"));
    let item: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("reading the GetItem answer for {pk}/{sk}: {e}"));
    assert!(item["Item"].is_object(), "no item {pk}/{sk}: {item}");
    item["Item"].clone()
}

/// What each function is asked to do, in an order that leaves data for the next.
enum Scenario {
    /// An HTTP API route (or the export's URL): path and query, and a JSON body.
    Http(String, Option<Value>),
    Authorizer,
    WsConnect,
    WsDisconnect,
    /// A dashboard's watch message on a delta connection.
    WsWatch,
    Collector,
    Evaluator,
    Notifier,
    Broadcaster,
    /// The ingest function's own URL: path and JSON body, with an ingest key.
    IngestUrl(String, Value),
}

#[tokio::test]
async fn every_function_performs_only_actions_its_role_grants() {
    let graph = e2e_tests::deploy_graph("infra/template.yaml");
    let template = &graph.template;
    let recorder = Recorder::start(e2e_tests::dynamodb_endpoint(), "WebSocketApi").await;
    // As notification_channels.rs: before any SES or SNS client is built; this binary's
    // only test.
    for (k, v) in [
        ("AWS_ENDPOINT_URL_SESV2", recorder.url.as_str()),
        ("AWS_ENDPOINT_URL_SNS", recorder.url.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        std::env::set_var(k, v);
    }

    // The table, and what a running deployment would hold, written straight to the
    // stand-in (not recorded).
    let backend = e2e_tests::dynamo_backend().await;
    let table = backend.table().to_owned();
    let seed = AppState::new(Store::new(Arc::new(backend)), Config::default());
    let now = chrono::Utc::now().timestamp_millis();
    let key = |scopes: &[&str], name: &str| {
        let store = seed.store.clone();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let name = name.to_owned();
        async move {
            store
                .new_api_key(TENANT, &scopes, &name, now)
                .await
                .unwrap_or_else(|e| panic!("seeding key {name}: {e}"))
        }
    };
    let admin = key(&["admin"], "ops").await;
    let viewer = key(&["read"], "wall screen").await;
    let for_authorizer = key(&["read"], "authorizer check").await;
    let for_export = key(&["read"], "export script").await;
    let for_ingest_url = key(&["ingest"], "ingest url").await;
    let authorizer_context = shared::api::auth::authorizer_context(&shared::api::auth::Principal {
        tenant: TENANT.to_owned(),
        name: "ops".to_owned(),
        scopes: vec!["admin".to_owned()],
        key_id: admin.key_id.clone(),
    });
    for (id, message) in [
        ("alert_1", "High CPU usage: 95%"),
        ("alert_2", "Disk almost full"),
    ] {
        let alert = AlertRecord {
            message: message.into(),
            condition: format!("test_{id}"),
            ..e2e_tests::seed::alert(id, now - 60_000)
        };
        e2e_tests::seed::save_alert(&seed.store, TENANT, &alert).await;
    }
    let silence = e2e_tests::seed::silence("s_fixed", now, 60);
    e2e_tests::seed::put_silence(&seed.store, TENANT, &silence).await;
    // Mail through SES from a verified address, and an SNS topic under the prefix the
    // template allows.
    // Straight to the stand-in (not recorded).
    e2e_tests::aws_query(
        "ses",
        &[
            ("Action", "VerifyEmailIdentity"),
            ("EmailAddress", "alerts@example.com"),
            ("Version", "2010-12-01"),
        ],
    )
    .await;
    let created = e2e_tests::aws_query(
        "sns",
        &[
            ("Action", "CreateTopic"),
            (
                "Name",
                &format!("health-alerts-{:08x}", rand::random::<u32>()),
            ),
            ("Version", "2010-03-31"),
        ],
    )
    .await;
    let topic = created
        .split("<TopicArn>")
        .nth(1)
        .and_then(|t| t.split("</TopicArn>").next())
        .unwrap_or_else(|| panic!("no topic ARN in {created}"))
        .to_owned();
    for (id, destination) in [
        (
            "mail",
            Destination::Email {
                to: vec!["ops@example.com".into()],
            },
        ),
        (
            "topic",
            Destination::Sns {
                topic_arn: topic.clone(),
            },
        ),
    ] {
        e2e_tests::seed::channel(&seed.store, TENANT, id, id, destination).await;
    }
    let secret = e2e_tests::seed::ack_secret(&seed.store).await;
    // An old-format link: it acknowledges whatever the alert is now.
    let claim = e2e_tests::seed::ack_claim(TENANT, "alert_2", "hook", now);
    let ack_token = shared::notify::token::sign(&secret, &claim);
    let badge = seed
        .store
        .create_badge(TENANT, "agent", "a1", now)
        .await
        .unwrap_or_else(|e| panic!("seeding a badge: {e}"));
    let sink = e2e_tests::Sink::start().await;
    let probe_target = e2e_tests::ProbeTarget::start().await;

    let ns = |ms: i64| (ms * 1_000_000).to_string();
    let attr = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let http = |path: &str, body: Option<Value>| Scenario::Http(path.to_owned(), body);
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("authorizer", Scenario::Authorizer),
        ("ws-connect", Scenario::WsConnect),
        ("ws-watch", Scenario::WsWatch),
        (
            "ingest-events",
            http(
                "/api/health/events",
                Some(json!({"events": e2e_tests::seed::one_event_of_each_kind()})),
            ),
        ),
        (
            "ingest-traces",
            http(
                "/v1/traces",
                Some(json!({"resourceSpans": [{
                    "resource": {"attributes": [attr("service.name", "svc")]},
                    "scopeSpans": [{"spans": [
                        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "invoke_agent a1", "kind": 1,
                         "startTimeUnixNano": ns(now - 2_000), "endTimeUnixNano": ns(now - 1_000),
                         "attributes": [attr("gen_ai.operation.name", "invoke_agent"), attr("gen_ai.agent.id", "a1")]}
                    ]}]
                }]})),
            ),
        ),
        (
            "ingest-metrics",
            http(
                "/v1/metrics",
                Some(json!({"resourceMetrics": [{
                    "resource": {"attributes": [attr("host.name", "h2")]},
                    "scopeMetrics": [{"metrics": [
                        {"name": "system.cpu.utilization", "gauge": {"dataPoints": [{"timeUnixNano": ns(now - 1_000), "asDouble": 0.5}]}},
                        {"name": "system.memory.utilization", "gauge": {"dataPoints": [{"timeUnixNano": ns(now - 1_000), "asDouble": 0.25}]}}
                    ]}]
                }]})),
            ),
        ),
        (
            "ingest-direct",
            Scenario::IngestUrl(
                "/api/health/events".into(),
                json!({"events": e2e_tests::seed::one_event_of_each_kind()}),
            ),
        ),
        (
            "put-agent",
            http(
                "/api/health/agents/a1",
                Some(json!({"agent_name": "A one"})),
            ),
        ),
        (
            "put-integration",
            http(
                "/api/health/integrations/probed",
                Some(json!({"integration_name": "Probed", "probe": {"url": probe_target.url()}})),
            ),
        ),
        ("get-agent-health", http("/api/health/agent/a1", None)),
        ("get-all-agents", http("/api/health/agents", None)),
        (
            "get-integrations-health",
            http("/api/health/integrations", None),
        ),
        ("get-system-metrics", http("/api/health/system", None)),
        ("get-summary", http("/api/health/summary", None)),
        (
            "get-active-alerts",
            http("/api/health/alerts?severity=critical", None),
        ),
        (
            "get-health-history",
            http("/api/health/history/agent?entity_id=a1&days=7", None),
        ),
        ("healthz", http("/healthz", None)),
        (
            "get-failures",
            http("/api/health/failures?source_type=agent&source_id=a1", None),
        ),
        (
            "get-hourly",
            http("/api/health/hourly?source_type=integration&hours=3", None),
        ),
        ("get-report", http("/api/health/reports?period=week", None)),
        ("get-metrics", http("/metrics", None)),
        (
            "acknowledge-alert",
            http(
                "/api/health/alerts/alert_1/acknowledge",
                Some(json!({"notes": "on it"})),
            ),
        ),
        (
            "create-key",
            http(
                "/api/health/keys",
                Some(json!({"name": "ops laptop", "scopes": ["read"]})),
            ),
        ),
        ("list-keys", http("/api/health/keys", None)),
        (
            "put-channel",
            http(
                "/api/health/channels/hook",
                Some(json!({"type": "webhook", "url": sink.url("/hook"), "secret": "s3cret"})),
            ),
        ),
        ("list-channels", http("/api/health/channels", None)),
        ("test-channel", http("/api/health/channels/hook/test", None)),
        (
            "put-notification-rule",
            http(
                "/api/health/notification-rules/all",
                Some(json!({"channels": ["hook", "mail", "topic"], "group_wait_s": 0})),
            ),
        ),
        (
            "list-notification-rules",
            http("/api/health/notification-rules", None),
        ),
        (
            "create-silence",
            http(
                "/api/health/silences",
                Some(
                    json!({"match": {"source_type": ["agent"]}, "ends_at": shared::time::format_rfc3339(now + 600_000), "comment": "deploy"}),
                ),
            ),
        ),
        ("list-silences", http("/api/health/silences", None)),
        ("delete-silence", http("/api/health/silences/s_fixed", None)),
        ("collector", Scenario::Collector),
        ("evaluator", Scenario::Evaluator),
        ("notifier", Scenario::Notifier),
        ("broadcaster", Scenario::Broadcaster),
        (
            "get-alert-notifications",
            http("/api/health/alerts/alert_2/notifications", None),
        ),
        (
            "ack-page",
            http(&format!("/api/health/ack/{ack_token}"), None),
        ),
        (
            "ack-confirm",
            http(&format!("/api/health/ack/{ack_token}"), None),
        ),
        (
            "put-slo",
            http(
                "/api/health/slos/slack-p99",
                Some(
                    json!({"source_type": "integration", "source_id": "slack", "objective": "latency", "threshold_ms": 200, "percentile": 99}),
                ),
            ),
        ),
        ("list-slos", http("/api/health/slos", None)),
        ("delete-slo", http("/api/health/slos/slack-p99", None)),
        (
            "create-badge",
            http(
                "/api/health/badges",
                Some(json!({"source_type": "agent", "source_id": "a1"})),
            ),
        ),
        ("list-badges", http("/api/health/badges", None)),
        (
            "get-badge",
            http(
                &format!("/api/health/badge/{}?show=uptime_24h", badge.token),
                None,
            ),
        ),
        (
            "revoke-badge",
            http(&format!("/api/health/badges/{}", badge.info.badge_id), None),
        ),
        (
            "export",
            http("/api/health/export?kind=history&format=ndjson", None),
        ),
        (
            "revoke-key",
            http(&format!("/api/health/keys/{}", viewer.key_id), None),
        ),
        (
            "delete-notification-rule",
            http("/api/health/notification-rules/all", None),
        ),
        ("delete-channel", http("/api/health/channels/hook", None)),
        ("ws-disconnect", Scenario::WsDisconnect),
    ];

    let deployment = Deployment {
        template,
        parameters: template["Parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, p)| {
                (
                    name.clone(),
                    p["Default"]
                        .as_str()
                        .map_or_else(|| text_of(&p["Default"]), str::to_owned),
                )
            })
            .chain(
                [
                    // Mail through SES and probes of local targets, as a deployment
                    // configured for them would; cycles every second to keep this short.
                    ("EmailSender", "Health Monitor <alerts@example.com>"),
                    ("EmailSenderAddress", "alerts@example.com"),
                    ("EmailIdentity", "example.com"),
                    ("ProbeAllowedAddresses", "127.0.0.1"),
                    ("PollingInterval", "1"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
            )
            .collect(),
        table: table.clone(),
    };
    let deployed = e2e_tests::deployed_handlers(template);
    let mut refused: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let lambda_client = |recorder: &Recorder| {
        aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::Config::builder()
                .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
                .endpoint_url(&recorder.url)
                .region(aws_sdk_lambda::config::Region::new(REGION))
                .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                    "local", "local", None, None, "static",
                ))
                .build(),
        )
    };
    for (handler, scenario) in &scenarios {
        let Some((function, _)) = deployed.iter().find(|(_, h)| h == handler) else {
            panic!("no function of the template runs {handler}");
        };
        run.push(handler);
        // The function's configuration is its environment in the template.
        let mut environment = deployment.environment(function);
        // A scheduled invocation runs for a second here, not the deployed minute.
        environment.insert("COLLECTOR_INVOCATION_SECONDS".into(), "1".into());
        let config = Config::from_lookup(|k| environment.get(k).cloned())
            .unwrap_or_else(|e| panic!("{function}'s environment in the template: {e}"));
        let client = DynamoBackend::client_for_endpoint(&recorder.url, REGION);
        let table_name = environment
            .get("HEALTH_TABLE")
            .unwrap_or_else(|| panic!("{function} has no HEALTH_TABLE"));
        let mut state = AppState::new(
            Store::new(Arc::new(DynamoBackend::new(client, table_name.clone()))),
            config,
        );
        // The Management API client as the template points it: the WebSocket stage's URL.
        let management = || {
            let endpoint = environment
                .get("WEBSOCKET_MANAGEMENT_ENDPOINT")
                .unwrap_or_else(|| panic!("{function} has no WEBSOCKET_MANAGEMENT_ENDPOINT"));
            let stage = endpoint.splitn(4, '/').nth(3).unwrap_or_default();
            shared::ws::broadcaster::Broadcaster::client_for_endpoint(&format!(
                "{}/{stage}",
                recorder.url
            ))
        };
        let invoker = |store: Store| {
            let function = environment
                .get("BROADCASTER_FUNCTION")
                .unwrap_or_else(|| panic!("{function} has no BROADCASTER_FUNCTION"));
            shared::ws::handover::Handover::Invoke(shared::ws::handover::Invoker::new(
                lambda_client(&recorder),
                function.clone(),
                store,
            ))
        };
        let deadline = chrono::Utc::now().timestamp_millis() + 90_000;
        match scenario {
            Scenario::Http(path, body) => {
                let endpoint = Endpoint::ALL
                    .into_iter()
                    .find(|e| e.function() == *handler)
                    .unwrap_or_else(|| panic!("{handler} is no endpoint"));
                if endpoint == Endpoint::RevokeKey {
                    // As shared::lambda::run: revoking closes the key's connections.
                    state.closer = Some(Arc::new(shared::ws::broadcaster::ManagementCloser::new(
                        management(),
                    )));
                }
                // Behind the authorizer as the template's route says; the export's URL
                // checks the key itself.
                let (authorizer, bearer) = match endpoint {
                    Endpoint::Export => (None, Some(for_export.key.as_str())),
                    _ if behind_authorizer(template, endpoint) => (Some(&authorizer_context), None),
                    _ => (None, None),
                };
                let req = http_request(endpoint, path, body.as_ref(), authorizer, bearer);
                let (status, answer) = serve(&state, endpoint, req).await;
                assert!(
                    (200..300).contains(&status),
                    "{function} answered {status} to {path}: {answer}"
                );
            }
            Scenario::Authorizer => {
                let event = include_str!("../../shared/tests/fixtures/authorizer-v2.json")
                    .replace("KEY", &for_authorizer.key);
                let request = serde_json::from_str(&event)
                    .unwrap_or_else(|e| panic!("reading the authorizer fixture: {e}"));
                let answer = shared::lambda::authorize(&state, &request)
                    .await
                    .unwrap_or_else(|e| panic!("authorizing a stored key: {e}"));
                assert!(answer.is_authorized, "the authorizer refused a stored key");
            }
            Scenario::WsConnect | Scenario::WsDisconnect => {
                let event = if matches!(scenario, Scenario::WsConnect) {
                    include_str!("../../shared/tests/fixtures/apigw-websocket-connect.json")
                } else {
                    include_str!("../../shared/tests/fixtures/apigw-websocket-disconnect.json")
                }
                .replace("KEY", &viewer.key);
                let event = serde_json::from_str(&event)
                    .unwrap_or_else(|e| panic!("reading the WebSocket fixture: {e}"));
                let answer = if matches!(scenario, Scenario::WsConnect) {
                    shared::lambda::ws_connect(&state, &event).await
                } else {
                    shared::lambda::ws_disconnect(&state, &event).await
                };
                assert_eq!(answer.status_code, 200, "{function}: {:?}", answer.body);
            }
            Scenario::WsWatch => {
                // A dashboard's connection, asking for deltas (ws-connect's stays a full one
                // for the broadcaster's turn).
                let dashboard = shared::store::connections::ConnectionRecord {
                    tenant: TENANT.to_owned(),
                    name: "wall".to_owned(),
                    connected_at: now,
                    key_id: None,
                    feed: shared::store::connections::Feed::Delta,
                    watch: None,
                };
                seed.store
                    .put_connection("WATCH123=", dashboard)
                    .await
                    .unwrap_or_else(|e| panic!("storing a delta connection: {e}"));
                let event = include_str!("../../shared/tests/fixtures/apigw-websocket-watch.json");
                let event = serde_json::from_str(&event.replace("AAAA1234=", "WATCH123="))
                    .unwrap_or_else(|e| panic!("reading the watch fixture: {e}"));
                let answer = shared::lambda::ws_watch(&state, &event).await;
                assert_eq!(answer.status_code, 200, "{function}: {:?}", answer.body);
            }
            Scenario::Collector => {
                let collector = shared::collector::Collector::new(&state)
                    .unwrap_or_else(|e| panic!("building the collector: {e}"));
                let handover = invoker(state.store.clone());
                let summary =
                    shared::lambda::collect(&state, &collector, Some(&handover), deadline).await;
                assert!(
                    summary.tenants_evaluated >= 1 && summary.tenants_failed == 0,
                    "{summary:?}"
                );
            }
            Scenario::Evaluator => {
                let key =
                    shared::store::layout::live(TENANT, shared::store::layout::Entity::Host, "h1");
                let image = stream_image(&table, &key.pk, &key.sk).await;
                let batch = json!({"Records": [{"eventName": "MODIFY", "dynamodb": {"NewImage": image, "OldImage": image}}]});
                let handover = invoker(state.store.clone());
                let outcome =
                    shared::lambda::evaluate_stream(&state, Some(&handover), &batch).await;
                assert!(outcome.tenants == 1 && outcome.failed == 0, "{outcome:?}");
            }
            Scenario::Notifier => {
                let notifier = shared::notify::Notifier::new(&state)
                    .unwrap_or_else(|e| panic!("building the notifier: {e}"));
                let summary = shared::lambda::notify(&state, &notifier, deadline).await;
                // Webhook, mail and topic each got the firing alerts.
                assert!(
                    summary.delivered >= 3 && summary.failed_attempts == 0,
                    "{summary:?}"
                );
            }
            Scenario::IngestUrl(path, body) => {
                let req = http_request(
                    Endpoint::IngestEvents,
                    path,
                    Some(body),
                    None,
                    Some(for_ingest_url.key.as_str()),
                );
                let answer = shared::lambda::ingest_direct(&state, req).await;
                assert!(
                    answer.status().is_success(),
                    "{function} answered {} to {path}: {:?}",
                    answer.status(),
                    answer.body()
                );
            }
            Scenario::Broadcaster => {
                let broadcaster =
                    shared::ws::broadcaster::Broadcaster::new(management(), state.store.clone());
                let report = broadcaster
                    .broadcast(TENANT, &[r#"{"type":"health:update","data":{}}"#])
                    .await
                    .unwrap_or_else(|e| panic!("broadcasting: {e}"));
                assert!(report.delivered >= 1, "{report:?}");
            }
        }
        let statements = deployment.statements(function);
        let mut calls = recorder.take();
        calls.sort();
        calls.dedup();
        assert!(
            !calls.is_empty(),
            "{function} performed no AWS action: the recorder saw nothing"
        );
        for call in calls {
            if !statements.iter().any(|s| grants(s, &call)) {
                refused.push(format!(
                    "{function} ({handler}) performs {} on {}, which its role does not grant",
                    call.action,
                    call.resources.join(" or ")
                ));
            }
        }
    }
    for (function, handler) in &deployed {
        assert!(
            run.contains(&handler.as_str()),
            "{function} ({handler}) was not run: give it a scenario"
        );
    }
    assert!(
        refused.is_empty(),
        "IAM in AWS would refuse what these functions do:\n{}",
        refused.join("\n")
    );
}

/// API Gateway may invoke each Lambda authorizer of the HTTP API: SAM grants it only with
/// `EnableFunctionDefaultPermissions`, and without it every route behind the authorizer
/// answers 500.
#[test]
fn api_gateway_may_invoke_the_http_apis_authorizer() {
    let graph = e2e_tests::deploy_graph("infra/template.yaml");
    let resources = graph.template["Resources"].as_object().unwrap_or_else(|| {
        panic!(
            "the transformed template has no resources: {:?}",
            graph.findings
        )
    });
    let mut authorizers = 0;
    for (api, resource) in resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::ApiGatewayV2::Api")
    {
        let schemes = resource["Properties"]["Body"]["components"]["securitySchemes"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (scheme, definition) in schemes {
            let uri = &definition["x-amazon-apigateway-authorizer"]["authorizerUri"];
            let Some(function) = uri
                .to_string()
                .split('"')
                .find(|s| {
                    resources
                        .get(*s)
                        .is_some_and(|r| r["Type"] == "AWS::Lambda::Function")
                })
                .map(str::to_owned)
            else {
                continue;
            };
            authorizers += 1;
            let permitted = resources.values().any(|p| {
                p["Type"] == "AWS::Lambda::Permission"
                    && [
                        &p["Properties"]["FunctionName"]["Ref"],
                        &p["Properties"]["FunctionName"]["Fn::GetAtt"][0],
                    ]
                    .contains(&&Value::String(function.clone()))
                    && p["Properties"]["Principal"] == "apigateway.amazonaws.com"
                    && p["Properties"]["Action"] == "lambda:InvokeFunction"
                    && p["Properties"]["SourceArn"]
                        .to_string()
                        .contains("/authorizers/")
                    && p["Properties"]["SourceArn"]
                        .to_string()
                        .contains(&format!("\"Ref\":\"{api}\""))
            });
            assert!(
                permitted,
                "{api}'s authorizer {scheme} runs {function}, which API Gateway may not invoke"
            );
        }
    }
    assert!(authorizers >= 1, "the HTTP API has no Lambda authorizer");
}
