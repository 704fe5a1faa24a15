"""Admin actions that ask for a reason on an intermediate page before they act.

Used wherever a change is audited with a reason (revoking tokens, toggling protected
flags, forcing breakers, maintenance): the operator sees what will be changed, writes
why, confirms; the action then calls the service once per object with that reason.
"""

from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.models import User
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from apps.core.exceptions import OpsError

Perform = Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any], str], str]
AdminAction = Callable[
    [admin.ModelAdmin, HttpRequest, QuerySet[Any]], TemplateResponse | None
]
TEMPLATE = "admin/opsconsole/confirm_action.html"


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000
    )

    def __init__(self, *args: Any, required: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required
        self.fields["reason"].help_text = (
            "Required: recorded in the audit log."
            if required
            else "Optional: recorded in the audit log."
        )


def action_with_reason(
    *,
    name: str,
    description: str,
    permissions: list[str],
    reason_required: bool,
    perform: Perform,
) -> AdminAction:
    """An admin action named ``name`` that confirms and takes a reason first.

    ``perform`` does the work with the cleaned reason and returns the message shown.
    """

    def action(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Model]
    ) -> TemplateResponse | None:
        confirmed = "confirm" in request.POST
        form = ReasonForm(request.POST if confirmed else None, required=reason_required)
        if confirmed and form.is_valid():
            text = perform(modeladmin, request, queryset, form.cleaned_data["reason"])
            modeladmin.message_user(request, text, messages.SUCCESS)
            return None
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": description,
            "opts": modeladmin.model._meta,
            "objects": list(queryset),
            "action_name": name,
            "checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "form": form,
        }
        return TemplateResponse(request, TEMPLATE, context)

    action.__name__ = name
    return admin.action(description=description, permissions=permissions)(action)


def action_per_object(
    *,
    name: str,
    description: str,
    write: Callable[[Any, User, str], object],
    label: Callable[[Any], str],
    reason_required: bool = True,
) -> AdminAction:
    """A ``change`` action with a reason that calls ``write(obj, operator, reason)``
    per object; a refusal is shown for that object (named by ``label``), the rest go on.
    """

    def perform(
        _: admin.ModelAdmin, request: HttpRequest, rows: QuerySet[Any], reason: str
    ) -> str:
        done = 0
        for row in rows:
            try:
                write(row, cast(User, request.user), reason)
                done += 1
            except OpsError as exc:
                messages.error(request, f"{label(row)}: {exc.message}")
        return f"{description}: {done} of {len(rows)}."

    return action_with_reason(
        name=name,
        description=description,
        permissions=["change"],
        reason_required=reason_required,
        perform=perform,
    )
