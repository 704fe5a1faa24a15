"""POST /api/v1/metrics/ingest: write scope, all-or-nothing, field-level 422."""

from datetime import UTC, datetime, timedelta

import pytest

from apps import metrics
from apps.core.exceptions import ValidationFailed
from apps.metrics.validation import MAX_BATCH, MAX_TAGS
from tests.core.test_api import assert_error
from tests.factories import bearer, make_token, make_user
from tests.metrics.conftest import raw_count
from tests.procs import wait_until

URL = "/api/v1/metrics/ingest"


@pytest.fixture
def writer(db):
    user = make_user(role="operator")
    return bearer(make_token(user=user, scopes=("read", "write"))[1])


def post(client, body, headers):
    return client.post(URL, body, content_type="application/json", headers=headers)


@pytest.mark.django_db(transaction=True)
def test_ingest__write_token__202_and_every_sample_lands(client, writer):
    samples = [
        {"name": "t.api", "value": n, "tags": {"n": str(n % 3)}} for n in range(50)
    ]
    response = post(client, {"samples": samples}, writer)
    assert response.status_code == 202, response.json()
    assert response.json() == {"accepted": 50}
    wait_until(lambda: raw_count("t.api") == 50, timeout=30, what="persisted")


@pytest.mark.parametrize(
    ("sample", "field"),
    [
        ({"name": "9bad name", "value": 1}, "samples.0.name"),
        (
            {
                "name": "ok",
                "value": 1,
                "tags": {f"k{n}": "v" for n in range(MAX_TAGS + 1)},
            },
            "samples.0.tags",
        ),
        ({"name": "ok", "value": 1, "tags": {"k": "v" * 201}}, "samples.0.tags"),
        ({"name": "ok", "value": 1, "tags": {"bad key": "v"}}, "samples.0.tags"),
        ({"name": "ok", "value": 1, "at": "2001-01-01T00:00:00Z"}, "samples.0.at"),
        ({"name": "ok", "value": "x"}, "samples.0.value"),
    ],
)
def test_ingest__bad_sample__422_naming_the_field(client, writer, sample, field):
    body = assert_error(
        post(client, {"samples": [sample]}, writer), 422, "validation_failed"
    )
    assert field in body["extra"]["fields"]


def test_ingest__batch_over_the_limit__422_on_samples(client, writer):
    samples = [{"name": "ok", "value": 1}] * (MAX_BATCH + 1)
    body = assert_error(
        post(client, {"samples": samples}, writer), 422, "validation_failed"
    )
    assert "samples" in body["extra"]["fields"]


def test_ingest__no_token__401(client, db):
    assert_error(
        post(client, {"samples": [{"name": "x", "value": 1}]}, {}),
        401,
        "not_authenticated",
    )


def test_ingest__read_only_token__403_scope_missing(client, db):
    headers = bearer(make_token(scopes=("read",))[1])
    assert_error(
        post(client, {"samples": [{"name": "x", "value": 1}]}, headers),
        403,
        "scope_missing",
    )


def test_record__naive_or_ancient_time__validation_failed(db):
    with pytest.raises(ValidationFailed) as naive:
        metrics.record("t.rec", 1.0, at=datetime(2030, 1, 1))  # noqa: DTZ001
    old = datetime.now(UTC) - timedelta(days=365)
    with pytest.raises(ValidationFailed) as ancient:
        metrics.record("t.rec", 1.0, tags={"a": "b"}, at=old)
    assert set(naive.value.fields) == set(ancient.value.fields) == {"at"}
