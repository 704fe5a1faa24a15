"""OFREP single evaluation over HTTP on daphne, next to a constant-JSON Django view on
the same server (the framework ceiling), with the same aiohttp client.

    PYTHONPATH=. .venv/bin/python benchmarks/flags_ofrep.py [--requests N] [--concurrency C]

The script starts PostgreSQL and Valkey (unless DATABASE_URL / REDIS_URL are set),
creates the benchmark flag (three rules, a 30% rollout) and a read token, then one
daphne process (DEBUG off) serving the project plus ``/bench/constant``
(``benchmarks/flags_ofrep_urls.py``). Both subjects get POSTs with a JSON context of
one of 1,000 users, ``C`` at a time; rounds alternate between them so drift on the
shared machine hits all alike. The ceiling view is a sync view like ninja's and
parses the body, but does no token check and no evaluation; a third subject adds
the bearer-token auth OFREP runs (``apps.flags.ofrep.token_auth``: the REST API's
token check, one query, remembered per token for a few seconds).
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from benchmarks.flags_common import KEY, create_flag, django_setup, servers, summary

ROOT = Path(__file__).resolve().parent.parent
BODIES = [
    f'{{"context": {{"targetingKey": "user-{i}", "country": "de", "plan": "free"}}}}'
    for i in range(1000)
]


def serve(port: int) -> None:
    """In the server process: daphne on ``port`` with the benchmark URLconf."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.ROOT_URLCONF = "benchmarks.flags_ofrep_urls"
    from daphne.cli import CommandLineInterface

    argv = [
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "-v",
        "0",
        "opsconsole.asgi:application",
    ]
    CommandLineInterface().run(argv)


def read_token() -> str:
    from django.contrib.auth.models import Group, User

    from apps.core.models import AuditEvent
    from apps.core.services import token_create

    user, _ = User.objects.get_or_create(username="flags-bench")
    user.groups.add(Group.objects.get(name="viewer"))
    _, raw = token_create(
        user=user,
        name=f"bench {time.time()}",
        scopes=["read"],
        expires_at=None,
        actor=None,
        source=AuditEvent.Source.SYSTEM,
    )
    return raw


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "flags-ofrep-benchmark-only",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "OPSCONSOLE_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, __file__, "--serve", str(port)]
    return subprocess.Popen(argv, cwd=ROOT, env=env)  # noqa: S603 - our own script


async def drive(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    count: int,
    concurrency: int,
) -> tuple[list[float], float]:
    """``count`` POSTs, ``concurrency`` in flight; per-request ns and the wall time."""
    latencies: list[float] = []
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            start = time.perf_counter_ns()
            body = BODIES[i % len(BODIES)]
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: HTTP {response.status}")
            latencies.append(time.perf_counter_ns() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began


async def compare(
    base: str, token: str, requests: int, concurrency: int, rounds: int
) -> list[tuple[str, float, float, float]]:
    auth = {"Authorization": f"Bearer {token}"}
    subjects = {
        "constant JSON view (ceiling)": (f"{base}/bench/constant", {}),
        "constant view + token auth": (f"{base}/bench/constant-with-auth", auth),
        "OFREP evaluate/flags/{key}": (
            f"{base}/ofrep/v1/evaluate/flags/{KEY}",
            auth,
        ),
    }
    results: dict[str, tuple[list[float], float]] = {n: ([], 0.0) for n in subjects}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for url, extra in subjects.values():  # warm up: connections, the snapshot
            await drive(session, url, _headers(extra), 300, concurrency)
        for _ in range(rounds):
            for name, (url, extra) in subjects.items():
                latencies, elapsed = await drive(
                    session, url, _headers(extra), requests // rounds, concurrency
                )
                results[name][0].extend(latencies)
                results[name] = (results[name][0], results[name][1] + elapsed)
    rows = []
    for name, (latencies, elapsed) in results.items():
        p50, p99 = summary(latencies)
        rows.append((name, len(latencies) / elapsed, p50 / 1000, p99 / 1000))
    return rows


def _headers(extra: dict[str, str]) -> dict[str, str]:
    return {"Content-Type": "application/json", **extra}


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the daphne process exited")
        try:
            with urllib.request.urlopen(f"{base}/livez", timeout=1):  # noqa: S310
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError("daphne did not answer /livez within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="per subject")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    from opsconsole.embedded import free_port

    with servers():
        django_setup()
        create_flag()
        token = read_token()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(port)
        try:
            wait_ready(base, server)
            rows = asyncio.run(
                compare(base, token, args.requests, args.concurrency, args.rounds)
            )
        finally:
            server.terminate()
            server.wait(15)
    ceiling = rows[0][1]
    print(f"{args.requests} requests per subject, {args.concurrency} concurrent")
    print(f"{'subject':30} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x ceiling':>10}")
    for name, rps, p50, p99 in rows:
        print(f"{name:30} {rps:8.0f} {p50:8.2f} {p99:8.2f} {rps / ceiling:10.2f}")


if __name__ == "__main__":
    main()
