"""Traces with an in-memory span exporter: the span tree of a login, and the trace id in its log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import client_for
from usermgmt.container import Container
from usermgmt.entrypoints import tracing
from usermgmt.entrypoints.http.app import create_app
from usermgmt.entrypoints.logging import JsonFormatter, RequestIdFilter

pytestmark = pytest.mark.e2e

PASSWORD = "traced password 42"


@dataclass
class Traced:
    client: httpx.AsyncClient
    spans: InMemorySpanExporter
    log: io.StringIO


@pytest.fixture
async def traced(container: Container, clean_database: AsyncEngine) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    app = create_app(container)
    assert tracing.instrument(app, container.engine(), exporter=exporter, batch=False) is not None
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    access = logging.getLogger("usermgmt.access")
    access.addHandler(handler)
    # Whatever earlier tests did to logging (a dictConfig disables existing loggers), this logger writes here.
    level, disabled, access.level, access.disabled = access.level, access.disabled, logging.INFO, False
    previous_disable = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    try:
        async with LifespanManager(app), client_for(app) as client:
            yield Traced(client=client, spans=exporter, log=log)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
        access.disabled = disabled
        logging.disable(previous_disable)


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


async def test_a_login_is_one_trace_of_the_request_its_hash_and_its_statements(traced: Traced) -> None:
    client = traced.client
    assert (
        await client.post("/api/v1/auth/register", json={"email": "t@example.com", "password": PASSWORD})
    ).status_code == 201
    traced.spans.clear()
    login = await client.post("/api/v1/auth/login", json={"login": "t@example.com", "password": PASSWORD})
    assert login.status_code == 200

    finished = traced.spans.get_finished_spans()
    (server,) = [span for span in finished if span.kind is SpanKind.SERVER]
    # The outbox worker's and the maintenance task's statements are traces of their own, outside any request.
    spans = [span for span in finished if span.context.trace_id == server.context.trace_id]
    background = [span for span in finished if span.context.trace_id != server.context.trace_id]
    assert all(span.parent is None and span.kind is not SpanKind.SERVER for span in background), [
        s.name for s in background
    ]
    by_id = {span.context.span_id: span for span in spans}
    assert server.name == "POST /api/v1/auth/login"
    assert server.parent is None
    assert server.attributes is not None and server.attributes.get("http.route") == "/api/v1/auth/login"
    others = [span for span in spans if span is not server]
    assert others and all(server in ancestors(span, by_id) for span in others)  # one tree under the request
    (verify,) = [span for span in spans if span.name == "password.verify"]
    statements = [span for span in spans if span.attributes and "db.statement" in span.attributes]
    assert any(str(s.attributes["db.statement"]).lstrip().upper().startswith("SELECT") for s in statements)  # type: ignore[index]
    assert any(str(s.attributes["db.statement"]).lstrip().upper().startswith("INSERT") for s in statements)  # type: ignore[index]
    # Nothing secret in any attribute: statements are sent with bound parameters, never the values.
    every_value = " ".join(str(v) for span in spans for v in (span.attributes or {}).values())
    assert PASSWORD not in every_value and "t@example.com" not in every_value
    assert verify.end_time is not None and verify.start_time is not None

    lines = [json.loads(line) for line in traced.log.getvalue().splitlines()]
    (line,) = [entry for entry in lines if entry.get("path") == "/api/v1/auth/login"]
    assert line["trace_id"] == format(server.context.trace_id, "032x")


async def test_tracing_is_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.enabled()
