import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from apps.core.models import ApiToken, AuditEvent
from apps.core.services import token_authenticate
from tests.factories import make_token, make_user

ROOT = Path(__file__).resolve().parents[2]


def run_tokens(*args: str) -> list[str]:
    """``manage.py tokens …`` in this process; the lines it printed."""
    out = io.StringIO()
    call_command("tokens", *args, stdout=out)
    return out.getvalue().splitlines()


def test_create__operator__last_line_is_a_working_token(db):
    # Given an operator
    user = make_user(username="ops", role="operator")
    # When a token is created from the shell
    lines = run_tokens(
        "create", "--user", "ops", "--scopes", "read,write", "--name", "ci"
    )
    # Then its last line is the token, which authenticates as that user
    token = token_authenticate(raw=lines[-1])
    assert (token.user, token.name, token.scopes) == (user, "ci", ["read", "write"])
    assert token.expires_at is None
    event = AuditEvent.objects.get(action="token.created")
    assert (event.source, event.actor_id, event.actor_label) == ("cli", None, "cli")


def test_create__expires_days__expiry_set(db):
    make_user(username="ops", role="viewer")
    lines = run_tokens(
        "create", "--user", "ops", "--scopes", "read", "--expires-days", "7"
    )
    expires_at = token_authenticate(raw=lines[-1]).expires_at
    assert expires_at is not None
    assert abs(expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "ghost", "--scopes", "read"], "Unknown user 'ghost'"),
        (["--user", "vic", "--scopes", "read,root"], "Unknown scope(s): root"),
        (["--user", "vic", "--scopes", "write"], "Not allowed for vic: write"),
        (["--user", "vic", "--scopes", ","], "Choose at least one scope"),
        (["--user", "vic", "--scopes", "read", "--expires-days", "0"], "at least 1"),
    ],
)
def test_create__user_error__one_line_command_error(db, args, message):
    make_user(username="vic", role="viewer")
    with pytest.raises(CommandError) as exc:
        run_tokens("create", *args)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_list__any_format__no_secret_or_hash(db, fmt):
    token, raw = make_token(name="grafana")
    output = "\n".join(run_tokens("list", "--format", fmt))
    assert token.prefix in output
    assert "grafana" in output
    assert raw[12:] not in output
    assert token.key_hash not in output


def test_list__json_and_user__only_that_users_rows(db):
    mine, _ = make_token(user=make_user(username="ana", role="viewer"))
    make_token()
    rows = json.loads(
        "\n".join(run_tokens("list", "--user", "ana", "--format", "json"))
    )
    assert [(row["prefix"], row["user"], row["status"]) for row in rows] == [
        (mine.prefix, "ana", "active")
    ]


def test_list__csv__header_and_status(db):
    token, _ = make_token()
    rows = list(
        csv.DictReader(io.StringIO("\n".join(run_tokens("list", "--format", "csv"))))
    )
    assert rows[0]["prefix"] == token.prefix
    assert rows[0]["scopes"] == "read"


def test_revoke__prefix__revoked_with_reason(db):
    token, _ = make_token()
    lines = run_tokens("revoke", token.prefix, "--reason", "rotation")
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert lines == [f"Revoked {token.prefix} ({token.name}) of {token.user}."]
    event = AuditEvent.objects.get(action="token.revoked")
    assert (event.source, event.actor_label, event.reason) == ("cli", "cli", "rotation")


@pytest.mark.parametrize("again", [False, True])
def test_revoke__unknown_or_already_revoked__command_error(db, again):
    token, _ = make_token()
    prefix = token.prefix if again else "opc_zzzzzzzz"
    if again:
        run_tokens("revoke", prefix)
    with pytest.raises(
        CommandError, match="already revoked" if again else "No API token"
    ):
        run_tokens("revoke", prefix)


# --- The real process: exit status and output as a shell sees them ---------------
committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py against the test database."""
    db = connection.settings_dict
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    url = f"postgresql://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "OPSCONSOLE_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "manage.py", "tokens", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@committed
def test_process_create__committed_user__prints_token_last():
    make_user(username="ops", role="operator")
    result = manage("create", "--user", "ops", "--scopes", "read,write")
    assert result.returncode == 0, result.stderr
    token = token_authenticate(raw=result.stdout.splitlines()[-1])
    assert token.user.username == "ops"


@committed
def test_process_create__unknown_user__exit_1_one_line():
    result = manage("create", "--user", "ghost", "--scopes", "read")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["CommandError: Unknown user 'ghost'."]
    assert result.stdout == ""
