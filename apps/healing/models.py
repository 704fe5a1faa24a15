"""Healing policies (one per component, with its episode's progress) and attempts."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.components.models import Component
from apps.healing.actions import action_config_errors


class Action(models.TextChoices):
    WEBHOOK = "webhook"
    COMMAND = "command"
    CELERY = "celery"
    POSTGRES = "postgres"
    REDIS = "redis"
    PYTHON = "python"


class Episode(models.TextChoices):
    """Where the component's healing stands."""

    IDLE = "idle"
    ACTIVE = "active"
    NEEDS_HUMAN = "needs_human"


class HealingPolicy(models.Model):
    """How a component is healed, and how far its current episode has come."""

    component = models.OneToOneField(
        Component, on_delete=models.CASCADE, related_name="healing_policy"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    # Validated per action by its schema; may hold secrets (never shown).
    config = models.JSONField(default=dict, blank=True)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    backoff_seconds = models.FloatField(default=30.0)
    backoff_max_seconds = models.FloatField(default=600.0)
    # Each delay is drawn from [delay * (1 - jitter), delay].
    jitter = models.FloatField(default=0.2)
    cooldown_seconds = models.PositiveIntegerField(default=300)
    timeout_seconds = models.FloatField(default=30.0)
    paused = models.BooleanField(default=False)
    dry_run = models.BooleanField(default=False)
    episode = models.CharField(
        max_length=12, choices=Episode.choices, default=Episode.IDLE
    )
    episode_attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_healed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "healing policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(max_attempts__gte=1), name="healing_max_attempts_min"
            ),
            models.CheckConstraint(
                condition=Q(backoff_seconds__gt=0)
                & Q(backoff_max_seconds__gte=models.F("backoff_seconds")),
                name="healing_backoff_range",
            ),
            models.CheckConstraint(
                condition=Q(jitter__gte=0) & Q(jitter__lt=1), name="healing_jitter"
            ),
            # Under the Celery soft time limit, with room to record the attempt.
            models.CheckConstraint(
                condition=Q(timeout_seconds__gt=0) & Q(timeout_seconds__lte=45),
                name="healing_timeout_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.component.slug}: {self.action}"

    def clean(self) -> None:
        errors = action_config_errors(self.action, self.config)
        if errors:
            raise ValidationError({"config": errors})


class Outcome(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DRY_RUN = "dry_run"


class HealingAttempt(models.Model):
    """One run of a policy's action (or what it would have done, in a dry run)."""

    policy = models.ForeignKey(
        HealingPolicy, on_delete=models.CASCADE, related_name="attempts"
    )
    component = models.ForeignKey(
        Component, on_delete=models.CASCADE, related_name="healing_attempts"
    )
    number = models.PositiveSmallIntegerField()
    action = models.CharField(max_length=20, choices=Action.choices)
    dry_run = models.BooleanField(default=False)
    outcome = models.CharField(
        max_length=10, choices=Outcome.choices, default=Outcome.RUNNING
    )
    output = models.TextField(blank=True)
    reason = models.CharField(max_length=2000, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["component", "-started_at"]),
            # The beat's sweep for attempts whose worker was lost reads only these.
            models.Index(
                fields=["started_at"],
                condition=Q(outcome="running"),
                name="healing_attempt_running",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.component_id} #{self.number}: {self.outcome}"
