"""Exports one trace with the real OpenTelemetry Python SDK to the receiver under test.

Usage: python_sdk.py VARIANT PROTOCOL ENDPOINT GZIP BASE_NS
  PROTOCOL: grpc | http (protobuf);  GZIP: 1 | 0;  BASE_NS: the root's start, unix ns.
  An https:// endpoint means TLS. Headers (the bearer token) and the CA to trust come
  from the SDK's own settings, OTEL_EXPORTER_OTLP_HEADERS and _CERTIFICATE, as in real use.

Prints one JSON line: the export result and, per span, what the SDK generated (ids,
resource) for the Rust side to check the stored rows against.
"""

import json
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, set_span_in_context

MS = 1_000_000


def exporter(protocol, endpoint, gzip):
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
        insecure = not endpoint.startswith("https://")
        return OTLPSpanExporter(endpoint=endpoint, insecure=insecure, compression=compression, timeout=30)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    compression = Compression.Gzip if gzip else Compression.NoCompression
    return OTLPSpanExporter(endpoint=endpoint, compression=compression, timeout=30)


def main():
    variant, protocol, endpoint, gzip, base = sys.argv[1:6]
    gzip, base = gzip == "1", int(base)
    memory = InMemorySpanExporter()

    def tracer(service, version, instance, scope, scope_version):
        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": service,
                    "service.version": version,
                    "service.instance.id": instance,
                    "deployment.environment": "e2e",
                }
            )
        )
        provider.add_span_processor(SimpleSpanProcessor(memory))
        return provider.get_tracer(scope, scope_version)

    checkout = tracer("py-checkout", "1.4.2", "checkout-1", "e2e.checkout", "2.3.4")
    inventory = tracer("py-inventory", "0.9.0", "inventory-7", "e2e.inventory", "0.1.0")

    root = checkout.start_span(
        "GET /checkout",
        kind=SpanKind.SERVER,
        start_time=base,
        attributes={
            "http.method": "GET",
            "http.status_code": 500,
            "retry.ratio": 0.25,
            "cache.hit": False,
            "tags": ["a", "b"],
            "codes": [1, 2, 3],
            "variant": variant,
        },
    )
    ctx = set_span_in_context(root)
    db = checkout.start_span(
        "db.query", context=ctx, kind=SpanKind.CLIENT, start_time=base + 1 * MS,
        attributes={"db.system": "postgresql"},
    )
    db.add_event("cache.miss", attributes={"key": "k1", "hits": 3}, timestamp=base + 2 * MS)
    db.end(end_time=base + 5 * MS)
    publish = checkout.start_span(
        "queue.publish", context=ctx, kind=SpanKind.PRODUCER, start_time=base + 6 * MS,
        links=[Link(db.get_span_context(), {"link.kind": "follows"})],
    )
    publish.set_status(Status(StatusCode.ERROR, "timeout"))
    publish.end(end_time=base + 8 * MS)
    reserve = inventory.start_span("reserve", context=ctx, kind=SpanKind.CONSUMER, start_time=base + 9 * MS)
    reserve.set_status(Status(StatusCode.OK))
    reserve.end(end_time=base + 20 * MS)
    root.set_status(Status(StatusCode.ERROR, "boom"))
    root.end(end_time=base + 25 * MS)

    spans = memory.get_finished_spans()
    result = exporter(protocol, endpoint, gzip).export(spans)
    print(
        json.dumps(
            {
                "variant": variant,
                "result": result.name,
                "spans": [
                    {
                        "name": s.name,
                        "trace_id": format(s.context.trace_id, "032x"),
                        "span_id": format(s.context.span_id, "016x"),
                        "parent_span_id": format(s.parent.span_id, "016x") if s.parent else "",
                        "resource": dict(s.resource.attributes),
                    }
                    for s in spans
                ],
            }
        ),
        flush=True,
    )


main()
