"""Forms and list filters of the flags admin.

The forms run the services' whole-set validation in ``clean()``, so a change that
would break the flag set comes back as errors on the right fields, never a 500.
"""

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.core.exceptions import OpsError, ValidationFailed
from apps.flags.models import ChangeRequest, Flag, ScheduledChange, Segment
from apps.flags.selectors import flag_tags
from apps.flags.services import flag_validate
from apps.flags.specs import FLAG_FIELDS, SEGMENT_FIELDS
from apps.flags.validation import validate_segment


class PositionedJSONField(forms.JSONField):
    """A JSON form field that says where the text stops being JSON."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            try:
                json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                    code="invalid",
                ) from exc
        return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


# Rules, variants and schemas are edited as JSON text in a monospace box.
JSON_FIELD = {
    "form_class": PositionedJSONField,
    "widget": forms.Textarea(
        attrs={"rows": 6, "cols": 80, "style": "font-family: monospace"}
    ),
}


def reason_field() -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
        help_text="Recorded with the change; required for protected flags.",
    )


def add_errors(
    form: forms.BaseForm, exc: OpsError, *, others: str | None = None
) -> None:
    """Each ``field.sub.path`` error on its form field; the rest on ``others`` with
    their whole path, or above the form."""
    fields = exc.fields if isinstance(exc, ValidationFailed) else {"": [exc.message]}
    for path, messages_ in fields.items():
        field, _, rest = path.partition(".")
        if field not in form.fields and others is not None and path:
            form.add_error(others, [f"{path}: {message}" for message in messages_])
            continue
        text = [f"{rest}: {message}" if rest else message for message in messages_]
        form.add_error(field if field in form.fields else None, text)


class FlagForm(forms.ModelForm):
    reason = reason_field()
    # Set by the admin when the write refused a change this form had passed.
    refused: OpsError | None = None
    # The version the operator saw: a change made meanwhile is refused, not lost.
    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Flag
        fields = ["key", *FLAG_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            self.fields["loaded_version"].initial = self.instance.version

    def flag_changes(self) -> dict[str, Any]:
        """The flag fields to write: all of them for a new flag, else those changed."""
        adding = self.instance._state.adding
        data = getattr(self, "cleaned_data", {})
        names = [name for name in self.fields if name in FLAG_FIELDS and name in data]
        if adding:
            return {name: data[name] for name in names}
        # changed_data also lists JSON fields whose text merely differs in layout.
        return {
            name: data[name]
            for name in names
            if name in self.changed_data and data[name] != self.initial.get(name)
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        changes = self.flag_changes()
        if self.refused is not None:
            add_errors(self, self.refused)
        if self.errors or not changes:
            return data
        try:
            flag_validate(
                key=data.get("key", self.instance.key),
                data=changes,
                reason=data.get("reason", ""),
                creating=self.instance._state.adding,
                expected_version=data.get("loaded_version"),
            )
        except OpsError as exc:
            add_errors(self, exc)
        return data


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("expired", "expired (stale)"),
            ("week", "expires within 7 days"),
            ("none", "no expiry"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        if self.value() == "week":
            week = now + timedelta(days=7)
            return queryset.filter(expires_at__gt=now, expires_at__lte=week)
        if self.value() == "none":
            return queryset.filter(expires_at__isnull=True)
        return queryset


class UsageFilter(admin.SimpleListFilter):
    """Finds flags nobody evaluates: candidates for removal (needs the usage annotations)."""

    title = "usage"
    parameter_name = "usage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("never", "never evaluated"),
            ("stale", "not evaluated in 30 days"),
            ("recent", "evaluated in the last 30 days"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        month_ago = timezone.now() - timedelta(days=30)
        never = Q(last_evaluated_at__isnull=True)
        if self.value() == "never":
            return queryset.filter(never)
        if self.value() == "stale":
            return queryset.filter(never | Q(last_evaluated_at__lt=month_ago))
        if self.value() == "recent":
            return queryset.filter(last_evaluated_at__gte=month_ago)
        return queryset


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(tag, tag) for tag in flag_tags()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        tag = self.value()
        return queryset.filter(tags__contains=[tag]) if tag else queryset


class SegmentForm(forms.ModelForm):
    reason = reason_field()

    class Meta:
        model = Segment
        fields = ["key", *SEGMENT_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors:
            key = data.get("key", self.instance.key)
            try:
                validate_segment({"key": key, "conditions": data.get("conditions")})
            except ValidationFailed as exc:
                add_errors(self, exc)
        return data


def flag_fields_object(changes: Any) -> dict[str, Any]:
    """``changes`` when it is a non-empty object of flag fields, else a form error."""
    if not isinstance(changes, dict) or not changes:
        raise ValidationError('Give an object of fields, e.g. {"enabled": true}.')
    unknown = sorted(set(changes) - set(FLAG_FIELDS))
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(unknown)}.")
    return changes


class ScheduledChangeForm(forms.ModelForm):
    class Meta:
        model = ScheduledChange
        fields = ["flag", "changes", "run_at", "reason"]
        help_texts = {
            "changes": 'The flag fields to set, e.g. {"enabled": true} to switch on.',
            "reason": "Recorded with the change; required for protected flags.",
        }

    def clean_changes(self) -> dict[str, Any]:
        return flag_fields_object(self.cleaned_data["changes"])


class ChangeRequestForm(forms.ModelForm):
    """Edits what a pending change request proposes (approvals given so far lapse)."""

    # Set by the admin when the write refused an edit this form had passed.
    refused: OpsError | None = None

    class Meta:
        model = ChangeRequest
        fields = ["changes", "reason"]
        help_texts = {
            "changes": "The flag fields the request sets. Saving an edit voids the "
            "approvals given so far: the new revision needs its own.",
            "reason": "Recorded with the change; required for protected flags.",
        }

    def clean_changes(self) -> dict[str, Any]:
        return flag_fields_object(self.cleaned_data["changes"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # A flag field's error goes on "changes", naming the field.
        others = "changes" if "changes" in self.fields else None
        if self.refused is not None:
            add_errors(self, self.refused, others=others)
        if self.errors or "changes" not in data:
            return data
        try:
            flag_validate(
                key=self.instance.flag.key,
                data=data["changes"],
                reason=data.get("reason", ""),
                creating=False,
            )
        except OpsError as exc:
            add_errors(self, exc, others=others)
        return data
