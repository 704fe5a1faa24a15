"""A separate process that records samples, for tests (``python -m tests.metrics.recorder``).

``hold NAME N``: record N samples of NAME, print ``recorded``, wait for SIGTERM.
``burst NAME N``: record N samples (values 0..N-1), print ``ready``, then keep
recording N, N+1, … until SIGTERM interrupts the burst.
``spread NAME N SECONDS``: record N samples (values 0..N-1) at an even pace over
SECONDS, print ``recorded``, wait for SIGTERM.
"""

import os
import sys
import threading
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
django.setup()

from apps import metrics  # noqa: E402 - after django.setup()

BURST_MAX = 900_000
SPREAD_STEPS = 100


def main(mode: str, name: str, count: int, seconds: float = 0.0) -> None:
    if mode == "spread":
        _spread(name, count, seconds)
    else:
        for value in range(count):
            metrics.record(name, value)
    sys.stdout.write("ready\n" if mode == "burst" else "recorded\n")
    sys.stdout.flush()
    if mode == "burst":
        for value in range(count, count + BURST_MAX):
            metrics.record(name, value)
    threading.Event().wait()


def _spread(name: str, count: int, seconds: float) -> None:
    started = time.monotonic()
    for step in range(SPREAD_STEPS):
        for value in range(
            step * count // SPREAD_STEPS, (step + 1) * count // SPREAD_STEPS
        ):
            metrics.record(name, value)
        # The pace of a steady producer: step n ends at n/STEPS of the time.
        time.sleep(
            max(0.0, started + seconds * (step + 1) / SPREAD_STEPS - time.monotonic())
        )


if __name__ == "__main__":
    main(*sys.argv[1:3], int(sys.argv[3]), *map(float, sys.argv[4:5]))
