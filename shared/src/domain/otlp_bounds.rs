//! What an OTLP request would cost to decode, measured before it is decoded.
//!
//! Byte caps bound bytes, not objects: two bytes of protobuf (`12 00`) decode into an empty
//! span of a few hundred bytes, and two bytes of JSON (`{}`) into a map, so a 31 KB gzip
//! body could become gigabytes of structs. These scans walk the encoded request once,
//! allocating nothing, and stop as soon as it holds more spans or data points than
//! [`MAX_ITEMS`] or more decoded values than [`MAX_VALUES`]; only a request within both is
//! decoded.

use std::fmt;

/// Most spans (traces) or data points (metrics) one request may hold. OpenTelemetry SDKs
/// export at most 512 spans per batch by default; a collector's batch processor 8,192.
pub const MAX_ITEMS: usize = 10_000;

/// Most decoded values one request may hold: nested messages (attributes, events, links,
/// exemplars, ...) and repeated elements in protobuf; objects and array elements in JSON.
/// A batch of 512 spans with 20 attributes each holds 512 × (1 + 20 × 2) = 20,992 (each
/// attribute is a KeyValue and its AnyValue).
pub const MAX_VALUES: usize = 250_000;

/// Which signal a request carries, which decides what counts as an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ExportTraceServiceRequest`: items are spans.
    Traces,
    /// `ExportMetricsServiceRequest`: items are data points.
    Metrics,
}

impl Kind {
    fn item(self) -> &'static str {
        match self {
            Self::Traces => "spans",
            Self::Metrics => "data points",
        }
    }
}

/// Why a request is refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over [`MAX_ITEMS`] spans or data points (413).
    TooManyItems(Kind),
    /// Over [`MAX_VALUES`] decoded values (413).
    TooManyValues,
    /// Not a well-formed encoding of the request (400); the text says where.
    Malformed(String),
}

impl Refusal {
    /// Whether the request was too large (413) rather than malformed (400).
    pub fn is_too_large(&self) -> bool {
        !matches!(self, Self::Malformed(_))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyItems(kind) => write!(
                f,
                "the request holds more than {MAX_ITEMS} {}; send at most {MAX_ITEMS} per request (a smaller export batch)",
                kind.item()
            ),
            Self::TooManyValues => write!(
                f,
                "the request holds more than {MAX_VALUES} values (attributes, events, links and the like); send fewer per request"
            ),
            Self::Malformed(why) => f.write_str(why),
        }
    }
}

/// What was counted in a request within the bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// Spans or data points.
    pub items: usize,
    /// Decoded values of every kind (items included).
    pub values: usize,
}

impl Counted {
    fn item(&mut self, kind: Kind) -> Result<(), Refusal> {
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(Refusal::TooManyItems(kind));
        }
        Ok(())
    }

    fn values(&mut self, n: usize) -> Result<(), Refusal> {
        self.values += n;
        if self.values > MAX_VALUES {
            return Err(Refusal::TooManyValues);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Protobuf

/// The message types of the two requests whose decoding allocates, by the fields that do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    TraceRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    SpanEvent,
    SpanLink,
    MetricsRequest,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    /// Gauge, Sum, Histogram, ExponentialHistogram and Summary: field 1 holds the points.
    Points(Point),
    DataPoint(Point),
    Buckets,
    Exemplar,
    Resource,
    EntityRef,
    Scope,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    /// A message with no allocating fields (Status, ValueAtQuantile).
    Leaf,
}

/// The data point types, whose attribute and exemplar fields differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    Number,
    Histogram,
    Exponential,
    Summary,
}

/// How a field of a message decodes.
enum Field {
    /// A nested message (one value).
    Message(Msg),
    /// A repeated string or bytes element (one value).
    Element,
    /// A repeated varint: each element one value, packed or not.
    Varints,
    /// Anything else: a scalar or a field this version does not know (skipped by prost).
    Other,
}

fn field(msg: Msg, number: u64) -> Field {
    use Field::{Element, Message, Other, Varints};
    match (msg, number) {
        (Msg::TraceRequest, 1) => Message(Msg::ResourceSpans),
        (Msg::ResourceSpans, 1) | (Msg::ResourceMetrics, 1) => Message(Msg::Resource),
        (Msg::ResourceSpans, 2) => Message(Msg::ScopeSpans),
        (Msg::ScopeSpans, 1) | (Msg::ScopeMetrics, 1) => Message(Msg::Scope),
        (Msg::ScopeSpans, 2) => Message(Msg::Span),
        (Msg::Span, 9) | (Msg::SpanEvent, 3) | (Msg::SpanLink, 4) => Message(Msg::KeyValue),
        (Msg::Span, 11) => Message(Msg::SpanEvent),
        (Msg::Span, 13) => Message(Msg::SpanLink),
        (Msg::Span, 15) => Message(Msg::Leaf),
        (Msg::MetricsRequest, 1) => Message(Msg::ResourceMetrics),
        (Msg::ResourceMetrics, 2) => Message(Msg::ScopeMetrics),
        (Msg::ScopeMetrics, 2) => Message(Msg::Metric),
        (Msg::Metric, 12) => Message(Msg::KeyValue),
        (Msg::Metric, 5 | 7) => Message(Msg::Points(Point::Number)),
        (Msg::Metric, 9) => Message(Msg::Points(Point::Histogram)),
        (Msg::Metric, 10) => Message(Msg::Points(Point::Exponential)),
        (Msg::Metric, 11) => Message(Msg::Points(Point::Summary)),
        (Msg::Points(p), 1) => Message(Msg::DataPoint(p)),
        (Msg::DataPoint(p), n) => match (p, n) {
            (Point::Number, 7) | (Point::Histogram, 9) => Message(Msg::KeyValue),
            (Point::Exponential, 1) | (Point::Summary, 7) => Message(Msg::KeyValue),
            (Point::Number, 5) | (Point::Histogram, 8) | (Point::Exponential, 11) => {
                Message(Msg::Exemplar)
            }
            (Point::Exponential, 8 | 9) => Message(Msg::Buckets),
            (Point::Summary, 6) => Message(Msg::Leaf),
            // Histogram bucket counts and bounds are fixed 8-byte values: no larger decoded.
            _ => Other,
        },
        (Msg::Buckets, 2) => Varints,
        (Msg::Exemplar, 7) => Message(Msg::KeyValue),
        (Msg::Resource, 1) | (Msg::Scope, 3) => Message(Msg::KeyValue),
        (Msg::Resource, 3) => Message(Msg::EntityRef),
        (Msg::EntityRef, 3 | 4) => Element,
        (Msg::KeyValue, 2) => Message(Msg::AnyValue),
        (Msg::AnyValue, 5) => Message(Msg::ArrayValue),
        (Msg::AnyValue, 6) => Message(Msg::KeyValueList),
        (Msg::ArrayValue, 1) => Message(Msg::AnyValue),
        (Msg::KeyValueList, 1) => Message(Msg::KeyValue),
        _ => Other,
    }
}

/// Deeper than this is refused, as prost's own recursion limit (100) would.
const MAX_DEPTH: usize = 64;

/// Counts what decoding `body` as the `kind` request in protobuf would create.
pub fn count_protobuf(body: &[u8], kind: Kind) -> Result<Counted, Refusal> {
    let top = match kind {
        Kind::Traces => Msg::TraceRequest,
        Kind::Metrics => Msg::MetricsRequest,
    };
    let mut counted = Counted::default();
    scan_message(body, top, kind, 0, &mut counted)?;
    Ok(counted)
}

fn scan_message(
    mut buf: &[u8],
    msg: Msg,
    kind: Kind,
    depth: usize,
    counted: &mut Counted,
) -> Result<(), Refusal> {
    if depth > MAX_DEPTH {
        return Err(Refusal::Malformed(format!(
            "body: messages nested deeper than {MAX_DEPTH}"
        )));
    }
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(&mut buf)?;
                if matches!(field(msg, number), Field::Varints) {
                    counted.values(1)?;
                }
            }
            1 => buf = skip(buf, 8)?,
            5 => buf = skip(buf, 4)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).unwrap_or(usize::MAX);
                let (inner, rest) = split(buf, len)?;
                buf = rest;
                match field(msg, number) {
                    Field::Message(child) => {
                        counted.values(1)?;
                        if child == Msg::Span || matches!(child, Msg::DataPoint(_)) {
                            counted.item(kind)?;
                        }
                        scan_message(inner, child, kind, depth + 1, counted)?;
                    }
                    Field::Element => counted.values(1)?,
                    Field::Varints => {
                        let elements = inner.iter().filter(|b| **b < 0x80).count();
                        counted.values(elements)?;
                    }
                    Field::Other => {}
                }
            }
            _ => {
                return Err(Refusal::Malformed(format!(
                    "body: not protobuf (wire type {wire} in field {number})"
                )))
            }
        }
    }
    Ok(())
}

fn varint(buf: &mut &[u8]) -> Result<u64, Refusal> {
    let mut value = 0u64;
    for (i, byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(Refusal::Malformed(
        "body: not protobuf (a truncated or overlong varint)".to_owned(),
    ))
}

fn skip(buf: &[u8], n: usize) -> Result<&[u8], Refusal> {
    split(buf, n).map(|(_, rest)| rest)
}

fn split(buf: &[u8], n: usize) -> Result<(&[u8], &[u8]), Refusal> {
    if n > buf.len() {
        return Err(Refusal::Malformed(
            "body: not protobuf (a field runs past the end of the body)".to_owned(),
        ));
    }
    Ok(buf.split_at(n))
}

// ---------------------------------------------------------------------------------------
// JSON

/// Counts what decoding `body` as the `kind` request in OTLP's JSON would create, and
/// checks that the message lists down to the spans or metrics are arrays of objects
/// (serde would otherwise read an array as a message, field by position). Malformed
/// refusals name the place, e.g. `resourceSpans[0].scopeSpans[0].spans[0] must be an
/// object`.
pub fn count_json(body: &[u8], kind: Kind) -> Result<Counted, Refusal> {
    use serde::de::DeserializeSeed as _;
    let mut ctx = Ctx {
        kind,
        counted: Counted::default(),
        refusal: None,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = Object(Place {
        ctx: &mut ctx,
        path: Path::Top,
        name: String::new(),
    });
    let result = top.deserialize(&mut de).and_then(|()| de.end());
    match (ctx.refusal, result) {
        (Some(r), _) => Err(r),
        (None, Err(e)) => Err(Refusal::Malformed(e.to_string())),
        (None, Ok(())) => Ok(ctx.counted),
    }
}

/// The walk's shared state.
struct Ctx {
    kind: Kind,
    counted: Counted,
    refusal: Option<Refusal>,
}

impl Ctx {
    /// Records why the walk stops (serde needs an error to unwind; this keeps the reason).
    fn stop<E: serde::de::Error>(&mut self, refusal: Refusal) -> E {
        let text = refusal.to_string();
        self.refusal = Some(refusal);
        E::custom(text)
    }

    fn value<E: serde::de::Error>(&mut self) -> Result<(), E> {
        self.counted.values(1).map_err(|r| self.stop(r))
    }

    fn item<E: serde::de::Error>(&mut self) -> Result<(), E> {
        let kind = self.kind;
        self.counted.item(kind).map_err(|r| self.stop(r))
    }
}

/// Where a JSON value sits on the way to the items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Top,
    Resource,
    Scope,
    /// A span, or a metric.
    Item,
    /// A metric's `gauge`, `sum`, ... object.
    MetricData,
    /// Its `dataPoints` array.
    DataPoints,
    DataPoint,
    Other,
}

/// What a field holds: a message list (an array of objects, checked) whose elements sit at
/// the path, or any value at the path.
enum Child {
    List(Path),
    Value(Path),
}

fn child(kind: Kind, parent: Path, key: &str) -> Child {
    let names = match kind {
        Kind::Traces => ["resourceSpans", "scopeSpans", "spans"],
        Kind::Metrics => ["resourceMetrics", "scopeMetrics", "metrics"],
    };
    match parent {
        Path::Top if key == names[0] => Child::List(Path::Resource),
        Path::Resource if key == names[1] => Child::List(Path::Scope),
        Path::Scope if key == names[2] => Child::List(Path::Item),
        Path::Item
            if kind == Kind::Metrics
                && matches!(
                    key,
                    "gauge" | "sum" | "histogram" | "exponentialHistogram" | "summary"
                ) =>
        {
            Child::Value(Path::MetricData)
        }
        Path::MetricData if key == "dataPoints" => Child::Value(Path::DataPoints),
        _ => Child::Value(Path::Other),
    }
}

/// A visitor's methods for JSON's scalars (booleans, numbers and strings): each hands the
/// visitor to `$answer`, as nothing here depends on which scalar it is.
macro_rules! visit_scalars {
    (|$visitor:ident| $answer:expr) => {
        visit_scalars!(@each |$visitor| $answer;
            visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    };
    (@each |$visitor:ident| $answer:expr; $($method:ident: $ty:ty),*) => {
        $(
            fn $method<E: serde::de::Error>(self, _: $ty) -> Result<(), E> {
                let $visitor = self;
                $answer
            }
        )*
    };
}

/// Seeds that read any JSON value and check its type themselves, as their visitors.
macro_rules! seeds_of_any {
    ($($seed:ident),*) => {
        $(
            impl<'de> serde::de::DeserializeSeed<'de> for $seed<'_> {
                type Value = ();
                fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                    d.deserialize_any(self)
                }
            }
        )*
    };
}

seeds_of_any!(Value, List, Object);

/// Any value at `path`; `prefix` names an object's fields in messages (`resourceSpans[0].`);
/// `element` whether it is an array's element (each element is a decoded value).
struct Value<'a> {
    ctx: &'a mut Ctx,
    path: Path,
    prefix: String,
    element: bool,
}

impl Value<'_> {
    fn scalar<E: serde::de::Error>(self) -> Result<(), E> {
        if self.element {
            self.ctx.value()?;
        }
        Ok(())
    }
}

impl<'de> serde::de::Visitor<'de> for Value<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    visit_scalars!(|value| value.scalar());
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.ctx.value()?;
        let is_item = match self.ctx.kind {
            Kind::Traces => self.path == Path::Item,
            Kind::Metrics => self.path == Path::DataPoint,
        };
        if is_item {
            self.ctx.item()?;
        }
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match child(self.ctx.kind, self.path, &key) {
                Child::List(elements) => map.next_value_seed(List(Place {
                    ctx: &mut *self.ctx,
                    path: elements,
                    name: format!("{}{key}", self.prefix),
                }))?,
                Child::Value(path) => map.next_value_seed(Value {
                    ctx: &mut *self.ctx,
                    path,
                    prefix: String::new(),
                    element: false,
                })?,
            }
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.element {
            self.ctx.value()?;
        }
        let path = match self.path {
            Path::DataPoints => Path::DataPoint,
            _ => Path::Other,
        };
        while seq
            .next_element_seed(Value {
                ctx: &mut *self.ctx,
                path,
                prefix: String::new(),
                element: true,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// Where a message list or an object stands: the walk, the path of what it holds (a list's
/// elements, an object's fields) and its name in messages (empty for the request).
struct Place<'a> {
    ctx: &'a mut Ctx,
    path: Path,
    name: String,
}

impl Place<'_> {
    /// Stops the walk: the value here is not a JSON `kind` (`array`, `object`).
    fn malformed<E: serde::de::Error>(self, kind: &str) -> E {
        let r = Refusal::Malformed(if self.name.is_empty() {
            format!("a JSON {kind} is expected")
        } else {
            format!("{} must be an {kind}", self.name)
        });
        self.ctx.stop(r)
    }
}

/// A message list: absent, null, or an array of objects.
struct List<'a>(Place<'a>);

impl<'de> serde::de::Visitor<'de> for List<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Place { ctx, path, name } = self.0;
        let mut i = 0usize;
        while seq
            .next_element_seed(Object(Place {
                ctx: &mut *ctx,
                path,
                name: format!("{name}[{i}]"),
            }))?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.0.malformed("array"))
    }
    visit_scalars!(|list| Err(list.0.malformed("array")));
}

/// A value that must be an object: the request, or a message list's element.
struct Object<'a>(Place<'a>);

impl<'de> serde::de::Visitor<'de> for Object<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let Place { ctx, path, name } = self.0;
        let prefix = if name.is_empty() {
            String::new()
        } else {
            format!("{name}.")
        };
        Value {
            ctx,
            path,
            prefix,
            element: false,
        }
        .visit_map(map)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.0.malformed("object"))
    }
    visit_scalars!(|object| Err(object.0.malformed("object")));
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(self.0.malformed("object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` empty spans in one ResourceSpans and one ScopeSpans, as protobuf.
    fn empty_spans(n: usize) -> Vec<u8> {
        let spans: Vec<u8> = std::iter::repeat_n([0x12u8, 0x00], n).flatten().collect();
        // ResourceSpans { scope_spans (2): ScopeSpans { spans (2): ... } }
        let resource = field(0x12, spans);
        field(0x0a, resource)
    }

    /// A length-delimited protobuf field: its key byte, its length, then `body`.
    fn field(key: u8, body: Vec<u8>) -> Vec<u8> {
        let mut out = vec![key];
        prost::encoding::encode_varint(body.len() as u64, &mut out);
        out.extend(body);
        out
    }

    /// A request of one resource and one scope holding one element (a span or a metric,
    /// field 2 of its scope) of content `element`.
    fn request_of(element: Vec<u8>) -> Vec<u8> {
        field(0x0a, field(0x12, field(0x12, element)))
    }

    #[test]
    fn protobuf_spans_are_counted_and_too_many_refused_early() {
        use prost::Message as _;
        let ok = empty_spans(MAX_ITEMS);
        let counted = count_protobuf(&ok, Kind::Traces);
        assert_eq!(counted.map(|c| c.items), Ok(MAX_ITEMS));
        let decoded =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                &ok[..],
            )
            .map(|r| r.resource_spans[0].scope_spans[0].spans.len());
        assert_eq!(
            decoded.ok(),
            Some(MAX_ITEMS),
            "the scan counts what prost decodes"
        );
        assert_eq!(
            count_protobuf(&empty_spans(16_000_000), Kind::Traces),
            Err(Refusal::TooManyItems(Kind::Traces))
        );
    }

    #[test]
    fn protobuf_values_count_attributes_and_packed_varints() {
        // One span with 300,000 empty attributes (field 9): few bytes, many structs.
        let attrs: Vec<u8> = std::iter::repeat_n([0x4au8, 0x00], 300_000)
            .flatten()
            .collect();
        assert_eq!(
            count_protobuf(&request_of(attrs), Kind::Traces),
            Err(Refusal::TooManyValues)
        );
        // Exponential histogram buckets: 300,000 one-byte varints, packed, as the counts (2)
        // of the positive buckets (8) of a data point (1) of a metric's exponential
        // histogram (10).
        let buckets = field(0x12, vec![0u8; 300_000]);
        let metric = field(0x52, field(0x0a, field(0x42, buckets)));
        assert_eq!(
            count_protobuf(&request_of(metric), Kind::Metrics),
            Err(Refusal::TooManyValues)
        );
    }

    #[test]
    fn protobuf_that_is_not_protobuf_is_malformed() {
        assert!(matches!(
            count_protobuf(&[0x0a, 0x05, 0x00], Kind::Traces),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            count_protobuf(&[0x0f], Kind::Traces),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn json_items_and_values_are_counted() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"b"}}]},
            "scopeSpans":[{"spans":[{"name":"x","attributes":[]},{"name":"y"}]}]}]}"#;
        let counted = count_json(body, Kind::Traces);
        assert_eq!(counted.as_ref().map(|c| c.items).ok(), Some(2));
        // request, resourceSpans[0], resource, attribute, its value, scopeSpans[0], 2 spans
        assert_eq!(counted.map(|c| c.values), Ok(8));
        let metrics = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"system.cpu.utilization","gauge":{"dataPoints":[{"asDouble":0.5},{"asDouble":0.1}]}}]}]}]}"#;
        assert_eq!(count_json(metrics, Kind::Metrics).map(|c| c.items), Ok(2));
    }

    #[test]
    fn json_with_ten_million_empty_spans_is_refused_before_decoding() {
        let mut body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":["#.to_vec();
        for i in 0..10_000_000 {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"{}");
        }
        body.extend_from_slice(b"]}]}]}");
        assert_eq!(
            count_json(&body, Kind::Traces),
            Err(Refusal::TooManyItems(Kind::Traces))
        );
        let many_values = format!("{{\"x\":[{}0]}}", "0,".repeat(MAX_VALUES));
        assert_eq!(
            count_json(many_values.as_bytes(), Kind::Traces),
            Err(Refusal::TooManyValues)
        );
    }

    #[test]
    fn json_message_lists_must_be_arrays_of_objects() {
        let refused = |body: &str| match count_json(body.as_bytes(), Kind::Traces) {
            Err(Refusal::Malformed(why)) => why,
            other => format!("not refused: {other:?}"),
        };
        for (body, why) in [
            (
                r#"{"resourceSpans": [{"scopeSpans": [{"spans": [[]]}]}]}"#,
                "resourceSpans[0].scopeSpans[0].spans[0] must be an object",
            ),
            (
                r#"{"resourceSpans": [[]]}"#,
                "resourceSpans[0] must be an object",
            ),
            (r#"{"resourceSpans": 5}"#, "resourceSpans must be an array"),
            ("[1]", "a JSON object is expected"),
        ] {
            assert_eq!(refused(body), why, "{body}");
        }
        assert!(refused("{").starts_with("EOF while parsing"));
        let metrics = r#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [3]}]}]}"#;
        assert_eq!(
            count_json(metrics.as_bytes(), Kind::Metrics),
            Err(Refusal::Malformed(
                "resourceMetrics[0].scopeMetrics[0].metrics[0] must be an object".to_owned()
            ))
        );
        assert!(count_json(br#"{"resourceSpans": null}"#, Kind::Traces).is_ok());
    }
}
