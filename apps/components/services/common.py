"""Helpers the components services share."""

import json
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models

from apps.components.checkers.base import MASK
from apps.components.models import Component, Heartbeat, config_errors
from apps.components.selectors import component_config_public, component_get
from apps.core.exceptions import ValidationFailed


def component_locked(slug: str) -> Component:
    """The component ``slug`` locked FOR UPDATE (call inside a transaction)."""
    return Component.objects.select_for_update().get(pk=component_get(slug=slug).pk)


def full_clean(instance: models.Model) -> None:
    """``instance.full_clean()``, its errors raised as ValidationFailed."""
    try:
        instance.full_clean()
    except DjangoValidationError as exc:
        fields = {name: list(msgs) for name, msgs in exc.message_dict.items()}
        raise ValidationFailed(fields) from exc


def config_unmasked(
    *, submitted: dict[str, Any], stored: dict[str, Any], shown: dict[str, Any]
) -> dict[str, Any]:
    """``submitted`` with each value that came back exactly as it was shown (``shown``:
    ``stored`` with secrets masked) holding its stored value again.

    A value still holding the mask otherwise is a secret edited around (a host
    changed in a masked URL) but never typed again: ValidationFailed on its path.
    """
    kept = {
        key: stored[key] if key in stored and value == shown.get(key) else value
        for key, value in submitted.items()
    }
    left = sorted(key for key, value in kept.items() if MASK in json.dumps(value))
    if left:
        message = f"Still holds the mask {MASK}: type the whole value again."
        raise ValidationFailed({f"config.{key}": [message] for key in left})
    return kept


def component_config_resolved(
    *, component: Component | None, kind: str, config: dict[str, Any]
) -> dict[str, Any]:
    """``config`` as it will be stored, checked against ``kind``'s schema (the
    checker's pydantic Config): values that came back masked hold the stored ones
    again. ValidationFailed on ``config.<path>``."""
    if component is not None:
        shown = component_config_public(component=component)
        config = config_unmasked(submitted=config, stored=component.config, shown=shown)
    errors = config_errors(kind, config)
    if errors:
        raise ValidationFailed(errors)
    return config


def component_dependencies_check(
    *, component: Component | None, depends_on: Iterable[Component]
) -> None:
    """ValidationFailed on ``depends_on`` if it would close a cycle back to
    ``component`` (a new component has no dependents, so never)."""
    if component is None or component.pk is None:
        return
    through = Component.depends_on.through.objects
    came_from: dict[int, int] = {dep.pk: component.pk for dep in depends_on}
    frontier = set(came_from)
    while frontier and component.pk not in frontier:
        edges = through.filter(from_component_id__in=frontier).values_list(
            "from_component_id", "to_component_id"
        )
        frontier = set()
        for source, target in edges:
            if target not in came_from:
                came_from[target] = source
                frontier.add(target)
    if component.pk in came_from:
        raise ValidationFailed({"depends_on": [_cycle_message(component, came_from)]})


def _cycle_message(component: Component, came_from: dict[int, int]) -> str:
    path = [component.pk]
    while len(path) == 1 or path[-1] != component.pk:
        path.append(came_from[path[-1]])
    slugs = dict(Component.objects.filter(pk__in=path).values_list("pk", "slug"))
    return "Would close a cycle: " + " → ".join(slugs[pk] for pk in reversed(path))


def component_audit_view(component: Component) -> dict[str, Any]:
    """What an audit row keeps of a component: its definition, secrets masked."""
    return {
        "name": component.name,
        "group": component.group,
        "tags": list(component.tags),
        "owner": component.owner,
        "description": component.description,
        "kind": component.kind,
        "config": component_config_public(component=component),
        "interval_seconds": component.interval_seconds,
        "timeout_seconds": component.timeout_seconds,
        "retries": component.retries,
        "failure_threshold": component.failure_threshold,
        "success_threshold": component.success_threshold,
        "enabled": component.enabled,
        "depends_on": sorted(component.depends_on.values_list("slug", flat=True)),
        "notification_channels": sorted(
            component.notification_channels.values_list("name", flat=True)
        ),
    }


def heartbeat_schedule_reset(component: Component) -> None:
    """Forget the pings a heartbeat missed while it was not watched (paused or
    disabled), as Healthchecks does on resume: it waits for its next ping."""
    Heartbeat.objects.filter(component=component).update(
        expected_at=None,
        alert_after=None,
        last_start_at=None,
        last_start_rid=None,
        long_run_reported=False,
    )
