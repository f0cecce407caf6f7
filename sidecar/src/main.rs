//! `health-sidecar`: reports this host's CPU, memory, disk, load and uptime to the agent
//! health monitor every `--interval` seconds. See `--help`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use health_sidecar::{host_name, run, Options, Sampler, Stats};

#[derive(Debug, Parser)]
#[command(name = "health-sidecar", version, about)]
struct Cli {
    /// Base URL of the monitor's API.
    #[arg(long, env = "HEALTH_API_URL", default_value = "http://127.0.0.1:3000")]
    api_url: String,
    /// API key with the `ingest` scope.
    #[arg(
        long,
        env = "HEALTH_API_KEY",
        hide_env_values = true,
        required_unless_present = "once"
    )]
    api_key: Option<String>,
    /// How this host is named in the monitor (default: the host name).
    #[arg(long, env = "HEALTH_HOST_ID")]
    host_id: Option<String>,
    /// Seconds between samples (fractions allowed).
    #[arg(long, env = "HEALTH_SIDECAR_INTERVAL", default_value_t = 30.0, value_parser = positive_seconds)]
    interval: f64,
    /// Samples kept while the API is unreachable (default: one hour of samples).
    #[arg(long, env = "HEALTH_SIDECAR_BUFFER")]
    buffer: Option<usize>,
    /// Print one sample as JSON and exit.
    #[arg(long)]
    once: bool,
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.01 => Ok(v),
        _ => Err(format!(
            "{text:?} is not a number of seconds of at least 0.01"
        )),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let host_id = cli.host_id.unwrap_or_else(host_name);
    // The API would refuse every sample of an invalid host id: say so now, not per batch.
    if let Err(e) = shared::domain::ids::check_id(&host_id) {
        eprintln!("health-sidecar: host id {host_id:?} {e} (set --host-id)");
        return ExitCode::FAILURE;
    }
    if cli.once {
        return match Sampler::new().await {
            Ok(mut sampler) => {
                let now = shared::time::Clock::now_ms(&shared::time::SystemClock);
                println!(
                    "{}",
                    health_sidecar::delivery::sample_event(&host_id, &sampler.sample(), now)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("health-sidecar: {e}");
                ExitCode::FAILURE
            }
        };
    }
    shared::telemetry::init();
    let interval = Duration::from_secs_f64(cli.interval);
    let options = Options {
        api_url: cli.api_url,
        api_key: cli.api_key.unwrap_or_default(),
        host_id,
        interval,
        buffer: cli
            .buffer
            .unwrap_or_else(|| Options::hour_of_samples(interval)),
        check_api: true,
    };
    tracing::info!(host_id = %options.host_id, api_url = %options.api_url, interval_s = cli.interval, buffer = options.buffer, "sidecar started");
    match run(options, Arc::new(Stats::default()), stop_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "sidecar failed");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (systemd, containers) or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
