"""manage.py metrics query|status: table, json and csv parse back to the same rows."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from apps.metrics.buffer import Buffer
from apps.metrics.db import default_database
from apps.metrics.heartbeat import Heartbeat
from apps.metrics.models import Resolution
from apps.metrics.persister import Persister
from apps.metrics.rollups import rollup_due
from apps.metrics.storage import SampleWriter
from tests.metrics.conftest import sample

FORMATS = ("table", "json", "csv")


def run_command(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def run(*args: str) -> str:
    return run_command("metrics", *args)


def parsed(text: str, output_format: str) -> list[dict[str, str]]:
    if output_format == "json":
        return json.loads(text)
    if output_format == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    # The table is aligned: each column starts where its header does.
    header, *lines = text.splitlines()
    columns = [(m.group(), m.start()) for m in re.finditer(r"\S+", header)]
    ends = [start for _, start in columns[1:]] + [None]
    return [
        {
            name: line[start:end].strip()
            for (name, start), end in zip(columns, ends, strict=True)
        }
        for line in lines
    ]


@pytest.fixture
def rolled(db):
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hour -= timedelta(hours=3)
    SampleWriter(database=default_database).write(
        [
            sample("t.cli", v, at=hour + timedelta(minutes=v % 3, seconds=v % 50))
            for v in range(1, 301)
        ]
    )
    rollup_due(
        resolution=Resolution.MINUTE, now=hour + timedelta(hours=1), grace=timedelta(0)
    )
    return hour


def test_query__three_formats__parse_back_to_the_same_rows(rolled):
    args = ["query", "t.cli", "--from", rolled.isoformat(), "--step", "1m"]
    rows = [parsed(run(*args, "--format", f), f) for f in FORMATS]
    assert rows[0] == rows[1] == rows[2]
    assert [row["count"] for row in rows[0]] == ["100", "100", "100"]
    assert rows[0][0]["start"] == rolled.isoformat(timespec="seconds")


def test_query__step_not_whole_minutes__one_line_command_error(rolled):
    with pytest.raises(CommandError, match="whole number of minutes"):
        run("query", "t.cli", "--from", rolled.isoformat(), "--step", "90")


def test_status__three_formats__parse_back_to_the_same_rows(db, tmp_path):
    # A persister that is never started: its counters stay as set here.
    buffer = Buffer(bound=10, flush_at=10)
    buffer.append(sample("t.cli.status", 1))
    persister = Persister(
        buffer=buffer, spill_dir=tmp_path, spill_max_bytes=1, interval=1, batch=10
    )
    Heartbeat(role="test", stats=persister.stats, name="cli:1").publish()
    outputs = [parsed(run("status", "--format", f), f) for f in FORMATS]
    # Other processes publish meanwhile: compare the row this test published.
    rows = [[row for row in output if row["process"] == "cli:1"] for output in outputs]
    assert rows[0] == rows[1] == rows[2]
    assert (rows[0][0]["role"], rows[0][0]["buffered"]) == ("test", "1")


def test_backfill_tags__configured_key__rows_per_resolution_and_tag_queryable(
    db, settings
):
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hour -= timedelta(hours=3)
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = []
    SampleWriter(database=default_database).write(
        [
            sample("t.clitag", v, at=hour + timedelta(seconds=v), region="eu")
            for v in (1, 2)
        ]
    )
    rollup_due(
        resolution=Resolution.MINUTE, now=hour + timedelta(hours=1), grace=timedelta(0)
    )
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["region"]
    args = ["query", "t.clitag", "--from", hour.isoformat(), "--tags", "region:eu"]
    assert parsed(run(*args, "--format", "json"), "json") == []

    rows = parsed(run("backfill-tags", "--format", "json"), "json")

    assert [row["resolution"] for row in rows] == ["minute", "hour", "day"]
    assert int(rows[0]["rows"]) >= 1
    assert [r["count"] for r in parsed(run(*args, "--format", "json"), "json")] == ["2"]


def test_backfill_tags__key_not_configured__one_line_command_error(db, settings):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["env"]
    with pytest.raises(CommandError, match="OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS"):
        run("backfill-tags", "--keys", "host")
