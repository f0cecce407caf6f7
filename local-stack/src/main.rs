//! `cargo run`: the whole product on this machine. See `--help`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use local_stack::{start, Options};
use shared::config::Config;
use shared::store::dynamodb::DynamoBackend;
use shared::store::keys::{check_tenant, SCOPES};
use shared::store::Store;
use shared::time::{Clock, SystemClock};

/// The agent health monitor, run locally on an embedded store.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on; 0.0.0.0 (or ::) reaches it from containers and other hosts.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Seconds a client may take to send a request's headers; also how long an idle
    /// kept-alive connection stays open.
    #[arg(long, env = "HEALTH_HEADER_TIMEOUT", default_value_t = 30)]
    header_timeout: u64,
    /// Most connections open at once (WebSockets included).
    #[arg(long, env = "HEALTH_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// MiB of database pages the embedded store keeps in memory.
    #[arg(long, env = "HEALTH_CACHE_MB", default_value_t = 32)]
    cache_mb: usize,
    /// Where the database and the local API key are kept.
    #[arg(long, env = "HEALTH_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Seconds between samples of this host by the in-process sidecar; 0 turns it off.
    #[arg(long, env = "HEALTH_SIDECAR_INTERVAL", default_value_t = 30.0)]
    sidecar_interval: f64,
    /// Feed a demo fleet (8 agents, 8 integrations, 2 hosts) with incidents that raise and
    /// resolve alerts every few minutes. Collector cycles every 10 s unless
    /// HEALTH_POLLING_INTERVAL says otherwise.
    #[arg(long, env = "HEALTH_DEMO")]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates an API key for a tenant and prints it once. Only its hash is stored.
    CreateKey {
        /// The tenant (1 to 64 of a-z, 0-9, - and _).
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes: read, ingest, admin.
        #[arg(long, value_delimiter = ',', default_value = "read,ingest")]
        scopes: Vec<String>,
        /// Who holds the key (shown as the acknowledger of alerts).
        #[arg(long, default_value = "api-key")]
        name: String,
        /// Store the key in this DynamoDB table instead of the embedded store.
        #[arg(long, env = "HEALTH_TABLE")]
        dynamodb_table: Option<String>,
        /// Endpoint of a DynamoDB-compatible server (default: AWS, from the environment).
        #[arg(long, requires = "dynamodb_table")]
        dynamodb_endpoint: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        None => serve(cli).await,
        Some(Command::CreateKey {
            tenant,
            scopes,
            name,
            dynamodb_table,
            dynamodb_endpoint,
        }) => {
            check_tenant(&tenant)?;
            if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                return Err(
                    format!("unknown scope \"{bad}\"; scopes are read, ingest and admin").into(),
                );
            }
            let store = match dynamodb_table {
                Some(table) => {
                    let client = match dynamodb_endpoint {
                        Some(url) => DynamoBackend::client_for_endpoint(&url, "us-east-1"),
                        None => DynamoBackend::client_from_env().await,
                    };
                    Store::new(Arc::new(DynamoBackend::new(client, table)))
                }
                None => local_stack::open_store(&cli.data_dir)?,
            };
            let key = store
                .create_api_key(&tenant, &scopes, &name, SystemClock.now_ms())
                .await?;
            println!("{key}");
            Ok(())
        }
    }
}

async fn serve(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let (demo, sidecar_interval) = (cli.demo, cli.sidecar_interval);
    shared::telemetry::init();
    let mut config = Config::from_env()?;
    if demo && std::env::var_os("HEALTH_POLLING_INTERVAL").is_none() {
        // The demo's incidents last a minute or two: cycles every 10 s show them promptly.
        config.polling_interval_secs = 10;
    }
    let running = start(Options {
        addr: SocketAddr::from((cli.host, cli.port)),
        data_dir: cli.data_dir,
        config,
        clock: None,
        sidecar: (sidecar_interval.is_finite() && sidecar_interval > 0.0)
            .then(|| std::time::Duration::from_secs_f64(sidecar_interval.max(0.01))),
        demo,
        limits: local_stack::Limits {
            header_timeout: std::time::Duration::from_secs(cli.header_timeout.max(1)),
            max_connections: cli.max_connections.max(1),
            cache_bytes: cli.cache_mb.max(1) << 20,
        },
    })
    .await?;
    // Written without println!, which panics if whoever started us closed the pipe.
    let banner = format!(
        "Listening on {}\nAPI key: {}\nDashboard: {}\n",
        running.url(),
        running.api_key,
        running.dashboard_url()
    );
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    shutdown_signal().await;
    running.stop().await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
