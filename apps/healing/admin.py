"""Admin for healing: editable policies (secrets masked in the form), reasoned
pause / resume / cancel / heal-now actions, read-only attempts."""

from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest

from apps.components.selectors import MASK
from apps.core.admin_actions import AdminAction, action_per_object
from apps.core.models import AuditEvent
from apps.healing.models import HealingAttempt, HealingPolicy
from apps.healing.selectors import policy_config_public
from apps.healing.services import (
    healing_cancel,
    healing_heal_now,
    healing_set_paused,
    policy_save,
)
from apps.healing.services.common import POLICY_FIELDS

ADMIN = AuditEvent.Source.ADMIN
Perform = Callable[[HealingPolicy, User, str], object]


class PolicyForm(forms.ModelForm):
    """Shows the config with secrets masked; a masked value left as is keeps the
    stored secret. The model's clean() validates the config (the services' rule)."""

    class Meta:
        model = HealingPolicy
        fields = ["component", *POLICY_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["config"] = policy_config_public(policy=self.instance)

    def clean_config(self) -> dict[str, Any]:
        config = dict(self.cleaned_data["config"] or {})
        stored = self.instance.config if self.instance.pk else {}
        for key, value in config.items():
            if value == MASK and key in stored:
                config[key] = stored[key]
        return config


def _act(
    name: str, description: str, perform: Perform, *, reason_required: bool
) -> AdminAction:
    # The changelist selects each policy with its component (list_select_related).
    return action_per_object(
        name=name,
        description=description,
        write=perform,
        label=lambda policy: policy.component.slug,
        reason_required=reason_required,
    )


def _paused(paused: bool) -> Perform:
    def perform(policy: HealingPolicy, user: User, reason: str) -> object:
        slug = policy.component.slug
        return healing_set_paused(
            slug=slug, paused=paused, actor=user, source=ADMIN, reason=reason
        )

    return perform


def _heal_now(policy: HealingPolicy, user: User, reason: str) -> object:
    slug = policy.component.slug
    return healing_heal_now(slug=slug, reason=reason, actor=user, source=ADMIN)


def _cancel(policy: HealingPolicy, user: User, reason: str) -> object:
    slug = policy.component.slug
    return healing_cancel(slug=slug, actor=user, source=ADMIN, reason=reason)


@admin.register(HealingPolicy)
class HealingPolicyAdmin(admin.ModelAdmin):
    form = PolicyForm
    list_display = [
        "component",
        "action",
        "episode",
        "episode_attempts",
        "max_attempts",
        "paused",
        "dry_run",
        "next_attempt_at",
        "last_healed_at",
    ]
    list_filter = ["action", "episode", "paused", "dry_run"]
    search_fields = ["component__slug", "component__name"]
    list_select_related = ["component"]
    readonly_fields = [
        "episode",
        "episode_attempts",
        "next_attempt_at",
        "last_healed_at",
    ]
    actions = [
        _act("heal_now", "Heal now", _heal_now, reason_required=True),
        _act("pause_healing", "Pause healing", _paused(True), reason_required=False),
        _act("resume_healing", "Resume healing", _paused(False), reason_required=False),
        _act("cancel_episode", "Cancel the episode", _cancel, reason_required=False),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A policy stays with its component.
        fixed = ["component"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def save_model(
        self, request: HttpRequest, obj: HealingPolicy, form: Any, change: bool
    ) -> None:
        changed = [name for name in form.changed_data if name in POLICY_FIELDS]
        data = {name: form.cleaned_data[name] for name in changed}
        saved = policy_save(
            slug=obj.component.slug,
            data=data,
            actor=cast(User, request.user),
            source=ADMIN,
        )
        obj.pk = saved.pk


@admin.register(HealingAttempt)
class HealingAttemptAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "component",
        "number",
        "action",
        "outcome",
        "dry_run",
        "finished_at",
    ]
    list_filter = ["outcome", "action", "dry_run"]
    search_fields = ["component__slug", "output", "trace_id"]
    list_select_related = ["component"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
