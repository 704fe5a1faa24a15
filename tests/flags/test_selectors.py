import pytest

from apps.core.exceptions import NotFound
from apps.core.models import AuditEvent
from apps.flags.selectors import (
    flag_get,
    flag_history,
    flag_list,
    flag_version_get,
    flags_state_version,
)
from apps.flags.services import flag_archive, flag_create, flag_toggle
from tests.flags.builders import flag_data

pytestmark = pytest.mark.django_db

API = AuditEvent.Source.API


def test_flag_list__archived_flag__left_out_unless_asked():
    flag_create(
        key="old", data=flag_data(tags=["web"]), actor=None, reason="", source=API
    )
    flag_archive(key="old", actor=None, reason="", source=API)

    assert "old" not in {f.key for f in flag_list()}
    assert [f.key for f in flag_list(include_archived=True, tag="web")] == ["old"]


def test_flag_history__two_changes__newest_first():
    flag_create(key="f", data=flag_data(), actor=None, reason="", source=API)
    flag_toggle(key="f", enabled=False, actor=None, reason="", source=API)

    assert [v.version for v in flag_history(key="f")] == [2, 1]
    assert flag_version_get(key="f", version=1).snapshot["enabled"] is True


def test_flag_get__unknown__not_found():
    with pytest.raises(NotFound):
        flag_get(key="ghost")


def test_flags_state_version__flag_written__changes():
    before = flags_state_version()

    flag_create(key="f", data=flag_data(), actor=None, reason="", source=API)

    assert flags_state_version() != before


def test_console_switches__migration__protected_boolean_with_relations():
    healing = flag_get(key="opsconsole.healing.enabled")
    maintenance = flag_get(key="opsconsole.maintenance")

    assert (healing.protected, healing.type) == (True, "boolean")
    assert healing.requires == [
        {"flag": "opsconsole.checks.enabled", "variants": ["on"]}
    ]
    assert maintenance.conflicts == ["opsconsole.healing.enabled"]
    assert flag_list().filter(key__startswith="opsconsole.").count() == 5
