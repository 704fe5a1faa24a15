"""OFREP responses checked against the peer suite's OpenAPI document.

The published schema is read as the peer-suite README says: the ``oneOf`` of value
kinds in ``evaluationSuccess`` as ``anyOf`` (its alternatives overlap, so strictly
every answer with a value fails) and ``DEFAULT`` added to the reasons.
"""

import copy
import functools
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from django.utils import timezone
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from apps.core.models import ApiToken, AuditEvent
from apps.core.services import token_revoke
from apps.flags import ofrep as ofrep_module
from apps.flags import snapshot as snapshot_module
from apps.flags.models import Flag
from apps.flags.services import flag_create
from apps.flags.snapshot import build_snapshot
from tests.factories import bearer, make_token, make_user
from tests.flags.builders import cond, flag_data, rule

pytestmark = pytest.mark.django_db

SPEC = Path(__file__).resolve().parents[3] / "shared/peer-suites/ofrep/openapi.yaml"
URL = "/ofrep/v1/evaluate/flags"


@functools.cache
def _registry() -> Registry:
    spec = copy.deepcopy(yaml.safe_load(SPEC.read_text()))
    schemas = spec["components"]["schemas"]
    success = schemas["evaluationSuccess"]["allOf"]
    success[1] = {"anyOf": success[1]["oneOf"]}
    success[0]["properties"]["reason"]["enum"].append("DEFAULT")
    return Registry().with_resource("urn:ofrep", Resource(spec, DRAFT202012))


def assert_shaped(body: Any, schema: str) -> None:
    ref = {"$ref": f"urn:ofrep#/components/schemas/{schema}"}
    jsonschema.Draft202012Validator(ref, registry=_registry()).validate(body)


def _create(key: str, **overrides: Any) -> Flag:
    return flag_create(
        key=key,
        data=flag_data(name=key, **overrides),
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )


@pytest.fixture
def flags(monkeypatch):
    """A flag set of each kind, compiled into this process's snapshot."""
    _create("bool-on")
    _create("bool-off", enabled=False)
    _create("colour", type="string", variants={"on": "blue", "off": "grey"})
    _create("limit", type="number", variants={"on": 5, "off": 0})
    _create("ratio", type="number", variants={"on": 0.25, "off": 0.0})
    _create("layout", type="json", variants={"on": {"cols": 2}, "off": {}})
    _create(
        "pro-only", default_variant="off", rules=[rule(cond("plan", "equals", "pro"))]
    )
    _create("rollout", default_variant="off", rules=[rule(rollout=50)])
    _create("gone", enabled=False, archived=True)
    monkeypatch.setattr(snapshot_module.cache, "snapshot", build_snapshot())


@pytest.fixture
def auth() -> dict[str, str]:
    _, raw = make_token(user=make_user(role="viewer"), scopes=("read",))
    return bearer(raw)


def _post(client, url: str, body: Any, headers: dict[str, str]):
    return client.post(url, body, "application/json", headers=headers)


@pytest.mark.parametrize(
    ("key", "context", "expected"),
    [
        ("bool-on", {}, {"value": True, "variant": "on", "reason": "STATIC"}),
        ("bool-off", {}, {"value": False, "variant": "off", "reason": "DISABLED"}),
        ("colour", {}, {"value": "blue", "variant": "on", "reason": "STATIC"}),
        ("limit", {}, {"value": 5, "variant": "on", "reason": "STATIC"}),
        ("ratio", {}, {"value": 0.25, "variant": "on", "reason": "STATIC"}),
        ("layout", {}, {"value": {"cols": 2}, "variant": "on", "reason": "STATIC"}),
        (
            "pro-only",
            {"plan": "pro"},
            {"value": True, "variant": "on", "reason": "TARGETING_MATCH"},
        ),
        (
            "pro-only",
            {"plan": "free"},
            {"value": False, "variant": "off", "reason": "DEFAULT"},
        ),
    ],
)
def test_ofrep_single__each_kind__200_spec_shaped(
    client, flags, auth, key, context, expected
):
    body = {"context": {"targetingKey": "user-1", **context}}

    response = _post(client, f"{URL}/{key}", body, auth)

    assert response.status_code == 200, response.json()
    assert response.json() == {"key": key, **expected}
    assert_shaped(response.json(), "serverEvaluationSuccess")


def test_ofrep_single__unknown_flag__404_flag_not_found(client, flags, auth):
    response = _post(client, f"{URL}/ghost", {"context": {}}, auth)

    assert response.status_code == 404
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert response.json()["key"] == "ghost"
    assert_shaped(response.json(), "flagNotFound")


def test_ofrep_single__archived_flag__404_flag_not_found(client, flags, auth):
    response = _post(client, f"{URL}/gone", {"context": {}}, auth)

    assert (response.status_code, response.json()["errorCode"]) == (
        404,
        "FLAG_NOT_FOUND",
    )


def test_ofrep_single__rollout_without_targeting_key__400_targeting_key_missing(
    client, flags, auth
):
    response = _post(client, f"{URL}/rollout", {"context": {"plan": "pro"}}, auth)

    assert response.status_code == 400
    assert response.json()["errorCode"] == "TARGETING_KEY_MISSING"
    assert_shaped(response.json(), "evaluationFailure")


@pytest.mark.parametrize(
    "body", [{"context": "user-1"}, {"context": {"targetingKey": 7}}]
)
def test_ofrep_single__bad_context__400_invalid_context(client, flags, auth, body):
    response = _post(client, f"{URL}/bool-on", body, auth)

    assert response.status_code == 400
    assert (response.json()["key"], response.json()["errorCode"]) == (
        "bool-on",
        "INVALID_CONTEXT",
    )
    assert_shaped(response.json(), "evaluationFailure")


def test_ofrep_single__body_not_json__400_parse_error(client, flags, auth):
    response = client.post(
        f"{URL}/bool-on", "{not json", "application/json", headers=auth
    )

    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"
    assert_shaped(response.json(), "evaluationFailure")


def test_ofrep_single__no_token__401_with_challenge(client, flags):
    response = _post(client, f"{URL}/bool-on", {"context": {}}, {})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_shaped(response.json(), "generalErrorResponse")


def test_ofrep_single__unknown_token__401(client, flags):
    response = _post(client, f"{URL}/bool-on", {"context": {}}, bearer("opc_nope"))

    assert response.status_code == 401


def test_ofrep_single__db_changed_snapshot_not__serves_snapshot(client, flags, auth):
    # Evaluation reads the compiled snapshot: a row changed behind its back is
    # invisible until the snapshot is rebuilt.
    Flag.objects.filter(key="bool-on").update(enabled=False)

    response = _post(client, f"{URL}/bool-on", {"context": {}}, auth)

    assert response.json()["value"] is True


def test_ofrep_bulk__context__every_live_flag_spec_shaped_with_etag(
    client, flags, auth
):
    body = {"context": {"targetingKey": "user-1", "plan": "pro"}}

    response = _post(client, URL, body, auth)

    payload = response.json()
    assert response.status_code == 200, payload
    assert_shaped(payload, "bulkEvaluationSuccess")
    items = {item["key"]: item for item in payload["flags"]}
    assert "gone" not in items
    assert {"bool-on", "colour", "layout", "pro-only", "rollout"} <= set(items)
    assert items["pro-only"]["reason"] == "TARGETING_MATCH"
    assert response.headers["ETag"].startswith('"')


def test_ofrep_bulk__matching_if_none_match__304_without_body(client, flags, auth):
    body = {"context": {"targetingKey": "user-1"}}
    etag = _post(client, URL, body, auth).headers["ETag"]

    response = _post(client, URL, body, {**auth, "If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag


def test_ofrep_bulk__weak_tag_in_list__304(client, flags, auth):
    body = {"context": {"targetingKey": "user-1"}}
    etag = _post(client, URL, body, auth).headers["ETag"]

    response = _post(client, URL, body, {**auth, "If-None-Match": f'"x", W/{etag}'})

    assert response.status_code == 304


def test_ofrep_bulk__flags_changed__200_new_etag(client, flags, auth, monkeypatch):
    body = {"context": {"targetingKey": "user-1"}}
    etag = _post(client, URL, body, auth).headers["ETag"]
    _create("brand-new")
    monkeypatch.setattr(snapshot_module.cache, "snapshot", build_snapshot())

    response = _post(client, URL, body, {**auth, "If-None-Match": etag})

    assert response.status_code == 200
    assert response.headers["ETag"] != etag
    assert "brand-new" in {item["key"] for item in response.json()["flags"]}


def test_ofrep_bulk__other_context__200_not_304(client, flags, auth):
    etag = _post(client, URL, {"context": {"targetingKey": "a"}}, auth).headers["ETag"]

    response = _post(
        client, URL, {"context": {"targetingKey": "b"}}, {**auth, "If-None-Match": etag}
    )

    assert response.status_code == 200
    assert response.headers["ETag"] != etag


def test_ofrep_bulk__rollout_without_key__item_failure_others_succeed(
    client, flags, auth
):
    response = _post(client, URL, {"context": {}}, auth)

    items = {item["key"]: item for item in response.json()["flags"]}
    assert items["rollout"]["errorCode"] == "TARGETING_KEY_MISSING"
    assert items["bool-on"]["value"] is True
    assert_shaped(response.json(), "bulkEvaluationSuccess")


def test_ofrep_bulk__bad_context__400_bulk_failure(client, flags, auth):
    response = _post(client, URL, {"context": ["not", "an", "object"]}, auth)

    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"
    assert "key" not in response.json()
    assert_shaped(response.json(), "bulkEvaluationFailure")


def test_ofrep_bulk__no_token__401(client, flags):
    assert _post(client, URL, {"context": {}}, {}).status_code == 401


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(ofrep_module.token_auth, "clock", fake)
    return fake


def test_ofrep_auth__same_token_again__answered_without_a_query(
    client, flags, auth, clock, django_assert_num_queries
):
    assert _post(client, f"{URL}/bool-on", {"context": {}}, auth).status_code == 200

    with django_assert_num_queries(0):
        again = _post(client, f"{URL}/bool-on", {"context": {}}, auth)

    assert again.json()["value"] is True


def test_ofrep_auth__token_revoked__refused_once_remembered_time_is_up(
    client, flags, clock
):
    token, raw = make_token(user=make_user(role="viewer"), scopes=("read",))
    assert _post(client, f"{URL}/bool-on", {}, bearer(raw)).status_code == 200
    token_revoke(token=token, actor=None, source=AuditEvent.Source.SYSTEM)

    within = _post(client, f"{URL}/bool-on", {}, bearer(raw))
    clock.now += ofrep_module.AUTH_CACHE_SECONDS
    after = _post(client, f"{URL}/bool-on", {}, bearer(raw))

    assert (within.status_code, after.status_code) == (200, 401)


def test_ofrep_auth__token_expiring_soon__remembered_only_until_its_expiry(
    client, flags, clock
):
    soon = timezone.now() + timedelta(seconds=2)
    token, raw = make_token(user=make_user(role="viewer"), expires_at=soon)
    assert _post(client, f"{URL}/bool-on", {}, bearer(raw)).status_code == 200
    # Expired by now in the database's eyes (this test does not wait for the clock).
    ApiToken.objects.filter(pk=token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    clock.now += 2.5  # past the expiry, within AUTH_CACHE_SECONDS
    response = _post(client, f"{URL}/bool-on", {}, bearer(raw))

    assert response.status_code == 401


def test_ofrep_auth__refusal__not_remembered(client, flags, clock):
    token, raw = make_token(user=make_user(role="viewer"), scopes=("read",))
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert _post(client, f"{URL}/bool-on", {}, bearer(raw)).status_code == 401
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=None)

    assert _post(client, f"{URL}/bool-on", {}, bearer(raw)).status_code == 200
