import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode

from apps.flags import snapshot as snapshot_module
from apps.flags.provider import OpsConsoleProvider
from tests.flags.builders import boolean_spec, rule, snapshot_of


@pytest.fixture
def client(monkeypatch):
    specs = (
        boolean_spec(
            "f", default_variant="off", rules=[rule(rollout=100, stickiness="org")]
        ),
        boolean_spec("n", type="number", variants={"on": 3.0, "off": 0.5}),
    )
    monkeypatch.setattr(snapshot_module.cache, "snapshot", snapshot_of(*specs))
    api.set_provider(OpsConsoleProvider())
    yield api.get_client()
    api.clear_providers()


def test_provider__boolean_with_stickiness_attribute__split_variant_on(client):
    ctx = EvaluationContext("user-1", {"org": "acme"})

    details = client.get_boolean_details("f", False, ctx)

    assert (details.value, details.variant, details.reason) == (True, "on", "SPLIT")


def test_provider__no_stickiness_value__error_targeting_key_missing_default(client):
    details = client.get_boolean_details("f", False, EvaluationContext("user-1"))

    assert (details.value, details.error_code) == (
        False,
        ErrorCode.TARGETING_KEY_MISSING,
    )


def test_provider__wrong_type__type_mismatch_default(client):
    ctx = EvaluationContext("user-1", {"org": "acme"})

    details = client.get_string_details("f", "x", ctx)

    assert (details.value, details.error_code) == ("x", ErrorCode.TYPE_MISMATCH)


def test_provider__number_as_integer__whole_value_converted(client):
    assert client.get_integer_value("n", 0) == 3
    assert client.get_float_value("n", 0.0) == 3.0


def test_provider__missing_flag__flag_not_found(client):
    details = client.get_boolean_details("ghost", True)

    assert (details.value, details.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
