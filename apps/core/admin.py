"""Admin for API tokens (create, show once, revoke) and the read-only audit log."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import Field, ForeignKey, Model, QuerySet
from django.http import HttpRequest

from apps.core.admin_actions import action_with_reason
from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.models import ApiToken, AuditEvent, Scope
from apps.core.selectors import TOKEN_STATUS_CHOICES, token_list
from apps.core.services import token_create, token_revoke, token_validate


class ApiTokenAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiToken
        fields = ["user", "name", "scopes", "expires_at"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            token_validate(
                user=data["user"],
                name=data["name"],
                scopes=data["scopes"],
                expires_at=data.get("expires_at"),
            )
        except ValidationFailed as exc:
            for field, msgs in exc.fields.items():
                self.add_error(field if field in self.fields else None, msgs)
        return data


class TokenStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status, status) for status in TOKEN_STATUS_CHOICES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "user",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "status",
    ]
    list_filter = [
        TokenStatusFilter,
        "created_at",
        ("user", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    actions = ["revoke_selected"]
    view_fields = [
        "prefix",
        "name",
        "user",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return token_list()

    @admin.display(ordering="status")
    def status(self, obj: ApiToken) -> str:
        return str(getattr(obj, "status", ""))

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        return ApiTokenAddForm.Meta.fields if obj is None else self.view_fields

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        # Only a superuser may mint tokens for someone else (token_create agrees).
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = User.objects.filter(
                username=request.user.get_username()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change permission only unlocks "revoke"; a token's fields never change.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Any, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        token, raw = token_create(
            user=data["user"],
            name=data["name"],
            scopes=data["scopes"],
            expires_at=data.get("expires_at"),
            actor=request.user,  # type: ignore[arg-type]
            source=AuditEvent.Source.ADMIN,
        )
        _copy_state(token, obj)
        messages.success(
            request,
            f"New API token for {token.user}: {raw} — copy it now, "
            "it will not be shown again.",
        )

    revoke_selected = action_with_reason(
        name="revoke_selected",
        description="Revoke selected tokens",
        permissions=["change"],
        reason_required=False,
        perform=lambda admin, request, queryset, reason: _revoke(
            request, queryset, reason
        ),
    )


def _revoke(request: HttpRequest, queryset: QuerySet[ApiToken], reason: str) -> str:
    revoked = skipped = 0
    for token in queryset:
        try:
            token_revoke(
                token=token,
                actor=request.user,  # type: ignore[arg-type]
                source=AuditEvent.Source.ADMIN,
                reason=reason,
            )
            revoked += 1
        except Conflict:
            skipped += 1
    return f"Revoked {revoked} token(s); {skipped} already revoked."


def _copy_state(source: Model, target: Model) -> None:
    """Make the admin's unsaved instance the row the service created."""
    field: Field[Any, Any]
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False
    target._state.db = source._state.db


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "occurred_at",
        "actor_label",
        "source",
        "action",
        "target_type",
        "target_label",
        "trace_id",
    ]
    list_filter = ["source", "action", "target_type"]
    search_fields = [
        "action",
        "actor_label",
        "target_label",
        "target_id",
        "reason",
        "trace_id",
    ]
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
