import pytest
from django.db import DatabaseError, transaction

from apps.core import trace
from apps.core.models import ApiToken, AuditEvent
from apps.core.services import audit_record, token_create
from tests.factories import bearer, make_token, make_user

# Tests that need real commits (not the test's wrapping transaction) reload the
# migration-made groups after the flush.
committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_audit_record__user_and_target__fills_labels_and_trace(db):
    # Given a bound trace and a target
    user = make_user(username="ana")
    token, _ = make_token(user=make_user(role="viewer"), name="n" * 100)
    handle = trace.bind(trace.new_trace())
    try:
        # When an event is recorded
        with transaction.atomic():
            event = audit_record(
                actor=user,
                action="thing.done",
                source=AuditEvent.Source.ADMIN,
                target=token,
                before={"a": 1},
                after={"a": 2},
                reason="because",
            )
        # Then everything about it is filled in
        assert event.trace_id == trace.current_trace_id() != ""
    finally:
        trace.unbind(handle)
    assert (event.actor_label, event.target_type) == ("ana", "core.apitoken")
    assert (event.target_id, event.target_label) == (str(token.pk), str(token)[:200])
    assert (event.before, event.after, event.reason) == ({"a": 1}, {"a": 2}, "because")


@pytest.mark.parametrize(("source", "label"), [("cli", "cli"), ("system", "system")])
def test_audit_record__no_actor__labelled_by_source(db, source, label):
    event = audit_record(actor=None, action="x.y", source=AuditEvent.Source(source))
    assert (event.actor_label, event.target_type, event.trace_id) == (label, "", "")


def test_audit_record__target_label_long__cut_to_200(db):
    user = make_user(username="u" * 150)
    event = audit_record(actor=None, action="x", source="system", target=user)
    assert event.target_label == "u" * 150
    long_token, _ = make_token(name="t" * 100)
    ApiToken.objects.filter(pk=long_token.pk).update(name="t" * 100)
    assert (
        len(
            audit_record(
                actor=None, action="x", source="system", target=long_token
            ).target_label
        )
        <= 200
    )


def test_audit_via_api__traceparent__trace_id_recorded(db, client):
    user = make_user(role="operator")
    _, raw = make_token(user=user, scopes=("write",))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    client.post(
        "/api/v1/tokens",
        {"name": "x", "scopes": ["write"]},
        "application/json",
        headers={**bearer(raw), "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert (
        AuditEvent.objects.get(action="token.created", source="api").trace_id
        == trace_id
    )


def resave(event: AuditEvent) -> None:
    event.action = "x.rewritten"
    event.save()


CHANGES = {
    "update": lambda e: AuditEvent.objects.filter(pk=e.pk).update(action="x.rewritten"),
    "save": resave,
    "delete": lambda e: e.delete(),
    "queryset_delete": lambda e: AuditEvent.objects.filter(pk=e.pk).delete(),
}


def in_savepoint(change, event: AuditEvent) -> None:
    # A savepoint, so the test's transaction survives the refused statement.
    with transaction.atomic():
        change(event)


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_audit_event__changed_after_write__database_refuses(db, change):
    # Given an audit row
    event = audit_record(actor=None, action="x.y", source=AuditEvent.Source.SYSTEM)
    # When anything tries to change or remove it, then the trigger refuses
    with pytest.raises(DatabaseError, match="append-only"):
        in_savepoint(change, event)
    assert AuditEvent.objects.get(pk=event.pk).action == "x.y"


@committed
def test_audit_record__outside_transaction__runtime_error():
    with pytest.raises(RuntimeError, match="transaction"):
        audit_record(actor=None, action="x.y", source=AuditEvent.Source.SYSTEM)
    assert not AuditEvent.objects.exists()


class Boom(Exception):
    pass


def create_token_then_fail(user) -> None:
    with transaction.atomic():
        token_create(
            user=user,
            name="x",
            scopes=["read"],
            expires_at=None,
            actor=None,
            source=AuditEvent.Source.SYSTEM,
        )
        assert AuditEvent.objects.filter(action="token.created").exists()
        raise Boom


@committed
def test_token_create__transaction_rolls_back__audit_row_gone_too():
    # Given a write whose surrounding transaction fails after the service returned
    user = make_user(role="viewer")
    with pytest.raises(Boom):
        create_token_then_fail(user)
    # Then neither the token nor its audit row survived
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.exists()


@committed
def test_token_create__committed__audit_row_committed():
    token, _ = make_token()
    assert AuditEvent.objects.filter(
        action="token.created", target_id=str(token.pk)
    ).exists()
