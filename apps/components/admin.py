"""Admin for components: state at a glance, recent results, operator actions.

Operators add and change components through the services (``save_model``); viewers
read only. A config may hold secrets, so only ``component_config_public`` is ever
rendered, in the form's initial JSON too. Actions call the services, one component
at a time, and report what they skipped.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import F, Func, OrderBy, QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from apps.components.forms import ComponentForm
from apps.components.lateness import component_state_shown
from apps.components.models import (
    Component,
    HealthResult,
    Heartbeat,
    MaintenanceWindow,
    StateChange,
)
from apps.components.notifications.selectors import channel_ids_of
from apps.components.notifications.services import notification_test_send
from apps.components.selectors import (
    component_config_public,
    component_get,
    component_list,
)
from apps.components.services import (
    EDITABLE,
    component_check_now,
    component_create,
    component_delete,
    component_pause,
    component_resume,
    component_update,
    maintenance_end,
    maintenance_window_create,
)
from apps.components.services.uptime import UPTIME_WINDOW
from apps.components.stats import component_stats
from apps.core.admin_actions import action_with_reason
from apps.core.exceptions import OpsError
from apps.core.models import AuditEvent

RECENT_RESULTS = 50
ADMIN_MAINTENANCE = timedelta(hours=1)
STATE_COLORS = {
    "healthy": "#2e7d32",
    "degraded": "#ef6c00",
    "unhealthy": "#c62828",
    "impacted": "#8e24aa",
    "unknown": "#757575",
}


# The uptime cell of a component with no figure (no state row, no refresh yet, no
# hour rollups in its window).
UPTIME_NONE = "\u2014"


def uptime_window_text(until: datetime) -> str:
    """What a kept uptime covers, for the cell's tooltip."""
    until = until.astimezone(UTC)
    start = until - UPTIME_WINDOW
    return (
        f"Checks not unhealthy from {start:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M}"
        " UTC (24 whole hours, from hour rollups; refreshed every minute)."
    )


class NullsLast(F):
    """An admin column's ordering that keeps None last whichever way it sorts."""

    def asc(self, **kwargs: Any) -> OrderBy:
        return OrderBy(self, nulls_last=True)

    def desc(self, **kwargs: Any) -> OrderBy:
        return OrderBy(self, descending=True, nulls_last=True)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and results: looked at, never written through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RecentResultInline(ReadOnlyInline):
    model = HealthResult
    verbose_name_plural = f"recent results (latest {RECENT_RESULTS})"
    fields = readonly_fields = (
        "checked_at",
        "status",
        "latency_ms",
        "message",
        "in_maintenance",
    )


class MaintenanceInline(ReadOnlyInline):
    model = MaintenanceWindow
    fields = readonly_fields = (
        "starts_at",
        "ends_at",
        "cron",
        "duration",
        "timezone",
        "reason",
    )


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(state, state) for state in STATE_COLORS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(state__state=value) if value else queryset


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        tags = Component.objects.annotate(tag=Func("tags", function="unnest"))
        names = tags.values_list("tag", flat=True).distinct().order_by("tag")
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(tags__contains=[value]) if value else queryset


def _each(
    request: HttpRequest, queryset: QuerySet[Component], call: Callable[[str], Any]
) -> str:
    """Call ``call`` with each selected slug; a summary naming what was skipped."""
    done, skipped = 0, []
    for slug in queryset.values_list("slug", flat=True):
        try:
            call(slug)
            done += 1
        except OpsError as exc:
            skipped.append(exc.message)
    return f"Done for {done}; skipped {len(skipped)}. " + " ".join(skipped)


def _operator(request: HttpRequest) -> dict[str, Any]:
    return {"actor": request.user, "source": AuditEvent.Source.ADMIN}


def _maintenance_start(*, slug: str, reason: str, **operator: Any) -> None:
    now = timezone.now()
    maintenance_window_create(
        component=component_get(slug=slug),
        starts_at=now,
        ends_at=now + ADMIN_MAINTENANCE,
        reason=reason,
        **operator,
    )


def _with_reason(
    name: str, description: str, call: Callable[..., Any], *, required: bool
) -> Any:
    return action_with_reason(
        name=name,
        description=description,
        permissions=["change"],
        reason_required=required,
        perform=lambda admin, request, queryset, reason: _each(
            request,
            queryset,
            lambda slug: call(slug=slug, reason=reason, **_operator(request)),
        ),
    )


# Shown on an existing component, never edited here: the slug is fixed once made,
# pausing has its actions and the schedule is the scheduler's.
_SHOWN = ["heartbeat_info", "paused", "next_check_at", "statistics", "all_results"]
# What a viewer sees instead of the fields that could show a secret or need a form.
_VIEWED = {"config": "config_public", "notification_channels": "channel_names"}


@admin.register(Component)
class ComponentAdmin(admin.ModelAdmin):
    form = ComponentForm
    list_display = [
        "name",
        "slug",
        "group",
        "kind",
        "state_colored",
        "state_since",
        "last_latency",
        "uptime_24h",
        "paused",
    ]
    list_filter = [StateFilter, "group", "kind", TagFilter, "paused", "enabled"]
    search_fields = ["name", "slug", "group", "owner", "description"]
    list_select_related = ["state"]
    filter_horizontal = ["depends_on"]
    inlines = [MaintenanceInline, RecentResultInline]
    actions = [
        "check_now",
        "pause",
        "resume",
        "maintenance_start",
        "maintenance_end",
        "send_test_notification",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Component]:
        return component_list()

    def action_checkbox(self, obj: Component) -> SafeString:
        """The stock checkbox, written directly: the stock one renders a form
        widget through the template engine on every row, a sixth of the time of
        a page of 100 here."""
        label = format_html(gettext("Select this object for an action - {}"), obj)
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select"'
            ' aria-label="{}">',
            ACTION_CHECKBOX_NAME,
            obj.pk,
            label,
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [*ComponentForm.Meta.fields, "notification_channels"]
        if obj is None:
            return fields
        if not self.has_change_permission(request, obj):
            fields = [_VIEWED.get(name, name) for name in fields]
        return fields + _SHOWN

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else ["slug", *_VIEWED.values(), *_SHOWN]

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        return list(self.inlines) if obj is not None else []

    def save_model(
        self, request: HttpRequest, obj: Component, form: Any, change: bool
    ) -> None:
        data = {k: v for k, v in form.cleaned_data.items() if k in EDITABLE}
        if change:
            saved = component_update(slug=obj.slug, data=data, **_operator(request))
        else:
            saved = component_create(
                slug=form.cleaned_data["slug"], **data, **_operator(request)
            )
        obj.pk = saved.pk

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        """The service set depends_on and the channels already; the inlines are
        read-only, so saving them changes nothing (and gives the admin's history
        message its lists)."""
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request: HttpRequest, obj: Component) -> None:
        component_delete(slug=obj.slug, **_operator(request))

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[Component]
    ) -> None:
        for slug in queryset.values_list("slug", flat=True):
            component_delete(slug=slug, **_operator(request))

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Any, inline: Any, prefix: str
    ) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, RecentResultInline) and obj is not None:
            # An inline's queryset can't be sliced; pick the latest ids instead.
            latest = obj.results.values_list("id", flat=True)[:RECENT_RESULTS]
            kwargs["queryset"] = HealthResult.objects.filter(id__in=list(latest))
        return kwargs

    @admin.display(description="state", ordering="state__state")
    def state_colored(self, obj: Component) -> SafeString:
        shown = component_state_shown(component=obj, now=timezone.now())
        state = shown.state if shown else "unknown"
        color = STATE_COLORS.get(state, "#757575")
        label = "late" if shown and shown.late else state
        return format_html(
            '<span style="color:{}" title="{}">&#9679; {}</span>',
            color,
            shown.message if shown else "",
            label,
        )

    @admin.display(description="since", ordering="state__since")
    def state_since(self, obj: Component) -> Any:
        shown = component_state_shown(component=obj, now=timezone.now())
        return shown.since if shown else None

    @admin.display(description="last latency (ms)", ordering="state__last_latency_ms")
    def last_latency(self, obj: Component) -> str:
        latency = obj.state.last_latency_ms
        return "-" if latency is None else f"{latency:.1f}"

    @admin.display(description="uptime 24 h", ordering=NullsLast("uptime_pct"))
    def uptime_24h(self, obj: Component) -> SafeString | str:
        pct = getattr(obj, "uptime_pct", None)
        until = getattr(obj, "uptime_until", None)
        if pct is None or until is None:
            return UPTIME_NONE
        return format_html(
            '<span title="{}">{} %</span>', uptime_window_text(until), f"{pct:.2f}"
        )

    @admin.display(description="config (secrets masked)")
    def config_public(self, obj: Component) -> SafeString:
        shown = json.dumps(component_config_public(component=obj), indent=2)
        return format_html("<pre>{}</pre>", shown)

    @admin.display(description="notification channels")
    def channel_names(self, obj: Component) -> str:
        names = obj.notification_channels.values_list("name", flat=True)
        return ", ".join(names) or "-"

    @admin.display(description="heartbeat")
    def heartbeat_info(self, obj: Component) -> str:
        beat = Heartbeat.objects.filter(component=obj).first()
        if beat is None:
            return "-"
        url = reverse("ping", args=[beat.ping_uuid])
        return (
            f"ping URL {url}; last ping {beat.last_ping_at or 'never'}; "
            f"last run {beat.last_duration or '-'}"
        )

    @admin.display(description="statistics")
    def statistics(self, obj: Component) -> str:
        figures = component_stats(component=obj, now=timezone.now(), incidents=10)
        # A template's output is already escaped and marked safe.
        return render_to_string("admin/components/statistics.html", {"stats": figures})

    @admin.display(description="all results")
    def all_results(self, obj: Component) -> SafeString:
        url = reverse("admin:components_healthresult_changelist")
        return format_html('<a href="{}?component__id__exact={}">all</a>', url, obj.pk)

    @admin.action(description="Check now", permissions=["change"])
    def check_now(self, request: HttpRequest, queryset: QuerySet[Component]) -> None:
        text = _each(
            request,
            queryset,
            lambda slug: component_check_now(slug=slug, **_operator(request)),
        )
        self.message_user(request, text, messages.SUCCESS)

    pause = _with_reason("pause", "Pause checks", component_pause, required=False)
    resume = _with_reason("resume", "Resume checks", component_resume, required=False)
    maintenance_start = _with_reason(
        "maintenance_start",
        "Start maintenance (1 hour)",
        _maintenance_start,
        required=True,
    )
    maintenance_end = _with_reason(
        "maintenance_end", "End maintenance", maintenance_end, required=True
    )

    @admin.action(
        description="Send a test notification through their channels",
        permissions=["change"],
    )
    def send_test_notification(
        self, request: HttpRequest, queryset: QuerySet[Component]
    ) -> None:
        channel_ids = channel_ids_of(
            component_ids=queryset.values_list("pk", flat=True)
        )
        if not channel_ids:
            self.message_user(
                request, "None of them has an enabled channel.", messages.WARNING
            )
            return
        for channel_id in channel_ids:
            notification_test_send(channel_id=channel_id, **_operator(request))
        self.message_user(
            request,
            f"Queued a test notification through {len(channel_ids)} channel(s); "
            "see Notifications.",
            messages.SUCCESS,
        )


@admin.register(HealthResult)
class HealthResultAdmin(ReadOnlyAdmin):
    list_display = [
        "checked_at",
        "component",
        "status",
        "latency_ms",
        "message",
        "in_maintenance",
    ]
    list_filter = ["status", "in_maintenance"]
    search_fields = ["component__slug", "trace_id"]
    list_select_related = ["component"]
    # Millions of rows: don't count them all on every page.
    show_full_result_count = False


@admin.register(StateChange)
class StateChangeAdmin(ReadOnlyAdmin):
    list_display = [
        "at",
        "component",
        "from_state",
        "to_state",
        "incident_opened",
        "incident_duration",
        "in_maintenance",
        "message",
    ]
    list_filter = ["to_state", "incident_opened", "in_maintenance"]
    search_fields = ["component__slug", "trace_id"]
    list_select_related = ["component"]


# Registered here, where Django looks for admins: the notifications sub-package's.
from apps.components.notifications import admin as _notifications_admin  # noqa: E402, F401
