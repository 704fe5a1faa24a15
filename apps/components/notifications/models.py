"""Notification channels and the notifications sent through them."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.components.notifications.kinds import CHANNEL_KINDS, ChannelKind


class NotificationChannel(models.Model):
    """Where a component's alerting transitions are sent."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    # Validated per kind; holds secrets (see selectors.channel_config_public, the
    # only way it is shown).
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    components = models.ManyToManyField(
        "components.Component", blank=True, related_name="notification_channels"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ChannelKind.values), name="channel_known_kind"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from pydantic import ValidationError as SchemaError

        from apps.components.models import _schema_message

        try:
            CHANNEL_KINDS[self.kind].model_validate(self.config)
        except KeyError:
            return  # the kind's choices report it
        except SchemaError as exc:
            raise ValidationError(
                {"config": [_schema_message(err) for err in exc.errors()]}
            ) from exc


class NotificationStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    # The last attempt failed on the transport or a 5xx: another one is due.
    RETRYING = "retrying"
    # Given up: a 4xx, a bad config, or the attempts ran out.
    FAILED = "failed"
    # Not sent: notifications were switched off (opsconsole.notifications.enabled).
    SUPPRESSED = "suppressed"


class NotificationEvent(models.TextChoices):
    """What a notification is about."""

    # A state change of the component (``state_change``).
    TRANSITION = "transition"
    # Healing gave up on the component: a human is needed.
    ESCALATION = "escalation"
    # An operator's test send: no component.
    TEST = "test"


# A transition has its change and component; a test send neither; any other event
# a component and a dedup key.
_EVENT_SHAPE = (
    Q(event=NotificationEvent.TRANSITION)
    & Q(state_change__isnull=False, component__isnull=False)
    | Q(event=NotificationEvent.TEST, state_change__isnull=True, component__isnull=True)
    | ~Q(event__in=[NotificationEvent.TRANSITION, NotificationEvent.TEST])
    & Q(state_change__isnull=True, component__isnull=False)
    & ~Q(dedup_key="")
)


class Notification(models.Model):
    """One message sent (or tried) through one channel: a component's transition, a
    component event such as an escalation (``subject``/``text``, deduplicated by
    ``dedup_key``), or a test send.

    A delivery claims the row (``claimed_until``) before sending, so a task that
    runs twice sends once.
    """

    event = models.CharField(max_length=12, choices=NotificationEvent.choices)
    component = models.ForeignKey(
        "components.Component",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    state_change = models.ForeignKey(
        "components.StateChange",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    # Component events: one notification per (key, channel), e.g. "escalation:12".
    dedup_key = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    text = models.TextField(blank=True)
    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="notifications"
    )
    status = models.CharField(
        max_length=10,
        choices=NotificationStatus.choices,
        default=NotificationStatus.PENDING,
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["channel", "-created_at"], name="notification_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["state_change", "channel"],
                condition=Q(state_change__isnull=False),
                name="notification_once_per_change",
            ),
            models.UniqueConstraint(
                fields=["dedup_key", "channel"],
                condition=~Q(dedup_key=""),
                name="notification_once_per_key",
            ),
            models.CheckConstraint(
                condition=Q(event__in=NotificationEvent.values),
                name="notification_known_event",
            ),
            models.CheckConstraint(condition=_EVENT_SHAPE, name="notification_shape"),
            models.CheckConstraint(
                condition=Q(status__in=NotificationStatus.values),
                name="notification_known_status",
            ),
            models.CheckConstraint(
                condition=~Q(status=NotificationStatus.SENT) | Q(sent_at__isnull=False),
                name="notification_sent_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id} #{self.pk}: {self.status}"
