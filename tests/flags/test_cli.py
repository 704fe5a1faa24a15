import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.core.models import AuditEvent
from apps.flags.models import Flag, FlagVersion
from apps.flags.services import flag_create
from tests.flags.builders import flag_data

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def run_flags(*args: str) -> str:
    """``manage.py flags …`` in this process; what it printed."""
    out = io.StringIO()
    call_command("flags", *args, stdout=out)
    return out.getvalue()


def _create(key: str, **overrides) -> Flag:
    return flag_create(
        key=key,
        data=flag_data(name=key, **overrides),
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )


def test_list__json_and_tag__only_tagged_rows_with_state():
    _create("a", tags=["shop"], enabled=False)
    _create("b", tags=["search"])

    rows = json.loads(run_flags("list", "--tag", "shop", "--format", "json"))

    assert [(row["key"], row["state"], row["tags"]) for row in rows] == [
        ("a", "off", "shop")
    ]


def test_list__csv__header_and_archived_only_when_asked():
    _create("old", enabled=False, archived=True)

    plain = list(csv.DictReader(io.StringIO(run_flags("list", "--format", "csv"))))
    everything = list(
        csv.DictReader(
            io.StringIO(run_flags("list", "--include-archived", "--format", "csv"))
        )
    )

    assert "old" not in {row["key"] for row in plain}
    assert {"key": "old", "state": "archived"}.items() <= next(
        row for row in everything if row["key"] == "old"
    ).items()


def test_list__table__aligned_header_first():
    _create("checkout")

    lines = run_flags("list").splitlines()

    assert lines[0].split() == [
        "key",
        "name",
        "type",
        "state",
        "tags",
        "owner",
        "protected",
        "expires_at",
        "version",
        "updated_at",
    ]
    assert any(line.startswith("checkout ") for line in lines[1:])


def test_show__json__every_field_as_text():
    _create("checkout", variants={"on": True, "off": False}, owner="sre")

    rows = {
        row["field"]: row["value"]
        for row in json.loads(run_flags("show", "checkout", "--format", "json"))
    }

    assert (rows["key"], rows["owner"], rows["enabled"]) == ("checkout", "sre", "true")
    assert json.loads(rows["variants"]) == {"on": True, "off": False}


def test_show__unknown_flag__one_line_command_error():
    with pytest.raises(CommandError) as caught:
        run_flags("show", "ghost")

    assert str(caught.value) == "no flag 'ghost'"


def test_toggle__protected_with_reason__off_audited_as_cli():
    output = run_flags(
        "toggle", "opsconsole.live.enabled", "off", "--reason", "incident 7"
    )

    assert output.strip() == "Switched opsconsole.live.enabled off (version 2)."
    assert Flag.objects.get(key="opsconsole.live.enabled").enabled is False
    event = AuditEvent.objects.get(action="flag.toggled")
    assert (event.source, event.reason) == ("cli", "incident 7")


def test_toggle__protected_without_reason__command_error_unchanged():
    with pytest.raises(CommandError) as caught:
        run_flags("toggle", "opsconsole.live.enabled", "off")

    assert str(caught.value) == "reason: a protected flag is changed only with a reason"
    assert Flag.objects.get(key="opsconsole.live.enabled").enabled is True


def test_toggle__requirement_off__command_error_names_it():
    _create("base", enabled=False)
    _create("child", enabled=False, requires=[{"flag": "base"}])

    with pytest.raises(CommandError, match="requires base, which is off"):
        run_flags("toggle", "child", "on")

    assert not FlagVersion.objects.filter(flag__key="child", version=2).exists()


def test_history__csv__newest_first_with_reason():
    _create("checkout")
    run_flags("toggle", "checkout", "off", "--reason", "noisy")

    rows = list(
        csv.DictReader(io.StringIO(run_flags("history", "checkout", "--format", "csv")))
    )

    assert [(r["version"], r["enabled"], r["reason"]) for r in rows] == [
        ("2", "off", "noisy"),
        ("1", "on", ""),
    ]


def test_history__unknown_flag__command_error():
    with pytest.raises(CommandError, match="no flag 'ghost'"):
        run_flags("history", "ghost")


def test_process_toggle__unknown_flag__exit_1_one_line():
    # As a shell sees it: manage.py against the test database, in its own process.
    db = connection.settings_dict
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    url = f"postgresql://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "OPSCONSOLE_LOG_LEVEL": "WARNING"}

    result = subprocess.run(
        [sys.executable, "manage.py", "flags", "toggle", "ghost", "on"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["CommandError: no flag 'ghost'"]
    assert result.stdout == ""
