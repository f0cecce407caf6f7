//! `cargo run`: the whole product on this machine. See `--help`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use local_stack::control::{self, Request};
use local_stack::{start, Options};
use shared::config::Config;
use shared::store::dynamodb::DynamoBackend;
use shared::store::Store;
use shared::AppState;

/// jemalloc, not the system's malloc: under steady ingest glibc's arenas kept what the
/// collector's per-second reads freed (32 MiB in use, 186 MiB resident after 8 minutes of
/// `bench soak`), while jemalloc returns freed pages to the system within seconds (its
/// background thread purges them even when the process is idle).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Seconds a request's body may take to arrive after its headers (then 408 and the
    /// connection closed).
    #[arg(long, env = "HEALTH_BODY_TIMEOUT", default_value_t = 30)]
    body_timeout: u64,
    /// Most request bodies read at once; beyond it a request is answered 503 without
    /// reading its body. Keep it well below --max-connections.
    #[arg(long, env = "HEALTH_MAX_BODY_READS", default_value_t = 1024)]
    max_body_reads: usize,
    /// KiB of messages queued for one WebSocket client before it is closed as not reading
    /// (1013). At least 129.
    #[arg(long, env = "HEALTH_WS_SEND_QUEUE_KB", default_value_t = 8192)]
    ws_send_queue_kb: usize,
    /// MiB of database pages the embedded store keeps in memory.
    #[arg(long, env = "HEALTH_CACHE_MB", default_value_t = 32)]
    cache_mb: usize,
    /// Where the database and the local API key are kept.
    #[arg(long, env = "HEALTH_DATA_DIR", default_value = "./data", global = true)]
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

/// Where a key command runs: the embedded store (directly, or through the running stack's
/// control socket), or a DynamoDB table.
#[derive(Debug, clap::Args)]
struct KeyStore {
    /// Use this DynamoDB table instead of the embedded store (AWS credentials and region
    /// from the environment, as the AWS CLI reads them).
    #[arg(long, env = "HEALTH_TABLE")]
    dynamodb_table: Option<String>,
    /// Endpoint of a DynamoDB-compatible server (default: AWS's regional endpoint).
    #[arg(long, requires = "dynamodb_table")]
    dynamodb_endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates an API key for a tenant and prints it once. Only its hash is stored. Works
    /// while the local stack runs (it asks the running stack).
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
        #[command(flatten)]
        store: KeyStore,
    },
    /// Lists a tenant's keys (never their secrets): id, holder, scopes, created, last
    /// used, revoked.
    ListKeys {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        store: KeyStore,
    },
    /// Revokes a key by its id (from list-keys): refused from then on, and its live
    /// WebSocket connections closed.
    RevokeKey {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The key's id, e.g. key_0123456789abcdef.
        key_id: String,
        #[command(flatten)]
        store: KeyStore,
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
    let (request, store) = match cli.command {
        None => return serve(cli).await,
        Some(Command::CreateKey {
            tenant,
            scopes,
            name,
            store,
        }) => (
            Request::CreateKey {
                tenant,
                scopes,
                name,
            },
            store,
        ),
        Some(Command::ListKeys { tenant, store }) => (Request::ListKeys { tenant }, store),
        Some(Command::RevokeKey {
            tenant,
            key_id,
            store,
        }) => (Request::RevokeKey { tenant, key_id }, store),
    };
    control::check_request(&request)?;
    let answer = match store.dynamodb_table {
        Some(table) => {
            let store = dynamodb_store(table, store.dynamodb_endpoint).await?;
            control::execute(&AppState::new(store, Config::default()), request).await?
        }
        None => key_command_locally(&cli.data_dir, request).await?,
    };
    print_answer(&answer);
    Ok(())
}

/// Runs a key command on the embedded store: through the running stack if there is one
/// (it holds the database), else on the store opened here.
async fn key_command_locally(
    data_dir: &std::path::Path,
    request: Request,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    #[cfg(unix)]
    if let Some(answer) = control::send(data_dir, &request).await {
        return Ok(answer?);
    }
    let store = local_stack::open_store(data_dir).map_err(|e| {
        format!(
            "{e} (is a local stack using {} without its control socket?)",
            data_dir.display()
        )
    })?;
    Ok(control::execute(&AppState::new(store, Config::default()), request).await?)
}

/// Prints a created key as its secret alone (one line, for scripts), a list as a table, a
/// revocation as one line.
fn print_answer(answer: &serde_json::Value) {
    use std::io::Write as _;
    let text = if let Some(key) = answer.get("key").and_then(|k| k.as_str()) {
        format!("{key}\n")
    } else if let Some(keys) = answer.as_array() {
        let mut out = String::from("KEY ID\tNAME\tSCOPES\tCREATED\tLAST USED\tREVOKED\n");
        for k in keys {
            let field = |f: &str| k[f].as_str().unwrap_or("-").to_owned();
            let scopes: Vec<&str> = k["scopes"]
                .as_array()
                .map(|s| s.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                field("key_id"),
                field("name"),
                scopes.join(","),
                field("created_at"),
                field("last_used_at"),
                field("revoked_at"),
            ));
        }
        out
    } else {
        format!(
            "revoked {} at {}\n",
            answer["key_id"].as_str().unwrap_or("?"),
            answer["revoked_at"].as_str().unwrap_or("?")
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A store on a DynamoDB table, checked first so a missing region, missing credentials or
/// an unreachable endpoint is named, not reported as a "dispatch failure".
async fn dynamodb_store(
    table: String,
    endpoint: Option<String>,
) -> Result<Store, Box<dyn std::error::Error>> {
    let backend = DynamoBackend::connect_checked(table, endpoint.as_deref()).await?;
    Ok(Store::new(Arc::new(backend)))
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
            body_timeout: std::time::Duration::from_secs(cli.body_timeout.max(1)),
            max_body_reads: cli.max_body_reads.max(1),
            ws_send_queue_bytes: cli.ws_send_queue_kb.max(129) << 10,
            cache_bytes: cli.cache_mb.max(1) << 20,
        },
    })
    .await?;
    // Written without println!, which panics if whoever started us closed the pipe.
    let mut banner = format!(
        "Listening on {}\nAPI key: {}\nDashboard: {}\n",
        running.url(),
        running.api_key,
        running.dashboard_url()
    );
    if demo {
        banner.push_str(&format!(
            "Demo inbox (notifications): {}{}\n",
            running.url(),
            local_stack::inbox::PATH
        ));
    }
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
