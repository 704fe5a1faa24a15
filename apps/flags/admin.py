"""Admin for flags (the operators' main door), their version history and segments.

Every write goes through ``apps.flags.services``; the forms call the same whole-set
validation first so a bad change comes back as form errors on the right fields.
Switching, archiving and reverting confirm on a page that takes a reason, which is
required as soon as a protected flag is among those selected.
"""

import json
from collections.abc import Callable
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db import models
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.core.admin_actions import action_with_reason
from apps.core.exceptions import OpsError
from apps.core.models import AuditEvent
from apps.flags.admin_forms import (
    JSON_FIELD,
    ExpiryFilter,
    FlagForm,
    SegmentForm,
    TagFilter,
)
from apps.flags.models import Flag, FlagVersion, Segment
from apps.flags.selectors import flag_version_changes
from apps.flags.services import (
    flag_archive,
    flag_create,
    flag_revert,
    flag_toggle,
    flag_update,
    segment_upsert,
)
from apps.flags.specs import SEGMENT_FIELDS

ADMIN = AuditEvent.Source.ADMIN


class FlagVersionInline(admin.TabularInline):
    model = FlagVersion
    fields = readonly_fields = ("version", "created_at", "actor", "reason")
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-version"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _actor(request: HttpRequest) -> User:
    return cast(User, request.user)  # the admin only lets signed-in staff in


def _each(
    request: HttpRequest,
    objects: QuerySet[Any],
    write: Callable[[Any], object],
    done: str,
) -> str:
    """Call ``write`` per object; failures are reported one by one, the rest go on."""
    count = 0
    for obj in objects:
        try:
            write(obj)
            count += 1
        except OpsError as exc:
            messages.error(request, f"{obj}: {exc.message}")
    return f"{done} {count} of {len(objects)}."


def _confirmed(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    name: str,
    description: str,
    permission: str,
    protected: bool,
    write: Callable[[Any, User, str], object],
    done: str,
) -> TemplateResponse | None:
    """``write(obj, actor, reason)`` per object after the reason page.

    The reason is required as soon as a protected flag is concerned.
    """

    def perform(
        _: admin.ModelAdmin, request: HttpRequest, objects: QuerySet[Any], reason: str
    ) -> str:
        return _each(
            request, objects, lambda obj: write(obj, _actor(request), reason), done
        )

    action = action_with_reason(
        name=name,
        description=description,
        permissions=[permission],
        reason_required=protected,
        perform=perform,
    )
    return action(modeladmin, request, queryset)


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    form = FlagForm
    list_display = [
        "key",
        "name",
        "type",
        "state",
        "tag_list",
        "owner",
        "protected",
        "expiry",
        "updated_at",
    ]
    list_filter = ["enabled", ExpiryFilter, TagFilter, "type", "protected", "archived"]
    search_fields = ["key", "name", "description", "owner"]
    inlines = [FlagVersionInline]
    actions = ["switch_on", "switch_off", "archive"]
    formfield_overrides = {models.JSONField: JSON_FIELD}
    fieldsets = [
        (None, {"fields": ["key", "name", "description", "owner", "tags"]}),
        ("State", {"fields": ["enabled", "protected", "requires_approval"]}),
        ("Values", {"fields": ["type", "variants", "json_schema"]}),
        ("Serving", {"fields": ["default_variant", "off_variant", "rules"]}),
        ("Relations", {"fields": ["requires", "conflicts"]}),
        ("Lifecycle", {"fields": ["expires_at", "archived"]}),
        ("Change", {"fields": ["reason", "loaded_version"]}),
    ]
    about = ("About", {"fields": ["version", "created_at", "updated_at", "history"]})

    def get_queryset(self, request: HttpRequest) -> QuerySet[Flag]:
        expired = Q(expires_at__lte=Now())
        return (
            super()
            .get_queryset(request)
            .annotate(expired=ExpressionWrapper(expired, output_field=BooleanField()))
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = [*self.fieldsets, self.about] if obj else self.fieldsets
        if self.has_change_permission(request, obj):
            return fieldsets
        return [fieldset for fieldset in fieldsets if fieldset[0] != "Change"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["key", "version", "created_at", "updated_at", "history"] if obj else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # flags are archived, never deleted: history stays

    @admin.display(description="state", ordering="enabled")
    def state(self, obj: Flag) -> SafeString:
        if obj.archived:
            return format_html('<span style="color:{}">{}</span>', "#777", "ARCHIVED")
        colour, text = ("#1a7f37", "ON") if obj.enabled else ("#b42318", "OFF")
        return format_html('<strong style="color:{}">{}</strong>', colour, text)

    @admin.display(description="tags")
    def tag_list(self, obj: Flag) -> str:
        return ", ".join(obj.tags)

    @admin.display(description="expires", ordering="expires_at")
    def expiry(self, obj: Flag) -> SafeString | str:
        if getattr(obj, "expired", False):
            return format_html(
                '<strong style="color:{}">{}</strong>', "#b42318", "expired"
            )
        return obj.expires_at.date().isoformat() if obj.expires_at else "—"

    @admin.display(description="history")
    def history(self, obj: Flag) -> SafeString:
        url = reverse("admin:flags_flagversion_changelist")
        return format_html('<a href="{}?flag__key={}">all versions</a>', url, obj.key)

    def save_model(
        self, request: HttpRequest, obj: Flag, form: FlagForm, change: bool
    ) -> None:
        changes, reason = form.flag_changes(), form.cleaned_data.get("reason", "")
        if not changes:
            return
        if change:
            flag = flag_update(
                key=obj.key,
                changes=changes,
                expected_version=form.cleaned_data.get("loaded_version"),
                actor=_actor(request),
                reason=reason,
                source=ADMIN,
            )
        else:
            flag = flag_create(
                key=obj.key,
                data=changes,
                actor=_actor(request),
                reason=reason,
                source=ADMIN,
            )
        _copy_state(flag, obj)

    @admin.action(description="Switch selected flags on", permissions=["change"])
    def switch_on(
        self, request: HttpRequest, queryset: QuerySet[Flag]
    ) -> TemplateResponse | None:
        return self._toggle(request, queryset, enabled=True, name="switch_on")

    @admin.action(description="Switch selected flags off", permissions=["change"])
    def switch_off(
        self, request: HttpRequest, queryset: QuerySet[Flag]
    ) -> TemplateResponse | None:
        return self._toggle(request, queryset, enabled=False, name="switch_off")

    def _toggle(
        self,
        request: HttpRequest,
        queryset: QuerySet[Flag],
        *,
        enabled: bool,
        name: str,
    ) -> TemplateResponse | None:
        state = "on" if enabled else "off"
        return _confirmed(
            self,
            request,
            queryset,
            name=name,
            description=f"Switch selected flags {state}",
            permission="change",
            protected=queryset.filter(protected=True).exists(),
            write=lambda flag, actor, reason: flag_toggle(
                key=flag.key, enabled=enabled, actor=actor, reason=reason, source=ADMIN
            ),
            done=f"Switched {state}",
        )

    @admin.action(description="Archive selected flags", permissions=["change"])
    def archive(
        self, request: HttpRequest, queryset: QuerySet[Flag]
    ) -> TemplateResponse | None:
        return _confirmed(
            self,
            request,
            queryset,
            name="archive",
            description="Archive selected flags",
            permission="change",
            protected=queryset.filter(protected=True).exists(),
            write=lambda flag, actor, reason: flag_archive(
                key=flag.key, actor=actor, reason=reason, source=ADMIN
            ),
            done="Archived",
        )


def _copy_state(source: models.Model, target: models.Model) -> None:
    """Make the admin's unsaved instance the row the service wrote."""
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False
    target._state.db = source._state.db


@admin.register(FlagVersion)
class FlagVersionAdmin(admin.ModelAdmin):
    list_display = ["flag", "version", "created_at", "actor", "reason"]
    list_filter = [("flag", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["flag__key", "reason"]
    list_select_related = ["flag", "actor"]
    fields = readonly_fields = (
        "flag",
        "version",
        "created_at",
        "actor",
        "reason",
        "changes",
        "snapshot",
    )
    actions = ["revert_to_version"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revert_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("flags.change_flag")

    @admin.display(description="changed from the version before")
    def changes(self, obj: FlagVersion) -> SafeString:
        rows = (
            (change.field, json.dumps(change.before), json.dumps(change.after))
            for change in flag_version_changes(version=obj)
        )
        body = format_html_join(
            "",
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            rows,
        )
        return format_html(
            "<table><tr><th>field</th><th>before</th><th>after</th></tr>{}</table>",
            body,
        )

    @admin.action(description="Revert the flag to this version", permissions=["revert"])
    def revert_to_version(
        self, request: HttpRequest, queryset: QuerySet[FlagVersion]
    ) -> TemplateResponse | None:
        if len({version.flag_id for version in queryset}) < queryset.count():
            self.message_user(request, "Pick one version per flag.", messages.ERROR)
            return None

        return _confirmed(
            self,
            request,
            queryset.select_related("flag"),
            name="revert_to_version",
            description="Revert the flag to this version",
            permission="revert",
            protected=queryset.filter(flag__protected=True).exists(),
            write=lambda version, actor, reason: flag_revert(
                key=version.flag.key,
                version=version.version,
                actor=actor,
                reason=reason,
                source=ADMIN,
            ),
            done="Reverted",
        )


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ["key", "name", "updated_at"]
    search_fields = ["key", "name", "description"]
    fields = ["key", "name", "description", "conditions", "reason"]
    formfield_overrides = FlagAdmin.formfield_overrides

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["key"] if obj else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # rules may refer to a segment; nothing checks a deletion

    def save_model(
        self, request: HttpRequest, obj: Segment, form: SegmentForm, change: bool
    ) -> None:
        segment = segment_upsert(
            key=obj.key,
            data={field: form.cleaned_data[field] for field in SEGMENT_FIELDS},
            actor=_actor(request),
            reason=form.cleaned_data.get("reason", ""),
            source=ADMIN,
        )
        _copy_state(segment, obj)
