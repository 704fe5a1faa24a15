"""The admin component list with many components: render time and queries (#5).

    PYTHONPATH=. .venv/bin/python benchmarks/checks_admin.py \
        [--components 10000] [--results-per-component 10] [--runs 9]

Uses DATABASE_URL / REDIS_URL when set (a scratch database), else embedded
servers. Creates N HTTP components with a state row each (states, latencies and
last checks varied) and ``--results-per-component`` results each within the last
24 h (so the uptime column has work to do), ANALYZEs, then times
``GET /admin/components/component/`` through Django's test Client logged in as a
superuser (DEBUG off, the whole middleware stack, static files collected into
the run's directory for the manifest storage): one warm-up, then ``--runs``
timed requests. Side by side: the default page, a page filtered by state, a search,
and the list sorted by uptime (the annotated column). Queries are counted on the
last run of each.

Benchmarks are not tests: this prints figures and asserts no limits.
"""

import argparse
import time

from benchmarks.checks_common import (
    components_register,
    django_ready,
    median,
    run_context,
)

URL = "/admin/components/component/"
SUBJECTS = {
    "changelist, first page": "",
    "filtered: state=unhealthy": "?state=unhealthy",
    "search: q=bench 12": "?q=bench+12",
    "sorted by uptime 24 h": "?o=8",
    "last page": "?p=100",
}


def fill(count: int, per_component: int) -> None:
    """States and results spread over the components, in SQL for speed."""
    from django.db import connection

    components_register(count, "http://127.0.0.1:9")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE components_componentstate SET
                state = (ARRAY['healthy','healthy','healthy','degraded','unhealthy'])
                        [1 + component_id %% 5],
                last_status = 'healthy',
                last_latency_ms = (component_id %% 97) + 0.5,
                last_checked_at = now() - (component_id %% 30) * interval '1 second',
                since = now() - (component_id %% 1000) * interval '1 minute'
            """,
            [],
        )
        cursor.execute(
            """
            INSERT INTO components_healthresult
                (component_id, status, latency_ms, message, details, checked_at,
                 in_maintenance, trace_id)
            SELECT c.id, CASE WHEN (c.id + k) %% 10 = 0 THEN 'unhealthy'
                              ELSE 'healthy' END,
                   5.0, 'HTTP 200', '{}', now() - k * interval '2 hours',
                   false, ''
            FROM components_component c, generate_series(0, %s - 1) AS k
            """,
            [per_component],
        )
        cursor.execute("ANALYZE")


def timed(client: object, path: str, runs: int) -> tuple[list[float], int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(path)  # type: ignore[attr-defined]
    if response.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {response.status_code}")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.get(path)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)  # type: ignore[attr-defined]
    return times, len(queries), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--results-per-component", type=int, default=10)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with run_context() as run:
        django_ready()
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.test import Client

        # DEBUG off uses the manifest storage: collect into the run's directory.
        settings.STATIC_ROOT = run.root / "static"
        call_command("collectstatic", interactive=False, verbosity=0)

        started = time.perf_counter()
        fill(args.components, args.results_per_component)
        print(f"setup {time.perf_counter() - started:.0f} s", flush=True)
        user = User.objects.create_superuser("bench-admin", "", "x")
        client = Client()
        client.force_login(user)
        print(
            f"{args.components} components, a state row each,"
            f" {args.components * args.results_per_component} results in 24 h;"
            f" superuser, test Client, DEBUG off; median of {args.runs} runs"
        )
        print()
        head = f"{'GET ' + URL:34}{'median ms':>10}{'min':>8}{'max':>8}"
        print(head + f"{'queries':>9}{'KB':>6}")
        for subject, query in SUBJECTS.items():
            times, queries, size = timed(client, URL + query, args.runs)
            ms = [t * 1000 for t in times]
            print(
                f"{subject:34}{median(ms):>10.0f}{min(ms):>8.0f}{max(ms):>8.0f}"
                f"{queries:>9}{size / 1024:>6.0f}"
            )


if __name__ == "__main__":
    main()
