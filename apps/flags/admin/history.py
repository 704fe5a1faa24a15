"""Admin for the version history of flags (read-only, with revert) and for segments."""

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.flags.admin.common import ADMIN, confirmed, copy_state, operator_of
from apps.flags.admin.flags import FlagAdmin
from apps.flags.admin_forms import SegmentForm
from apps.flags.models import FlagVersion, Segment
from apps.flags.selectors import flag_version_changes
from apps.flags.services import flag_revert, segment_upsert
from apps.flags.specs import SEGMENT_FIELDS


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

        return confirmed(
            self,
            request,
            queryset.select_related("flag"),
            name="revert_to_version",
            description="Revert the flag to this version",
            permission="revert",
            protected=queryset.filter(flag__protected=True).exists(),
            write=lambda version, who, reason: flag_revert(
                key=version.flag.key,
                version=version.version,
                actor=who,
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
            actor=operator_of(request),
            reason=form.cleaned_data.get("reason", ""),
            source=ADMIN,
        )
        copy_state(segment, obj)
