"""Spans around the adapters' own slow work (password hashing, SMTP, calls to other services), when tracing is on.

Tracing is switched on by the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (entrypoints/tracing.py), which hands the
tracer to ``use_tracer``. Until then, and always when it is unset, ``span`` does nothing and imports nothing
(the SDK is the optional ``tracing`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_tracer: Any = None  # an opentelemetry.trace.Tracer once tracing is configured


def use_tracer(tracer: Any) -> None:
    """Spans from now on go to ``tracer`` (None: no spans)."""
    global _tracer
    _tracer = tracer


@contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[None]:
    """A child span of the current one named ``name``, for the duration of the block; nothing when tracing is off.
    Attributes never carry a secret, an address or an id of a person."""
    tracer = _tracer
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(name, attributes=attributes):
        yield
