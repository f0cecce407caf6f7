//! `POST /v1/traces` and `POST /v1/metrics`: the OTLP/HTTP receivers, as the OpenTelemetry
//! protocol specifies them, so an agent framework's existing exporter (and a collector's
//! host metrics) report here unchanged.
//!
//! - Bodies are `ExportTraceServiceRequest` or `ExportMetricsServiceRequest` in binary
//!   protobuf (`application/x-protobuf`) or in OTLP's JSON encoding (`application/json`),
//!   optionally gzip-compressed (`Content-Encoding: gzip`); the answer uses the request's
//!   encoding.
//! - Success is 200 with the signal's export response; spans or data points left out
//!   (without GenAI attributes, not a host metric, or unusable) are counted in its
//!   `partial_success` with the reasons.
//! - Errors carry a `google.rpc.Status` body. Bad data is 400 (not retried); a store that
//!   does not answer is 503 with `Retry-After` (retried: every event's id derives from the
//!   trace and span ids, or the host and the points' time, so a retry counts nothing twice).

use std::io::Read as _;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;

use super::{ApiError, Endpoint};
use crate::domain::events::MAX_EVENTS_PER_BATCH;
use crate::domain::otlp::Mapped;
use crate::domain::otlp_bounds;
use crate::AppState;

/// Largest request body accepted, compressed (4 MiB: what a Lambda request carries once
/// API Gateway has base64-encoded a binary body). The exporters' default batch of 512
/// spans is far below it.
pub const MAX_OTLP_BODY_BYTES: usize = 4 * 1024 * 1024;

/// OTLP requests decompressed and decoded at once in this process; the others wait.
pub const MAX_CONCURRENT_DECODES: usize = 4;

static DECODING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_DECODES);

/// Largest body accepted once decompressed (32 MiB), against compression bombs.
pub const MAX_DECODED_BYTES: usize = 32 * 1024 * 1024;

/// The signals received: traces (`/v1/traces`) and metrics (`/v1/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// GenAI spans, as executions and calls.
    Traces,
    /// Host metrics, as host samples.
    Metrics,
}

impl Signal {
    fn endpoint(self) -> Endpoint {
        match self {
            Self::Traces => Endpoint::IngestTraces,
            Self::Metrics => Endpoint::IngestMetrics,
        }
    }
    fn request_name(self) -> &'static str {
        match self {
            Self::Traces => "ExportTraceServiceRequest",
            Self::Metrics => "ExportMetricsServiceRequest",
        }
    }
}

/// The two encodings OTLP/HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    code: i32,
    /// For a human.
    #[prost(string, tag = "2")]
    message: String,
}

/// The answer to a body over [`MAX_OTLP_BODY_BYTES`], for a server that stops reading it
/// early, in the encoding `headers` name.
pub fn too_large(headers: &http::HeaderMap) -> Response<Bytes> {
    let encoding = match encoding_of(headers) {
        Some(Encoding::Protobuf) => Encoding::Protobuf,
        _ => Encoding::Json,
    };
    error_answer(
        encoding,
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        ApiError::PayloadTooLarge {
            limit: MAX_OTLP_BODY_BYTES,
        }
        .to_string(),
    )
}

fn encoding_of(headers: &http::HeaderMap) -> Option<Encoding> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-protobuf") {
        Some(Encoding::Protobuf)
    } else if content_type.starts_with("application/json") {
        Some(Encoding::Json)
    } else {
        None
    }
}

/// Serves one OTLP/HTTP export of `signal`. Never fails: errors become their OTLP answer.
pub async fn serve(state: &AppState, req: Request<Bytes>, signal: Signal) -> Response<Bytes> {
    let encoding = encoding_of(req.headers());
    // The key first: a caller without one learns that before anything about the body.
    let principal = match super::principal_for(state, &req, signal.endpoint()).await {
        Ok(p) => p,
        Err(e) => {
            let status = e.status();
            return error_answer(
                encoding.unwrap_or(Encoding::Json),
                status,
                None,
                e.to_string(),
            );
        }
    };
    let Some(encoding) = encoding else {
        let given = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        return error_answer(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            format!(
                "Content-Type must be application/x-protobuf or application/json, got {given:?}"
            ),
        );
    };
    match export(state, &req, &principal.tenant, encoding, signal).await {
        Ok(mapped) => ok_answer(encoding, signal, &mapped),
        Err(e) => {
            let (status, retry) = match &e {
                // A store that does not answer now may answer a retry, which is safe.
                ApiError::Internal(cause) => {
                    tracing::error!(error = %cause, signal = ?signal, "otlp export failed");
                    (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
                }
                ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, Some("1")),
                other => (other.status(), None),
            };
            let message = match &e {
                ApiError::Internal(_) => "the store does not answer; retry".to_owned(),
                other => other.to_string(),
            };
            error_answer(encoding, status, retry, message)
        }
    }
}

async fn export(
    state: &AppState,
    req: &Request<Bytes>,
    tenant: &str,
    encoding: Encoding,
    signal: Signal,
) -> Result<Mapped, ApiError> {
    if req.body().len() > MAX_OTLP_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_OTLP_BODY_BYTES,
        });
    }
    let now = state.clock.now_ms();
    // Decompressing and decoding are CPU work of up to a few hundred milliseconds: off the
    // async workers, so other requests (and /healthz) keep answering meanwhile.
    let (body, encoding_header) = (
        req.body().clone(),
        req.headers().get(http::header::CONTENT_ENCODING).cloned(),
    );
    // Each decode may hold a decompressed body of up to 32 MiB (twice that while its buffer
    // grows): a bounded number at once, so a burst of such requests waits its turn instead
    // of taking the process's memory (20 at once peaked at 904 MiB before this bound).
    let _permit = DECODING
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mapped = tokio::task::spawn_blocking(move || {
        let body = decompress(body, encoding_header.as_ref())?;
        Ok::<_, ApiError>(match signal {
            Signal::Traces => crate::domain::otlp::map_request(
                &decode::<ExportTraceServiceRequest>(&body, encoding, signal)?,
                now,
            ),
            Signal::Metrics => crate::domain::otlp_metrics::map_request(
                &decode::<ExportMetricsServiceRequest>(&body, encoding, signal)?,
                now,
            ),
        })
    })
    .await
    .map_err(|e| ApiError::Internal(Box::new(e)))??;
    let mut stored = 0;
    for chunk in mapped.events.chunks(MAX_EVENTS_PER_BATCH) {
        stored += super::ingest::store_events(state, tenant, chunk, now)
            .await?
            .accepted;
    }
    tracing::info!(
        signal = ?signal,
        items = mapped.accepted + mapped.rejected,
        mapped = mapped.accepted,
        rejected = mapped.rejected,
        events_stored = stored,
        "otlp export"
    );
    Ok(mapped)
}

/// A request message from its protobuf or JSON encoding, counted first: a request over
/// [`otlp_bounds::MAX_ITEMS`] spans or data points, or [`otlp_bounds::MAX_VALUES`]
/// values, is refused (413) before anything is decoded.
fn decode<T: prost::Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    encoding: Encoding,
    signal: Signal,
) -> Result<T, ApiError> {
    let name = signal.request_name();
    let kind = match signal {
        Signal::Traces => otlp_bounds::Kind::Traces,
        Signal::Metrics => otlp_bounds::Kind::Metrics,
    };
    let (counted, format) = match encoding {
        Encoding::Protobuf => (otlp_bounds::count_protobuf(body, kind), "protobuf"),
        Encoding::Json => (otlp_bounds::count_json(body, kind), "JSON"),
    };
    let invalid = |why: String| {
        ApiError::bad_request(
            "invalid_otlp",
            format!("body: not an OTLP {name} in {format} ({why})"),
        )
    };
    match counted {
        Ok(_) => {}
        Err(refusal) if refusal.is_too_large() => {
            return Err(ApiError::TooManyItems(refusal.to_string()))
        }
        Err(refusal) => return Err(invalid(refusal.to_string())),
    }
    match encoding {
        Encoding::Protobuf => T::decode(body).map_err(|e| invalid(e.to_string())),
        // The count checked that message lists are arrays of objects (serde would read an
        // array as a message, field by position).
        Encoding::Json => serde_json::from_slice(body).map_err(|e| invalid(e.to_string())),
    }
}

/// The body as sent: gzip undone (bounded), identity as is.
fn decompress(body: Bytes, content_encoding: Option<&HeaderValue>) -> Result<Bytes, ApiError> {
    let encoding = content_encoding
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body.as_ref())
                .take(MAX_DECODED_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::bad_request("invalid_gzip", format!("body: not valid gzip ({e})"))
                })?;
            if out.len() > MAX_DECODED_BYTES {
                return Err(ApiError::PayloadTooLarge {
                    limit: MAX_DECODED_BYTES,
                });
            }
            Ok(Bytes::from(out))
        }
        other => Err(ApiError::bad_request(
            "unsupported_encoding",
            format!("Content-Encoding {other:?} is not supported; use gzip or none"),
        )),
    }
}

fn ok_answer(encoding: Encoding, signal: Signal, mapped: &Mapped) -> Response<Bytes> {
    let rejected = i64::try_from(mapped.rejected).unwrap_or(i64::MAX);
    let partial = mapped.rejected > 0;
    let body = match (encoding, signal) {
        (Encoding::Protobuf, Signal::Traces) => ExportTraceServiceResponse {
            partial_success: partial.then(|| ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: mapped.message(),
            }),
        }
        .encode_to_vec(),
        (Encoding::Protobuf, Signal::Metrics) => ExportMetricsServiceResponse {
            partial_success: partial.then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: mapped.message(),
            }),
        }
        .encode_to_vec(),
        // Unset fields are left out, as OTLP's JSON encoding writes them.
        (Encoding::Json, _) if !partial => b"{}".to_vec(),
        (Encoding::Json, signal) => {
            let count = match signal {
                Signal::Traces => "rejectedSpans",
                Signal::Metrics => "rejectedDataPoints",
            };
            serde_json::json!({"partialSuccess": {count: rejected, "errorMessage": mapped.message()}})
                .to_string()
                .into_bytes()
        }
    };
    answer(encoding, StatusCode::OK, Bytes::from(body))
}

/// The `google.rpc.Code` closest to an HTTP status, as gRPC's mapping pairs them.
fn rpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 | 405 => 12,      // UNIMPLEMENTED
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}

fn error_answer(
    encoding: Encoding,
    status: StatusCode,
    retry_after: Option<&'static str>,
    message: String,
) -> Response<Bytes> {
    let rpc = RpcStatus {
        code: rpc_code(status),
        message,
    };
    let body = match encoding {
        Encoding::Protobuf => Bytes::from(rpc.encode_to_vec()),
        Encoding::Json => Bytes::from(serde_json::to_vec(&rpc).unwrap_or_default()),
    };
    let mut response = answer(encoding, status, body);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static(seconds));
    }
    response
}

fn answer(encoding: Encoding, status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_answer_with_a_status_in_the_requests_encoding() {
        let r = error_answer(
            Encoding::Protobuf,
            StatusCode::BAD_REQUEST,
            None,
            "body: bad".into(),
        );
        let status = RpcStatus::decode(r.body().as_ref()).ok();
        assert_eq!(
            status.map(|s| (s.code, s.message)),
            Some((3, "body: bad".into()))
        );
        let r = error_answer(
            Encoding::Json,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("1"),
            "x".into(),
        );
        assert_eq!(
            r.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert_eq!(&r.body()[..], br#"{"code":14,"message":"x"}"#);
    }

    #[test]
    fn json_messages_must_be_objects_down_to_the_spans() {
        let decode = |body: &str| {
            decode::<ExportTraceServiceRequest>(body.as_bytes(), Encoding::Json, Signal::Traces)
        };
        let ok = decode(r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]}"#);
        assert_eq!(
            ok.map(|r| r.resource_spans[0].scope_spans[0].spans.len())
                .ok(),
            Some(1)
        );
        let bad = decode(r#"{"resourceSpans": [{"scopeSpans": [{"spans": [[]]}]}]}"#);
        assert_eq!(
            bad.err().map(|e| e.to_string()),
            Some("body: not an OTLP ExportTraceServiceRequest in JSON (resourceSpans[0].scopeSpans[0].spans[0] must be an object)".to_owned())
        );
    }

    #[test]
    fn too_many_spans_answer_413_before_decoding() {
        let mut body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":["#.to_vec();
        body.extend(b"{},".repeat(otlp_bounds::MAX_ITEMS));
        body.extend(b"{}]}]}]}");
        let e = decode::<ExportTraceServiceRequest>(&body, Encoding::Json, Signal::Traces);
        let e = e.err();
        assert_eq!(
            e.as_ref().map(ApiError::status),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert!(
            e.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("more than 10000 spans"),
            "the message names the limit"
        );
    }

    #[test]
    fn gzip_bodies_are_undone_and_unknown_encodings_refused() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = gz.write_all(b"hello");
        let packed = gz.finish().unwrap_or_default();
        let undo = |enc: &str, body: Vec<u8>| {
            let header = HeaderValue::from_str(enc).unwrap_or(HeaderValue::from_static("x"));
            decompress(Bytes::from(body), Some(&header))
        };
        assert_eq!(undo("gzip", packed).ok(), Some(Bytes::from("hello")));
        assert!(undo("gzip", b"nope".to_vec()).is_err());
        assert!(undo("br", b"x".to_vec()).is_err());
    }
}
