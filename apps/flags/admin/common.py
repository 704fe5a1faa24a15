"""What the flags admin pages share: the acting operator, per-object writes with a
reason page (and actions made of them), and how a change that opened a change request is reported.
"""

from collections.abc import Callable
from typing import Any, cast
from weakref import WeakKeyDictionary

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from apps.core.admin_actions import action_with_reason
from apps.core.exceptions import OpsError
from apps.core.models import AuditEvent
from apps.flags.models import ChangeRequest

ADMIN = AuditEvent.Source.ADMIN
AdminAction = Callable[
    [admin.ModelAdmin, HttpRequest, QuerySet[Any]], TemplateResponse | None
]


def operator_of(request: HttpRequest) -> User:
    return cast(User, request.user)  # the admin only lets signed-in staff in


def opened_message(change: ChangeRequest) -> str:
    return (
        f"{change.flag.key} requires approval: opened change request #{change.pk}; "
        "another operator must approve it before it is applied."
    )


def each(
    request: HttpRequest,
    objects: QuerySet[Any],
    write: Callable[[Any], object],
    done: str,
) -> str:
    """Call ``write`` per object; failures are reported one by one, the rest go on."""
    count = 0
    for obj in objects:
        try:
            result = write(obj)
        except OpsError as exc:
            messages.error(request, f"{obj}: {exc.message}")
            continue
        if isinstance(result, ChangeRequest):
            messages.warning(request, opened_message(result))
        else:
            count += 1
    return f"{done} {count} of {len(objects)}."


def confirmed(
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
        return each(
            request, objects, lambda obj: write(obj, operator_of(request), reason), done
        )

    action = action_with_reason(
        name=name,
        description=description,
        permissions=[permission],
        reason_required=protected,
        perform=perform,
    )
    return action(modeladmin, request, queryset)


def reason_action(
    *,
    name: str,
    description: str,
    write: Callable[[Any, User, str], object],
    done: str,
    protected: Callable[[QuerySet[Any]], bool] = lambda objects: True,
) -> AdminAction:
    """A ``change`` action named ``name``: the reason page, then ``write`` per object.

    ``protected`` tells from the selection whether the reason is required.
    """

    def action(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
    ) -> TemplateResponse | None:
        return confirmed(
            modeladmin,
            request,
            queryset,
            name=name,
            description=description,
            permission="change",
            protected=protected(queryset),
            write=write,
            done=done,
        )

    action.__name__ = name
    return admin.action(description=description, permissions=["change"])(action)


def copy_state(source: models.Model, target: models.Model) -> None:
    """Make the admin's unsaved instance the row the service wrote."""
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False
    target._state.db = source._state.db


# Per request: the refusal the write raised after the form had passed.
_refused: "WeakKeyDictionary[HttpRequest, OpsError]" = WeakKeyDictionary()


class RefusalsOnForm(admin.ModelAdmin):
    """A write (``save_model``) that refuses what the form's clean() had passed (the
    set changed in between; the admin's transaction rolls it back) comes back as
    errors on the form, as clean() would have shown them, never a 500. The form
    class shows its ``refused`` attribute in clean()."""

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        refused = _refused.get(request)
        return type(form.__name__, (form,), {"refused": refused}) if refused else form

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except OpsError as exc:
            _refused[request] = exc
            return super().changeform_view(request, object_id, form_url, extra_context)
