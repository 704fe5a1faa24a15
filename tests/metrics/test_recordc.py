"""record() in C (``_recordc``) and its Python twin do the same: the same packed
sample, the same errors, the same bound; and the C one is what ``make`` builds
and ``metrics.record`` is, the Python one where it is not built."""

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from time import time_ns
from types import MappingProxyType

import pytest

from apps import metrics
from apps.core.exceptions import ValidationFailed
from apps.metrics import _recordc, process
from apps.metrics.buffer import PG_EPOCH_UNIX_US, Buffer
from apps.metrics.recording import record_python
from apps.metrics.series import registry, series_of


@pytest.fixture(params=[_recordc.record, record_python], ids=["c", "python"])
def record(request):
    return request.param


@pytest.fixture
def buffer():
    """A buffer of the test's own in place of the process's (no persister)."""
    started, process.current = process.current, Buffer(bound=3, flush_at=2)
    yield process.current
    process.current = started


def test_metrics_record__built__is_the_c_one():
    assert metrics.record is _recordc.record


def test_record__known_series__packs_number_time_value(record, buffer):
    record("t.recc.pack", 1.0, {"host": "a", "dc": "x"})  # now known
    buffer.take(10)
    before = time_ns()
    record("t.recc.pack", 2.5, {"host": "a", "dc": "x"})
    record("t.recc.pack", 7, tags={"host": "a", "dc": "x"})
    after = time_ns()
    taken = buffer.take(10)
    number = registry.index(series_of("t.recc.pack", (("dc", "x"), ("host", "a"))))
    assert taken.numbers.tolist() == [number, number]
    assert taken.values.tolist() == [2.5, 7.0]
    unix_us = (taken.at_us + PG_EPOCH_UNIX_US).tolist()
    assert all(before // 1000 <= us <= after // 1000 for us in unix_us)


def test_record__past_the_bound__refused_and_counted(record, buffer):
    for n in range(5):
        record("t.recc.bound", float(n))
    assert (len(buffer), buffer.dropped) == (3, 2)
    assert buffer.wake.is_set()
    assert buffer.take(10).values.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    "tags",
    [MappingProxyType({"host": "a"}), {"host": "a"}, {"host": "a", "list": ["x"]}],
    ids=["mapping", "dict", "unhashable"],
)
def test_record__tags_of_any_mapping__same_series(record, buffer, tags):
    for _ in range(2):  # the second call is the known one, where there is one
        record("t.recc.map", 1.0, tags)
    plain = {k: str(v) for k, v in tags.items()}
    number = registry.index(series_of("t.recc.map", tuple(sorted(plain.items()))))
    assert buffer.take(10).numbers.tolist() == [number, number]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("inf"), "Must be a finite number."),
        (float("nan"), "Must be a finite number."),
        (10**400, "Must be a number."),
        ("1.5", "Must be a number."),
    ],
)
def test_record__known_series_bad_value__refused_nothing_buffered(
    record, buffer, value, message
):
    record("t.recc.value", 1.0)
    buffer.take(10)
    with pytest.raises(ValidationFailed) as refused:
        record("t.recc.value", value)
    assert refused.value.fields == {"value": [message]}
    assert len(buffer) == 0


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        (("t.recc.call",), {}),
        (("t.recc.call", 1.0, None, None, None), {}),
        (("t.recc.call", 1.0), {"value": 2.0}),
        (("t.recc.call", 1.0), {"when": None}),
    ],
    ids=["nothing", "no-value", "five", "twice", "unknown"],
)
def test_record__call_not_fitting_the_signature__type_error(
    record, buffer, args, kwargs
):
    with pytest.raises(TypeError):
        record(*args, **kwargs)
    assert len(buffer) == 0


def test_record__every_argument_by_keyword__lands(record, buffer):
    record(tags={"host": "k"}, value=3.0, name="t.recc.kw")
    record(value=4.0, name="t.recc.kw", tags={"host": "k"})
    assert buffer.take(10).values.tolist() == [3.0, 4.0]


def test_record__many_calls__hold_no_memory(record, buffer):
    buffer.bound = buffer.flush_at = 10**6
    record("t.recc.mem", 1.0, {"host": "a"})
    tracemalloc.start()
    try:
        for _ in range(3):
            buffer.data.clear()
            before = tracemalloc.get_traced_memory()[0]
            for n in range(20_000):
                record("t.recc.mem", float(n), {"host": "a"})
            buffer.data.clear()
            held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A key tuple leaked per call would hold over a megabyte.
    assert held < 64 * 1024


def test_metrics_record__c_not_built__is_the_python_twin():
    # None in sys.modules makes the import raise ImportError, as a missing .so does.
    code = (
        "import sys; sys.modules['apps.metrics._recordc'] = None; "
        "from apps import metrics; from apps.metrics import recording; "
        "print(metrics.record is recording.record_python)"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (ran.returncode, ran.stdout.strip()) == (0, "True"), ran.stderr
