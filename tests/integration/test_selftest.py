"""A request's trace reaches a task run by a real Celery worker, and what it writes."""

import pytest

from apps.core.models import AuditEvent
from tests.factories import bearer, make_token, make_user
from tests.procs import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def test_selftest__request_with_traceparent__worker_runs_under_same_trace(
    client, worker
):
    _, raw = make_token(user=make_user(role="operator"), scopes=("read", "write"))

    started = client.post(
        "/api/v1/system/selftest", headers={**bearer(raw), "traceparent": TRACEPARENT}
    )
    assert started.status_code == 202, started.content
    task_id = started.json()["task_id"]
    assert started.json()["status_url"].endswith(f"/api/v1/system/selftest/{task_id}")

    def succeeded():
        body = client.get(
            f"/api/v1/system/selftest/{task_id}", headers=bearer(raw)
        ).json()
        return body if body["status"] == "succeeded" else None

    report = wait_until(succeeded, timeout=30, interval=0.1, what="the self-test")
    assert report["trace_id"] == TRACE_ID
    assert report["worker"].startswith("test-")
    completed = AuditEvent.objects.get(action="system.selftest_completed")
    assert completed.trace_id == TRACE_ID
    assert completed.after["task_id"] == task_id
    assert (
        AuditEvent.objects.get(action="system.selftest_requested").trace_id == TRACE_ID
    )
    wait_until(
        lambda: any(
            "selftest.completed" in line and TRACE_ID in line
            for line in worker.output().splitlines()
        ),
        timeout=10,
        what="the worker's log line with the trace id",
    )


def test_selftest__viewer__403_and_nothing_enqueued(client):
    _, raw = make_token(user=make_user(role="viewer"), scopes=("read",))
    response = client.post("/api/v1/system/selftest", headers=bearer(raw))
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"
    assert not AuditEvent.objects.filter(action="system.selftest_requested").exists()


def test_selftest_status__unknown_id__pending_and_bad_id_422(client):
    _, raw = make_token(user=make_user(role="viewer"), scopes=("read",))
    unknown = client.get(
        "/api/v1/system/selftest/6f1c1f43-9f5a-4a4e-9d0e-3f0f3f0f3f0f",
        headers=bearer(raw),
    )
    assert unknown.status_code == 200
    assert unknown.json()["status"] == "pending"
    bad = client.get("/api/v1/system/selftest/not-a-uuid", headers=bearer(raw))
    assert bad.status_code == 422
    assert "task_id" in bad.json()["extra"]["fields"]
