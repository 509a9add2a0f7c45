"""OpenTelemetry for every service, set up once per process.

Spans: the aiohttp server (one SERVER span per request, continuing the caller's W3C
``traceparent``: :func:`server_middleware`), the peer client (CLIENT spans, named ``GET
products``: :func:`client_trace_config`), SQLAlchemy and Redis. The HTTP spans are our own
(``httpspans.py``): OpenTelemetry's aiohttp instrumentations built twice the attributes through
several layers and recorded metrics nobody reads, on every request, traced or not.
The standard ``OTEL_*`` variables are honoured: ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``OTEL_TRACES_SAMPLER``
(and ``_ARG``), ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console`` or ``none``), ``OTEL_BSP_*``,
``OTEL_PROPAGATORS`` and ``OTEL_SDK_DISABLED``. Spans are exported in batches over OTLP/HTTP
(encoded by ``otlp.py``, the same message as OpenTelemetry's encoder at a fifth of its cost) and
flushed at shutdown.

Apps always carry the instrumentation; without :func:`setup` (as in unit tests) it talks to
OpenTelemetry's no-op provider and only passes the caller's ``traceparent`` on.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import web
from opentelemetry import trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import Status, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine

from .httpspans import client_trace_config as client_trace_config
from .httpspans import server_middleware as server_middleware
from .problems import Problem

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

tracer = trace.get_tracer("boutique")


def instrument_engine(engine: AsyncEngine) -> None:
    """SQL spans (statements with placeholders, never the values) under the request's span."""
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False)


def _exporter(env: dict[str, str]) -> SpanExporter | None:
    kind = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    configured = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if kind == "none" or (not kind and not configured):
        return None
    if kind == "console":
        return ConsoleSpanExporter()
    if kind not in ("", "otlp"):
        raise ValueError(
            f"OTEL_TRACES_EXPORTER={kind!r} is not supported: use otlp, console or none"
        )
    from .otlp import LeanOTLPSpanExporter

    return LeanOTLPSpanExporter()


def _resource_attributes(env: dict[str, str]) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES``: ``key=value`` pairs, comma separated, values %-encoded."""
    out = {}
    for pair in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            out[key.strip()] = unquote(value.strip())
    return out


def make_provider(service: str, env: dict[str, str]) -> TracerProvider | None:
    """A tracer provider as the ``OTEL_*`` variables ask; ``None`` when tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = _exporter(env)
    if exporter is None:
        return None
    # OTEL_SERVICE_NAME wins, then OTEL_RESOURCE_ATTRIBUTES' service.name, then our own name.
    attributes = {SERVICE_NAME: service, **_resource_attributes(env)}
    if env.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = env["OTEL_SERVICE_NAME"]
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def setup(service: str, environ: dict[str, str] | None = None) -> TracerProvider | None:
    """Install the process's tracer provider and the Redis instrumentation."""
    provider = make_provider(service, dict(os.environ if environ is None else environ))
    if provider is not None:
        trace.set_tracer_provider(provider)
        RedisInstrumentor().instrument(tracer_provider=provider)
    return provider


def flush_on_cleanup(app: web.Application, provider: TracerProvider) -> None:
    async def shutdown(_app: web.Application) -> None:
        provider.shutdown()  # exports what is still batched

    app.on_cleanup.append(shutdown)


def step(name: str) -> Callable[[F], F]:
    """An INTERNAL span named ``name`` around an async function: a business step a reader
    should see in a trace (``checkout.reserve_stock``). A :class:`Problem` raised inside marks
    the span as an error with ``error.type`` = the problem's code (a declined card is a failure
    of this step even though its HTTP answer is a 4xx)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(
                name, record_exception=False, set_status_on_exception=False
            ) as span:
                try:
                    return await fn(*args, **kwargs)
                except Problem as problem:
                    code = str(problem.details.get("code") or problem.status)
                    span.set_attribute("error.type", code)
                    span.set_status(Status(StatusCode.ERROR, code))
                    raise
                except Exception as exc:
                    span.set_attribute("error.type", type(exc).__qualname__)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
                    raise

        return run  # type: ignore[return-value]

    return wrap


def annotate(**attributes: str | int | bool) -> None:
    """Add attributes to the current span (``app.order.id=...``); no-op when not tracing."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({k.replace("__", "."): v for k, v in attributes.items()})


TRACERESPONSE = "traceresponse"


@web.middleware
async def traceresponse_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer with the request's trace id (W3C Trace Context ``traceresponse``), so a client can
    find the trace of what it just did, errors included."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return await handler(request)
    value = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[TRACERESPONSE] = value
        raise
    response.headers[TRACERESPONSE] = value
    return response
