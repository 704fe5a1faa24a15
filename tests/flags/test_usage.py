import uuid
from datetime import timedelta

import pytest
from django.db import connections
from django.db.utils import load_backend
from django.urls import reverse
from django.utils import timezone
from openfeature import api

import apps.flags as flags
from apps.core.models import AuditEvent
from apps.flags import snapshot as snapshot_module
from apps.flags.models import FlagUsage
from apps.flags.provider import OpsConsoleProvider
from apps.flags.services import UsageDelta, flag_create, flag_usage_add
from apps.flags.snapshot import build_snapshot
from apps.flags.usage import Usage, default_database, usage
from opsconsole.embedded import free_port
from tests.factories import bearer, make_token, make_user
from tests.flags.builders import flag_data
from tests.procs import wait_until

pytestmark = pytest.mark.django_db


def _live_flag(monkeypatch, **overrides) -> str:
    """A new flag (a key no other test counted), compiled into this process's snapshot."""
    key = f"usage.{uuid.uuid4().hex[:12]}"
    flag_create(
        key=key,
        data=flag_data(name=key, **overrides),
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )
    monkeypatch.setattr(snapshot_module.cache, "snapshot", build_snapshot())
    return key


def _unreachable():
    """A connection to a port where no PostgreSQL listens: the database is down."""
    params = {**connections["default"].settings_dict}
    params.update(PORT=str(free_port()), OPTIONS={"connect_timeout": 2})
    wrapper = load_backend(params["ENGINE"]).DatabaseWrapper(params, "default")
    return lambda: wrapper


def _usage_of(key: str) -> tuple[int, object] | None:
    row = FlagUsage.objects.filter(key=key).first()
    return (row.evaluations, row.last_evaluated_at) if row else None


def test_flush__evaluations_through_every_entry_point__counted_once_each(
    client, monkeypatch
):
    key = _live_flag(monkeypatch)
    token = bearer(make_token(user=make_user(role="viewer"), scopes=("read",))[1])
    api.set_provider(OpsConsoleProvider())
    before = timezone.now()
    try:
        flags.evaluate(key)
        flags.is_enabled(key, {"targetingKey": "u1"})
        flags.get_value(key, False)
        api.get_client().get_boolean_value(key, False)
        client.post(
            f"/ofrep/v1/evaluate/flags/{key}",
            {},
            "application/json",
            headers=token,
        )
        flags.evaluate("usage.no-such-flag")
    finally:
        api.clear_providers()

    assert usage.flush() is True

    evaluations, last = _usage_of(key)
    assert evaluations == 5
    assert before <= last <= timezone.now()
    assert _usage_of("usage.no-such-flag") is None
    assert key not in usage.pending()


def test_flush__database_unreachable__counts_kept_and_flushed_later(monkeypatch):
    key = _live_flag(monkeypatch)
    for _ in range(3):
        flags.is_enabled(key)
    monkeypatch.setattr(usage, "database", _unreachable())

    assert usage.flush() is False
    flags.is_enabled(key)  # counting goes on while the database is away

    assert usage.pending()[key] == 4
    assert _usage_of(key) is None
    monkeypatch.setattr(usage, "database", default_database)
    assert usage.flush() is True
    assert _usage_of(key)[0] == 4
    assert key not in usage.pending()


def test_flag_usage_add__twice__adds_counts_keeps_latest_time():
    early = timezone.now() - timedelta(hours=1)
    late = timezone.now()

    flag_usage_add(deltas=[UsageDelta("k", 3, late)])
    flag_usage_add(deltas=[UsageDelta("k", 2, early)])

    assert _usage_of("k") == (5, late)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_usage_thread__counts_pending__flushed_on_its_own():
    own = Usage(interval=0.05)
    own.counts["usage.by-thread"] = 7
    own.start()
    try:
        wait_until(
            lambda: _usage_of("usage.by-thread"), timeout=10, what="the thread's flush"
        )
    finally:
        own.stop()

    assert _usage_of("usage.by-thread")[0] == 7
    assert own.pending() == {}


def _flag_with_usage(key: str, evaluations: int, days_ago: float | None) -> None:
    flag_create(
        key=key,
        data=flag_data(name=key),
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )
    if days_ago is not None:
        at = timezone.now() - timedelta(days=days_ago)
        flag_usage_add(deltas=[UsageDelta(key, evaluations, at)])


def test_admin_list__usage_filter__finds_never_and_stale_flags(client):
    _flag_with_usage("busy", 120, days_ago=0.01)
    _flag_with_usage("stale", 4, days_ago=45)
    _flag_with_usage("unused", 0, days_ago=None)
    client.force_login(make_user(role="viewer"))
    url = reverse("admin:flags_flag_changelist")

    stale = client.get(url, {"usage": "stale"}).context["cl"].result_list
    never = client.get(url, {"usage": "never"}).context["cl"].result_list
    page = client.get(url, {"q": "busy"})

    assert {f.key for f in stale} >= {"stale", "unused"}
    assert "busy" not in {f.key for f in stale}
    assert {f.key for f in never} & {"stale", "unused"} == {"unused"}
    busy = page.context["cl"].result_list[0]
    assert (busy.evaluations, busy.last_evaluated_at is not None) == (120, True)
    assert b'<td class="field-evaluations">120</td>' in page.content


def test_api_flag__usage__counts_and_last_evaluated_in_output(client):
    _flag_with_usage("busy", 120, days_ago=1)
    _flag_with_usage("unused", 0, days_ago=None)
    headers = bearer(make_token(user=make_user(role="viewer"), scopes=("read",))[1])

    one = client.get("/api/v1/flags/busy", headers=headers).json()
    listed = client.get("/api/v1/flags?tag=", headers=headers).json()["items"]

    assert (one["evaluations"], one["last_evaluated_at"] is None) == (120, False)
    unused = next(item for item in listed if item["key"] == "unused")
    assert (unused["evaluations"], unused["last_evaluated_at"]) == (0, None)


def test_api_flag_write__usage_read_for_the_answer(client):
    _flag_with_usage("busy", 9, days_ago=1)
    headers = bearer(
        make_token(user=make_user(role="operator"), scopes=("read", "write"))[1]
    )

    body = client.post(
        "/api/v1/flags/busy/toggle",
        {"enabled": False},
        "application/json",
        headers=headers,
    ).json()

    assert (body["enabled"], body["evaluations"]) == (False, 9)
