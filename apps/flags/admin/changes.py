"""Admin for change requests (four-eyes) and scheduled changes.

Change requests are decided through actions: approving and applying act at once;
rejecting and cancelling ask for a reason. The services refuse what the rules forbid
(an author approving their own request, an apply the flag set no longer accepts) and
the refusal is shown per request. A pending request's page edits what it proposes
(its changes and reason, validated like any change); saving an edit starts a new
revision, so approvals given so far no longer count. Decided requests are read-only.
Scheduled changes are added here and cancelled with a reason until beat makes them.
"""

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.db import models
from django.db.models import Count, F, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.flags.admin.common import (
    ADMIN,
    RefusalsOnForm,
    copy_state,
    each,
    operator_of,
    reason_action,
)
from apps.flags.admin_forms import JSON_FIELD, ChangeRequestForm, ScheduledChangeForm
from apps.flags.models import PENDING_CHANGE, ChangeRequest, ScheduledChange
from apps.flags.selectors import change_request_approvers, change_request_diff
from apps.flags.services import (
    change_request_apply,
    change_request_approve,
    change_request_cancel,
    change_request_reject,
    change_request_update,
    scheduled_change_cancel,
    scheduled_change_create,
)

FIELDS = (
    "flag",
    "action",
    "status",
    "author",
    "revised_by",
    "reason",
    "proposed",
    "changes",
    "revision",
    "approved_by",
    "decided_by",
    "decision_reason",
    "applied_version",
    "created_at",
    "updated_at",
)

# A decided request, or a viewer's page, has nothing to save: decisions are the
# list's actions.
READ_ONLY = {"show_save": False, "show_save_and_continue": False}
EDITABLE = ("changes", "reason")


def _decided(
    request: HttpRequest,
    queryset: QuerySet[ChangeRequest],
    service: Callable[..., object],
    done: str,
) -> str:
    """``service`` on each selected change request, by the operator, with no reason."""
    who = operator_of(request)
    return each(
        request,
        queryset,
        lambda change: service(
            key=change.flag.key, request_id=change.pk, actor=who, source=ADMIN
        ),
        done,
    )


def _decided_with_reason(
    service: Callable[..., object],
) -> Callable[[ChangeRequest, User, str], object]:
    """The write of a reasoned decision: ``service`` on the selected change request."""

    def write(change: ChangeRequest, who: User, reason: str) -> object:
        return service(
            key=change.flag.key,
            request_id=change.pk,
            actor=who,
            reason=reason,
            source=ADMIN,
        )

    return write


@admin.register(ChangeRequest)
class ChangeRequestAdmin(RefusalsOnForm):
    form = ChangeRequestForm
    list_display = ["__str__", "flag", "action", "status", "author", "approvals"]
    list_display += ["reason", "created_at"]
    list_filter = ["status", "action", "created_at"]
    search_fields = ["flag__key", "reason"]
    list_select_related = ["flag", "author"]
    fields = FIELDS
    formfield_overrides = {models.JSONField: JSON_FIELD}
    actions = ["approve", "apply", "reject", "cancel"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChangeRequest]:
        current = Q(approvals__revision=F("revision"))
        approvals = Count("approvals", filter=current)
        return super().get_queryset(request).annotate(n_approvals=approvals)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # changes are proposed by changing a flag that requires approval

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _editable(self, request: HttpRequest, obj: ChangeRequest | None) -> bool:
        pending = obj is not None and obj.status in PENDING_CHANGE
        return pending and self.has_change_permission(request, obj)

    def get_readonly_fields(
        self, request: HttpRequest, obj: ChangeRequest | None = None
    ) -> Any:
        if self._editable(request, obj):
            return [field for field in FIELDS if field not in EDITABLE]
        return FIELDS

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id) if object_id else None
        editable = self._editable(request, obj)
        context = {**(extra_context or {}), **({} if editable else READ_ONLY)}
        return super().changeform_view(request, object_id, form_url, context)

    def save_model(
        self,
        request: HttpRequest,
        obj: ChangeRequest,
        form: ChangeRequestForm,
        change: bool,
    ) -> None:
        # A request decided before this post has no form fields; the service's
        # refusal (409, decided already) is what the page then shows.
        edited = change_request_update(
            key=obj.flag.key,
            request_id=obj.pk,
            changes=form.cleaned_data.get("changes", obj.changes),
            actor=operator_of(request),
            reason=form.cleaned_data.get("reason", ""),
            source=ADMIN,
        )
        copy_state(edited, obj)

    @admin.display(description="approvals", ordering="n_approvals")
    def approvals(self, obj: ChangeRequest) -> int:
        return getattr(obj, "n_approvals", 0)

    @admin.display(description="approved by (this revision)")
    def approved_by(self, obj: ChangeRequest) -> str:
        return ", ".join(change_request_approvers(request=obj)) or "—"

    @admin.display(description="what applying changes now")
    def proposed(self, obj: ChangeRequest) -> SafeString:
        rows = (
            (change.field, json.dumps(change.before), json.dumps(change.after))
            for change in change_request_diff(request=obj)
        )
        body = format_html_join(
            "",
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            rows,
        )
        return format_html(
            "<table><tr><th>field</th><th>now</th><th>proposed</th></tr>{}</table>",
            body,
        )

    @admin.action(
        description="Approve selected change requests", permissions=["change"]
    )
    def approve(self, request: HttpRequest, queryset: QuerySet[ChangeRequest]) -> None:
        done = _decided(request, queryset, change_request_approve, "Approved")
        self.message_user(request, done)

    @admin.action(description="Apply selected change requests", permissions=["change"])
    def apply(self, request: HttpRequest, queryset: QuerySet[ChangeRequest]) -> None:
        done = _decided(request, queryset, change_request_apply, "Applied")
        self.message_user(request, done)

    reject = reason_action(
        name="reject",
        description="Reject selected change requests",
        write=_decided_with_reason(change_request_reject),
        done="Rejected",
    )
    cancel = reason_action(
        name="cancel",
        description="Cancel selected change requests",
        write=_decided_with_reason(change_request_cancel),
        done="Cancelled",
    )


@admin.register(ScheduledChange)
class ScheduledChangeAdmin(admin.ModelAdmin):
    form = ScheduledChangeForm
    list_display = ["__str__", "flag", "changes", "run_at", "status", "author"]
    list_display += ["outcome"]
    list_filter = ["status", "run_at"]
    search_fields = ["flag__key", "reason"]
    list_select_related = ["flag", "author"]
    autocomplete_fields = ["flag"]
    formfield_overrides = {models.JSONField: JSON_FIELD}
    actions = ["cancel"]
    shown = (
        "flag",
        "action",
        "changes",
        "run_at",
        "reason",
        "author",
        "status",
        "outcome",
        "created_at",
        "finished_at",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.shown if obj else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.shown if obj else ["flag", "changes", "run_at", "reason"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancelled, never deleted: the audit trail points here

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {**(extra_context or {}), **(READ_ONLY if object_id else {})}
        return super().changeform_view(request, object_id, form_url, context)

    def save_model(
        self,
        request: HttpRequest,
        obj: ScheduledChange,
        form: ScheduledChangeForm,
        change: bool,
    ) -> None:
        scheduled = scheduled_change_create(
            key=form.cleaned_data["flag"].key,
            changes=form.cleaned_data["changes"],
            run_at=form.cleaned_data["run_at"],
            actor=operator_of(request),
            reason=form.cleaned_data["reason"],
            source=ADMIN,
        )
        copy_state(scheduled, obj)

    cancel = reason_action(
        name="cancel",
        description="Cancel selected scheduled changes",
        write=lambda scheduled, who, reason: scheduled_change_cancel(
            key=scheduled.flag.key,
            change_id=scheduled.pk,
            actor=who,
            reason=reason,
            source=ADMIN,
        ),
        done="Cancelled",
    )
