"""Helpers the components services share."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models

from apps.components.models import Component
from apps.components.selectors import component_get
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
