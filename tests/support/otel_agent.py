"""An agent that reports through the real OpenTelemetry Python SDK, as agent frameworks do.

Each run is a trace shaped as the GenAI semantic conventions and the frameworks' own
instrumentations shape it: an `invoke_agent` span, under it a model call (`chat`, v1.41
attribute names), a tool call (`execute_tool`) with a plain HTTP span under it, and a second
model call with the older names (`gen_ai.system`, `prompt_tokens`) and no operation
attribute. One run (`--fail-run`) fails: its tool raises and the agent span ends in error.

The exporter is configured the way a user configures it, from the environment:
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_COMPRESSION.
`--encoding` picks the SDK's protobuf or JSON OTLP/HTTP exporter. `--exports N` exports the
same finished spans N times (an exporter retrying a request). Then the same request is posted
once more by hand to read the receiver's answer (the SDK's exporters do not return it).

Prints one JSON object: the exporters' results and the receiver's last answer.
"""

import argparse
import gzip
import json
import os
import time

import requests
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

MS = 1_000_000  # nanoseconds


def build_spans(agent_id, agent_name, runs, fail_run, tool):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "research-service"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("agent-framework", "1.0")
    base = time.time_ns() - (runs * 5 + 60) * 1000 * MS
    for i in range(runs):
        t0 = base + i * 5000 * MS
        failing = i == fail_run
        agent = tracer.start_span(
            f"invoke_agent {agent_name}",
            kind=trace.SpanKind.INTERNAL,
            start_time=t0,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.id": agent_id,
                "gen_ai.agent.name": agent_name,
                "gen_ai.provider.name": "openai",
            },
        )
        ctx = trace.set_span_in_context(agent)
        chat = tracer.start_span(
            "chat gpt-4o",
            context=ctx,
            kind=trace.SpanKind.CLIENT,
            start_time=t0 + 100 * MS,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 20,
            },
        )
        chat.end(end_time=t0 + 400 * MS)
        tool_span = tracer.start_span(
            f"execute_tool {tool}",
            context=ctx,
            start_time=t0 + 500 * MS,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "gen_ai.tool.call.id": f"call_{i}",
            },
        )
        http = tracer.start_span(
            "GET",
            context=trace.set_span_in_context(tool_span),
            kind=trace.SpanKind.CLIENT,
            start_time=t0 + 510 * MS,
            attributes={"http.request.method": "GET", "url.full": "https://search.example/q"},
        )
        http.end(end_time=t0 + 640 * MS)
        if failing:
            tool_span.record_exception(TimeoutError("search timed out"))
            tool_span.set_status(Status(StatusCode.ERROR, "search timed out"))
            tool_span.set_attribute("error.type", "TimeoutError")
        tool_span.end(end_time=t0 + 650 * MS)
        older = tracer.start_span(
            "chat claude-sonnet",
            context=ctx,
            kind=trace.SpanKind.CLIENT,
            start_time=t0 + 700 * MS,
            attributes={
                "gen_ai.system": "anthropic",
                "gen_ai.request.model": "claude-sonnet",
                "gen_ai.usage.prompt_tokens": 50,
                "gen_ai.usage.completion_tokens": 10,
            },
        )
        older.end(end_time=t0 + 1500 * MS)
        if failing:
            agent.set_status(Status(StatusCode.ERROR, f"tool {tool} failed: search timed out"))
            agent.set_attribute("error.type", "TimeoutError")
        agent.end(end_time=t0 + 2000 * MS)
    return memory.get_finished_spans()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoding", choices=["protobuf", "json"], required=True)
    parser.add_argument("--agent-id", required=True)
    parser.add_argument("--agent-name", default="Researcher")
    parser.add_argument("--tool", default="web_search")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fail-run", type=int, default=-1)
    parser.add_argument("--exports", type=int, default=1)
    args = parser.parse_args()

    spans = build_spans(args.agent_id, args.agent_name, args.runs, args.fail_run, args.tool)
    if args.encoding == "protobuf":
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        body = encode_spans(spans).SerializeToString()
        content_type = "application/x-protobuf"
    else:
        from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter

        body = encode_spans(spans).to_json().encode()
        content_type = "application/json"

    exporter = OTLPSpanExporter()
    results = [exporter.export(spans).name for _ in range(args.exports)]
    exporter.shutdown()

    # The same request by hand, to read the answer (and as one more retry).
    endpoint = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    headers = {"Content-Type": content_type}
    for pair in os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(","):
        if "=" in pair:
            k, v = pair.split("=", 1)
            headers[k.strip()] = requests.utils.unquote(v.strip())
    if os.environ.get("OTEL_EXPORTER_OTLP_COMPRESSION") == "gzip":
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    answer = requests.post(endpoint, data=body, headers=headers, timeout=10)
    if args.encoding == "protobuf":
        parsed = ExportTraceServiceResponse.FromString(answer.content)
        partial = {
            "rejectedSpans": parsed.partial_success.rejected_spans,
            "errorMessage": parsed.partial_success.error_message,
        }
    else:
        partial = answer.json().get("partialSuccess", {})
    print(
        json.dumps(
            {
                "spans": len(spans),
                "results": results,
                "status": answer.status_code,
                "content_type": answer.headers.get("Content-Type"),
                "partial_success": partial,
            }
        )
    )


if __name__ == "__main__":
    main()
