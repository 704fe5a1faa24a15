"""Admin for notification channels (secrets masked, test send) and notifications.

A channel's config is shown masked; a secret left masked when saving keeps its
stored value (see services.channel_update).
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from apps.components.admin import ReadOnlyAdmin
from apps.components.forms import add_failed
from apps.components.notifications.models import Notification, NotificationChannel
from apps.components.notifications.selectors import channel_config_public
from apps.components.notifications.services import (
    channel_create,
    channel_delete,
    channel_update,
    notification_test_send,
)
from apps.components.services.common import config_unmasked
from apps.core.exceptions import ValidationFailed
from apps.core.models import AuditEvent


class ChannelForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "config", "enabled", "components"]
        help_texts = {"config": "Secrets are shown masked; leave them so to keep them."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            # Never render the stored secrets back, not even in the form's value.
            self.initial["config"] = channel_config_public(channel=self.instance)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Validate what will be stored: masked secrets stand for the stored ones.
        if self.instance.pk is not None and isinstance(data.get("config"), dict):
            try:
                data["config"] = config_unmasked(
                    submitted=data["config"],
                    stored=self.instance.config,
                    shown=channel_config_public(channel=self.instance),
                )
            except ValidationFailed as exc:
                add_failed(self, exc)
        return data


def _operator(request: HttpRequest) -> dict[str, Any]:
    return {"actor": request.user, "source": AuditEvent.Source.ADMIN}


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "enabled", "component_count", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "components__slug"]
    filter_horizontal = ["components"]
    actions = ["send_test"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[NotificationChannel]:
        return NotificationChannel.objects.annotate(component_total=Count("components"))

    @admin.display(description="components", ordering="component_total")
    def component_count(self, obj: NotificationChannel) -> int:
        return int(getattr(obj, "component_total", 0))

    def save_model(
        self, request: HttpRequest, obj: NotificationChannel, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        fields = {key: data[key] for key in ["name", "kind", "config", "enabled"]}
        fields["components"] = list(data["components"])
        if change:
            saved = channel_update(channel_id=obj.pk, **fields, **_operator(request))
        else:
            saved = channel_create(**fields, **_operator(request))
        obj.pk = saved.pk

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        """The service set the components already."""

    def delete_model(self, request: HttpRequest, obj: NotificationChannel) -> None:
        channel_delete(channel_id=obj.pk, **_operator(request))

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[NotificationChannel]
    ) -> None:
        for channel_id in queryset.values_list("pk", flat=True):
            channel_delete(channel_id=channel_id, **_operator(request))

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test(
        self, request: HttpRequest, queryset: QuerySet[NotificationChannel]
    ) -> None:
        for channel_id in queryset.values_list("pk", flat=True):
            notification_test_send(channel_id=channel_id, **_operator(request))
        self.message_user(
            request,
            f"Queued {queryset.count()} test notification(s); see Notifications.",
            messages.SUCCESS,
        )


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "channel",
        "component_slug",
        "event",
        "transition",
        "status",
        "attempts",
        "response_code",
        "last_error",
        "sent_at",
    ]
    list_filter = ["status", "event", "channel__kind"]
    search_fields = ["channel__name", "component__slug", "dedup_key"]
    list_select_related = ["channel", "component", "state_change"]

    @admin.display(description="component")
    def component_slug(self, obj: Notification) -> str:
        return obj.component.slug if obj.component else "(test)"

    @admin.display(description="transition or subject")
    def transition(self, obj: Notification) -> str:
        change = obj.state_change
        return f"{change.from_state} → {change.to_state}" if change else obj.subject
