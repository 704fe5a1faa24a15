import csv
import io
import json

import pytest

from apps.core.cli import render_rows

ROWS = [
    {"name": "db, primary", "state": "healthy"},
    {"name": 'say "hi"', "state": ""},
]
COLUMNS = ["name", "state"]


def test_render_rows__json__parses_back_to_rows():
    out = render_rows(ROWS, columns=COLUMNS, output_format="json")
    assert json.loads(out) == ROWS


def test_render_rows__csv__parses_back_to_rows_with_commas_and_quotes():
    out = render_rows(ROWS, columns=COLUMNS, output_format="csv")
    assert list(csv.DictReader(io.StringIO(out))) == ROWS


def test_render_rows__table__aligned_columns_header_first():
    lines = render_rows(ROWS, columns=COLUMNS, output_format="table").splitlines()
    assert lines[0].split() == ["name", "state"]
    assert lines[1].startswith("db, primary")
    assert lines[0].index("state") == lines[1].index("healthy")


@pytest.mark.parametrize("output_format", ["table", "json", "csv"])
def test_render_rows__no_rows__header_or_empty_array(output_format):
    out = render_rows([], columns=COLUMNS, output_format=output_format)
    assert out in ("name  state", "[]", "name,state")
