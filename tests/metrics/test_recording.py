"""record(), in C and in Python: bad input raises at once, also for a series seen
before; good samples land under one series whatever the order of their tags."""

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from django.db import connection

from apps import metrics
from apps.core.exceptions import ValidationFailed
from apps.metrics import _recordc
from apps.metrics.recording import record_python
from tests.metrics.conftest import raw_count
from tests.procs import wait_until

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True, params=[_recordc.record, record_python], ids=["c", "py"])
def prefix(request, monkeypatch):
    """Each test for record() in C and for its Python twin, with series names of
    its own (the persister keeps the ids of series it has written)."""
    monkeypatch.setattr(metrics, "record", request.param)
    return "t.rec.c" if request.param is _recordc.record else "t.rec.py"


@pytest.mark.parametrize(
    ("name", "value", "tags", "field"),
    [
        ("bad name", 1.0, None, "name"),
        ("t.rec.bad", math.inf, None, "value"),
        ("t.rec.bad", math.nan, {"host": "a"}, "value"),
        ("t.rec.bad", 1.0, {"bad key": "a"}, "tags"),
        ("t.rec.bad", 1.0, {"host": "x" * 201}, "tags"),
        ("t.rec.bad", "1.5", None, "value"),
        ("t.rec.bad", None, {"host": "a"}, "value"),
        ("t.rec.bad", 10**400, None, "value"),
        ("t.rec.bad", 1 + 2j, {"host": "a"}, "value"),
    ],
)
def test_record__bad_input__raises_every_time(name, value, tags, field):
    metrics.record("t.rec.bad", 1.0)  # the series is known before the bad calls
    metrics.record("t.rec.bad", 1.0, {"host": "a"})
    for _ in range(2):
        with pytest.raises(ValidationFailed) as refused:
            metrics.record(name, value, tags)
        assert set(refused.value.fields) == {field}


def test_record__numbers_of_other_types__land_as_floats(prefix):
    name = f"{prefix}.types"
    metrics.record(name, 1.0, {"host": "a"})  # known: the fast path
    for value in (2, True, Decimal("3.25"), np.float32(4.5), Fraction(1, 4)):
        metrics.record(name, value, {"host": "a"})
    metrics.record(name, 7, {"host": "a", "list": ["x"]})  # unhashable
    metrics.record(name, 8, {"host": "a", "list": ["x"]})
    wait_until(lambda: raw_count(name) == 8, timeout=30, what="flush")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.value FROM metrics_sample m JOIN metrics_series s "
            "ON s.id = m.series_id WHERE s.name = %s ORDER BY m.at",
            [name],
        )
        assert [v for (v,) in cursor.fetchall()] == [
            1.0,
            2.0,
            1.0,
            3.25,
            4.5,
            0.25,
            7.0,
            8.0,
        ]


def test_record__tags_in_any_order__one_series_every_sample_lands(prefix):
    name = f"{prefix}.order"
    at = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=1)
    for n in range(100):
        tags = {"a": "1", "b": str(n % 2)} if n % 3 else {"b": str(n % 2), "a": "1"}
        metrics.record(name, n, tags)
    metrics.record(name, 100, {"b": "0", "a": "1"}, at=at)
    wait_until(lambda: raw_count(name) == 101, timeout=30, what="flush")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.tags, count(*), min(m.at) FROM metrics_sample m "
            "JOIN metrics_series s ON s.id = m.series_id "
            "WHERE s.name = %s GROUP BY s.tags ORDER BY 2",
            [name],
        )
        rows = cursor.fetchall()
    assert [(json.loads(tags), count) for tags, count, _ in rows] == [
        ({"a": "1", "b": "1"}, 50),
        ({"a": "1", "b": "0"}, 51),
    ]
    assert rows[1][2] == at
