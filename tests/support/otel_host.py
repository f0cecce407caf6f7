"""A host reporting through the real OpenTelemetry Python SDK's OTLP/HTTP metric exporter,
shaped as the OpenTelemetry Collector's hostmetrics receiver shapes it: CPU utilization per
CPU and state, memory utilization per state, and a metric the monitor does not map.

Configured from the environment like any exporter (OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_HEADERS). `--exports N` collects and exports N times (each a new
collection, at its own time). Prints the exporter's results as JSON.
"""

import argparse
import json

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource


class Recording(OTLPMetricExporter):
    """The SDK's exporter, keeping each export's result."""

    results = []

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.results.append(result.name if isinstance(result, MetricExportResult) else str(result))
        return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--exports", type=int, default=1)
    args = parser.parse_args()

    exporter = Recording()
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"host.name": args.host}), metric_readers=[reader])
    meter = provider.get_meter("hostmetrics", "1.0")

    def cpu(_options):
        for cpu_id, idle, user in [("cpu0", 0.2, 0.7), ("cpu1", 0.4, 0.5)]:
            yield Observation(idle, {"cpu": cpu_id, "state": "idle"})
            yield Observation(user, {"cpu": cpu_id, "state": "user"})
            yield Observation(1 - idle - user, {"cpu": cpu_id, "state": "system"})

    def memory(_options):
        yield Observation(0.55, {"state": "used"})
        yield Observation(0.30, {"state": "free"})
        yield Observation(0.15, {"state": "cached"})

    def network(_options):
        yield Observation(1200, {"device": "eth0", "direction": "receive"})
        yield Observation(800, {"device": "eth0", "direction": "transmit"})

    meter.create_observable_gauge("system.cpu.utilization", [cpu], unit="1")
    meter.create_observable_gauge("system.memory.utilization", [memory], unit="1")
    meter.create_observable_counter("system.network.io", [network], unit="By")
    for _ in range(args.exports):
        provider.force_flush()
    provider.shutdown()
    print(json.dumps({"results": Recording.results}))


if __name__ == "__main__":
    main()
