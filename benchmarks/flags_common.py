"""Shared setup of the flags benchmarks: servers, Django, the flag under test.

Uses DATABASE_URL / REDIS_URL when set, else starts an embedded PostgreSQL and
Valkey for the run (removed afterwards), migrates, and creates the benchmark flag:
boolean, three rules, the last a 30% rollout on ``targetingKey``.
"""

import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opsconsole.embedded import EmbeddedPostgres, EmbeddedValkey, free_port

KEY = "bench.checkout"
COUNTRIES = ["ch", "li", "at"]
RULES: list[dict[str, Any]] = [
    {
        "conditions": [
            {"attribute": "country", "operator": "in", "values": COUNTRIES},
            {"attribute": "plan", "operator": "equals", "value": "enterprise"},
        ],
        "serve": {"variant": "on"},
    },
    {
        "conditions": [
            {
                "attribute": "email",
                "operator": "ends_with",
                "values": ["@internal.example"],
            }
        ],
        "serve": {"variant": "on"},
    },
    {"conditions": [], "serve": {"variant": "on"}, "rollout": 30},
]


@contextmanager
def servers() -> Iterator[None]:
    """Make DATABASE_URL and REDIS_URL point at running servers for the run."""
    started: list[EmbeddedPostgres | EmbeddedValkey] = []
    root = Path(tempfile.mkdtemp(prefix="opsconsole-bench-"))
    root.chmod(0o755)
    runtime = root / "runtime"
    runtime.mkdir(mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    os.environ.setdefault("DJANGO_DEBUG", "true")
    try:
        if not os.environ.get("DATABASE_URL"):
            postgres = EmbeddedPostgres(root / "postgres", free_port())
            postgres.start()
            started.append(postgres)
            postgres.ensure_database("bench")
            os.environ["DATABASE_URL"] = postgres.url("bench")
        if not os.environ.get("REDIS_URL"):
            valkey = EmbeddedValkey(root / "valkey", free_port())
            valkey.start()
            started.append(valkey)
            os.environ["REDIS_URL"] = valkey.url
        yield
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def django_setup(*, extra_apps: tuple[str, ...] = ()) -> None:
    """Configure Django (plus ``extra_apps``) on the servers above."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
    import django
    from django.conf import settings

    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, *extra_apps]
    django.setup()


def create_flag() -> None:
    """Migrate and (re)create the benchmark flag through the service."""
    from django.core.management import call_command

    from apps.core.models import AuditEvent
    from apps.flags.models import Flag
    from apps.flags.services import flag_create

    call_command("migrate", verbosity=0)
    if not Flag.objects.filter(key=KEY).exists():
        data = {
            "name": "benchmark",
            "variants": {"on": True, "off": False},
            "enabled": True,
            "default_variant": "off",
            "off_variant": "off",
            "rules": RULES,
        }
        flag_create(
            key=KEY, data=data, actor=None, reason="", source=AuditEvent.Source.SYSTEM
        )


def summary(samples_ns: list[float]) -> tuple[float, float]:
    """Median and p99 of per-call times, in microseconds."""
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) / 1000, p99 / 1000
