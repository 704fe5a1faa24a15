"""A breaker's stored configuration and the history of its transitions.

The live state is not here: it is fleet-wide in Redis (``apps.breakers.lua``).
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from apps.breakers.config import BreakerConfig, State, WindowType, config_validate
from apps.core.exceptions import ValidationFailed

_DEFAULTS = BreakerConfig()


class Breaker(models.Model):
    name = models.CharField(max_length=100, unique=True)
    window_type = models.CharField(
        max_length=5,
        choices=[(w.value, w.value) for w in WindowType],
        default=_DEFAULTS.window_type,
    )
    window_size = models.PositiveIntegerField(default=_DEFAULTS.window_size)
    minimum_calls = models.PositiveIntegerField(default=_DEFAULTS.minimum_calls)
    failure_rate_threshold = models.FloatField(default=_DEFAULTS.failure_rate_threshold)
    slow_call_duration_ms = models.PositiveIntegerField(
        default=_DEFAULTS.slow_call_duration_ms
    )
    slow_call_rate_threshold = models.FloatField(
        default=_DEFAULTS.slow_call_rate_threshold
    )
    wait_duration_ms = models.PositiveIntegerField(default=_DEFAULTS.wait_duration_ms)
    wait_multiplier = models.FloatField(default=_DEFAULTS.wait_multiplier)
    max_wait_duration_ms = models.PositiveIntegerField(
        default=_DEFAULTS.max_wait_duration_ms
    )
    permitted_calls_half_open = models.PositiveIntegerField(
        default=_DEFAULTS.permitted_calls_half_open
    )
    max_wait_in_half_open_ms = models.PositiveIntegerField(
        default=_DEFAULTS.max_wait_in_half_open_ms
    )
    record_exceptions = models.JSONField(default=list, blank=True)
    ignore_exceptions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(failure_rate_threshold__gt=0)
                & models.Q(failure_rate_threshold__lte=100)
                & models.Q(slow_call_rate_threshold__gt=0)
                & models.Q(slow_call_rate_threshold__lte=100),
                name="breaker_rates_are_percentages",
            ),
            models.CheckConstraint(
                condition=models.Q(wait_multiplier__gte=1)
                & models.Q(max_wait_duration_ms__gte=models.F("wait_duration_ms")),
                name="breaker_wait_grows_to_cap",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # The same rules the engine trusts, as field errors for forms and services.
        try:
            config_validate(self.config())
        except ValidationFailed as exc:
            raise ValidationError(
                {path.split(".")[0]: msgs for path, msgs in exc.fields.items()}
            ) from exc

    def config(self) -> BreakerConfig:
        return BreakerConfig.from_mapping(
            {name: getattr(self, name) for name in _DEFAULTS.as_dict()}
        )


class BreakerEvent(models.Model):
    """One transition, decided by the fleet, a process on its own, or an operator."""

    class Origin(models.TextChoices):
        FLEET = "fleet"  # a Lua script, from every process's outcomes
        PROCESS = "process"  # one process alone, while Redis was unreachable
        OPERATOR = "operator"  # a forced action (admin, API, CLI)

    breaker_id: int
    breaker = models.ForeignKey(
        Breaker, on_delete=models.CASCADE, related_name="events"
    )
    from_state = models.CharField(
        max_length=11, choices=[(s.value, s.value) for s in State]
    )
    to_state = models.CharField(
        max_length=11, choices=[(s.value, s.value) for s in State]
    )
    reason = models.TextField()
    origin = models.CharField(max_length=8, choices=Origin.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    at = models.DateTimeField(default=timezone.now)
    trace_id = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["breaker", "-at"])]

    def __str__(self) -> str:
        return f"{self.breaker_id}: {self.from_state} -> {self.to_state}"
