"""Admin forms for components: config as JSON with its kind's fields as help, secrets
shown masked and kept when they come back so, service errors as form errors."""

import json
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from pydantic import BaseModel

from apps.components.checkers import KINDS
from apps.components.checkers.base import secret_fields
from apps.components.models import Component
from apps.components.notifications.models import NotificationChannel
from apps.components.selectors import component_config_public
from apps.components.services import component_dependencies_check
from apps.components.services.common import config_unmasked
from apps.core.exceptions import ValidationFailed


class ConfigField(forms.JSONField):
    """JSON that says where it is broken, shown indented."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            try:
                json.loads(value)
            except json.JSONDecodeError as exc:
                where = f"line {exc.lineno}, column {exc.colno}"
                raise forms.ValidationError(
                    f"Not valid JSON at {where}: {exc.msg}."
                ) from exc
        return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


def add_failed(form: forms.BaseForm, exc: ValidationFailed) -> None:
    """Put a service's field errors on the form: ``config.url`` on config."""
    for path, messages in exc.fields.items():
        field, _, rest = path.partition(".")
        name = field if field in form.fields else None
        for message in messages:
            form.add_error(name, f"{path}: {message}" if rest or not name else message)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _fields_help(model: type[BaseModel]) -> str:
    hidden = secret_fields(model)
    parts = []
    for name, info in model.model_fields.items():
        text = f"{name}: {_type_name(info.annotation)}"
        if not info.is_required():
            default = info.get_default(call_default_factory=True)
            text += f" = {json.dumps(default)}"
        parts.append(text + (" (secret)" if name in hidden else ""))
    return ", ".join(parts)


def config_help() -> SafeString:
    """Each kind's config fields, from its checker's schema."""
    intro = format_html(
        "A JSON object with the kind's fields. Secrets are shown as {}: leave them "
        "so to keep them.",
        "********",
    )
    rows = format_html_join(
        "",
        "<li><b>{}</b>: {}</li>",
        ((k, _fields_help(v.config_model)) for k, v in KINDS.items()),
    )
    return format_html("{}<ul>{}</ul>", intro, rows)


class ComponentForm(forms.ModelForm):
    config = ConfigField(help_text=config_help())
    notification_channels = forms.ModelMultipleChoiceField(
        queryset=NotificationChannel.objects.all(), required=False
    )

    class Meta:
        model = Component
        fields = [
            "name",
            "slug",
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
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            # Never render the stored secrets back, not even in the form's value.
            self.initial["config"] = component_config_public(component=self.instance)
            self.initial["notification_channels"] = list(
                self.instance.notification_channels.all()
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # The model's clean() then checks the config against its kind's schema.
        stored = self.instance if self.instance.pk is not None else None
        try:
            if stored is not None and isinstance(data.get("config"), dict):
                data["config"] = config_unmasked(
                    submitted=data["config"],
                    stored=stored.config,
                    shown=component_config_public(component=stored),
                )
            component_dependencies_check(
                component=stored, depends_on=data.get("depends_on", [])
            )
        except ValidationFailed as exc:
            add_failed(self, exc)
        return data
