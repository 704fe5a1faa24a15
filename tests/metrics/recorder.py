"""A separate process that records samples, for tests (``python -m tests.metrics.recorder``).

``hold NAME N``: record N samples of NAME, print ``recorded``, wait for SIGTERM.
``burst NAME N``: record N samples (values 0..N-1), print ``ready``, then keep
recording N, N+1, … until SIGTERM interrupts the burst.
"""

import os
import sys
import threading

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
django.setup()

from apps import metrics  # noqa: E402 - after django.setup()

BURST_MAX = 900_000


def main(mode: str, name: str, count: int) -> None:
    for value in range(count):
        metrics.record(name, value)
    sys.stdout.write("recorded\n" if mode == "hold" else "ready\n")
    sys.stdout.flush()
    if mode == "burst":
        for value in range(count, count + BURST_MAX):
            metrics.record(name, value)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
