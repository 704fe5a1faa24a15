"""Series identity, raw samples (a table partitioned by day) and rollups."""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Series(models.Model):
    """One metric name with one set of tags; ``tags`` is stored with sorted keys."""

    name = models.CharField(max_length=200)
    tags = models.JSONField(default=dict)
    # sha1 of the canonical (sorted, compact) JSON of ``tags``: a short unique key.
    tags_hash = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(
                fields=["name", "tags_hash"], name="metrics_series_identity"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Sample(models.Model):
    """A raw sample. The table is made by RunSQL (PARTITION BY RANGE (at), one
    partition per UTC day), so Django does not manage it; the composite key is
    only for the ORM (reads, the bulk_create benchmark), not a constraint."""

    pk = models.CompositePrimaryKey("series", "at")
    series = models.ForeignKey(Series, on_delete=models.DO_NOTHING)
    at = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        managed = False
        db_table = "metrics_sample"

    def __str__(self) -> str:
        return f"{self.series_id} {self.at:%Y-%m-%d %H:%M:%S} {self.value}"


class Resolution(models.TextChoices):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


class Rollup(models.Model):
    """Count, sum, min, max and a log-bucket sketch of one series over one bucket.

    ``sketch`` maps a bucket key (see ``apps.metrics.sketch``) to its count, so two
    sketches merge by adding counts.
    """

    resolution = models.CharField(max_length=6, choices=Resolution.choices)
    series = models.ForeignKey(Series, on_delete=models.CASCADE)
    bucket_start = models.DateTimeField()
    count = models.BigIntegerField()
    sum = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()
    sketch = models.JSONField()
    rolled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "series", "bucket_start"],
                name="metrics_rollup_bucket",
            ),
            models.CheckConstraint(
                condition=Q(resolution__in=Resolution.values),
                name="metrics_rollup_known_resolution",
            ),
            models.CheckConstraint(
                condition=Q(count__gte=1), name="metrics_rollup_count_min"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.series_id} {self.resolution} {self.bucket_start:%Y-%m-%d %H:%M}"


class PendingRollup(models.Model):
    """A bucket whose rollup is due: marked by every flush (minutes) and rollup
    (the enclosing hour or day), claimed with SKIP LOCKED. Late samples mark
    their minute again, which is how a closed minute gets re-rolled."""

    resolution = models.CharField(max_length=6, choices=Resolution.choices)
    bucket_start = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "bucket_start"], name="metrics_pending_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.resolution} {self.bucket_start:%Y-%m-%d %H:%M}"
