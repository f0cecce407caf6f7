//! The local stack binary (release build, started by `scripts/bench`) as its own process,
//! so what a benchmark measures of it (resident memory) is its own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Where `scripts/bench` builds the stack.
pub const BINARY: &str = "target/release/local-stack";

/// A running local stack on a fresh data directory; stopped when dropped.
pub struct LocalStack {
    /// Its base URL.
    pub url: String,
    /// The API key it printed (tenant `local`).
    pub key: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl LocalStack {
    /// Starts the stack on a free port with `env` added (the sidecar off, warnings only).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a data directory: {e}"));
        let mut child = Command::new(BINARY)
            .env("PORT", "0")
            .env("HEALTH_DATA_DIR", dir.path())
            .env("HEALTH_SIDECAR_INTERVAL", "0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY} (scripts/bench builds it): {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("the stack's stdout is not piped");
        };
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let url = lines
            .next()
            .and_then(|l| l.strip_prefix("Listening on ").map(str::to_owned))
            .unwrap_or_else(|| panic!("the stack printed no \"Listening on\" banner"));
        let key = lines
            .next()
            .and_then(|l| l.strip_prefix("API key: ").map(str::to_owned))
            .unwrap_or_else(|| panic!("the stack printed no API key"));
        // Keep reading so the stack never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            url,
            key,
            child,
            dir,
        }
    }

    /// The stack's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new key of `tenant` with `scopes` (comma-separated), made through the stack's CLI.
    pub fn create_key(&self, tenant: &str, scopes: &str) -> String {
        let out = Command::new(BINARY)
            .args(["create-key", "--tenant", tenant, "--scopes", scopes])
            .env("HEALTH_DATA_DIR", self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("creating a key for {tenant}: {e}"));
        let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            !key.is_empty(),
            "creating a key for {tenant}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        key
    }
}

/// A process's resident set (`field` `VmRSS`: now; `VmHWM`: its peak), in MiB; 0 once it
/// is gone.
pub fn memory_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
