import json
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from apps.core.models import AuditEvent
from apps.flags.models import Flag, FlagVersion, Segment
from apps.flags.services import flag_create, flag_update
from tests.factories import make_user
from tests.flags.builders import cond, flag_data, rule

pytestmark = pytest.mark.django_db

FLAGS_URL = reverse("admin:flags_flag_changelist")
ADD_URL = reverse("admin:flags_flag_add")
VERSIONS_URL = reverse("admin:flags_flagversion_changelist")
SEGMENT_ADD_URL = reverse("admin:flags_segment_add")


def _create(key: str = "checkout", **overrides) -> Flag:
    return flag_create(
        key=key,
        data=flag_data(name=key, **overrides),
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )


def signed_in(client, **user_kwargs):
    user = make_user(**user_kwargs)
    client.force_login(user)
    return user


def change_url(flag: Flag) -> str:
    return reverse("admin:flags_flag_change", args=[flag.pk])


def form_post(flag: Flag, **changes) -> dict[str, str]:
    """The change form as the browser would post it, with ``changes`` applied."""
    fields = {
        "name": flag.name,
        "description": flag.description,
        "owner": flag.owner,
        "tags": ",".join(flag.tags),
        "type": flag.type,
        "variants": json.dumps(flag.variants),
        "json_schema": json.dumps(flag.json_schema) if flag.json_schema else "",
        "default_variant": flag.default_variant,
        "off_variant": flag.off_variant,
        "rules": json.dumps(flag.rules),
        "requires": json.dumps(flag.requires),
        "conflicts": ",".join(flag.conflicts),
        "expires_at_0": "",
        "expires_at_1": "",
        "reason": "",
        "loaded_version": str(flag.version),
        "history-TOTAL_FORMS": "0",
        "history-INITIAL_FORMS": "0",
        "history-MIN_NUM_FORMS": "0",
        "history-MAX_NUM_FORMS": "0",
    }
    for box in ("enabled", "protected", "requires_approval", "archived"):
        if getattr(flag, box):
            fields[box] = "on"
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, "expected the form back with errors"
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


def test_flag_change__requirement_off__field_error_nothing_saved(client):
    # Given an operator and a flag that requires one that is off
    signed_in(client, role="operator")
    _create("base", enabled=False)
    child = _create("child", enabled=False, requires=[{"flag": "base"}])
    # When the operator switches it on in the change form
    response = client.post(change_url(child), form_post(child, enabled="on"))
    # Then the form comes back with the error on "enabled", and nothing changed
    assert form_errors(response) == {"enabled": ["requires base, which is off"]}
    child.refresh_from_db()
    assert (child.enabled, child.version) == (False, 1)


def test_flag_change__several_whole_set_errors__each_on_its_field(client):
    signed_in(client, role="operator")
    flag = _create("checkout")

    response = client.post(
        change_url(flag),
        form_post(
            flag,
            variants=json.dumps({"on": True, "off": "nope"}),
            default_variant="maybe",
            conflicts="ghost",
        ),
    )

    errors = form_errors(response)
    assert errors["variants"] == ["off: must be true or false"]
    assert errors["default_variant"] == ["'maybe' is not one of the variants"]
    assert errors["conflicts"] == ["0: no such other flag"]


def test_flag_change__broken_json__error_names_line_and_column(client):
    signed_in(client, role="operator")
    flag = _create("checkout")

    response = client.post(change_url(flag), form_post(flag, rules='[\n  {"a": }\n]'))

    assert form_errors(response)["rules"] == [
        "Not valid JSON: Expecting value at line 2, column 9."
    ]


def test_flag_change__protected_without_reason__reason_error(client):
    signed_in(client, role="operator")
    flag = Flag.objects.get(key="opsconsole.notifications.enabled")

    response = client.post(change_url(flag), form_post(flag, owner="sre"))

    assert form_errors(response) == {
        "reason": ["a protected flag is changed only with a reason"]
    }


def test_flag_change__valid_with_reason__saved_versioned_audited(client):
    operator = signed_in(client, role="operator")
    flag = _create("checkout")

    response = client.post(
        change_url(flag), form_post(flag, owner="sre", reason="ownership moved")
    )

    assert response.status_code == 302
    flag.refresh_from_db()
    assert (flag.owner, flag.version) == ("sre", 2)
    version = FlagVersion.objects.get(flag=flag, version=2)
    assert (version.actor, version.reason) == (operator, "ownership moved")
    event = AuditEvent.objects.get(action="flag.updated")
    assert (event.source, event.actor) == ("admin", operator)


def test_flag_change__changed_meanwhile__refused_with_form_error(client):
    signed_in(client, role="operator")
    flag = _create("checkout")
    stale = form_post(flag, owner="me")
    flag_update(
        key="checkout",
        changes={"owner": "someone"},
        expected_version=None,
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )

    response = client.post(change_url(flag), stale)

    assert "version 2, not 1" in " ".join(form_errors(response)["__all__"])
    assert Flag.objects.get(key="checkout").owner == "someone"


def test_flag_add__valid__created_through_service(client):
    signed_in(client, role="operator")
    blank = Flag(key="new-flag", name="New", variants={"on": True, "off": False})
    blank.default_variant, blank.off_variant = "on", "off"

    response = client.post(ADD_URL, {**form_post(blank), "key": "new-flag"})

    assert response.status_code == 302
    flag = Flag.objects.get(key="new-flag")
    assert flag.version == 1
    assert FlagVersion.objects.filter(flag=flag, version=1).exists()
    assert AuditEvent.objects.get(action="flag.created").source == "admin"


def test_flag_admin__viewer__sees_but_cannot_change(client):
    signed_in(client, role="viewer")
    flag = _create("checkout")

    listing = client.get(FLAGS_URL)
    assert listing.status_code == 200
    assert "checkout" in listing.content.decode()
    assert "switch_on" not in listing.content.decode()
    page = client.get(change_url(flag))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(change_url(flag), form_post(flag, owner="x")).status_code == 403
    assert client.get(ADD_URL).status_code == 403
    flag.refresh_from_db()
    assert flag.owner == ""


def test_flag_admin__viewer_forges_toggle__nothing_changes(client):
    signed_in(client, role="viewer")
    flag = _create("checkout")

    client.post(
        FLAGS_URL,
        {
            "action": "switch_off",
            ACTION_CHECKBOX_NAME: [flag.pk],
            "confirm": "yes",
            "reason": "x",
        },
    )

    flag.refresh_from_db()
    assert flag.enabled is True


def toggle(client, flag: Flag, action: str, reason: str):
    chosen = {"action": action, ACTION_CHECKBOX_NAME: [flag.pk]}
    confirmation = client.post(FLAGS_URL, chosen)
    assert 'name="reason"' in confirmation.content.decode()
    return client.post(
        FLAGS_URL, {**chosen, "confirm": "yes", "reason": reason}, follow=True
    )


def test_toggle_action__protected_with_reason__off_audited_and_versioned(client):
    # Given an operator and a protected console switch that is on
    operator = signed_in(client, role="operator")
    flag = Flag.objects.get(key="opsconsole.live.enabled")
    # When it is switched off through the action with a reason
    response = toggle(client, flag, "switch_off", "incident 42: dashboard load")
    # Then it is off, with a new version and an audit event carrying the reason
    assert "Switched off 1 of 1." in response.content.decode()
    flag.refresh_from_db()
    assert (flag.enabled, flag.version) == (False, 2)
    version = FlagVersion.objects.get(flag=flag, version=2)
    assert (version.actor, version.reason) == (operator, "incident 42: dashboard load")
    event = AuditEvent.objects.get(action="flag.toggled")
    assert (event.source, event.reason, event.after["enabled"]) == (
        "admin",
        "incident 42: dashboard load",
        False,
    )


def test_toggle_action__protected_without_reason__reason_required_nothing_changes(
    client,
):
    signed_in(client, role="operator")
    flag = Flag.objects.get(key="opsconsole.live.enabled")

    response = client.post(
        FLAGS_URL,
        {
            "action": "switch_off",
            ACTION_CHECKBOX_NAME: [flag.pk],
            "confirm": "yes",
            "reason": "",
        },
    )

    assert "This field is required." in response.content.decode()
    flag.refresh_from_db()
    assert flag.enabled is True


def test_toggle_action__unprotected_without_reason__switched(client):
    signed_in(client, role="operator")
    flag = _create("checkout")

    response = toggle(client, flag, "switch_off", "")

    assert "Switched off 1 of 1." in response.content.decode()
    assert Flag.objects.get(key="checkout").enabled is False


def test_toggle_action__requirement_off__error_message_flag_unchanged(client):
    signed_in(client, role="operator")
    _create("base", enabled=False)
    child = _create("child", enabled=False, requires=[{"flag": "base"}])

    response = toggle(client, child, "switch_on", "try")

    shown = [str(message) for message in response.context["messages"]]
    assert shown == [
        "child: enabled: requires base, which is off",
        "Switched on 0 of 1.",
    ]
    assert Flag.objects.get(key="child").enabled is False


def test_archive_action__free_flag__archived_and_off(client):
    signed_in(client, role="operator")
    flag = _create("old")

    toggle(client, flag, "archive", "done with it")

    flag.refresh_from_db()
    assert (flag.archived, flag.enabled) == (True, False)
    assert AuditEvent.objects.get(action="flag.archived").reason == "done with it"


def test_flag_changelist__expired_filter__only_expired_marked(client):
    signed_in(client, role="viewer")
    _create("stale", expires_at=timezone.now() - timedelta(days=1))
    _create("fresh", expires_at=timezone.now() + timedelta(days=30))

    response = client.get(FLAGS_URL, {"expiry": "expired"})

    shown = list(response.context["cl"].result_list)
    assert [flag.key for flag in shown] == ["stale"]
    assert shown[0].expired is True
    assert ">expired<" in response.content.decode()


def test_flag_changelist__tag_filter__only_tagged(client):
    signed_in(client, role="viewer")
    _create("a", tags=["shop"])
    _create("b", tags=["search"])

    response = client.get(FLAGS_URL, {"tag": "shop"})

    assert [flag.key for flag in response.context["cl"].result_list] == ["a"]


def test_revert_action__earlier_version__restored_with_reason(client):
    signed_in(client, role="operator")
    flag = _create("checkout", owner="first")
    flag_update(
        key="checkout",
        changes={"owner": "second"},
        expected_version=None,
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )
    first = FlagVersion.objects.get(flag=flag, version=1)
    chosen = {"action": "revert_to_version", ACTION_CHECKBOX_NAME: [first.pk]}

    client.post(VERSIONS_URL, {**chosen, "confirm": "yes", "reason": "undo"})

    flag.refresh_from_db()
    assert (flag.owner, flag.version) == ("first", 3)
    assert FlagVersion.objects.get(flag=flag, version=3).reason == "undo"


def test_flag_version_admin__change_page__shows_diff_and_is_read_only(client):
    signed_in(client, role="operator")
    flag = _create("checkout", owner="first")
    flag_update(
        key="checkout",
        changes={"owner": "second"},
        expected_version=None,
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )
    second = FlagVersion.objects.get(flag=flag, version=2)

    page = client.get(reverse("admin:flags_flagversion_change", args=[second.pk]))

    html = page.content.decode()
    assert "<td>owner</td><td><code>&quot;first&quot;</code></td>" in html
    assert "<td>name</td>" not in html
    assert 'name="_save"' not in html


def test_segment_add__bad_condition__field_error_not_saved(client):
    signed_in(client, role="operator")
    post = {
        "key": "pro",
        "name": "Pro",
        "description": "",
        "conditions": json.dumps([cond("plan", "no-such-op", "x")]),
    }

    response = client.post(SEGMENT_ADD_URL, post)

    assert list(form_errors(response)) == ["conditions"]
    assert not Segment.objects.exists()


def test_segment_add__valid__upserted_and_audited(client):
    signed_in(client, role="operator")
    post = {
        "key": "pro",
        "name": "Pro",
        "description": "",
        "conditions": json.dumps([cond("plan", "in", ["pro"])]),
        "reason": "beta",
    }

    response = client.post(SEGMENT_ADD_URL, post)

    assert response.status_code == 302
    assert Segment.objects.get(key="pro").name == "Pro"
    assert AuditEvent.objects.get(action="segment.created").reason == "beta"


def test_flag_change_page__operator__pretty_json_history_and_reason_box(client):
    signed_in(client, role="operator")
    flag = _create("checkout", rules=[rule(cond("plan", "in", ["pro"]))])

    html = client.get(change_url(flag)).content.decode()

    assert "&quot;attribute&quot;: &quot;plan&quot;" in html
    assert ">\n[\n  {\n    &quot;" in html  # indented, one key a line
    assert 'name="reason"' in html
    assert f"{VERSIONS_URL}?flag__key=checkout" in html
    assert 'id="history-group"' in html
