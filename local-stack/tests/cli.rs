//! The `local-stack` binary as a user runs it: it prints the URL and a key, serves requests,
//! stops cleanly on Ctrl-C (SIGINT), keeps its key and data across restarts, and
//! `create-key` makes working keys.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Started {
    child: Child,
    url: String,
    key: String,
}

/// A test that fails midway must not leave the stack running (its output would keep the
/// test binary's pipes open and the run waiting).
impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start(data_dir: &std::path::Path) -> Started {
    start_with(data_dir, &[])
}

fn start_with(data_dir: &std::path::Path, args: &[&str]) -> Started {
    start_env(data_dir, args, &[("RUST_LOG", "warn")])
}

fn start_env(data_dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .args(args)
        .env("PORT", "0")
        .env("HEALTH_DATA_DIR", data_dir)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the local stack: {e}"));
    let Some(stdout) = child.stdout.take() else {
        panic!("the stack's stdout is not piped");
    };
    let mut lines = BufReader::new(stdout).lines();
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    let url = next()
        .strip_prefix("Listening on ")
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("first line is not 'Listening on <url>'"));
    let key = next()
        .strip_prefix("API key: ")
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("second line is not 'API key: <key>'"));
    assert_eq!(next(), format!("Dashboard: {url}/#key={key}"));
    Started { child, url, key }
}

fn interrupt(mut started: Started) -> std::process::ExitStatus {
    let pid = started.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "cannot send SIGINT");
    for _ in 0..100 {
        if let Ok(Some(status)) = started.child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = started.child.kill();
    panic!("the local stack did not stop within 5 s of SIGINT");
}

async fn put_agent(url: &str, key: &str, id: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .put(format!("{url}/api/health/agents/{id}"))
        .bearer_auth(key)
        .json(&serde_json::json!({"agent_name": "Kept"}))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or_else(|e| panic!("putting agent {id}: {e}"))
}

async fn get_agent(url: &str, key: &str, id: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let res = reqwest::Client::new()
        .get(format!("{url}/api/health/agent/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("getting agent {id}: {e}"));
    let status = res.status();
    (status, res.json().await.unwrap_or_default())
}

#[tokio::test]
async fn binds_the_host_given_and_keeps_the_banner_first_with_info_logs() {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    // Every address: reachable from containers; the banner names loopback.
    let started = start_env(
        dir.path(),
        &["--sidecar-interval", "0.2"],
        &[
            ("HOST", "0.0.0.0"),
            ("RUST_LOG", "info"),
            ("HEALTH_LOG_FORMAT", "text"),
        ],
    );
    assert!(
        started.url.starts_with("http://127.0.0.1:"),
        "{}",
        started.url
    );
    let status = reqwest::get(format!("{}/healthz", started.url))
        .await
        .map(|r| r.status())
        .expect("asking /healthz");
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(interrupt(started).success());
}

#[tokio::test]
async fn an_unknown_log_format_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .env("PORT", "0")
        .env("HEALTH_DATA_DIR", dir.path())
        .env("HEALTH_LOG_FORMAT", "xml")
        .output()
        .expect("running local-stack with HEALTH_LOG_FORMAT=xml");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HEALTH_LOG_FORMAT"), "{stderr}");
}

#[tokio::test]
async fn prints_url_and_key_stops_on_ctrl_c_and_keeps_key_and_data() {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let first = start(dir.path());
    assert!(first.url.starts_with("http://127.0.0.1:"), "{}", first.url);
    assert!(first.key.starts_with("ahm_"));
    assert_eq!(
        put_agent(&first.url, &first.key, "survivor").await,
        reqwest::StatusCode::OK
    );
    let key = first.key.clone();
    assert!(interrupt(first).success(), "Ctrl-C must exit with status 0");

    let second = start(dir.path());
    assert_eq!(second.key, key, "the key must be the same after a restart");
    let (status, body) = get_agent(&second.url, &second.key, "survivor").await;
    assert_eq!(
        (status, body["agent_name"].as_str()),
        (reqwest::StatusCode::OK, Some("Kept"))
    );
    assert!(interrupt(second).success());
}

#[tokio::test]
async fn create_key_prints_a_key_with_the_given_tenant_and_scopes() {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let create_key = |scopes: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_local-stack"))
            .args(["create-key", "--tenant", "acme"])
            .args(scopes)
            .env("HEALTH_DATA_DIR", dir.path())
            .output()
            .expect("running local-stack create-key")
    };
    let key = stdout_of(&create_key(&["--scopes", "read", "--name", "viewer"]))
        .trim()
        .to_owned();
    assert!(key.starts_with("ahm_"), "{key}");

    let bad = create_key(&["--scopes", "root"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope \"root\""));

    let stack = start(dir.path());
    let (status, _) = get_agent(&stack.url, &key, "nobody").await;
    assert_eq!(
        status,
        reqwest::StatusCode::NOT_FOUND,
        "a read key is accepted for reads"
    );
    assert_eq!(
        put_agent(&stack.url, &key, "x").await,
        reqwest::StatusCode::FORBIDDEN
    );
    assert!(interrupt(stack).success());
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .args(args)
        .env_remove("HEALTH_DATA_DIR")
        .env_remove("HEALTH_TABLE")
        .output()
        .unwrap_or_else(|e| panic!("running local-stack {args:?}: {e}"))
}

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// While the stack runs (and holds the database), the key commands reach it through its
/// control socket: keys are created, listed and revoked, and a revocation is immediate.
#[tokio::test]
async fn key_commands_work_while_the_stack_runs() {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let data = dir.path().to_string_lossy().into_owned();
    let stack = start(dir.path());
    // `--data-dir` after the subcommand, as users type it.
    let key = stdout_of(&cli(&[
        "create-key",
        "--tenant",
        "acme",
        "--scopes",
        "read",
        "--name",
        "viewer",
        "--data-dir",
        &data,
    ]))
    .trim()
    .to_owned();
    assert!(key.starts_with("ahm_"), "{key}");
    let (status, _) = get_agent(&stack.url, &key, "nobody").await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "the new key works");

    let list_keys = || {
        stdout_of(&cli(&[
            "list-keys",
            "--tenant",
            "acme",
            "--data-dir",
            &data,
        ]))
    };
    let listed = list_keys();
    let row = listed
        .lines()
        .find(|l| l.contains("viewer"))
        .unwrap_or_else(|| panic!("not listed:\n{listed}"));
    assert!(!listed.contains(&key), "a listing shows a secret");
    let key_id = row.split('\t').next().unwrap_or_default().to_owned();
    assert!(key_id.starts_with("key_"), "{row}");

    let revoked = stdout_of(&cli(&[
        "revoke-key",
        "--tenant",
        "acme",
        &key_id,
        "--data-dir",
        &data,
    ]));
    assert!(
        revoked.starts_with(&format!("revoked {key_id} at ")),
        "{revoked}"
    );
    let (status, _) = get_agent(&stack.url, &key, "nobody").await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "revoked at once");

    let unknown = cli(&[
        "revoke-key",
        "--tenant",
        "acme",
        "key_0000000000000000",
        "--data-dir",
        &data,
    ]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no key key_0000000000000000"));
    assert!(interrupt(stack).success());

    // Stopped, the same commands open the store themselves.
    let listed = list_keys();
    assert!(
        listed.contains(&key_id) && listed.contains("viewer"),
        "{listed}"
    );
}

/// `create-key --dynamodb-table` says what is missing instead of "dispatch failure". No
/// request leaves this machine: the endpoint is a closed local port, and without one the
/// checks stop before any request (instance metadata is turned off).
#[tokio::test]
async fn dynamodb_key_commands_name_what_is_missing() {
    let home = tempfile::tempdir().expect("creating a temp dir for HOME");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_local-stack"));
        cmd.args(args)
            .env("HOME", home.path())
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for var in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "HEALTH_TABLE",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running local-stack {args:?}: {e}"));
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let create = [
        "create-key",
        "--tenant",
        "acme",
        "--dynamodb-table",
        "health",
    ];
    let err = run(&create, &[]);
    assert!(err.contains("no AWS region"), "{err}");
    let err = run(&create, &[("AWS_REGION", "eu-west-1")]);
    assert!(err.contains("no AWS credentials"), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| format!("http://{a}"))
        .expect("finding a closed local port");
    let mut args = create.to_vec();
    args.extend(["--dynamodb-endpoint", &closed]);
    let err = run(&args, &[]);
    assert!(
        err.contains(&format!("cannot reach DynamoDB at {closed}")),
        "{err}"
    );
}

/// `--demo` fills the dashboard at once: the demo's agents report within seconds, and the
/// page is served at `/` with its assets, and the demo inbox at `/demo/inbox`.
#[tokio::test]
async fn demo_mode_feeds_agents_and_serves_the_dashboard() {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let started = start_with(dir.path(), &["--demo", "--sidecar-interval", "0"]);
    let client = reqwest::Client::new();
    let mut agents = serde_json::Value::Null;
    for _ in 0..100 {
        agents = client
            .get(format!("{}/api/health/agents", started.url))
            .bearer_auth(&started.key)
            .send()
            .await
            .expect("listing the demo's agents")
            .json()
            .await
            .unwrap_or_default();
        if agents.as_array().is_some_and(|a| a.len() == 8) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<&str> = agents
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["agent_name"].as_str())
        .collect();
    assert!(names.contains(&"Sales Assistant"), "{agents}");
    assert_eq!(names.len(), 8, "{agents}");
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/vendor/chart.umd.min.js", "text/javascript"),
        ("/config.js", "text/javascript"),
        ("/demo/inbox", "text/html"),
    ] {
        let res = client
            .get(format!("{}{path}", started.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(res.status(), 200, "{path}");
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    assert!(interrupt(started).success());
}

/// A loopback server answering every request with 200, counting requests by path.
async fn answering() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("binding the target: {e}"));
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("reading the target's port: {e}"));
    let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&paths);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(path);
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (port, paths)
}

/// With `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` naming a proxy, webhooks and probes
/// still connect to their target directly (a proxy would resolve the name itself and skip
/// the check of the address connected to), and an allow-list entry with a port opens that
/// port only.
#[tokio::test]
async fn webhooks_and_probes_ignore_proxy_variables_and_allowed_ports_are_exact() {
    // A "proxy" that keeps the first line of each request it gets and serves none.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("binding the proxy: {e}"));
    let proxy_port = proxy.local_addr().map(|a| a.port()).unwrap_or(0);
    let proxied = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let proxied = std::sync::Arc::clone(&proxied);
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            while let Ok((mut socket, _)) = proxy.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                let line = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("(nothing sent)")
                    .to_owned();
                proxied.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
    }
    let through_proxy = || proxied.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (target, paths) = answering().await;
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let allowed = format!("127.0.0.1:{target}");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temp dir: {e}"));
    // Without the in-process sidecar: it posts to the API as a sidecar on another host
    // would, through the host's proxy if it has one, which is not what is tested here.
    let started = start_env(
        dir.path(),
        &["--sidecar-interval", "0"],
        &[
            ("RUST_LOG", "warn"),
            ("HTTP_PROXY", &proxy_url),
            ("HTTPS_PROXY", &proxy_url),
            ("ALL_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
            ("PROBE_ALLOWED_ADDRESSES", &allowed),
            ("HEALTH_POLLING_INTERVAL", "1"),
        ],
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("the test's own client: {e}"));
    let put = |path: String, body: serde_json::Value| {
        http.put(format!("{}{path}", started.url))
            .bearer_auth(&started.key)
            .json(&body)
            .send()
    };
    let saved = put(
        "/api/health/channels/hook".into(),
        serde_json::json!({"type": "webhook", "url": format!("http://127.0.0.1:{target}/hook"), "secret": "s"}),
    )
    .await
    .unwrap_or_else(|e| panic!("saving the webhook channel: {e}"));
    assert_eq!(saved.status(), 200, "the allowed address and port");
    let tested: serde_json::Value = http
        .post(format!("{}/api/health/channels/hook/test", started.url))
        .bearer_auth(&started.key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("testing the channel: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("reading the test result: {e}"));
    assert_eq!(tested["delivered"], true, "{tested}");

    let probe = put(
        "/api/health/integrations/local-api".into(),
        serde_json::json!({"integration_name": "Local API", "probe": {"url": format!("http://127.0.0.1:{target}/health")}}),
    )
    .await
    .unwrap_or_else(|e| panic!("registering the probe: {e}"));
    assert_eq!(
        probe.status(),
        200,
        "registering a probe of the allowed port"
    );
    // The collector runs every second; its probe reaches the target.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !paths
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|p| p == "/health")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no probe reached the target within 30 s; the proxy got {:?}",
            through_proxy()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The same address on another port (the proxy's) is not open.
    let refused = put(
        "/api/health/channels/other".into(),
        serde_json::json!({"type": "webhook", "url": format!("http://127.0.0.1:{proxy_port}/hook"), "secret": "s"}),
    )
    .await
    .unwrap_or_else(|e| panic!("saving a channel to another port: {e}"));
    assert_eq!(
        refused.status(),
        400,
        "saving a channel to another port of the allowed address"
    );
    assert_eq!(
        through_proxy(),
        Vec::<String>::new(),
        "nothing went through the proxy"
    );
    assert!(interrupt(started).success());
}
