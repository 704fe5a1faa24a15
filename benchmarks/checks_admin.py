"""The admin component list with many components: render time and queries (#5).

    PYTHONPATH=. .venv/bin/python benchmarks/checks_admin.py \
        [--components 10000] [--results-per-component 10] [--runs 9] [--show-queries]

Uses DATABASE_URL / REDIS_URL when set (a scratch database), else embedded
servers. Creates N HTTP components with a state row each (states, latencies and
last checks varied) and ``--results-per-component`` results each, evenly spread
over the last 24 h, mirrors every result as the ``component.check.up`` sample its
check records (through the metrics writer), runs the real rollups
(``rollups_run``) over them and the uptime refresh (``component_uptimes_refresh``,
timed: every row changed, then nothing changed), ANALYZEs, then times
``GET /admin/components/component/`` through Django's test Client logged in as a
superuser (DEBUG off, the whole middleware stack, static files collected into
the run's directory for the manifest storage): one warm-up, then ``--runs``
timed requests. Side by side: the default page, a page filtered by state, a
search, the list sorted by uptime either way and the last page (default order and
sorted by uptime), each with the "uptime 24 h" column as the state rows keep it
(``kept``, now) and from a correlated subquery per component over its hour
rollups (``subquery`` below: the column as it was before, swapped in for the
alternate requests). Queries and their summed SQL time (as Django's cursor
wrapper times them) are taken on the last run of each. Then the list's query
alone (a page of 100: default order, sorted by uptime, the last page sorted by
uptime) from each source: PostgreSQL's own execution time (EXPLAIN ANALYZE),
without the page's rendering.

Benchmarks are not tests: this prints figures and asserts no limits.
"""

import argparse
import os
import time
from typing import Any

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
    "sorted by uptime, descending": "?o=-8",
    "last page": "?p={last}",
    "last page sorted by uptime": "?o=8&p={last}",
}


# Where the list's column comes from: filled in main() after Django is set up.
SOURCES: dict[str, Any] = {}
# --show-queries: print each query of the measured requests with its time.
SHOW_QUERIES = False


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
                   5.0, 'HTTP 200', '{}',
                   now() - k * (interval '24 hours' / %s),
                   false, ''
            FROM components_component c, generate_series(0, %s - 1) AS k
            """,
            [per_component, per_component],
        )
        cursor.execute("ANALYZE")


def samples_fill(batch: int = 200_000) -> int:
    """Every result as its ``component.check.up`` sample, then every closed
    rollup rolled; the samples written."""
    from django.db import connection
    from django.utils import timezone

    from apps.components.selectors import CHECK_UP_METRIC
    from apps.metrics.buffer import sample_row
    from apps.metrics.db import default_database
    from apps.metrics.services import rollups_run
    from apps.metrics.storage import SampleWriter

    writer, last, written = SampleWriter(database=default_database), 0, 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT r.id, c.slug, r.checked_at, r.status <> 'unhealthy'"
                " FROM components_healthresult r JOIN components_component c"
                " ON c.id = r.component_id WHERE r.id > %s ORDER BY r.id LIMIT %s",
                [last, batch],
            )
            rows = cursor.fetchall()
        if not rows:
            break
        writer.write(
            [
                sample_row(CHECK_UP_METRIC, (("component", slug),), at, float(up))
                for _, slug, at, up in rows
            ]
        )
        last, written = rows[-1][0], written + len(rows)
    while any(rollups_run(now=timezone.now()).values()):
        pass
    return written


def subquery_uptime_list() -> Any:
    """The list's queryset with the column computed per component: the
    alternative, as ``component_list`` did before the state rows kept it (a
    correlated subquery over each component's hour rollups)."""
    from datetime import UTC, timedelta

    from django.db.models import (
        F,
        FloatField,
        Func,
        JSONField,
        OuterRef,
        Subquery,
        Value,
    )
    from django.db.models.functions import Cast
    from django.utils import timezone

    from apps.components.models import Component
    from apps.components.selectors import CHECK_UP_METRIC
    from apps.metrics.models import Resolution, Rollup

    now = timezone.now()
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    series = Func(
        Value("component"),
        OuterRef("slug"),
        function="jsonb_build_object",
        output_field=JSONField(),
    )
    total = Func(F("sum"), function="SUM", output_field=FloatField())
    count = Func(Cast("count", FloatField()), function="SUM", output_field=FloatField())
    ratio = (
        Rollup.objects.filter(
            resolution=Resolution.HOUR,
            series__name=CHECK_UP_METRIC,
            series__tags=series,
            bucket_start__gte=hour - timedelta(hours=24),
            bucket_start__lt=hour,
        )
        .annotate(pct=total * 100.0 / count)
        .values("pct")
    )
    return (
        Component.objects.select_related("state", "heartbeat")
        .prefetch_related("depends_on")
        .annotate(
            uptime_pct=Subquery(ratio, output_field=FloatField()),
            uptime_until=Value(hour),
        )
    )


def refresh_timed(runs: int) -> None:
    """The refresh with every row changed (the hour turned), then unchanged."""
    from django.db import connection
    from django.utils import timezone

    from apps.components.services import component_uptimes_refresh

    ms: dict[str, list[float]] = {"changed": [], "unchanged": []}
    for _ in range(runs):
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE components_componentstate SET uptime_24h_until = NULL"
            )
            cursor.execute("VACUUM components_componentstate")
        for case in ms:
            started = time.perf_counter()
            written = component_uptimes_refresh(now=timezone.now())
            ms[case].append((time.perf_counter() - started) * 1000)
            print(f"  refresh ({case}): {written} rows", flush=True)
    print(
        f"uptime refresh, median of {runs}: every row changed"
        f" {median(ms['changed']):.0f} ms, nothing changed"
        f" {median(ms['unchanged']):.0f} ms"
    )


def executed_ms(queryset: Any) -> float:
    """PostgreSQL's own execution time of ``queryset`` (EXPLAIN ANALYZE)."""
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        return float(cursor.fetchone()[0][0]["Execution Time"])


def queries_compared(runs: int, last_offset: int) -> None:
    """The list's query alone (a page of 100), each source, alternated."""
    from django.db.models import F

    uptime = F("uptime_pct").asc(nulls_last=True)
    pages = (
        ("default order", ["-pk"], 0),
        ("sorted by uptime", [uptime, "-pk"], 0),
        ("last page sorted by uptime", [uptime, "-pk"], last_offset),
    )
    print(f"\n{'list query, page of 100':34}{'kept ms':>11}{'subquery ms':>12}")
    for label, order, offset in pages:
        ms: dict[str, list[float]] = {"kept": [], "subquery": []}
        for _ in range(runs):
            for source, listed in SOURCES.items():
                page = listed().order_by(*order)[offset : offset + 100]
                ms[source].append(executed_ms(page))
        print(f"{label:34}{median(ms['kept']):>11.1f}{median(ms['subquery']):>12.1f}")


def timed(client: object, path: str, runs: int) -> tuple[list[float], int, float, int]:
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
    sql_ms = sum(float(query["time"]) for query in queries) * 1000
    if SHOW_QUERIES:
        for query in queries:
            print(f"    {float(query['time']) * 1000:7.1f} ms  {query['sql'][:150]}")
    return times, len(queries), sql_ms, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--results-per-component", type=int, default=10)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--show-queries",
        action="store_true",
        help="print each query (and its ms) of the request whose queries are counted",
    )
    args = parser.parse_args()
    global SHOW_QUERIES
    SHOW_QUERIES = args.show_queries
    with run_context() as run:
        django_ready()
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client
        from django.utils import timezone

        import apps.components.admin as admin_module
        from apps.components.selectors import component_list
        from apps.components.services import component_uptimes_refresh

        SOURCES.update(kept=component_list, subquery=subquery_uptime_list)

        # DEBUG off uses the manifest storage: collect into the run's directory.
        settings.STATIC_ROOT = run.root / "static"
        call_command("collectstatic", interactive=False, verbosity=0)

        started = time.perf_counter()
        fill(args.components, args.results_per_component)
        written = samples_fill()
        component_uptimes_refresh(now=timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(f"setup {time.perf_counter() - started:.0f} s", flush=True)
        refresh_timed(args.runs)
        user = User.objects.create_superuser("bench-admin", "", "x")
        client = Client()
        client.force_login(user)
        print(
            f"{args.components} components, a state row each,"
            f" {args.components * args.results_per_component} results in 24 h,"
            f" {written} up samples rolled; superuser, test Client, DEBUG off;"
            f" median of {args.runs} runs, kept and subquery alternated;"
            f" load {os.getloadavg()[0]:.2f}"
        )
        print()
        head = f"{'GET ' + URL:34}{'kept ms':>9}{'subquery':>9}"
        print(head + f"{'SQL ms':>8}{'subq SQL':>9}{'queries':>8}{'KB':>5}")
        for subject, query in SUBJECTS.items():
            ms: dict[str, list[float]] = {"kept": [], "subquery": []}
            sql: dict[str, float] = {}
            for _ in range(args.runs):
                for source in ms:
                    admin_module.component_list = SOURCES[source]
                    path = URL + query.format(last=-(-args.components // 100))
                    times, queries, sql[source], size = timed(client, path, 1)
                    ms[source].append(times[0] * 1000)
            admin_module.component_list = SOURCES["kept"]
            print(
                f"{subject:34}{median(ms['kept']):>9.0f}{median(ms['subquery']):>9.0f}"
                f"{sql['kept']:>8.0f}{sql['subquery']:>9.0f}{queries:>8}"
                f"{size / 1024:>5.0f}"
            )
        queries_compared(args.runs, (-(-args.components // 100) - 1) * 100)
        print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
