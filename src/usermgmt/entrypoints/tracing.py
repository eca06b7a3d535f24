"""OpenTelemetry traces, on when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set.

Each server process then gets a tracer provider exporting over OTLP/HTTP (protobuf) with a batch processor, and:

- a server span per request (opentelemetry-instrumentation-fastapi, named by route template), outermost, so
  every log line of the request carries its ``trace_id`` and ``span_id``;
- a span per SQL statement (opentelemetry-instrumentation-sqlalchemy, on the engine: PostgreSQL and SQLite);
- spans of our own around password hashing, SMTP, the Pwned Passwords range query and the hot path's principal
  read (adapters/tracing.py).

Everything else is the SDK's own ``OTEL_*`` configuration: ``OTEL_SERVICE_NAME`` (default ``usermgmt``),
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_EXPORTER_OTLP_HEADERS``/``_TIMEOUT``...;
``OTEL_SDK_DISABLED=true`` turns it all off. Unset, neither the SDK nor an instrumentation is imported and nothing
runs: those packages are the optional ``tracing`` extra (``pip install 'usermgmt[tracing]'``, in the Docker image
by default).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import usermgmt
from usermgmt.adapters import tracing as adapter_spans
from usermgmt.entrypoints import logging as log_setup

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
DEFAULT_SERVICE_NAME = "usermgmt"


def enabled() -> bool:
    """Whether traces are asked for: an OTLP endpoint is set, and the SDK is not disabled."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def instrument(
    app: FastAPI, engine: AsyncEngine, *, exporter: SpanExporter | None = None, batch: bool = True
) -> TracerProvider | None:
    """Trace ``app`` and ``engine`` to ``exporter`` (default: OTLP/HTTP from the ``OTEL_*`` variables), through a
    batch processor (``batch=False``: each span exported as it ends, for tests). The provider is returned (and
    kept as ``app.state.tracer_provider``: the app's shutdown flushes it); None when the ``tracing`` extra is
    missing, which is logged, since the operator asked for traces."""
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        logger.error("traces asked for (OTEL_EXPORTER_OTLP_ENDPOINT) but the 'tracing' extra is not installed")
        return None

    resource = Resource.create({SERVICE_VERSION: usermgmt.__version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER, parent-based by default
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=["receive", "send"])
    # The instrumentation declares sqlalchemy < 2.1 but uses only its event API, unchanged in 2.1 (the span-tree
    # test, tests/e2e/test_tracing.py, runs it against our SQLAlchemy): the version check is skipped.
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, tracer_provider=provider, enable_commenter=False, skip_dep_check=True
    )
    adapter_spans.use_tracer(provider.get_tracer("usermgmt", usermgmt.__version__))

    def current_ids() -> tuple[str, str] | None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    log_setup.trace_ids = current_ids
    app.state.tracer_provider = provider
    return provider


def shutdown(app: FastAPI) -> None:
    """Export what is still buffered and stop (the app's shutdown)."""
    provider = getattr(app.state, "tracer_provider", None)
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().uninstrument()  # a process-wide instrumentor: the next app (tests) instruments anew
    provider.shutdown()
    adapter_spans.use_tracer(None)
    log_setup.trace_ids = None
    app.state.tracer_provider = None
