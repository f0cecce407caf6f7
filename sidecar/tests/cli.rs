//! The `health-sidecar` binary as an operator runs it.

use std::process::Command;

fn sidecar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_health-sidecar"))
}

#[test]
fn once_prints_one_host_sample_event_as_json() {
    let out = sidecar()
        .args(["--once", "--host-id", "web-1"])
        .env_remove("HEALTH_API_KEY")
        .output()
        .unwrap_or_else(|e| panic!("cannot run health-sidecar: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(event["type"], "host.sample");
    assert_eq!(event["host_id"], "web-1");
    assert!(event["event_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("web-1:")));
    for field in ["cpu_usage", "memory_usage", "disk_usage"] {
        let v = event[field].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&v), "{field} = {v}");
    }
    assert_eq!(event["load_average"].as_array().map(Vec::len), Some(3));
    assert!(event["uptime_seconds"].as_u64().is_some_and(|u| u > 0));
}

#[test]
fn without_a_key_or_with_a_bad_interval_or_host_id_it_says_what_is_wrong() {
    let out = sidecar()
        .env_remove("HEALTH_API_KEY")
        .output()
        .expect("running health-sidecar without a key");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--api-key"));
    let out = sidecar()
        .args(["--once", "--interval", "0"])
        .output()
        .expect("running health-sidecar with interval 0");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 0.01"));
    let too_long = "h".repeat(129);
    let out = sidecar()
        .args(["--once", "--host-id", &too_long])
        .output()
        .expect("running health-sidecar with a 129-character host id");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 to 128 characters"), "{stderr}");
}

/// Answers every request with 401 and the API's error body, as the monitor does for a bad
/// key; the sidecar must log the status as a number and the API's reason.
#[test]
fn a_refused_key_is_logged_with_the_status_and_the_apis_reason() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback listener");
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .expect("reading the listener's address")
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let body = r#"{"error":{"code":"unauthorized","message":"unknown API key"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let mut child = sidecar()
        .args([
            "--api-url",
            &url,
            "--api-key",
            "ahm_wrong",
            "--interval",
            "0.2",
            "--host-id",
            "web-1",
        ])
        .env("HEALTH_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run health-sidecar: {e}"));
    let Some(stdout) = child.stdout.take() else {
        panic!("the sidecar's stdout is not piped");
    };
    let mut refused = None;
    for line in BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take(20)
    {
        if line.contains("refused the samples") {
            refused = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = refused.unwrap_or_else(|| panic!("no refusal logged"));
    let log: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(log["fields"]["status"], "401", "{line}");
    assert_eq!(log["fields"]["reason"], "unknown API key", "{line}");
    assert!(!line.contains("Some("), "{line}");
}
