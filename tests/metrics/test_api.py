"""POST /api/v1/metrics/ingest: write scope, all-or-nothing, field-level 422."""

from datetime import UTC, datetime, timedelta

import pytest

from apps import metrics
from apps.core.exceptions import ValidationFailed
from apps.metrics.db import default_database
from apps.metrics.models import Resolution
from apps.metrics.rollups import rollup_due
from apps.metrics.storage import SampleWriter
from apps.metrics.validation import MAX_BATCH, MAX_TAGS
from tests.core.test_api import assert_error
from tests.factories import bearer, make_token, make_user
from tests.metrics.conftest import raw_count, sample
from tests.procs import wait_until

URL = "/api/v1/metrics/ingest"
QUERY_URL = "/api/v1/metrics/query"


@pytest.fixture
def writer(db):
    user = make_user(role="operator")
    return bearer(make_token(user=user, scopes=("read", "write"))[1])


def post(client, body, headers):
    return client.post(URL, body, content_type="application/json", headers=headers)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
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


def test_query__hour_step__hour_rollups_with_percentiles(client, db):
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=3
    )
    SampleWriter(database=default_database).write(
        [
            sample("t.query", v, at=hour + timedelta(seconds=v), env="prod")
            for v in range(1, 101)
        ]
        + [sample("t.query", 5000, at=hour + timedelta(seconds=3), env="dev")]
    )
    for resolution in (Resolution.MINUTE, Resolution.HOUR):
        rollup_due(
            resolution=resolution, now=hour + timedelta(hours=2), grace=timedelta(0)
        )
    params = {
        "name": "t.query",
        "tags": "env:prod",
        "from": hour.isoformat(),
        "to": (hour + timedelta(hours=2)).isoformat(),
        "step": 3600,
    }
    body = client.get(QUERY_URL, params, headers=bearer(make_token()[1])).json()
    assert (body["resolution"], len(body["buckets"])) == ("hour", 1)
    bucket = body["buckets"][0]
    assert (bucket["count"], bucket["min"], bucket["max"], bucket["avg"]) == (
        100,
        1,
        100,
        50.5,
    )
    assert abs(bucket["p50"] - 50) <= 0.5
    assert abs(bucket["p99"] - 99) <= 0.99


def test_query__step_not_whole_minutes__422_on_step(client, db):
    now = datetime.now(UTC)
    params = {
        "name": "x",
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": now.isoformat(),
        "step": 90,
    }
    body = assert_error(
        client.get(QUERY_URL, params, headers=bearer(make_token()[1])),
        422,
        "validation_failed",
    )
    assert "step" in body["extra"]["fields"]


def test_query__no_token__401(client, db):
    assert_error(client.get(QUERY_URL, {"name": "x"}), 401, "not_authenticated")
