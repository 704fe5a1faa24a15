"""Admin for breakers: live state with colors, rates, calls in window, last
transition; reasoned force-open / force-close / reset / disable actions; the
config form validated by the engine's own rules; read-only transition history."""

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.breakers.config import BreakerConfig
from apps.breakers.models import Breaker, BreakerEvent
from apps.breakers.selectors import (
    BreakerView,
    breaker_list,
    breaker_views,
    breakers_readiness,
)
from apps.breakers.services import breaker_act, breaker_configure
from apps.core.admin_actions import AdminAction, action_per_object
from apps.core.models import AuditEvent

ADMIN = AuditEvent.Source.ADMIN
CONFIG_FIELDS = tuple(BreakerConfig().as_dict())
LIVE_FIELDS = ("name", "state", "failure_rate", "slow_rate", "calls", "source")
COLORS = {
    "CLOSED": "#1a7f37",
    "OPEN": "#b42318",
    "FORCED_OPEN": "#7a0916",
    "HALF_OPEN": "#b54708",
    "DISABLED": "#777",
}


class BreakerChangeList(ChangeList):
    """Attaches each listed breaker's live view: one Redis round trip per page."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        views = breaker_views(names=[row.name for row in self.result_list])
        for row in self.result_list:
            row.live = views[row.name]


def _live(obj: Breaker) -> BreakerView:
    found = getattr(obj, "live", None)
    return found or breaker_views(names=[obj.name])[obj.name]


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _act(action: str, description: str) -> AdminAction:
    return action_per_object(
        name=action,
        description=description,
        write=lambda row, who, reason: breaker_act(
            name=row.name, action=action, actor=who, reason=reason, source=ADMIN
        ),
        label=lambda row: row.name,
    )


@admin.register(Breaker)
class BreakerAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "state",
        "failure_rate",
        "slow_rate",
        "calls",
        "last_transition",
    ]
    search_fields = ["name"]
    readonly_fields = LIVE_FIELDS
    fieldsets = [
        (None, {"fields": LIVE_FIELDS}),
        ("Configuration", {"fields": CONFIG_FIELDS}),
    ]
    actions = [
        _act("force_open", "Force open"),
        _act("force_close", "Force close"),
        _act("reset", "Reset"),
        _act("disable", "Disable"),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Breaker]:
        return breaker_list()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BreakerChangeList

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        _warn_degraded(request)
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        _warn_degraded(request)
        return super().change_view(request, object_id, form_url, extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a breaker is registered by its first use

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its history stays

    @admin.display(description="state")
    def state(self, obj: Breaker) -> SafeString:
        state = _live(obj).state
        color = COLORS.get(state, "#777")
        return format_html('<strong style="color:{}">{}</strong>', color, state)

    @admin.display(description="failure rate")
    def failure_rate(self, obj: Breaker) -> str:
        return _rate(_live(obj).failure_rate)

    @admin.display(description="slow-call rate")
    def slow_rate(self, obj: Breaker) -> str:
        return _rate(_live(obj).slow_rate)

    @admin.display(description="calls in window")
    def calls(self, obj: Breaker) -> int:
        return _live(obj).calls

    @admin.display(description="state from")
    def source(self, obj: Breaker) -> str:
        view = _live(obj)
        return f"{view.source} {view.degraded}".strip()

    @admin.display(description="last transition", ordering="last_transition_at")
    def last_transition(self, obj: Breaker) -> str:
        at = getattr(obj, "last_transition_at", None)
        to = getattr(obj, "last_to_state", "")
        return f"{at:%Y-%m-%d %H:%M:%S} → {to}" if at else "—"

    def save_model(
        self, request: HttpRequest, obj: Breaker, form: Any, change: bool
    ) -> None:
        changes = {f: form.cleaned_data[f] for f in form.changed_data}
        if changes:
            breaker_configure(
                name=obj.name,
                changes=changes,
                actor=cast(User, request.user),
                reason="",
                source=ADMIN,
            )


def _warn_degraded(request: HttpRequest) -> None:
    readiness = breakers_readiness()
    if readiness["status"] != "pass":
        messages.warning(
            request,
            "Breakers are degraded in this server: Redis is unreachable "
            f"({readiness['error']}); states shown are this process's own.",
        )


@admin.register(BreakerEvent)
class BreakerEventAdmin(admin.ModelAdmin):
    list_display = ["at", "breaker", "from_state", "to_state", "origin", "actor"]
    list_filter = ["origin", "to_state"]
    search_fields = ["breaker__name", "reason"]
    list_select_related = ["breaker", "actor"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
