import pytest
from django.contrib.auth.models import Group

from apps import live
from apps.core.exceptions import NotFound, PreconditionFailed, ValidationFailed
from apps.core.models import AuditEvent
from apps.flags import snapshot as snapshot_module
from apps.flags.models import Flag, FlagVersion
from apps.flags.services import common as services_common
from apps.flags.services import (
    flag_archive,
    flag_create,
    flag_revert,
    flag_toggle,
    flag_update,
    segment_upsert,
)
from apps.flags.snapshot import SnapshotCache
from tests.factories import make_user
from tests.flags.builders import cond, flag_data, rule

pytestmark = pytest.mark.django_db

API = AuditEvent.Source.API


def _create(key: str = "checkout", **overrides) -> Flag:
    return flag_create(
        key=key, data=flag_data(**overrides), actor=None, reason="", source=API
    )


def _written() -> tuple[int, int]:
    return FlagVersion.objects.count(), AuditEvent.objects.count()


def test_flag_create__valid__version_1_history_and_audit():
    actor = make_user(role="operator")

    flag = flag_create(
        key="checkout", data=flag_data(), actor=actor, reason="launch", source=API
    )

    version = FlagVersion.objects.get(flag=flag)
    event = AuditEvent.objects.get(action="flag.created")
    assert (flag.version, version.version, version.snapshot["key"]) == (
        1,
        1,
        "checkout",
    )
    assert (event.actor, event.reason, event.after["enabled"]) == (
        actor,
        "launch",
        True,
    )


def test_flag_update__stale_expected_version__412_and_nothing_written():
    flag = _create()
    flag_update(
        key="checkout",
        changes={"name": "A"},
        expected_version=1,
        actor=None,
        reason="",
        source=API,
    )
    written = _written()

    with pytest.raises(PreconditionFailed) as caught:
        flag_update(
            key="checkout",
            changes={"name": "B"},
            expected_version=1,
            actor=None,
            reason="",
            source=API,
        )

    flag.refresh_from_db()
    assert caught.value.status == 412
    assert (flag.name, flag.version, _written()) == ("A", 2, written)


def test_flag_update__validation_fails__rolls_back_everything():
    flag = _create()
    written = _written()

    with pytest.raises(ValidationFailed) as caught:
        flag_update(
            key="checkout",
            changes={
                "default_variant": "maybe",
                "rules": [rule(cond("a", "matches", "("))],
            },
            expected_version=None,
            actor=None,
            reason="",
            source=API,
        )

    flag.refresh_from_db()
    assert {"default_variant", "rules.0.conditions.0.value"} <= set(caught.value.fields)
    assert (flag.default_variant, flag.version, _written()) == ("on", 1, written)


def test_flag_update__audit_write_fails__flag_and_version_rolled_back(monkeypatch):
    flag = _create()
    written = _written()

    def broken_audit(**kwargs):
        raise RuntimeError("audit down")

    monkeypatch.setattr(services_common, "audit_record", broken_audit)
    with pytest.raises(RuntimeError):
        flag_toggle(key="checkout", enabled=False, actor=None, reason="", source=API)

    flag.refresh_from_db()
    assert (flag.enabled, flag.version, _written()) == (True, 1, written)


def test_flag_update__key_changed__refused():
    _create()

    with pytest.raises(ValidationFailed) as caught:
        flag_update(
            key="checkout",
            changes={"key": "other"},
            expected_version=None,
            actor=None,
            reason="",
            source=API,
        )

    assert "key" in caught.value.fields


def test_flag_update__unknown_key__not_found():
    with pytest.raises(NotFound):
        flag_toggle(key="ghost", enabled=True, actor=None, reason="", source=API)


def test_flag_toggle__protected_switch_without_reason__error_on_reason():
    with pytest.raises(ValidationFailed) as caught:
        flag_toggle(
            key="opsconsole.live.enabled",
            enabled=False,
            actor=None,
            reason="",
            source=API,
        )

    assert "reason" in caught.value.fields


def test_flag_toggle__protected_switch_with_reason__toggled_and_audited():
    flag = flag_toggle(
        key="opsconsole.live.enabled",
        enabled=False,
        actor=None,
        reason="incident 7",
        source=API,
    )

    event = AuditEvent.objects.get(action="flag.toggled")
    assert (flag.enabled, event.reason, event.before["enabled"]) == (
        False,
        "incident 7",
        True,
    )


def test_console_switches__maintenance_on_while_healing_on__conflict_error():
    with pytest.raises(ValidationFailed) as caught:
        flag_toggle(
            key="opsconsole.maintenance",
            enabled=True,
            actor=None,
            reason="upgrade",
            source=API,
        )

    assert "conflicts with opsconsole.healing.enabled" in " ".join(
        caught.value.fields["enabled"]
    )


def test_console_switches__checks_off_while_healing_on__requirement_error():
    with pytest.raises(ValidationFailed) as caught:
        flag_toggle(
            key="opsconsole.checks.enabled",
            enabled=False,
            actor=None,
            reason="x",
            source=API,
        )

    assert "opsconsole.healing.enabled requires this flag" in " ".join(
        caught.value.fields["enabled"]
    )


def test_flag_revert__earlier_version__restored_as_new_version():
    _create(name="first")
    flag_update(
        key="checkout",
        changes={"name": "second"},
        expected_version=None,
        actor=None,
        reason="",
        source=API,
    )

    flag = flag_revert(key="checkout", version=1, actor=None, reason="undo", source=API)

    assert (flag.name, flag.version) == ("first", 3)
    assert AuditEvent.objects.filter(action="flag.reverted").count() == 1


def test_flag_archive__required_by_another__refused():
    _create("base")
    _create("child", requires=[{"flag": "base", "variants": []}])

    with pytest.raises(ValidationFailed) as caught:
        flag_archive(key="base", actor=None, reason="", source=API)

    assert "archived" in caught.value.fields


def test_flag_archive__unused__archived_and_off():
    _create()

    flag = flag_archive(key="checkout", actor=None, reason="", source=API)

    assert (flag.archived, flag.enabled) == (True, False)


def test_segment_upsert__new_then_changed__audited_twice():
    segment_upsert(
        key="staff",
        data={"name": "Staff", "conditions": []},
        actor=None,
        reason="",
        source=API,
    )
    segment = segment_upsert(
        key="staff",
        data={"conditions": [cond("email", "ends_with", ["@ops.io"])]},
        actor=None,
        reason="",
        source=API,
    )

    assert segment.conditions[0]["operator"] == "ends_with"
    assert AuditEvent.objects.filter(target_id=str(segment.pk)).count() == 2


def test_segment_upsert__bad_condition__error_on_path():
    with pytest.raises(ValidationFailed) as caught:
        segment_upsert(
            key="staff",
            data={"name": "S", "conditions": [cond("v", "semver_gt", "x")]},
            actor=None,
            reason="",
            source=API,
        )

    assert "conditions.0.value" in caught.value.fields


def test_flag_toggle__committed__this_process_snapshot_rebuilt(
    monkeypatch, django_capture_on_commit_callbacks
):
    cache = SnapshotCache()
    monkeypatch.setattr(snapshot_module, "cache", cache)
    _create()
    cache.reload()

    with django_capture_on_commit_callbacks(execute=True):
        flag_toggle(key="checkout", enabled=False, actor=None, reason="", source=API)

    assert cache.current().evaluate("checkout", {}).value is False


def test_flag_toggle__committed__published_live_after_commit_only(
    monkeypatch, django_capture_on_commit_callbacks
):
    sent = []

    def publish(topic, payload, *, key=""):
        if topic == "flags":  # audit events go out on "events" as well
            sent.append((key, payload["kind"], payload["spec"]["enabled"]))

    monkeypatch.setattr(live, "publish", publish)
    _create("checkout")
    _create("base", enabled=False)
    _create("child", enabled=False, requires=[{"flag": "base"}])
    with django_capture_on_commit_callbacks(execute=True):
        flag_toggle(key="checkout", enabled=False, actor=None, reason="", source=API)
        before_commit = list(sent)
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ValidationFailed),
    ):
        flag_toggle(key="child", enabled=True, actor=None, reason="", source=API)

    assert before_commit == []
    assert sent == [("checkout", "flag", False)]


def test_roles__viewer_and_operator__flag_permissions_granted():
    viewer = set(
        Group.objects.get(name="viewer").permissions.values_list("codename", flat=True)
    )
    operator = set(
        Group.objects.get(name="operator").permissions.values_list(
            "codename", flat=True
        )
    )

    assert {"view_flag", "view_segment", "view_flagversion"} <= viewer
    assert "change_flag" not in viewer
    assert {"add_flag", "change_flag", "change_segment", "view_flag"} <= operator
