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
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--api-key"));
    let out = sidecar()
        .args(["--once", "--interval", "0"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 0.01"));
    let too_long = "h".repeat(129);
    let out = sidecar()
        .args(["--once", "--host-id", &too_long])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 to 128 characters"), "{stderr}");
}
