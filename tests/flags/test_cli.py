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
from apps.flags.models import Flag, FlagVersion, Segment
from apps.flags.services import flag_create, segment_upsert
from tests.flags.builders import cond, flag_data, rule

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


def _manage(*args: str) -> subprocess.CompletedProcess:
    """``manage.py`` as a shell runs it: its own process, on the test database."""
    db = connection.settings_dict
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    url = f"postgresql://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "OPSCONSOLE_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_process_toggle__unknown_flag__exit_1_one_line():
    result = _manage("flags", "toggle", "ghost", "on")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["CommandError: no flag 'ghost'"]
    assert result.stdout == ""


def test_process_import__bad_json__exit_1_one_line(tmp_path):
    bad = tmp_path / "flags.json"
    bad.write_text('{"flags": [}')

    result = _manage("flags", "import", str(bad), "--reason", "move")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: {bad}: not valid JSON: Expecting value at line 1, column 12"
    ]


def _segment(key: str, conditions: list) -> None:
    segment_upsert(
        key=key,
        data={"name": key, "conditions": conditions},
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )


def _emptied() -> None:
    """An installation with no flags and no segments at all."""
    Flag.objects.all().delete()
    Segment.objects.all().delete()


def test_export_import__into_emptied_set__round_trips(tmp_path):
    _segment("beta", [cond("plan", "in", ["beta", "pro"])])
    _create("base")
    _create(
        "child",
        requires=[{"flag": "base"}],
        rules=[rule(cond("", "in_segment", "beta"))],
    )
    _create("old", enabled=False, archived=True, expires_at="2026-01-31T00:00:00+00:00")
    exported = tmp_path / "flags.json"
    run_flags("export", "--output", str(exported))
    _emptied()

    output = run_flags("import", str(exported), "--reason", "move")

    assert json.loads(run_flags("export")) == json.loads(exported.read_text())
    assert "Created" in output.splitlines()[-1]
    imported = AuditEvent.objects.filter(action="flag.imported", source="cli")
    assert imported.count() == Flag.objects.count() >= 4
    assert set(FlagVersion.objects.values_list("version", flat=True)) == {1}


def test_import__dry_run__diff_printed_nothing_written(tmp_path):
    _create("checkout")
    document = json.loads(run_flags("export"))
    next(f for f in document["flags"] if f["key"] == "checkout")["enabled"] = False
    document["flags"].append({**flag_data(name="fresh"), "key": "fresh"})
    changed = tmp_path / "flags.json"
    changed.write_text(json.dumps(document))
    audited = AuditEvent.objects.count()

    rows = json.loads(
        run_flags(
            "import", str(changed), "--dry-run", "--reason", "r", "--format", "json"
        )
    )

    assert [
        (r["key"], r["action"], r["field"], r["before"], r["after"]) for r in rows
    ] == [
        ("checkout", "update", "enabled", "true", "false"),
        ("fresh", "create", "", "", ""),
    ]
    assert Flag.objects.get(key="checkout").enabled is True
    assert not Flag.objects.filter(key="fresh").exists()
    assert AuditEvent.objects.count() == audited


def test_import__invalid_set__every_error_on_one_line_nothing_written(tmp_path):
    document = {
        "flags": [
            {**flag_data(name="a", requires=[{"flag": "ghost"}]), "key": "a"},
            {**flag_data(name="b", variants={"on": "yes", "off": False}), "key": "b"},
        ]
    }
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(document))

    with pytest.raises(CommandError) as caught:
        run_flags("import", str(path), "--reason", "r")

    message = str(caught.value)
    assert "\n" not in message
    assert "flags.a.requires.0.flag: no such flag" in message
    assert "flags.b.variants.on: must be true or false" in message
    assert not Flag.objects.filter(key__in=["a", "b"]).exists()


def test_import__unknown_field_and_flag_needing_approval__refused(tmp_path):
    _create("guarded", requires_approval=True)
    document = {
        "flags": [
            {"key": "guarded", "enabled": False},
            {"key": "typo", "enabeld": True},
        ]
    }
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(document))

    with pytest.raises(CommandError) as caught:
        run_flags("import", str(path), "--reason", "r")

    assert str(caught.value) == "flags.typo.enabeld: unknown field"
    document["flags"].pop()
    path.write_text(json.dumps(document))
    with pytest.raises(CommandError, match=r"flags\.guarded\.requires_approval: "):
        run_flags("import", str(path), "--reason", "r")
    assert Flag.objects.get(key="guarded").enabled is True


def test_set__spec_file_new_then_existing__created_then_changed(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**flag_data(name="Search v2"), "key": "search"}))
    created = run_flags("set", "search", "--spec-file", str(spec), "--reason", "launch")
    spec.write_text(json.dumps({"enabled": False, "owner": "search-team"}))

    changed = run_flags("set", "search", "--spec-file", str(spec), "--reason", "pause")

    assert created.strip() == "Set search (version 1)."
    assert changed.strip() == "Set search (version 2)."
    flag = Flag.objects.get(key="search")
    assert (flag.name, flag.enabled, flag.owner) == ("Search v2", False, "search-team")
    assert AuditEvent.objects.filter(source="cli", reason="pause").count() == 1


def test_set__enabled_off_protected_with_reason__switched():
    output = run_flags(
        "set", "opsconsole.live.enabled", "--enabled", "off", "--reason", "incident 9"
    )

    assert output.strip() == "Set opsconsole.live.enabled (version 2)."
    assert Flag.objects.get(key="opsconsole.live.enabled").enabled is False


def test_set__spec_file_not_an_object__command_error(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text("[1, 2]")

    with pytest.raises(CommandError) as caught:
        run_flags("set", "search", "--spec-file", str(spec), "--reason", "r")

    assert str(caught.value) == f"{spec}: must hold a JSON object of flag fields"
    assert not Flag.objects.filter(key="search").exists()


def test_evaluate__context_matches_rule__targeting_match_as_csv():
    _create("pro", default_variant="off", rules=[rule(cond("plan", "equals", "pro"))])

    rows = list(
        csv.DictReader(
            io.StringIO(
                run_flags(
                    "evaluate", "pro", "--context", '{"plan": "pro"}', "--format", "csv"
                )
            )
        )
    )

    assert rows == [
        {
            "key": "pro",
            "value": "true",
            "variant": "on",
            "reason": "TARGETING_MATCH",
            "error_code": "",
            "error": "",
        }
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ghost",), "no flag 'ghost'"),
        (("pro", "--context", "[]"), "--context: must be a JSON object"),
        (("pro", "--context", "{"), "--context: not valid JSON: "),
    ],
)
def test_evaluate__bad_input__one_line_command_error(args, message):
    _create("pro")

    with pytest.raises(CommandError) as caught:
        run_flags("evaluate", *args)

    assert str(caught.value).startswith(message)
