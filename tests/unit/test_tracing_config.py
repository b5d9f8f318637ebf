"""The ``[tracing]`` section: parsing, errors naming the key, and what each exporter builds."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from payhooks import tracing
from payhooks.config import ConfigError, TracingSettings, load_settings


def load(tmp_path: Path, toml: str, environ: dict[str, str] | None = None) -> TracingSettings:
    path = tmp_path / "payhooks.toml"
    path.write_text(toml)
    return load_settings(path, environ=environ or {}).tracing


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    settings = load(tmp_path, "")
    assert settings == TracingSettings(exporter="off")
    assert not settings.enabled
    assert tracing.build(settings, "receiver") is None


def test_tracing_section_is_read(tmp_path: Path) -> None:
    settings = load(tmp_path, """
[tracing]
exporter = "otlp"
otlp_endpoint = "https://collector.internal:4318/v1/traces"
service_name = "payhooks-eu"
sample_ratio = 0.25
""")
    assert settings == TracingSettings(
        exporter="otlp", otlp_endpoint="https://collector.internal:4318/v1/traces",
        service_name="payhooks-eu", sample_ratio=0.25)
    assert settings.enabled


def test_environment_overrides_the_tracing_section(tmp_path: Path) -> None:
    settings = load(tmp_path, '[tracing]\nexporter = "console"\n', {
        "PAYHOOKS_TRACING__EXPORTER": "otlp",
        "PAYHOOKS_TRACING__SAMPLE_RATIO": "0.5",
        "PAYHOOKS_TRACING__OTLP_ENDPOINT": "http://otel:4318/v1/traces",
    })
    assert (settings.exporter, settings.sample_ratio, settings.otlp_endpoint) == (
        "otlp", 0.5, "http://otel:4318/v1/traces")


@pytest.mark.parametrize(("toml", "key", "problem"), [
    ('exporter = "jaeger"', "tracing.exporter", "must be one of off, otlp, console; got 'jaeger'"),
    ("sample_ratio = 1.5", "tracing.sample_ratio", "must be between 0 and 1; got 1.5"),
    ('sample_ratio = "half"', "tracing.sample_ratio", "expected a number, got 'half'"),
    ('exporter = "otlp"\notlp_endpoint = "collector:4318"', "tracing.otlp_endpoint",
     "must be an http:// or https:// URL; got 'collector:4318'"),
    ('exporter = "otlp"\nheaders = "x"', "tracing.headers", "unknown key"),
])
def test_bad_tracing_settings_name_the_key(tmp_path: Path, toml: str, key: str, problem: str
                                           ) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"[tracing]\n{toml}\n")
    assert caught.value.key == key
    assert caught.value.problem.startswith(problem)


def test_tracing_off_never_imports_the_tracing_sdk_or_an_exporter() -> None:
    # a fresh interpreter: this test process has the SDK loaded for the other tests. (redis-py 8
    # imports opentelemetry.sdk.metrics on its own when the SDK is installed; not our tracing.)
    code = (
        "import sys\n"
        "import payhooks.services, ingest.app, consumers.worker\n"
        "from payhooks import tracing\n"
        "from payhooks.config import Settings\n"
        "assert tracing.build(Settings().tracing, 'receiver') is None\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.startswith(('opentelemetry.sdk.trace', 'opentelemetry.exporter'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[2])
    assert done.stdout.strip() == "[]"


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps what it was sent."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.path, self.headers["content-type"], body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()


def test_otlp_exporter_sends_the_spans_to_the_configured_endpoint_on_shutdown(
        collector: tuple[str, list[tuple[str, str, bytes]]]) -> None:
    endpoint, received = collector
    traced = tracing.build(TracingSettings(exporter="otlp", otlp_endpoint=endpoint), "worker")
    assert traced is not None
    with traced.apply() as span:
        traced.decided(span, ("applied",), redelivered=False)
    traced.shutdown()  # flushes the batch processor
    [(path, content_type, body)] = received
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "payhooks-worker"
    [scope_spans] = resource_spans.scope_spans
    assert [s.name for s in scope_spans.spans] == ["apply"]


def test_console_exporter_prints_the_spans_with_the_configured_service_name(
        capsys: pytest.CaptureFixture[str]) -> None:
    traced = tracing.build(TracingSettings(exporter="console", service_name="payhooks-eu"),
                           "receiver")
    assert traced is not None
    with traced.verify("stripe"):
        pass
    traced.shutdown()
    out = capsys.readouterr().out
    assert '"name": "verify"' in out
    assert '"service.name": "payhooks-eu"' in out


def test_sample_ratio_zero_keeps_no_new_trace_but_still_propagates_a_context() -> None:
    traced = tracing.build(TracingSettings(exporter="console", sample_ratio=0.0), "receiver")
    assert traced is not None
    with traced.publish("webhooks.raw", ["evt_1"]) as context:
        version, trace_id, span_id, flags = context.split("-")
    traced.shutdown()
    assert version == "00"
    assert int(flags, 16) & 0x01 == 0  # not sampled: the workers drop the trace as well
    assert int(trace_id, 16) != 0
    assert int(span_id, 16) != 0
