//! `GET /api/health/export`: a tenant's history, alerts or failed executions over a time
//! range as CSV or NDJSON, streamed.
//!
//! Rows are produced one entity (or one page of failures) at a time and handed to the
//! response through a bounded channel, so memory stays flat however long the range and
//! however many entities: the writer waits while the client reads. Everything that can be
//! refused (parameters, key, the store not answering) is checked before the first byte;
//! a storage failure after that ends the body abnormally (the client sees a broken
//! transfer, never a silently short file).

use super::Reply;
use bytes::Bytes;
use futures::stream::BoxStream;
use http::{Request, Response, StatusCode};
use serde::Serialize;

use super::{principal_for, query_param, route, ApiError, Endpoint};
use crate::domain::history::HistoryPoint;
use crate::domain::wire_name;
use crate::store::layout::Entity;
use crate::store::system::HistoryOf;
use crate::store::StoreError;
use crate::time::{day_of, format_rfc3339, parse_rfc3339, Millis, DAY_MS};
use crate::AppState;

/// The longest range one export covers: day buckets are kept 100 days.
pub const MAX_RANGE_DAYS: i64 = 90;
/// The range exported when `from` is not given: the 30 days before `to`.
pub const DEFAULT_RANGE_DAYS: i64 = 30;
/// Bytes gathered before a chunk goes out.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for the client at most; the producer waits beyond.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Entities read per page of the live lists.
const ENTITY_PAGE: usize = 100;
/// Failures read per query.
const FAILURE_PAGE: usize = 500;

/// A response body of chunks; an `Err` ends the transfer abnormally.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// What is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Daily history points of every agent, integration and host.
    History,
    /// Alerts raised in the range (kept 30 days after they resolve).
    Alerts,
    /// Failed executions of every agent, with their error text (kept 30 days).
    Executions,
}

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// A validated export request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportQuery {
    /// What.
    pub kind: Kind,
    /// How.
    pub format: Format,
    /// From (inclusive).
    pub from: Millis,
    /// To (inclusive).
    pub to: Millis,
}

impl ExportQuery {
    /// Reads and checks the query string at `now`.
    pub fn parse(query: Option<&str>, now: Millis) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::bad_request("invalid_parameter", m);
        let kind = match query_param(query, "kind").as_deref() {
            Some("history") => Kind::History,
            Some("alerts") => Kind::Alerts,
            Some("executions") => Kind::Executions,
            Some(_) => return Err(bad("kind: must be history, alerts or executions".into())),
            None => return Err(bad("kind: required (history, alerts or executions)".into())),
        };
        let format = match query_param(query, "format").as_deref() {
            None | Some("csv") => Format::Csv,
            Some("ndjson") => Format::Ndjson,
            Some(_) => return Err(bad("format: must be csv or ndjson".into())),
        };
        let time = |name: &str| -> Result<Option<Millis>, ApiError> {
            match query_param(query, name) {
                None => Ok(None),
                Some(t) => parse_rfc3339(&t).map(Some).ok_or_else(|| {
                    bad(format!(
                        "{name}: must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z"
                    ))
                }),
            }
        };
        let to = time("to")?.unwrap_or(now).min(now);
        let from = time("from")?.unwrap_or(to - DEFAULT_RANGE_DAYS * DAY_MS);
        if from > to {
            return Err(bad("from: must not be after to".into()));
        }
        if to - from > MAX_RANGE_DAYS * DAY_MS {
            return Err(bad(format!(
                "from, to: at most {MAX_RANGE_DAYS} days apart"
            )));
        }
        Ok(Self {
            kind,
            format,
            from,
            to,
        })
    }

    fn content_type(&self) -> &'static str {
        match self.format {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    fn file_name(&self) -> String {
        let kind = match self.kind {
            Kind::History => "history",
            Kind::Alerts => "alerts",
            Kind::Executions => "executions",
        };
        let ext = match self.format {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        };
        let day = |t: Millis| format_rfc3339(t)[..10].to_owned();
        format!("{kind}-{}-{}.{ext}", day(self.from), day(self.to))
    }
}

/// Serves an export request: checks route, key and parameters, then streams. Errors are
/// the API's JSON errors, as one chunk.
pub async fn serve(state: &AppState, req: Request<Bytes>) -> Response<ByteStream> {
    match start(state, &req).await {
        Ok(response) => response,
        Err(e) => e.into_response().map(|text| {
            Box::pin(futures::stream::once(async move { Ok(Bytes::from(text)) })) as ByteStream
        }),
    }
}

async fn start(state: &AppState, req: &Request<Bytes>) -> Result<Response<ByteStream>, ApiError> {
    let r = route(req.method(), req.uri().path())?;
    if r.endpoint != Endpoint::Export {
        return Err(ApiError::NotFound(format!(
            "no route for {}",
            req.uri().path()
        )));
    }
    let principal = principal_for(state, req, r.endpoint).await?;
    respond(state, principal.tenant, req.uri().query()).await
}

/// The export of `tenant` the query asks for, once its key is checked.
pub async fn respond(
    state: &AppState,
    tenant: String,
    query: Option<&str>,
) -> Result<Response<ByteStream>, ApiError> {
    let now = state.clock.now_ms();
    let q = ExportQuery::parse(query, now)?;
    // Before the 200: a store that does not answer (or a quota used up) is an error
    // answer, not a broken download.
    let limit = state.config.quotas.concurrent_exports;
    let lease = state
        .store
        .acquire_lease(&tenant, EXPORT_LEASES, limit, EXPORT_LEASE_MS, now)
        .await?
        .ok_or_else(|| {
            ApiError::quota(
                "concurrent_exports",
                limit,
                "another export while this tenant's others are streaming",
            )
        })?;
    let body = stream(state.clone(), tenant, q, lease);
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(q.content_type()),
    );
    if let Ok(v) =
        http::HeaderValue::from_str(&format!("attachment; filename=\"{}\"", q.file_name()))
    {
        headers.insert(http::header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// The export of `tenant` the query asks for, whole in memory (in-process use).
pub async fn respond_collected(state: &AppState, tenant: &str, query: Option<&str>) -> Reply {
    collect(respond(state, tenant.to_owned(), query).await?).await
}

/// The whole export in memory, for callers without a streaming body (in-process use).
pub async fn collect(response: Response<ByteStream>) -> Reply {
    use futures::TryStreamExt;
    let (parts, body) = response.into_parts();
    let chunks: Vec<Bytes> = body.try_collect().await?;
    let text = String::from_utf8_lossy(&chunks.concat()).into_owned();
    Ok(Response::from_parts(parts, text))
}

/// The leases that bound a tenant's concurrent exports.
const EXPORT_LEASES: &str = "exports";
/// How long an export's lease holds if it is never given back (its process died): the
/// export function's 900 s limit and a minute.
const EXPORT_LEASE_MS: crate::time::Millis = 960_000;

/// The export producers still running. A Lambda environment is frozen between
/// invocations, so a producer whose client hung up must finish (and give its lease back)
/// before the function asks for the next one: see [`settled`].
static PRODUCERS: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// Waits, at most `limit`, until every export producer has ended and given its lease back.
pub async fn settled(limit: std::time::Duration) {
    PRODUCERS.close();
    if tokio::time::timeout(limit, PRODUCERS.wait()).await.is_err() {
        tracing::warn!(
            running = PRODUCERS.len(),
            "export producers still running; going on"
        );
    }
    PRODUCERS.reopen();
}

/// The rows of `q`, produced by a task that waits while the client reads.
fn stream(state: AppState, tenant: String, q: ExportQuery, lease: String) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(CHUNKS_IN_FLIGHT);
    PRODUCERS.spawn(async move {
        let header = match q.kind {
            Kind::History => HISTORY_COLUMNS,
            Kind::Alerts => ALERT_COLUMNS,
            Kind::Executions => EXECUTION_COLUMNS,
        };
        let result = async {
            let mut out = Writer::new(q.format, header, tx.clone())?;
            match q.kind {
                Kind::History => history(&state, &tenant, q, &mut out).await?,
                Kind::Alerts => alerts(&state, &tenant, q, &mut out).await?,
                Kind::Executions => executions(&state, &tenant, q, &mut out).await?,
            }
            out.finish().await
        }
        .await;
        if let Err(Stop::Store(e)) = result {
            tracing::error!(tenant, error = %e, "export failed after it started");
            let _ = tx.send(Err(e)).await;
        }
        // However it ended (done, client gone, store failed), the place is given back.
        if let Err(e) = state
            .store
            .release_lease(&tenant, EXPORT_LEASES, &lease)
            .await
        {
            tracing::warn!(tenant, error = %e, "an export's lease was not given back; it lapses by itself");
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Why production stopped.
enum Stop {
    /// The client went away: nothing more to do.
    Gone,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Writes rows as CSV or NDJSON into chunks.
struct Writer {
    format: Format,
    header: &'static [&'static str],
    tx: tokio::sync::mpsc::Sender<Result<Bytes, StoreError>>,
    buf: Vec<u8>,
}

impl Writer {
    /// A writer whose CSV starts with `header`.
    fn new(
        format: Format,
        header: &'static [&'static str],
        tx: tokio::sync::mpsc::Sender<Result<Bytes, StoreError>>,
    ) -> Result<Self, Stop> {
        let mut w = Self {
            format,
            header,
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES * 2),
        };
        if format == Format::Csv {
            w.csv(header)?;
        }
        Ok(w)
    }

    fn csv<T: AsRef<[u8]>>(&mut self, cells: &[T]) -> Result<(), Stop> {
        let mut w = csv::WriterBuilder::new().from_writer(&mut self.buf);
        w.write_record(cells).map_err(csv_error)?;
        w.flush()
            .map_err(|e| Stop::Store(StoreError::Backend(Box::new(e))))
    }

    /// Writes one row: `cells` (in the header's order) for CSV, `json` for NDJSON.
    async fn row<J: Serialize>(&mut self, cells: &[String], json: &J) -> Result<(), Stop> {
        match self.format {
            Format::Csv => {
                debug_assert_eq!(cells.len(), self.header.len());
                self.csv(cells)?;
            }
            Format::Ndjson => {
                serde_json::to_writer(&mut self.buf, json)
                    .map_err(|e| Stop::Store(StoreError::Backend(Box::new(e))))?;
                self.buf.push(b'\n');
            }
        }
        if self.buf.len() >= CHUNK_BYTES {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> Result<(), Stop> {
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.send(Ok(chunk)).await.map_err(|_| Stop::Gone)
    }

    /// Sends what is left (a CSV export without rows is its header).
    async fn finish(mut self) -> Result<(), Stop> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send().await
    }
}

fn csv_error(e: csv::Error) -> Stop {
    Stop::Store(StoreError::Backend(Box::new(e)))
}

/// The history export's CSV columns: the point, then every type's metrics (empty where
/// a type has none).
const HISTORY_COLUMNS: &[&str] = &[
    "entity_type",
    "entity_id",
    "timestamp",
    "health_score",
    "status",
    "total_executions",
    "completed",
    "failed",
    "input_tokens",
    "output_tokens",
    "calls",
    "failures",
    "avg_latency_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "samples",
    "cpu_avg",
    "cpu_max",
    "memory_avg",
    "memory_max",
];

/// One history row as NDJSON.
#[derive(Serialize)]
struct HistoryRow<'a> {
    entity_type: &'a str,
    entity_id: &'a str,
    #[serde(flatten)]
    point: &'a HistoryPoint,
}

fn history_cells(entity_type: &str, entity_id: &str, p: &HistoryPoint) -> Vec<String> {
    let mut cells = vec![
        entity_type.to_owned(),
        entity_id.to_owned(),
        p.timestamp.clone(),
        p.health_score.to_string(),
        wire_name(&p.status),
    ];
    for column in &HISTORY_COLUMNS[5..] {
        cells.push(match p.metrics.get(*column) {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        });
    }
    cells
}

/// Every agent's, integration's and host's days in the range, by type, id, then day.
async fn history(
    state: &AppState,
    tenant: &str,
    q: ExportQuery,
    out: &mut Writer,
) -> Result<(), Stop> {
    let now = state.clock.now_ms();
    let days = (day_of(q.from), day_of(q.to));
    for entity in [Entity::Agent, Entity::Integration, Entity::Host] {
        let mut after: Option<String> = None;
        loop {
            let (ids, next) = entity_ids(state, tenant, entity, after.as_deref()).await?;
            for id in &ids {
                entity_history(state, tenant, (entity, id), days, now, out).await?;
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(())
}

/// A page of the tenant's ids of `entity` after `after`, and where the next page starts.
async fn entity_ids(
    state: &AppState,
    tenant: &str,
    entity: Entity,
    after: Option<&str>,
) -> Result<(Vec<String>, Option<String>), StoreError> {
    use crate::domain::live::{LiveAgent, LiveHost, LiveIntegration};
    let store = &state.store;
    Ok(match entity {
        Entity::Agent => ids_of(
            store
                .live_page::<LiveAgent>(tenant, entity, after, ENTITY_PAGE)
                .await?,
            |a| &a.record.agent_id,
        ),
        Entity::Integration => ids_of(
            store
                .live_page::<LiveIntegration>(tenant, entity, after, ENTITY_PAGE)
                .await?,
            |i| &i.record.integration_id,
        ),
        Entity::Host => ids_of(
            store
                .live_page::<LiveHost>(tenant, entity, after, ENTITY_PAGE)
                .await?,
            |h| &h.record.host_id,
        ),
    })
}

/// The rows of one entity's daily history within the export's `(first, last)` days.
async fn entity_history(
    state: &AppState,
    tenant: &str,
    (entity, id): (Entity, &String),
    (first, last): (i64, i64),
    now: Millis,
    out: &mut Writer,
) -> Result<(), Stop> {
    let days = day_of(now) - first + 1;
    let (of, entity_type) = match entity {
        Entity::Agent => (HistoryOf::Agent(id), "agent"),
        Entity::Integration => (HistoryOf::Integration(id), "integration"),
        Entity::Host => (HistoryOf::System(Some(id)), "system"),
    };
    // A damaged entity is left out and logged, as the lists do: one bad item
    // must not cost the whole export.
    let points = match state.store.history(tenant, of, days, now).await {
        Ok(points) => points.unwrap_or_default(),
        Err(StoreError::Corrupt { pk, sk, reason }) => {
            tracing::error!(
                tenant,
                pk,
                sk,
                reason,
                "unreadable item left out of the export"
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    for p in &points {
        let day = parse_rfc3339(&p.timestamp).map(day_of).unwrap_or(i64::MIN);
        if day < first || day > last {
            continue;
        }
        let row = HistoryRow {
            entity_type,
            entity_id: id,
            point: p,
        };
        out.row(&history_cells(entity_type, id, p), &row).await?;
    }
    Ok(())
}

fn ids_of<T>(
    page: (Vec<T>, Option<String>),
    id: impl Fn(&T) -> &String,
) -> (Vec<String>, Option<String>) {
    (page.0.iter().map(|t| id(t).clone()).collect(), page.1)
}

/// The alert export's CSV columns.
const ALERT_COLUMNS: &[&str] = &[
    "alert_id",
    "severity",
    "message",
    "source_type",
    "source_id",
    "condition",
    "raised_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
];

/// One alert row as NDJSON.
#[derive(Serialize)]
struct AlertRow<'a> {
    alert_id: &'a str,
    severity: crate::domain::alerts::Severity,
    message: &'a str,
    source_type: crate::domain::alerts::SourceType,
    source_id: &'a str,
    condition: &'a str,
    raised_at: String,
    acknowledged_at: Option<String>,
    acknowledged_by: Option<&'a str>,
    resolved_at: Option<String>,
}

/// Alerts raised in the range, oldest first. The tenant's alerts are one partition, kept
/// 30 days after they resolve, so they are read at once.
async fn alerts(
    state: &AppState,
    tenant: &str,
    q: ExportQuery,
    out: &mut Writer,
) -> Result<(), Stop> {
    let mut alerts: Vec<_> = state
        .store
        .all_alerts_with(tenant, crate::store::tenant::Consistency::Eventual)
        .await?
        .into_iter()
        .map(|(a, _)| a)
        .filter(|a| a.raised_at >= q.from && a.raised_at <= q.to)
        .collect();
    alerts.sort_by(|a, b| {
        a.raised_at
            .cmp(&b.raised_at)
            .then(a.alert_id.cmp(&b.alert_id))
    });
    for a in &alerts {
        let row = AlertRow {
            alert_id: &a.alert_id,
            severity: a.severity,
            message: &a.message,
            source_type: a.source_type,
            source_id: &a.source_id,
            condition: &a.condition,
            raised_at: format_rfc3339(a.raised_at),
            acknowledged_at: a.acknowledged_at.map(format_rfc3339),
            acknowledged_by: a.acknowledged_by.as_deref(),
            resolved_at: a.resolved_at.map(format_rfc3339),
        };
        let cells = vec![
            a.alert_id.clone(),
            wire_name(&a.severity),
            a.message.clone(),
            wire_name(&a.source_type),
            a.source_id.clone(),
            a.condition.clone(),
            row.raised_at.clone(),
            row.acknowledged_at.clone().unwrap_or_default(),
            a.acknowledged_by.clone().unwrap_or_default(),
            row.resolved_at.clone().unwrap_or_default(),
        ];
        out.row(&cells, &row).await?;
    }
    Ok(())
}

/// The executions export's CSV columns.
const EXECUTION_COLUMNS: &[&str] = &[
    "timestamp",
    "agent_id",
    "execution_id",
    "operation",
    "outcome",
    "duration_ms",
    "error",
];

/// One failed execution as NDJSON.
#[derive(Serialize)]
struct ExecutionRow<'a> {
    timestamp: String,
    agent_id: &'a str,
    execution_id: Option<&'a str>,
    operation: Option<&'a str>,
    outcome: &'static str,
    duration_ms: Option<f64>,
    error: Option<&'a str>,
}

/// Every agent's failed executions in the range, by agent, then time.
async fn executions(
    state: &AppState,
    tenant: &str,
    q: ExportQuery,
    out: &mut Writer,
) -> Result<(), Stop> {
    use crate::domain::live::LiveAgent;
    let store = &state.store;
    let mut after: Option<String> = None;
    loop {
        let (ids, next) = ids_of(
            store
                .live_page::<LiveAgent>(tenant, Entity::Agent, after.as_deref(), ENTITY_PAGE)
                .await?,
            |a| &a.record.agent_id,
        );
        for id in &ids {
            agent_executions(state, tenant, id, q, out).await?;
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(())
}

/// The rows of one agent's failed executions within the export's period.
async fn agent_executions(
    state: &AppState,
    tenant: &str,
    id: &String,
    q: ExportQuery,
    out: &mut Writer,
) -> Result<(), Stop> {
    let mut from_sk: Option<String> = None;
    loop {
        let page = state
            .store
            .failures_page(
                tenant,
                Entity::Agent,
                id,
                (q.from, q.to),
                from_sk.as_deref(),
                FAILURE_PAGE,
            )
            .await?;
        for (_, f) in &page {
            let v = f.view("agent", id);
            let row = ExecutionRow {
                timestamp: v.timestamp.clone(),
                agent_id: id,
                execution_id: f.execution_id.as_deref(),
                operation: f.operation.as_deref(),
                outcome: "failed",
                duration_ms: v.duration_ms,
                error: f.error.as_deref(),
            };
            let cells = vec![
                v.timestamp,
                id.clone(),
                f.execution_id.clone().unwrap_or_default(),
                f.operation.clone().unwrap_or_default(),
                "failed".to_owned(),
                v.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
                f.error.clone().unwrap_or_default(),
            ];
            out.row(&cells, &row).await?;
        }
        if page.len() < FAILURE_PAGE {
            return Ok(());
        }
        from_sk = page.last().map(|(sk, _)| sk.clone());
    }
}
