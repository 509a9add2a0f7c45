"""The apps' HTTP spans: a SERVER span per request, a CLIENT span per peer call.

OpenTelemetry's aiohttp instrumentations cost about a quarter of the gateway's CPU at 100
requests/s. They build a dozen attributes through layers of helpers (the URL parsed and redacted
twice, a ``yarl.URL`` built for the host), record three metrics instruments nobody reads (with
tracing off too), and attach the client span as the current one around each call. This module
makes the same spans from the request line and a few headers, with the attributes of the
semantic conventions (v1.20, as the instrumentations wrote them; ``http.status_code=402`` is
what a trace search asks for):

- SERVER ``<METHOD> <route>``: ``http.method``, ``http.route``, ``http.target``, ``http.url``,
  ``http.scheme``, ``http.flavor``, ``net.host.name``, ``net.host.port``, ``http.user_agent``,
  ``http.status_code``; ERROR for a 5xx or an exception (recorded as an event);
- CLIENT ``<METHOD> <peer>``: ``http.method``, ``http.url``, ``peer.service``,
  ``http.status_code``; ERROR for a 4xx/5xx or a failed call (recorded).

The caller's W3C ``traceparent`` (and ``tracestate``) is continued and the client span's passed
on, by the process's propagator (``OTEL_PROPAGATORS``); with the default one (tracecontext and
baggage) a plain ``traceparent`` is read and written directly. Spans are made by the process's
tracer provider, so sampling, processors and exporters are OpenTelemetry's. Without a provider
(tracing off) no span is made and the caller's context is passed on as it came.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from aiohttp import TraceConfig, TraceRequestEndParams, TraceRequestExceptionParams, web
from aiohttp import TraceRequestStartParams as StartParams
from opentelemetry import context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceFlags
from yarl import URL

SCOPE = "services.kit.httpspans"
# Health probes are not traffic anyone wants to read in a trace.
EXCLUDED = frozenset(
    path.strip()
    for path in os.environ.get("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", "/healthz,/readyz")
    .replace(" ", "")
    .split(",")
    if path.strip()
)
_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
_ERROR = Status(StatusCode.ERROR)
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_FLAGS = {TraceFlags(0): "00", TraceFlags(1): "01"}


class _Tracing:
    """The process's tracer for HTTP spans, looked up again when the provider changes (it is
    set after the app is made), and whether traceparent may be read and written directly."""

    def __init__(self) -> None:
        self._provider: Any = None
        self._textmap: Any = None
        self.tracer: trace.Tracer | None = None
        self.plain_w3c = False

    def refresh(self) -> None:
        provider, textmap = trace.get_tracer_provider(), propagate.get_global_textmap()
        if provider is self._provider and textmap is self._textmap:
            return
        self._provider, self._textmap = provider, textmap
        off = isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
        self.tracer = None if off else provider.get_tracer(SCOPE)
        self.plain_w3c = _is_default(textmap)


def _is_default(textmap: Any) -> bool:
    kinds = [type(p) for p in getattr(textmap, "_propagators", ())]
    return isinstance(textmap, CompositePropagator) and kinds == [
        TraceContextTextMapPropagator,
        W3CBaggagePropagator,
    ]


_tracing = _Tracing()


def _extract(headers: Any) -> context.Context:
    """The caller's context: its traceparent read directly when that is all there is."""
    if _tracing.plain_w3c and "tracestate" not in headers and "baggage" not in headers:
        parent = headers.get("traceparent")
        if parent is None:
            return context.Context()
        match = _TRACEPARENT.fullmatch(parent)
        if match:
            trace_id, span_id = int(match[1], 16), int(match[2], 16)
            if trace_id and span_id:
                span = SpanContext(trace_id, span_id, True, TraceFlags(int(match[3], 16)))
                return trace.set_span_in_context(NonRecordingSpan(span))
    return propagate.extract(headers)  # anything else, as OpenTelemetry reads it


def _inject(headers: Any, span: trace.Span) -> None:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return
    if _tracing.plain_w3c and not ctx.trace_state:
        flags = _FLAGS.get(ctx.trace_flags) or format(ctx.trace_flags, "02x")
        headers["traceparent"] = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags}"
        return
    propagate.inject(headers, context=trace.set_span_in_context(span))


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def _server_attributes(request: web.Request, method: str, route: str) -> dict[str, Any]:
    headers = request.headers
    host = headers.get("Host") or ""
    name, _, port = host.rpartition(":") if host[-1:].isdigit() else (host, "", "")
    scheme = "https" if request.secure else "http"
    target = request.raw_path
    version = request.version
    attributes: dict[str, Any] = {
        "http.method": method,
        "http.scheme": scheme,
        "http.flavor": f"{version.major}.{version.minor}",
        "http.target": target,
        "http.url": f"{scheme}://{host}{target}",
        "http.route": route,
    }
    if name:
        attributes["net.host.name"] = name
    if port:
        attributes["net.host.port"] = int(port)
    agent = headers.get("User-Agent")
    if agent:
        attributes["http.user_agent"] = agent
    return attributes


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def server_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A SERVER span around the request, as the current span of its handling. The first
    middleware, so the span sees the final status of every answer, problems included."""
    if request.path in EXCLUDED:
        return await handler(request)
    _tracing.refresh()
    parent = _extract(request.headers)
    tracer = _tracing.tracer
    if tracer is None:
        token = context.attach(parent)
        try:
            return await handler(request)
        finally:
            context.detach(token)
    method = request.method if request.method in _METHODS else "_OTHER"
    route = _route(request)
    name = f"{method if method != '_OTHER' else 'HTTP'} {route}" if route else method
    span = tracer.start_span(
        name,
        context=parent,
        kind=SpanKind.SERVER,
        attributes=_server_attributes(request, method, route),
    )
    token = context.attach(trace.set_span_in_context(span, parent))
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _server_status(span, exc.status, exc)
        raise
    except Exception as exc:
        span.set_status(Status(StatusCode.ERROR, f"Unhandled: {type(exc).__qualname__}"))
        span.record_exception(exc)
        raise
    else:
        _server_status(span, response.status, None)
        return response
    finally:
        context.detach(token)
        span.end()


def _server_status(span: trace.Span, status: int, exc: BaseException | None) -> None:
    span.set_attribute("http.status_code", status)
    if status >= 500:
        span.set_status(_ERROR)
        if exc is not None:
            span.record_exception(exc)


def client_trace_config(peer_urls: dict[str, str]) -> TraceConfig:
    """CLIENT spans for peer calls, named ``<METHOD> <peer>`` however the peer is reached
    (its URL in ``peer_urls``, or the peer's name as the host)."""
    by_authority = {URL(url).raw_authority: peer for peer, url in peer_urls.items()}

    async def on_start(_session: Any, ctx: SimpleNamespace, params: StartParams) -> None:
        _tracing.refresh()
        tracer = _tracing.tracer
        if tracer is None:  # tracing off: the caller's context goes on as it came
            current = trace.get_current_span()
            if current.get_span_context().is_valid:
                _inject(params.headers, current)
            return
        url = params.url
        peer = by_authority.get(url.raw_authority) or url.host or ""
        method = params.method
        span = tracer.start_span(
            f"{method} {peer}",
            kind=SpanKind.CLIENT,
            attributes={"http.method": method, "http.url": str(url), "peer.service": peer},
        )
        ctx.span = span
        _inject(params.headers, span)

    async def on_end(_session: Any, ctx: SimpleNamespace, params: TraceRequestEndParams) -> None:
        span = ctx.span
        if span is None:
            return
        status = params.response.status
        span.set_attribute("http.status_code", status)
        if status >= 400:
            span.set_status(_ERROR)
        span.end()

    async def on_exception(
        _session: Any, ctx: SimpleNamespace, params: TraceRequestExceptionParams
    ) -> None:
        span = ctx.span
        if span is None:
            return
        span.set_status(Status(StatusCode.ERROR, type(params.exception).__qualname__))
        span.record_exception(params.exception)
        span.end()

    def new_context(**kwargs: Any) -> SimpleNamespace:
        return SimpleNamespace(span=None, **kwargs)

    config = TraceConfig(trace_config_ctx_factory=new_context)  # type: ignore[arg-type]
    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    return config
