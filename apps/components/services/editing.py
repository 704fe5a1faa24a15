"""Writes that change or remove a component's definition."""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from apps.components.models import Component, Heartbeat, Kind
from apps.components.services.common import (
    component_audit_view,
    component_config_resolved,
    component_dependencies_check,
    component_locked,
    full_clean,
    heartbeat_schedule_reset,
)
from apps.core.exceptions import ValidationFailed
from apps.core.models import AuditEvent
from apps.core.services import audit_record

# What component_update may change. The slug is the component's name in URLs,
# the CLI and other components' depends_on: fixed once created. Pausing has its
# own services (component_pause, component_resume).
EDITABLE = frozenset(
    {
        "name",
        "group",
        "tags",
        "owner",
        "description",
        "kind",
        "config",
        "interval_seconds",
        "timeout_seconds",
        "retries",
        "failure_threshold",
        "success_threshold",
        "enabled",
        "depends_on",
        "notification_channels",
    }
)
_RELATED = ("depends_on", "notification_channels")


@transaction.atomic
def component_update(
    *,
    slug: str,
    data: Mapping[str, Any],
    actor: User | None,
    source: AuditEvent.Source,
    reason: str = "",
) -> Component:
    """Change the fields in ``data`` (keys of ``EDITABLE``); a secret sent back masked
    keeps its stored value and a dependency cycle is refused, both as field errors."""
    component = component_locked(slug)
    unknown = sorted(set(data) - EDITABLE)
    if unknown:
        raise ValidationFailed({key: ["Can't be changed."] for key in unknown})
    before = component_audit_view(component)
    fields = _fields_resolved(component, data)
    component.next_check_at = _next_check(component, fields)
    was_watched = component.enabled
    for name, value in fields.items():
        setattr(component, name, value)
    full_clean(component)
    component.save()
    _heartbeat_follow(component, was_watched=was_watched)
    for name in _RELATED:
        if name in data:
            getattr(component, name).set(data[name])
    after = component_audit_view(component)
    changed = [key for key in after if after[key] != before[key]]
    audit_record(
        actor=actor,
        action="component.changed",
        source=source,
        target=component,
        before={key: before[key] for key in changed},
        after={key: after[key] for key in changed},
        reason=reason,
    )
    return component


def _fields_resolved(component: Component, data: Mapping[str, Any]) -> dict[str, Any]:
    """The plain fields of ``data``, the config as it will be stored; checked."""
    fields = {key: value for key, value in data.items() if key not in _RELATED}
    if "config" in data or "kind" in data:
        fields["config"] = component_config_resolved(
            component=component,
            kind=data.get("kind", component.kind),
            config=data.get("config", component.config),
        )
    if "tags" in fields:
        fields["tags"] = list(fields["tags"])
    if "depends_on" in data:
        component_dependencies_check(component=component, depends_on=data["depends_on"])
    return fields


def _next_check(component: Component, fields: Mapping[str, Any]) -> datetime:
    """A changed check (kind, config, re-enabled) runs at once; a new interval counts
    from the last check (due now if that is past); otherwise the schedule stands."""
    now = timezone.now()
    changed = {key for key, value in fields.items() if getattr(component, key) != value}
    if changed & {"kind", "config"} or ("enabled" in changed and fields["enabled"]):
        return now
    if "interval_seconds" not in changed:
        return component.next_check_at
    last = component.state.last_checked_at
    if last is None:
        return now
    return max(now, last + timedelta(seconds=fields["interval_seconds"]))


def _heartbeat_follow(component: Component, *, was_watched: bool) -> None:
    """Give a component that became a heartbeat its ping URL, take it from one that
    stopped being one, and forget pings missed while it was disabled."""
    if component.kind != Kind.HEARTBEAT:
        Heartbeat.objects.filter(component=component).delete()
        return
    Heartbeat.objects.get_or_create(component=component)
    if component.enabled and not was_watched:
        heartbeat_schedule_reset(component)


@transaction.atomic
def component_delete(
    *, slug: str, actor: User | None, source: AuditEvent.Source, reason: str = ""
) -> None:
    """Remove a component with its results and incidents (components depending on
    it no longer do). Operators disable one instead (enabled off): its checks and
    alerts stop and its history stays; deleting is a superuser's call."""
    component = component_locked(slug)
    before = component_audit_view(component)
    before["dependents"] = sorted(component.dependents.values_list("slug", flat=True))
    audit_record(
        actor=actor,
        action="component.deleted",
        source=source,
        target=component,
        before=before,
        reason=reason,
    )
    component.delete()
