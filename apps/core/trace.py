"""W3C trace context (https://www.w3.org/TR/trace-context/) for requests, tasks and sockets.

The middleware continues an incoming ``traceparent`` (or starts a trace), answers
with its own span in the response header and binds the trace id to every log line.
Celery signals carry the context into task headers so a task's logs and records have
the trace id of the request that caused it.
"""

import re
import secrets
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

TRACEPARENT = "traceparent"
_TRACEPARENT_RE = re.compile(
    r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})"
)


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    sampled: bool = True

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def child(self) -> "TraceContext":
        """A new span in the same trace."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.sampled)


_current: ContextVar[TraceContext | None] = ContextVar("trace", default=None)


def parse_traceparent(header: str | None) -> TraceContext | None:
    """The context in a ``traceparent`` header, or None when it is absent or invalid."""
    if not header:
        return None
    match = _TRACEPARENT_RE.match(header.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    # Version 00 has exactly four fields; later versions may append more.
    if version == "00" and len(header.strip()) != 55:
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def new_trace() -> TraceContext:
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8))


def current_trace() -> TraceContext | None:
    return _current.get()


def current_trace_id() -> str:
    """The bound trace id, or an empty string outside any trace."""
    ctx = _current.get()
    return ctx.trace_id if ctx else ""


def bind(ctx: TraceContext) -> Token[TraceContext | None]:
    """Make ``ctx`` current for this context and its log lines."""
    structlog.contextvars.bind_contextvars(trace_id=ctx.trace_id)
    return _current.set(ctx)


def unbind(token: Token[TraceContext | None]) -> None:
    _current.reset(token)
    structlog.contextvars.unbind_contextvars("trace_id")


def continue_or_start(header: str | None) -> TraceContext:
    """A child span of the incoming context, or a new trace."""
    parent = parse_traceparent(header)
    return parent.child() if parent else new_trace()


class TraceContextMiddleware:
    """Bind the request's trace context and echo it in the ``traceparent`` header."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        ctx = continue_or_start(request.headers.get(TRACEPARENT))
        token = bind(ctx)
        try:
            response: HttpResponseBase = self.get_response(request)
        finally:
            unbind(token)
        response[TRACEPARENT] = ctx.traceparent
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        ctx = continue_or_start(request.headers.get(TRACEPARENT))
        token = bind(ctx)
        try:
            get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]
            get_response = self.get_response
            response = await get_response(request)
        finally:
            unbind(token)
        response[TRACEPARENT] = ctx.traceparent
        return response


def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    ctx = _current.get()
    if ctx is not None and headers is not None and TRACEPARENT not in headers:
        headers[TRACEPARENT] = ctx.child().traceparent


_task_tokens: dict[str, Token[TraceContext | None]] = {}


def _on_prerun(task_id: str, task: Any, **_: Any) -> None:
    header = getattr(task.request, TRACEPARENT, None)
    if header is None and task.request.headers:
        header = task.request.headers.get(TRACEPARENT)
    ctx = continue_or_start(header)
    _task_tokens[task_id] = bind(ctx)
    structlog.contextvars.bind_contextvars(task_id=task_id, task=task.name)


def _on_postrun(task_id: str, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        unbind(token)
    structlog.contextvars.unbind_contextvars("task_id", "task")


def connect_celery_signals() -> None:
    """Carry the trace context through Celery messages."""
    from celery import signals

    signals.before_task_publish.connect(_on_publish, weak=False)
    signals.task_prerun.connect(_on_prerun, weak=False)
    signals.task_postrun.connect(_on_postrun, weak=False)
