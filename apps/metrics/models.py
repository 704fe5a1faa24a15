"""Series identity, raw samples (a table partitioned by day) and rollups."""

from django.contrib.postgres.fields import ArrayField
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


class RollupFields(models.Model):
    """Count, sum, min, max and a log-bucket sketch over one bucket of time.

    The sketch is two arrays of one length: ``sketch_keys``, the bucket codes
    present in ascending order (see ``apps.metrics.sketch``), and
    ``sketch_counts``, each code's count; two sketches merge by adding counts
    of equal codes.
    """

    resolution = models.CharField(max_length=6, choices=Resolution.choices)
    bucket_start = models.DateTimeField()
    count = models.BigIntegerField()
    sum = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()
    sketch_keys = ArrayField(models.IntegerField())
    sketch_counts = ArrayField(models.BigIntegerField())
    rolled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class Rollup(RollupFields):
    """One series over one bucket."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE)

    class Meta:
        # Merges, per-name minutes and retention read one resolution's time range
        # across all series.
        indexes = [
            models.Index(
                fields=["resolution", "bucket_start"], name="metrics_rollup_time"
            )
        ]
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


# A tag as "key=value": keys hold no "=" (validation.TAG_KEY_RE), at most 64
# characters, values at most 200.
TAG_MAX_LENGTH = 64 + 1 + 200


class NameRollup(RollupFields):
    """Every series of one metric name merged over one bucket (``tag`` ''), or
    every series of it carrying one tag (``tag`` "key=value", for the keys in
    ``OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS``), written by the rollup task beside the
    series' own rollups, so a query without a tag filter, or filtered by one such
    tag, reads one sketch per bucket however many series it covers."""

    name = models.CharField(max_length=200)
    tag = models.CharField(max_length=TAG_MAX_LENGTH, db_default="", blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "name", "tag", "bucket_start"],
                name="metrics_namerollup_tag_bucket",
            ),
            models.CheckConstraint(
                condition=Q(resolution__in=Resolution.values),
                name="metrics_namerollup_known_resolution",
            ),
            models.CheckConstraint(
                condition=Q(count__gte=1), name="metrics_namerollup_count_min"
            ),
        ]

    def __str__(self) -> str:
        owner = f"{self.name} {self.tag}" if self.tag else self.name
        return f"{owner} {self.resolution} {self.bucket_start:%Y-%m-%d %H:%M}"


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
