//! The host sidecar: samples this host with one reused `sysinfo::System` (refreshing only
//! CPU, memory and disk space) and delivers the samples through [`delivery`], which
//! buffers them while the API is unreachable and retries with backoff.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod delivery;

use delivery::{sample_event, Backoff, Buffer, Delivery, HostSample, Sender};
use shared::time::{Clock, SystemClock};
use sysinfo::{DiskRefreshKind, Disks, System};
use tokio::time::Instant;

/// How the sidecar runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL of the API, e.g. `http://127.0.0.1:3000`.
    pub api_url: String,
    /// A key with the `ingest` scope.
    pub api_key: String,
    /// How this host is named in the monitor.
    pub host_id: String,
    /// Time between samples.
    pub interval: Duration,
    /// Samples kept while the API is unreachable; older ones are dropped first.
    pub buffer: usize,
    /// Ask the API's `/healthz` at start and log the answer (the standalone sidecar does;
    /// the local stack's in-process one talks to its own process).
    pub check_api: bool,
}

impl Options {
    /// One hour of samples at `interval`: the default buffer.
    pub fn hour_of_samples(interval: Duration) -> usize {
        let secs = interval.as_secs_f64().max(0.001);
        ((3600.0 / secs).ceil() as usize).max(1)
    }
}

/// Why the sidecar cannot run.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Takes samples of this host.
#[derive(Debug)]
pub struct Sampler {
    system: System,
    disks: Disks,
}

impl Sampler {
    /// A sampler, primed so that its first sample has a CPU reading (sysinfo measures CPU
    /// usage between two refreshes at least 200 ms apart).
    pub async fn new() -> Result<Self, Error> {
        let mut system =
            System::new().map_err(|e| Error(format!("cannot read system data: {e:?}")))?;
        system.refresh_cpu_usage();
        let disks =
            Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage())
                .map_err(|e| Error(format!("cannot list disks: {e:?}")))?;
        tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
        Ok(Self { system, disks })
    }

    /// Samples CPU (since the previous sample), memory, disk, load and uptime.
    pub fn sample(&mut self) -> HostSample {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.disks
            .refresh_specifics(false, DiskRefreshKind::nothing().with_storage());
        let total = self.system.total_memory();
        let memory_usage = if total > 0 {
            self.system.used_memory() as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        // The root file system if there is one, else all disks together.
        let root = self
            .disks
            .iter()
            .filter(|d| d.mount_point() == std::path::Path::new("/"))
            .collect::<Vec<_>>();
        let chosen = if root.is_empty() {
            self.disks.iter().collect()
        } else {
            root
        };
        let (space, free) = chosen.iter().fold((0u64, 0u64), |(t, a), d| {
            (t + d.total_space(), a + d.available_space())
        });
        let disk_usage =
            (space > 0).then(|| (space - free.min(space)) as f64 * 100.0 / space as f64);
        HostSample {
            cpu_usage: f64::from(self.system.global_cpu_usage()),
            memory_usage,
            disk_usage,
            load_average: System::load_average()
                .ok()
                .map(|l| [l.one, l.five, l.fifteen]),
            uptime_seconds: System::uptime().ok(),
        }
    }
}

/// This host's name, for the default host id.
pub fn host_name() -> String {
    System::host_name().unwrap_or_else(|_| "localhost".to_owned())
}

/// Counters a caller can watch (tests, the local stack's logs).
#[derive(Debug, Default)]
pub struct Stats {
    /// Samples taken.
    pub taken: AtomicU64,
    /// Samples waiting in the buffer.
    pub waiting: AtomicU64,
}

/// Samples every `interval` and delivers, until `shutdown` resolves; then makes one last
/// delivery attempt (at most 5 s) so what is buffered is not lost on a clean stop.
pub async fn run(
    options: Options,
    stats: Arc<Stats>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let mut sender = Sender::new(&options.api_url, &options.api_key)
        .map_err(|e| Error(format!("cannot build the HTTP client: {e}")))?;
    if options.check_api {
        sender.check_api().await;
    }
    let mut sampler = Sampler::new().await?;
    let mut buffer = Buffer::new(options.buffer);
    // Retries never wait longer than a few intervals, and never more than a minute.
    let mut backoff = Backoff::new((options.interval * 4).min(Duration::from_secs(60)));
    let clock = SystemClock;
    let mut next_sample = Instant::now();
    let mut retry_at: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let wake = retry_at.map_or(next_sample, |r| r.min(next_sample));
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if now >= next_sample {
            let event = sample_event(&options.host_id, &sampler.sample(), clock.now_ms());
            if buffer.push(event) {
                tracing::warn!(
                    dropped = buffer.dropped(),
                    "buffer full: dropped the oldest sample"
                );
            }
            stats.taken.fetch_add(1, Ordering::SeqCst);
            next_sample += options.interval;
            if next_sample < now {
                // Fell behind (suspended machine): sample on the interval from now.
                next_sample = now + options.interval;
            }
        }
        if retry_at.is_none_or(|r| now >= r) {
            match sender.flush(&mut buffer).await {
                Delivery::Retry => retry_at = Some(Instant::now() + backoff.next_delay()),
                _ => {
                    backoff.reset();
                    retry_at = None;
                }
            }
        }
        stats.waiting.store(buffer.len() as u64, Ordering::SeqCst);
    }
    if !buffer.is_empty() {
        let last = tokio::time::timeout(Duration::from_secs(5), sender.flush(&mut buffer)).await;
        if !matches!(last, Ok(Delivery::Delivered)) {
            tracing::warn!(lost = buffer.len(), "stopping with samples not delivered");
        }
    }
    stats.waiting.store(buffer.len() as u64, Ordering::SeqCst);
    Ok(())
}
