"""The Celery app: configured from Django settings (CELERY_*), tasks found in each app.

The beat schedule is declared here and only here, one commented entry per job.
"""

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")

app = Celery("opsconsole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}
app.conf.beat_schedule = BEAT_SCHEDULE
