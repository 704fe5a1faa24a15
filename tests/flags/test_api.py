import pytest

from apps.core.models import AuditEvent
from apps.flags import snapshot as snapshot_module
from apps.flags.models import Flag, FlagVersion
from apps.flags.services import flag_create, flag_update
from apps.flags.snapshot import build_snapshot
from tests.factories import bearer, make_token, make_user
from tests.flags.builders import cond, flag_data, rule

pytestmark = pytest.mark.django_db


def _create(key: str = "checkout", **overrides) -> Flag:
    return flag_create(
        key=key,
        data=flag_data(name=key, **overrides),
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )


@pytest.fixture
def reader() -> dict[str, str]:
    _, raw = make_token(user=make_user(role="viewer"), scopes=("read",))
    return bearer(raw)


@pytest.fixture
def writer() -> dict[str, str]:
    _, raw = make_token(user=make_user(role="operator"), scopes=("read", "write"))
    return bearer(raw)


def _error(response, status: int, code: str) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"detail", "code", "extra"}
    assert body["code"] == code
    return body


def test_flags_list__tag_filter__only_tagged_live_flags(client, reader):
    _create("a", tags=["checkout"])
    _create("b", tags=["search"])
    _create("c", tags=["checkout"], enabled=False, archived=True)

    body = client.get("/api/v1/flags?tag=checkout", headers=reader).json()

    assert [flag["key"] for flag in body["items"]] == ["a"]
    assert body["count"] == 1


def test_flags_list__include_archived__archived_listed(client, reader):
    _create("a")
    _create("c", enabled=False, archived=True)

    body = client.get("/api/v1/flags?include_archived=true", headers=reader).json()

    keys = [flag["key"] for flag in body["items"]]
    assert [key for key in keys if not key.startswith("opsconsole.")] == ["a", "c"]


def test_flags_list__no_token__401(client):
    _error(client.get("/api/v1/flags"), 401, "not_authenticated")


def test_flags_get__exists__body_and_version_etag(client, reader):
    _create("checkout", tags=["shop"])

    response = client.get("/api/v1/flags/checkout", headers=reader)

    body = response.json()
    assert response.status_code == 200, body
    assert (body["key"], body["tags"], body["version"]) == ("checkout", ["shop"], 1)
    assert response.headers["ETag"] == '"1"'


def test_flags_get__missing__404(client, reader):
    _error(client.get("/api/v1/flags/ghost", headers=reader), 404, "not_found")


def test_flags_create__operator__201_version_and_audit(client, writer):
    payload = {"key": "new-flag", "reason": "launch", **flag_data(name="New")}

    response = client.post("/api/v1/flags", payload, "application/json", headers=writer)

    body = response.json()
    assert response.status_code == 201, body
    assert (body["key"], body["version"], response.headers["ETag"]) == (
        "new-flag",
        1,
        '"1"',
    )
    event = AuditEvent.objects.get(action="flag.created")
    assert (event.source, event.reason) == ("api", "launch")


def test_flags_create__read_only_token__403_scope_missing(client, reader):
    payload = {"key": "new-flag", **flag_data(name="New")}
    response = client.post("/api/v1/flags", payload, "application/json", headers=reader)
    _error(response, 403, "scope_missing")
    assert not Flag.objects.filter(key="new-flag").exists()


def test_flags_create__viewer_with_write_scope_in_token__403(client):
    # A viewer's token cannot carry write: the role caps the scopes.
    viewer = make_user(role="viewer")
    token, raw = make_token(user=viewer, scopes=("read",))
    token.scopes = ["read", "write"]
    token.save(update_fields=["scopes"])
    payload = {"key": "new-flag", **flag_data(name="New")}

    response = client.post(
        "/api/v1/flags", payload, "application/json", headers=bearer(raw)
    )

    _error(response, 403, "scope_missing")


def test_flags_create__whole_set_errors__422_with_every_field_path(client, writer):
    payload = {
        "key": "bad",
        **flag_data(
            name="Bad",
            variants={"on": True, "off": "no"},
            default_variant="maybe",
            requires=[{"flag": "ghost"}],
            rules=[rule(cond("age", "gt", "old"))],
        ),
    }

    response = client.post("/api/v1/flags", payload, "application/json", headers=writer)

    fields = _error(response, 422, "validation_failed")["extra"]["fields"]
    assert {"variants.off", "default_variant", "requires.0.flag"} <= set(fields)
    assert any(path.startswith("rules.0.conditions.0") for path in fields)
    assert not Flag.objects.filter(key="bad").exists()


def test_flags_create__wrong_shape__422_field_path(client, writer):
    payload = {"key": "x", **flag_data(name="X", enabled="perhaps")}

    response = client.post("/api/v1/flags", payload, "application/json", headers=writer)

    assert "enabled" in _error(response, 422, "validation_failed")["extra"]["fields"]


def test_flags_patch__only_sent_fields_change__new_version(client, writer):
    _create("checkout", owner="team-a", tags=["shop"])

    response = client.patch(
        "/api/v1/flags/checkout",
        {"owner": "team-b"},
        "application/json",
        headers=writer,
    )

    body = response.json()
    assert response.status_code == 200, body
    assert (body["owner"], body["tags"], body["version"]) == ("team-b", ["shop"], 2)
    assert response.headers["ETag"] == '"2"'


def test_flags_patch__stale_if_match__412_and_unchanged(client, writer):
    _create("checkout")
    flag_update(
        key="checkout",
        changes={"owner": "someone"},
        expected_version=None,
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )

    response = client.patch(
        "/api/v1/flags/checkout",
        {"owner": "me"},
        "application/json",
        headers={**writer, "If-Match": '"1"'},
    )

    _error(response, 412, "precondition_failed")
    assert Flag.objects.get(key="checkout").owner == "someone"


def test_flags_patch__matching_if_match__200(client, writer):
    _create("checkout")

    response = client.patch(
        "/api/v1/flags/checkout",
        {"owner": "me"},
        "application/json",
        headers={**writer, "If-Match": 'W/"1"'},
    )

    assert response.status_code == 200, response.json()
    assert response.json()["owner"] == "me"


def test_flags_patch__if_match_not_a_version__422(client, writer):
    _create("checkout")
    response = client.patch(
        "/api/v1/flags/checkout",
        {"owner": "me"},
        "application/json",
        headers={**writer, "If-Match": "abc"},
    )
    assert "If-Match" in _error(response, 422, "validation_failed")["extra"]["fields"]


def test_flags_put__full_replacement__fields_not_sent_reset(client, writer):
    _create("checkout", owner="team-a", tags=["shop"])
    payload = flag_data(name="Checkout v2")

    response = client.put(
        "/api/v1/flags/checkout", payload, "application/json", headers=writer
    )

    body = response.json()
    assert response.status_code == 200, body
    assert (body["name"], body["owner"], body["tags"]) == ("Checkout v2", "", [])


def test_flags_toggle__protected_without_reason__422_reason(client, writer):
    response = client.post(
        "/api/v1/flags/opsconsole.live.enabled/toggle",
        {"enabled": False},
        "application/json",
        headers=writer,
    )

    fields = _error(response, 422, "validation_failed")["extra"]["fields"]
    assert list(fields) == ["reason"]
    assert Flag.objects.get(key="opsconsole.live.enabled").enabled is True


def test_flags_toggle__protected_with_reason__off_versioned_and_audited(client, writer):
    response = client.post(
        "/api/v1/flags/opsconsole.live.enabled/toggle",
        {"enabled": False, "reason": "incident 42"},
        "application/json",
        headers=writer,
    )

    assert response.status_code == 200, response.json()
    assert response.json()["enabled"] is False
    version = FlagVersion.objects.filter(flag__key="opsconsole.live.enabled").first()
    assert version is not None
    assert (version.version, version.reason) == (2, "incident 42")
    assert AuditEvent.objects.get(action="flag.toggled").source == "api"


def test_flags_toggle__requirement_off__422_on_enabled(client, writer):
    _create("base", enabled=False)
    _create("child", enabled=False, requires=[{"flag": "base"}])

    response = client.post(
        "/api/v1/flags/child/toggle",
        {"enabled": True},
        "application/json",
        headers=writer,
    )

    fields = _error(response, 422, "validation_failed")["extra"]["fields"]
    assert fields == {"enabled": ["requires base, which is off"]}


def test_flags_archive__required_by_another__422_archived(client, writer):
    _create("base")
    _create("child", requires=[{"flag": "base"}])

    response = client.post(
        "/api/v1/flags/base/archive", {}, "application/json", headers=writer
    )

    fields = _error(response, 422, "validation_failed")["extra"]["fields"]
    assert "archived" in fields


def test_flags_archive__free_flag__archived_and_off(client, writer):
    _create("old")

    response = client.post(
        "/api/v1/flags/old/archive",
        {"reason": "done"},
        "application/json",
        headers=writer,
    )

    assert (response.json()["archived"], response.json()["enabled"]) == (True, False)


def test_flags_versions__two_changes__newest_first_with_actor(client, writer):
    _create("checkout")
    client.patch(
        "/api/v1/flags/checkout",
        {"owner": "me", "reason": "mine"},
        "application/json",
        headers=writer,
    )

    body = client.get("/api/v1/flags/checkout/versions", headers=writer).json()

    assert [(v["version"], v["reason"]) for v in body["items"]] == [
        (2, "mine"),
        (1, ""),
    ]
    assert body["items"][0]["actor"] is not None
    assert body["items"][0]["snapshot"]["owner"] == "me"


def test_flags_versions__missing_flag__404(client, reader):
    response = client.get("/api/v1/flags/ghost/versions", headers=reader)
    _error(response, 404, "not_found")


def test_flags_revert__earlier_version__restored_as_new_version(client, writer):
    _create("checkout", owner="first")
    client.patch(
        "/api/v1/flags/checkout",
        {"owner": "second"},
        "application/json",
        headers=writer,
    )

    response = client.post(
        "/api/v1/flags/checkout/versions/1/revert",
        {"reason": "undo"},
        "application/json",
        headers=writer,
    )

    body = response.json()
    assert response.status_code == 200, body
    assert (body["owner"], body["version"]) == ("first", 3)


def test_flags_revert__unknown_version__404(client, writer):
    _create("checkout")
    response = client.post(
        "/api/v1/flags/checkout/versions/9/revert",
        {},
        "application/json",
        headers=writer,
    )
    _error(response, 404, "not_found")


def test_flags_evaluate__rule_matches__targeting_match(client, reader, monkeypatch):
    _create(
        "beta",
        default_variant="off",
        rules=[rule(cond("plan", "in", ["pro"]))],
    )
    monkeypatch.setattr(snapshot_module.cache, "snapshot", build_snapshot())

    response = client.post(
        "/api/v1/flags/beta/evaluate",
        {"context": {"targetingKey": "u1", "plan": "pro"}},
        "application/json",
        headers=reader,
    )

    assert response.json() == {
        "key": "beta",
        "value": True,
        "variant": "on",
        "reason": "TARGETING_MATCH",
        "error_code": None,
        "error_message": "",
    }


def test_flags_evaluate__unknown_flag__flag_not_found_code(client, reader, monkeypatch):
    monkeypatch.setattr(snapshot_module.cache, "snapshot", build_snapshot())

    response = client.post(
        "/api/v1/flags/ghost/evaluate",
        {"context": {}},
        "application/json",
        headers=reader,
    )

    assert (response.json()["reason"], response.json()["error_code"]) == (
        "ERROR",
        "FLAG_NOT_FOUND",
    )


def test_segments_upsert__new_then_list__listed(client, writer):
    payload = {
        "name": "Pro users",
        "conditions": [cond("plan", "in", ["pro"])],
        "reason": "for beta",
    }

    response = client.put(
        "/api/v1/segments/pro", payload, "application/json", headers=writer
    )

    assert response.status_code == 200, response.json()
    listed = client.get("/api/v1/segments", headers=writer).json()
    assert [(s["key"], s["name"]) for s in listed] == [("pro", "Pro users")]
    assert AuditEvent.objects.get(action="segment.created").reason == "for beta"


def test_segments_upsert__bad_condition__422_condition_path(client, writer):
    payload = {"name": "Bad", "conditions": [cond("plan", "no-such-op", "x")]}

    response = client.put(
        "/api/v1/segments/bad", payload, "application/json", headers=writer
    )

    fields = _error(response, 422, "validation_failed")["extra"]["fields"]
    assert all(path.startswith("conditions.0") for path in fields)
    assert fields


def test_flags_create__json_flag_with_schema__schema_round_trips(client, writer):
    schema = {"type": "object", "required": ["limit"]}
    payload = {
        "key": "limits",
        **flag_data(
            name="Limits",
            type="json",
            variants={"on": {"limit": 5}, "off": {"limit": 0}},
            json_schema=schema,
        ),
    }

    created = client.post("/api/v1/flags", payload, "application/json", headers=writer)

    assert created.status_code == 201, created.json()
    body = client.get("/api/v1/flags/limits", headers=writer).json()
    assert body["json_schema"] == schema
    assert "schema_" not in body


def test_flags_create__variant_breaks_schema__422_variant_path(client, writer):
    payload = {
        "key": "limits",
        **flag_data(
            name="Limits",
            type="json",
            variants={"on": {"limit": 5}, "off": {}},
            json_schema={"type": "object", "required": ["limit"]},
        ),
    }

    response = client.post("/api/v1/flags", payload, "application/json", headers=writer)

    assert list(_error(response, 422, "validation_failed")["extra"]["fields"]) == [
        "variants.off"
    ]


def test_openapi__flags_router__documented_with_json_schema_field(client):
    schema = client.get("/api/v1/openapi.json").json()

    assert {"/api/v1/flags", "/api/v1/flags/{key}", "/api/v1/segments"} <= set(
        schema["paths"]
    )
    assert set(schema["paths"]["/api/v1/flags/{key}"]) == {"get", "patch", "put"}
    assert "json_schema" in schema["components"]["schemas"]["FlagOut"]["properties"]
