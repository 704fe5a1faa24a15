"""Snapshot rebuild time for 1,000 and 10,000 flags: what every process pays after a
flag change (ARCHITECTURE flow 4), split into reading PostgreSQL and compiling.

    PYTHONPATH=. .venv/bin/python benchmarks/flags_snapshot.py [--repeat N]

Each flag is like the evaluation benchmark's (boolean, three rules: two attribute
conditions, an email suffix, a 30% rollout), a tenth of them with a fourth rule on
a shared segment. Rows are inserted with ``bulk_create`` (setup, not measured; the
services validate each write against the whole set, which is not what is timed).
``build_snapshot()`` is the rebuild a process runs: the fingerprint query, reading
every flag and segment, compiling, with the cyclic garbage collector paused (it
would rescan the growing heap: the last row shows compiling with it running). The
parts are timed as a build runs them. Median and best of ``N`` runs per size.
"""

import argparse
import gc
import statistics
import time
from functools import partial
from typing import Any

from benchmarks.flags_common import RULES, django_setup, servers

SIZES = (1_000, 10_000)
SEGMENT_RULE: dict[str, Any] = {
    "conditions": [{"attribute": "", "operator": "in_segment", "value": "beta"}],
    "serve": {"variant": "on"},
}


def fill(count: int) -> None:
    """Exactly ``count`` benchmark flags (plus the console's own) and the segment."""
    from apps.flags.models import Flag, Segment

    Segment.objects.get_or_create(
        key="beta",
        defaults={
            "name": "beta",
            "conditions": [
                {"attribute": "plan", "operator": "in", "values": ["beta", "pro"]}
            ],
        },
    )
    have = Flag.objects.filter(key__startswith="bench.").count()
    Flag.objects.bulk_create([_flag(i) for i in range(have, count)], batch_size=1000)


def _flag(i: int) -> Any:
    from apps.flags.models import Flag

    rules = [SEGMENT_RULE, *RULES] if i % 10 == 0 else RULES
    return Flag(
        key=f"bench.flag-{i:05d}",
        name=f"benchmark flag {i}",
        variants={"on": True, "off": False},
        enabled=True,
        default_variant="off",
        off_variant="off",
        rules=rules,
    )


def timed(call: Any, repeat: int, *, collector: bool) -> list[float]:
    """Milliseconds per call; ``collector=False`` pauses the cyclic GC as a build does."""
    out = []
    for _ in range(repeat):
        if not collector:
            gc.disable()
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
        gc.enable()
    return out


def measure(repeat: int) -> list[tuple[int, str, float, float]]:
    from apps.flags import selectors
    from apps.flags.engine import compile_snapshot
    from apps.flags.snapshot import build_snapshot

    rows = []
    for size in SIZES:
        fill(size)
        flags, segments = selectors.flag_specs_live(), selectors.segment_specs_all()
        assert len(build_snapshot().flags) >= size  # noqa: S101 - all compiled
        compile_all = partial(compile_snapshot, flags, segments, version="b")
        parts = [
            ("build_snapshot() (read + compile)", build_snapshot, True),
            ("  read: fingerprint, flags, segments", _read, False),
            ("  compile", compile_all, False),
            ("  compile, collector running", compile_all, True),
        ]
        for name, call, collector in parts:
            times = timed(call, repeat, collector=collector)
            rows.append((size, name, statistics.median(times), min(times)))
    return rows


def _read() -> None:
    from apps.flags import selectors

    selectors.flags_state_version()
    selectors.flag_specs_live()
    selectors.segment_specs_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with servers():
        django_setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        rows = measure(args.repeat)
    print(f"{'flags':>6}  {'what':38} {'median ms':>10} {'best ms':>9}")
    for size, name, median, best in rows:
        print(f"{size:6d}  {name:38} {median:10.1f} {best:9.1f}")


if __name__ == "__main__":
    main()
