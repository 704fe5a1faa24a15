"""Feature flags, reusable segments and the version history of every change.

Rules, variants and requirements are JSON whose shape and meaning are checked as a
whole set by ``apps.flags.validation`` before any write; the table constraints below
hold what SQL can say about one row.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

KEY_REGEX = r"^[a-z0-9][a-z0-9._-]*$"
# Keys are slugs that may also hold dots (``opsconsole.checks.enabled``).
key_validator = RegexValidator(
    KEY_REGEX, "use lower-case letters, digits, '.', '_' and '-'"
)


class FlagType(models.TextChoices):
    BOOLEAN = "boolean"
    STRING = "string"
    NUMBER = "number"
    JSON = "json"


class Flag(models.Model):
    """A feature flag: variants, on/off, ordered targeting rules, requirements."""

    key = models.CharField(max_length=150, unique=True, validators=[key_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(
        max_length=8, choices=FlagType.choices, default=FlagType.BOOLEAN
    )
    variants = models.JSONField(default=dict)
    json_schema = models.JSONField(null=True, blank=True)
    enabled = models.BooleanField(default=False)
    default_variant = models.CharField(max_length=100)
    off_variant = models.CharField(max_length=100)
    rules = models.JSONField(default=list, blank=True)
    requires = models.JSONField(default=list, blank=True)
    conflicts = ArrayField(models.CharField(max_length=150), default=list, blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    owner = models.CharField(max_length=150, blank=True)
    protected = models.BooleanField(default=False)
    requires_approval = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    archived = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(key__regex=KEY_REGEX), name="flag_key_format"
            ),
            models.CheckConstraint(
                condition=models.Q(type__in=FlagType.values), name="flag_known_type"
            ),
            models.CheckConstraint(
                condition=models.Q(version__gte=1), name="flag_version_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(default_variant__gt="")
                & models.Q(off_variant__gt=""),
                name="flag_variants_named",
            ),
            # An archived flag is never served as on.
            models.CheckConstraint(
                condition=~models.Q(archived=True, enabled=True),
                name="flag_archived_is_off",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class Segment(models.Model):
    """A named, reusable set of conditions (all must hold) used by rules."""

    key = models.CharField(max_length=150, unique=True, validators=[key_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    conditions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(key__regex=KEY_REGEX), name="segment_key_format"
            ),
        ]

    def __str__(self) -> str:
        return self.key


class FlagVersion(models.Model):
    """The full JSON of a flag as one change left it; history and revert read these."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="history")
    version = models.PositiveIntegerField()
    snapshot = models.JSONField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["flag", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "version"], name="flagversion_unique_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flag_id} v{self.version}"


class ChangeStatus(models.TextChoices):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPLIED = "applied"
    CANCELLED = "cancelled"


# A request in these can still be edited, approved, rejected, cancelled or applied.
PENDING_CHANGE = (ChangeStatus.OPEN, ChangeStatus.APPROVED)


class ChangeRequest(models.Model):
    """A change to a flag that requires approval: proposed, approved by another, applied.

    ``changes`` holds only the fields the change sets; applying puts them on the flag
    as it is then. Each edit bumps ``revision``, which voids earlier approvals.
    """

    flag = models.ForeignKey(
        Flag, on_delete=models.CASCADE, related_name="change_requests"
    )
    action = models.CharField(max_length=20)
    changes = models.JSONField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.TextField(blank=True)
    # Who wrote the current revision when that was an edit: they cannot approve it
    # either, or an edit would let a second operator approve their own change.
    revised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    status = models.CharField(
        max_length=10,
        choices=ChangeStatus.choices,
        default=ChangeStatus.OPEN,
        db_index=True,
    )
    revision = models.PositiveIntegerField(default=1)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decision_reason = models.TextField(blank=True)
    applied_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ChangeStatus.values),
                name="changerequest_known_status",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="applied")
                | models.Q(applied_version__isnull=False),
                name="changerequest_applied_has_version",
            ),
        ]

    def __str__(self) -> str:
        return f"change request #{self.pk}"


class ChangeApproval(models.Model):
    """One operator's approval of one revision of a change request."""

    change_request = models.ForeignKey(
        ChangeRequest, on_delete=models.CASCADE, related_name="approvals"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    revision = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["change_request", "approver", "revision"],
                name="changeapproval_once_per_revision",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.approver_id} approved #{self.change_request_id}"


class ScheduleStatus(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ScheduledChange(models.Model):
    """A change to make at ``run_at`` ("switch on at 02:00"), applied by beat."""

    flag = models.ForeignKey(
        Flag, on_delete=models.CASCADE, related_name="scheduled_changes"
    )
    action = models.CharField(max_length=20)
    changes = models.JSONField()
    run_at = models.DateTimeField()
    reason = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    status = models.CharField(
        max_length=10, choices=ScheduleStatus.choices, default=ScheduleStatus.PENDING
    )
    outcome = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_at"]
        indexes = [
            models.Index(
                fields=["run_at"],
                condition=models.Q(status="pending"),
                name="scheduledchange_due",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ScheduleStatus.values),
                name="scheduledchange_known_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.flag_id} at {self.run_at:%Y-%m-%d %H:%M}"


class FlagUsage(models.Model):
    """How often each flag was evaluated and when last, flushed from every process."""

    key = models.CharField(max_length=150, unique=True)
    evaluations = models.BigIntegerField(default=0)
    last_evaluated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key}: {self.evaluations}"
