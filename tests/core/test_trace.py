import json
import logging

import pytest

from apps.core import trace

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_parse_traceparent__valid__fields():
    ctx = trace.parse_traceparent(VALID)
    assert ctx == trace.TraceContext(
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True
    )
    assert ctx.traceparent == VALID


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        VALID + "-extra",
    ],
)
def test_parse_traceparent__invalid__none(header):
    assert trace.parse_traceparent(header) is None


@pytest.mark.django_db
def test_middleware__incoming_traceparent__continues_trace_with_new_span(client):
    response = client.get("/livez", headers={"traceparent": VALID})
    ctx = trace.parse_traceparent(response["traceparent"])
    assert ctx is not None
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ctx.span_id != "00f067aa0ba902b7"


@pytest.mark.django_db
def test_middleware__no_or_bad_traceparent__starts_new_trace(client):
    first = trace.parse_traceparent(client.get("/livez")["traceparent"])
    second = trace.parse_traceparent(
        client.get("/livez", headers={"traceparent": "bogus"})["traceparent"]
    )
    assert first is not None
    assert second is not None
    assert first.trace_id != second.trace_id


def test_log_line__inside_trace__carries_trace_id():
    from apps.core.logging import configure_logging

    configure_logging(level="INFO", json=True)
    try:
        formatter = logging.getLogger().handlers[0].formatter
        record = logging.LogRecord(
            "x", logging.INFO, __file__, 1, "task.ran", None, None
        )
        token = trace.bind(trace.parse_traceparent(VALID))
        try:
            line = formatter.format(record)
        finally:
            trace.unbind(token)
        payload = json.loads(line)
        assert payload["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert payload["event"] == "task.ran"
        assert "trace_id" not in json.loads(formatter.format(record))
    finally:
        from django.conf import settings

        configure_logging(level=settings.LOG_LEVEL, json=settings.LOG_FORMAT == "json")
