"""Admin for flags, the operators' main door.

Every write goes through ``apps.flags.services``; the form calls the same whole-set
validation first so a bad change comes back as form errors on the right fields, and
a refusal that only the write sees (the set changed meanwhile) comes back the same
way. Switching (per row or in bulk), archiving and reverting confirm on a page that
takes a reason, required as soon as a protected flag is among those selected. A
change to a flag that requires approval opens a change request instead.
"""

from typing import Any
from weakref import WeakKeyDictionary

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.flags.admin.common import (
    ADMIN,
    RefusalsOnForm,
    confirmed,
    copy_state,
    opened_message,
    operator_of,
    reason_action,
)
from apps.flags.admin_forms import (
    JSON_FIELD,
    ExpiryFilter,
    FlagForm,
    TagFilter,
    UsageFilter,
)
from apps.flags.models import ChangeRequest, Flag, FlagVersion
from apps.flags.selectors import flags_with_usage
from apps.flags.services import flag_archive, flag_create, flag_toggle, flag_update

# Per request: the change request a save opened instead of changing the flag.
_opened: "WeakKeyDictionary[HttpRequest, ChangeRequest]" = WeakKeyDictionary()


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


@admin.register(Flag)
class FlagAdmin(RefusalsOnForm):
    form = FlagForm
    list_display = [
        "key",
        "name",
        "type",
        "state",
        "switch",
        "tag_list",
        "owner",
        "protected",
        "expiry",
        "evaluations",
        "last_evaluated",
        "updated_at",
    ]
    list_filter = [
        "enabled",
        ExpiryFilter,
        UsageFilter,
        TagFilter,
        "type",
        "protected",
        "archived",
    ]
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
        flags = super().get_queryset(request)
        return flags_with_usage(flags).annotate(
            expired=ExpressionWrapper(expired, output_field=BooleanField())
        )

    def get_list_display(self, request: HttpRequest) -> Any:
        if self.has_change_permission(request):
            return self.list_display
        return [name for name in self.list_display if name != "switch"]

    def get_urls(self) -> list[URLPattern]:
        switch = path(
            "<int:object_id>/switch/<str:state>/",
            self.admin_site.admin_view(self.switch_view),
            name="flags_flag_switch",
        )
        return [switch, *super().get_urls()]

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

    @admin.display(description="switch")
    def switch(self, obj: Flag) -> SafeString | str:
        if obj.archived:
            return "—"
        state = "off" if obj.enabled else "on"
        # A button of the changelist's own form (forms do not nest) that posts to
        # switch_view, which asks for the reason like the bulk action does.
        return format_html(
            '<button type="submit" class="button flag-switch" formaction="{}">'
            "Switch {}</button>",
            reverse("admin:flags_flag_switch", args=[obj.pk, state]),
            state,
        )

    def switch_view(
        self, request: HttpRequest, object_id: int, state: str
    ) -> HttpResponse:
        """One row's on/off button: the reason page, then the same toggle as the action."""
        if request.method != "POST" or state not in ("on", "off"):
            return HttpResponseRedirect(reverse("admin:flags_flag_changelist"))
        if not self.has_change_permission(request):
            raise PermissionDenied
        flags = self.get_queryset(request).filter(pk=object_id)
        page = self._toggle(
            request, flags, enabled=state == "on", name=f"switch_{state}"
        )
        return page or HttpResponseRedirect(reverse("admin:flags_flag_changelist"))

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

    @admin.display(description="evaluations", ordering="evaluations")
    def evaluations(self, obj: Flag) -> int:
        return int(getattr(obj, "evaluations", 0))

    @admin.display(description="last evaluated", ordering="last_evaluated_at")
    def last_evaluated(self, obj: Flag) -> str:
        at = getattr(obj, "last_evaluated_at", None)
        return at.strftime("%Y-%m-%d %H:%M") if at else "never"

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
        if not change:
            flag = flag_create(
                key=obj.key,
                data=changes,
                actor=operator_of(request),
                reason=reason,
                source=ADMIN,
            )
            copy_state(flag, obj)
            return
        result = flag_update(
            key=obj.key,
            changes=changes,
            expected_version=form.cleaned_data.get("loaded_version"),
            actor=operator_of(request),
            reason=reason,
            source=ADMIN,
        )
        if isinstance(result, ChangeRequest):
            _opened[request] = result
        else:
            copy_state(result, obj)

    def response_change(self, request: HttpRequest, obj: Flag) -> HttpResponse:
        opened = _opened.get(request)
        if opened is None:
            return super().response_change(request, obj)
        self.message_user(request, opened_message(opened), messages.WARNING)
        url = reverse("admin:flags_changerequest_change", args=[opened.pk])
        return HttpResponseRedirect(url)

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
        return confirmed(
            self,
            request,
            queryset,
            name=name,
            description=f"Switch selected flags {state}",
            permission="change",
            protected=queryset.filter(protected=True).exists(),
            write=lambda flag, who, reason: flag_toggle(
                key=flag.key, enabled=enabled, actor=who, reason=reason, source=ADMIN
            ),
            done=f"Switched {state}",
        )

    archive = reason_action(
        name="archive",
        description="Archive selected flags",
        write=lambda flag, who, reason: flag_archive(
            key=flag.key, actor=who, reason=reason, source=ADMIN
        ),
        done="Archived",
        protected=lambda flags: flags.filter(protected=True).exists(),
    )
