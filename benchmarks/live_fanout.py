"""Live fan-out: deltas published at a fixed rate to N WebSocket clients of ONE web
process, side by side: the app on daphne, plain Channels ``group_send`` on daphne
(the baseline) and the app on uvicorn (issue #8, ARCHITECTURE flow 6).

    PYTHONPATH=. .venv/bin/python benchmarks/live_fanout.py \
        [--clients 500] [--rate 50] [--seconds 20] [--stalled-percent 10]

Starts an embedded PostgreSQL and Valkey unless DATABASE_URL / REDIS_URL are set,
migrates the scratch database, creates a viewer and a session cookie. For each
subject it starts one server process, opens the clients (the ``websockets`` library,
asyncio, spread over ``--client-procs`` processes), subscribes each to ``events``,
then a publisher process sends ``--rate`` deltas/s for ``--seconds`` s, each payload
carrying its send time (``apps.live.publish`` for the app; ``group_send`` of the same
payload, already encoded as a ``deltas`` frame, for the baseline). Every client
counts deliveries by seq and the latency of each (receive time - send time). After
the last publish the clients get up to ``--grace`` s to catch up (less once every
client has every delta or nothing arrived for 2 s); what has not arrived by then is
counted as lost. CPU is the server process's CPU time, as % of one core, over the
publish window and over it plus that drain; RSS is sampled every 250 ms.

With ``--probe`` each app server runs in-process under this script, which records
its garbage-collector pauses (per generation) and its event loop's lag (how late a
callback posted every 5 ms runs), saved every second; the rows cover the publish
window and the drain.

With ``--stalled-percent P`` each subject runs twice: without, then with P% extra
clients that read their snapshot and never read again, on 4 KiB receive buffers;
the figures of the other clients are compared with the run without them.

Benchmarks are not tests: this prints figures and asserts no limits.
"""

import argparse
import asyncio
import atexit
import gc
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from opsconsole.embedded import (
    EmbeddedPostgres,
    EmbeddedValkey,
    free_port,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent
SUBJECTS = {
    "app-daphne": "app, daphne",
    "baseline-daphne": "group_send, daphne",
    "app-uvicorn": "app, uvicorn",
}
STALLED_RCVBUF = 4096
CONNECT_CONCURRENCY = 50
QUIET_SECONDS = 2.0
HEARTBEAT_SECONDS = 6.0  # the metrics heartbeat reports every 5 s

# Every process of the run (servers, publisher, this one) shares these: one secret
# so the session cookie made here is valid in the servers, its own Redis prefix so a
# shared Redis is not disturbed, production settings (DEBUG off) on 127.0.0.1.
RUN_ENV = {
    "DJANGO_SETTINGS_MODULE": "opsconsole.settings",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "live-fanout-benchmark-only",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "OPSCONSOLE_LOG_LEVEL": "WARNING",
    "OPSCONSOLE_REDIS_PREFIX": "livebench:",
    # The run reads the hub's counters (resyncs, drops, 4408 closes) from /metrics.
    "OPSCONSOLE_METRICS_PUBLIC": "true",
}
LIVE_COUNTERS = ("sent", "resyncs", "drops", "closed_slow")


# --- servers ---------------------------------------------------------------------
@contextmanager
def backing_servers(root: Path) -> Iterator[None]:
    """DATABASE_URL and REDIS_URL pointing at running servers for the run."""
    started: list[EmbeddedPostgres | EmbeddedValkey] = []
    runtime = root / "runtime"
    runtime.mkdir(mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    try:
        if not os.environ.get("DATABASE_URL"):
            postgres = EmbeddedPostgres(root / "postgres", free_port())
            postgres.start()
            started.append(postgres)
            postgres.ensure_database("livebench")
            os.environ["DATABASE_URL"] = postgres.url("livebench")
        if not os.environ.get("REDIS_URL"):
            valkey = EmbeddedValkey(root / "valkey", free_port())
            valkey.start()
            started.append(valkey)
            os.environ["REDIS_URL"] = valkey.url
        yield
    finally:
        for server in reversed(started):
            with suppress(Exception):
                server.stop()


def prepare_database() -> str:
    """Migrate, make a viewer, return a ``Cookie`` header value for it."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client

    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(username="live-bench", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    connections.close_all()
    return f"{settings.SESSION_COOKIE_NAME}={cookie}"


class WebServer:
    """One server process for a subject, its log in ``logdir``; killed on stop.
    With ``probe`` (a file path) an app server runs under ``serve_probed``."""

    def __init__(
        self, subject: str, logdir: Path, env: dict[str, str], probe: Path | None
    ) -> None:
        self.subject = subject
        self.port = free_port()
        self.probe = probe if subject.startswith("app") else None
        py = sys.executable
        bind = ["-b", "127.0.0.1", "-p", str(self.port), "-v", "0"]
        argv = {
            "app-daphne": [py, "-m", "daphne", *bind, "opsconsole.asgi:application"],
            "baseline-daphne": [
                py,
                "-m",
                "daphne",
                *bind,
                "benchmarks.live_baseline:application",
            ],
            "app-uvicorn": [
                py,
                "-m",
                "uvicorn",
                "opsconsole.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--no-access-log",
                "--log-level",
                "warning",
                "--ws",
                "websockets-sansio",
                # daphne does not compress either; the frames stay encoded once.
                "--ws-per-message-deflate",
                "false",
            ],
        }[subject]
        if self.probe is not None:
            env = {**env, "LIVE_FANOUT_PROBE": str(self.probe)}
            argv = [py, str(Path(__file__).resolve()), "--serve-probed", *argv[2:]]
        self.log = logdir / f"{subject}-{self.port}.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.proc = psutil.Process(self.popen.pid)
        if not wait_for_port(self.port, timeout=60):
            self.stop()
            raise RuntimeError(f"{subject} did not listen:\n{self.tail()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def rss_mb(self) -> float:
        return self.proc.memory_info().rss / 2**20

    def cpu_seconds(self) -> float:
        times = self.proc.cpu_times()
        return times.user + times.system

    def sockets(self) -> int:
        """Established TCP connections of the server (its clients and Redis/DB)."""
        with suppress(psutil.Error):
            conns = self.proc.net_connections(kind="tcp")
            return sum(c.status == psutil.CONN_ESTABLISHED for c in conns)
        return -1

    def live_counters(self) -> dict[str, int] | None:
        """The hub's counters as /metrics shows them; None for the baseline.

        The process reports them every 5 s from its first HTTP request on (the
        metrics heartbeat), so a first call only starts the reporting."""
        if not self.subject.startswith("app"):
            return None
        from prometheus_client.parser import text_string_to_metric_families

        url = f"{self.url}/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - http
            text = response.read().decode()
        found = dict.fromkeys(LIVE_COUNTERS, 0)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = sample.name.removeprefix("opsconsole_live_").removesuffix(
                    "_total"
                )
                if sample.name.startswith("opsconsole_live_") and key in found:
                    found[key] += int(sample.value)
        return found

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


# --- probes (inside an app server started with --probe) -----------------------------
LAG_INTERVAL = 0.005


def serve_probed(argv: list[str]) -> None:
    """Run ``-m daphne|uvicorn ARGS`` in this process, recording GC pauses and the
    event loop's lag; written as JSON to $LIVE_FANOUT_PROBE when the server exits."""
    records: dict[str, list[tuple[float, ...]]] = {"gc": [], "lag": []}
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started["gc"] = time.perf_counter()
        elif "gc" in started:
            pause = time.perf_counter() - started.pop("gc")
            records["gc"].append((time.time(), info["generation"], pause))

    def watch_loop() -> None:
        from apps.live import hub

        while not hub._hubs:
            time.sleep(0.05)
        loop = next(iter(hub._hubs))
        saved = time.monotonic()
        while not loop.is_closed():
            if time.monotonic() - saved > 1:  # uvicorn ends by re-raising SIGTERM
                dump()
                saved = time.monotonic()
            posted = time.perf_counter()
            done = threading.Event()

            def ran(posted: float = posted, done: threading.Event = done) -> None:
                records["lag"].append((time.time(), time.perf_counter() - posted))
                done.set()

            with suppress(RuntimeError):
                loop.call_soon_threadsafe(ran)
            done.wait(5)
            time.sleep(LAG_INTERVAL)

    def dump() -> None:
        path = Path(os.environ["LIVE_FANOUT_PROBE"])
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(records))
        partial.replace(path)

    gc.callbacks.append(on_gc)
    atexit.register(dump)
    threading.Thread(target=watch_loop, daemon=True).start()
    server, *rest = argv
    sys.argv = [server, *rest]
    if server == "daphne":
        from daphne.cli import CommandLineInterface

        CommandLineInterface.entrypoint()
    else:
        import uvicorn

        uvicorn.main()


def probe_rows(path: Path | None, start: float, end: float) -> dict[str, str]:
    """The probe's figures between ``start`` and ``end`` (wall clock)."""
    if path is None or not path.exists():
        return {}
    records = json.loads(path.read_text())
    pauses = [(gen, p * 1000) for at, gen, p in records["gc"] if start <= at <= end]
    lags = sorted(lag * 1000 for at, lag in records["lag"] if start <= at <= end)
    full = [p for gen, p in pauses if gen == 2]
    return {
        "gc": f"{len(pauses)}, {sum(p for _, p in pauses):,.0f}; "
        f"{len(full)}, {max(full, default=0):,.0f}",
        "lag": f"{percentile(lags, 0.99):,.1f} / {max(lags, default=0):,.0f}",
    }


class RssSampler(threading.Thread):
    def __init__(self, server: WebServer) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with suppress(psutil.Error):
                self.peak = max(self.peak, self.server.rss_mb())
            self.done.wait(0.25)


# --- clients (in client processes) -------------------------------------------------
@dataclass
class SocketStats:
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    resyncs: int = 0
    gaps: int = 0
    closed: int | None = None


def client_main(
    pipe: Connection, url: str, cookie: str, normal: int, stalled: int
) -> None:
    asyncio.run(_client_main(pipe, url, cookie, normal, stalled))


async def _open(url: str, cookie: str, *, stalled: bool) -> Any:
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    port = int(url.rsplit(":", 1)[1])
    sock = None
    if stalled:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    ws = await connect(
        f"ws://127.0.0.1:{port}/ws/live/",
        origin=Origin(url),
        additional_headers={"Cookie": cookie},
        max_size=None,
        max_queue=1 if stalled else 4096,
        compression=None,
        ping_interval=None,
        open_timeout=120,
        sock=sock,
    )
    await ws.send(json.dumps({"type": "subscribe", "topics": ["events"]}))
    async with asyncio.timeout(120):
        while json.loads(await ws.recv())["type"] != "snapshot":
            pass
    return ws


async def _read(ws: Any, stats: SocketStats, state: dict[str, float]) -> None:
    from websockets.exceptions import ConnectionClosed

    last = 0
    try:
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "deltas":
                for item in message["items"]:
                    seq = item["seq"]
                    if seq in stats.seen:
                        stats.duplicates += 1
                        continue
                    if last and seq != last + 1:
                        stats.gaps += 1
                    last = seq
                    stats.seen.add(seq)
                    stats.seqs.append(seq)
                    stats.latencies.append(now - item["payload"]["sent"])
                state["last"] = now
            elif kind == "snapshot":
                stats.resyncs += 1
                last = 0
            elif kind == "ping":
                await ws.send('{"type": "pong"}')
    except ConnectionClosed:
        pass
    stats.closed = ws.close_code


async def _client_main(
    pipe: Connection, url: str, cookie: str, normal: int, stalled: int
) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(is_stalled: bool) -> Any:
        async with gate:
            return await _open(url, cookie, stalled=is_stalled)

    kinds = [False] * normal + [True] * stalled
    opened = await asyncio.gather(*(open_one(k) for k in kinds), return_exceptions=True)
    errors = [repr(o) for o in opened if isinstance(o, BaseException)]
    sockets = [o for o in opened if not isinstance(o, BaseException)]
    readers = [ws for ws, k in zip(opened, kinds, strict=True) if not k]
    readers = [ws for ws in readers if not isinstance(ws, BaseException)]
    stats = [SocketStats() for _ in readers]
    state = {"last": time.time()}
    tasks = [
        asyncio.create_task(_read(ws, s, state))
        for ws, s in zip(readers, stats, strict=True)
    ]
    pipe.send(("ready", len(sockets), errors[:3], len(errors)))
    me = psutil.Process()
    await asyncio.to_thread(pipe.recv)  # go: the publisher starts
    cpu0 = sum(me.cpu_times()[:2])
    began = time.monotonic()
    published, grace = await asyncio.to_thread(pipe.recv)
    want = set(published)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if all(want <= s.seen for s in stats):
            break
        if time.time() - state["last"] > QUIET_SECONDS:
            break
        await asyncio.sleep(0.05)
    cpu = sum(me.cpu_times()[:2]) - cpu0
    wall = time.monotonic() - began
    latencies = array("d")
    received = duplicates = resyncs = gaps = 0
    closed: dict[str, int] = {}
    for s in stats:
        for seq, latency in zip(s.seqs, s.latencies, strict=True):
            if seq in want:
                latencies.append(latency)
                received += 1
        duplicates += s.duplicates
        resyncs += s.resyncs
        gaps += s.gaps
        code = s.closed if s.closed is not None else None
        if code is not None:
            closed[str(code)] = closed.get(str(code), 0) + 1
    pipe.send(
        {
            "readers": len(stats),
            "received": received,
            "duplicates": duplicates,
            "resyncs": resyncs,
            "gaps": gaps,
            "closed": closed,
            "latencies": latencies.tobytes(),
            "cpu": cpu,
            "wall": wall,
        }
    )
    for task in tasks:
        task.cancel()
    for ws in sockets:
        ws.transport.abort()


# --- publisher (in its own process) ----------------------------------------------
def publisher_main(
    pipe: Connection, subject: str, rate: int, seconds: float, pad: int
) -> None:
    import django

    django.setup()
    count = int(rate * seconds)
    filler = "x" * pad
    if subject.startswith("app"):
        from apps.live import publish

        pipe.send("ready")
        pipe.recv()
        seqs: list[int] = []
        failed = 0
        lag = 0.0
        t0 = time.time()
        for n in range(count):
            due = t0 + n / rate
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            lag = max(lag, time.time() - due)
            message = publish(
                "events", {"n": n, "sent": time.time(), "pad": filler}, key=str(n)
            )
            if message is None:
                failed += 1
            else:
                seqs.append(message.seq)
        pipe.send((seqs, failed, time.time() - t0, lag))
    else:
        asyncio.run(_publish_group(pipe, count, rate, filler))


async def _publish_group(pipe: Connection, count: int, rate: int, pad: str) -> None:
    from channels.layers import get_channel_layer

    from benchmarks.live_baseline import EVENT_TYPE, GROUP

    layer = get_channel_layer()
    pipe.send("ready")
    await asyncio.to_thread(pipe.recv)
    seqs: list[int] = []
    lag = 0.0
    t0 = time.time()
    for n in range(count):
        due = t0 + n / rate
        wait = due - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        lag = max(lag, time.time() - due)
        sent = time.time()
        item = {
            "topic": "events",
            "seq": n + 1,
            "key": str(n),
            "payload": {"n": n, "sent": sent, "pad": pad},
            "trace_id": "",
            "at": sent,
        }
        text = json.dumps({"type": "deltas", "items": [item]}, separators=(",", ":"))
        await layer.group_send(GROUP, {"type": EVENT_TYPE, "text": text})
        seqs.append(n + 1)
    pipe.send((seqs, 0, time.time() - t0, lag))


# --- one run ---------------------------------------------------------------------
@dataclass
class Result:
    subject: str
    normal: int
    stalled: int
    connected: int
    connect_errors: int
    sent: int
    failed: int
    publish_seconds: float
    publish_lag: float
    expected: int
    received: int
    duplicates: int
    resyncs: int
    gaps: int
    closed: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_percent: float
    cpu_percent_publishing: float
    rss_idle: float
    rss_before: float
    rss_peak: float
    rss_after: float
    client_cpu: list[float]
    sockets: tuple[int, int]
    error_sample: list[str]
    live: dict[str, int] | None
    probe: dict[str, str]


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def run_subject(
    subject: str,
    args: argparse.Namespace,
    cookie: str,
    logdir: Path,
    stalled: int,
) -> Result:
    spawn = multiprocessing.get_context("spawn")
    env = dict(os.environ)
    if args.queue_max:
        env["OPSCONSOLE_LIVE_QUEUE_MAX"] = str(args.queue_max)
    probe = logdir / f"probe-{subject}-{stalled}.json" if args.probe else None
    server = WebServer(subject, logdir, env, probe)
    clients: list[tuple[Any, Connection]] = []
    publisher = None
    sampler = RssSampler(server)
    try:
        server.live_counters()  # starts the process's reporting
        time.sleep(1)
        rss_idle = server.rss_mb()
        procs = max(1, args.client_procs)
        for i in range(procs):
            mine = args.clients // procs + (i < args.clients % procs)
            stuck = stalled // procs + (i < stalled % procs)
            ours, theirs = spawn.Pipe()
            proc = spawn.Process(
                target=client_main,
                args=(theirs, server.url, cookie, mine, stuck),
                daemon=True,
            )
            proc.start()
            clients.append((proc, ours))
        connected = errors = 0
        sample: list[str] = []
        for _, pipe in clients:
            _, ok, some, failed = pipe.recv()
            connected += ok
            errors += failed
            sample += some
        ours, theirs = spawn.Pipe()
        publisher = spawn.Process(
            target=publisher_main,
            args=(theirs, subject, args.rate, args.seconds, args.payload_bytes),
            daemon=True,
        )
        publisher.start()
        ours.recv()
        time.sleep(1)  # settle after the connection storm
        rss_before = server.rss_mb()
        sockets_before = server.sockets()
        sampler.start()
        cpu0, wall0, began = server.cpu_seconds(), time.monotonic(), time.time()
        for _, pipe in clients:
            pipe.send("go")
        ours.send("go")
        seqs, failed_publishes, publish_seconds, lag = ours.recv()
        cpu_publishing = server.cpu_seconds() - cpu0
        wall_publishing = time.monotonic() - wall0
        for _, pipe in clients:
            pipe.send((seqs, args.grace))
        reports = [pipe.recv() for _, pipe in clients]
        cpu = server.cpu_seconds() - cpu0
        wall = time.monotonic() - wall0
        ended = time.time()
        time.sleep(0.5)
        rss_after = server.rss_mb()
        sockets_after = server.sockets()
        sampler.done.set()
        sampler.join()
        time.sleep(HEARTBEAT_SECONDS)  # one more report, counting the whole run
        live = server.live_counters()
    except BaseException:
        print(f"--- {subject} log:\n{server.tail()}", file=sys.stderr)
        raise
    finally:
        sampler.done.set()
        server.stop()
        for proc, _ in clients:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        if publisher is not None:
            publisher.join(5)
            if publisher.is_alive():
                publisher.kill()
    latencies: list[float] = []
    closed: dict[str, int] = {}
    for report in reports:
        latencies.extend(array("d", report["latencies"]))
        for code, n in report["closed"].items():
            closed[code] = closed.get(code, 0) + n
    latencies.sort()
    readers = sum(r["readers"] for r in reports)
    return Result(
        subject=subject,
        normal=args.clients,
        stalled=stalled,
        connected=connected,
        connect_errors=errors,
        sent=len(seqs),
        failed=failed_publishes,
        publish_seconds=publish_seconds,
        publish_lag=lag,
        expected=len(seqs) * readers,
        received=sum(r["received"] for r in reports),
        duplicates=sum(r["duplicates"] for r in reports),
        resyncs=sum(r["resyncs"] for r in reports),
        gaps=sum(r["gaps"] for r in reports),
        closed=closed,
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] * 1000) if latencies else float("nan"),
        cpu_percent=100 * cpu / wall,
        cpu_percent_publishing=100 * cpu_publishing / wall_publishing,
        rss_idle=rss_idle,
        rss_before=rss_before,
        rss_peak=max(sampler.peak, rss_after),
        rss_after=rss_after,
        client_cpu=[100 * r["cpu"] / r["wall"] for r in reports],
        error_sample=sample,
        sockets=(sockets_before, sockets_after),
        live=live,
        probe=probe_rows(server.probe, began, ended),
    )


# --- output ----------------------------------------------------------------------
def table(results: list[Result], args: argparse.Namespace) -> str:
    def col(r: Result) -> str:
        name = SUBJECTS[r.subject]
        return f"{name} +{r.stalled} stalled" if r.stalled else name

    rows: list[tuple[str, list[str]]] = [
        (
            "clients reading (+ stalled)",
            [f"{r.normal} (+{r.stalled})" for r in results],
        ),
        (
            "connected / failed",
            [f"{r.connected} / {r.connect_errors}" for r in results],
        ),
        (
            "deltas sent (in s, max lag ms)",
            [
                f"{r.sent} ({r.publish_seconds:.1f}, {r.publish_lag * 1000:.0f})"
                for r in results
            ],
        ),
        ("deliveries expected", [f"{r.expected:,}" for r in results]),
        ("deliveries received", [f"{r.received:,}" for r in results]),
        (
            "lost",
            [
                f"{r.expected - r.received:,} ({100 * (r.expected - r.received) / max(r.expected, 1):.1f}%)"
                for r in results
            ],
        ),
        ("deliveries/s", [f"{r.received / r.publish_seconds:,.0f}" for r in results]),
        ("resyncs (reading clients)", [str(r.resyncs) for r in results]),
        ("seq gaps / duplicates", [f"{r.gaps} / {r.duplicates}" for r in results]),
        (
            "closed by server",
            [
                ", ".join(f"{n}x{c}" for c, n in sorted(r.closed.items())) or "-"
                for r in results
            ],
        ),
        (
            "hub: frames, snapshots (1 per subscribe), drops, 4408 closes",
            [
                ", ".join(f"{r.live[k]:,}" for k in LIVE_COUNTERS) if r.live else "-"
                for r in results
            ],
        ),
        ("latency p50 ms", [f"{r.p50_ms:,.0f}" for r in results]),
        ("latency p99 ms", [f"{r.p99_ms:,.0f}" for r in results]),
        ("latency max ms", [f"{r.max_ms:,.0f}" for r in results]),
        (
            "server CPU % of a core: publishing, +drain",
            [f"{r.cpu_percent_publishing:.0f}, {r.cpu_percent:.0f}" for r in results],
        ),
        (
            "server RSS MB idle/before/peak/after",
            [
                f"{r.rss_idle:.0f}/{r.rss_before:.0f}/{r.rss_peak:.0f}/{r.rss_after:.0f}"
                for r in results
            ],
        ),
        (
            "server TCP connections: start, end",
            [f"{r.sockets[0]}, {r.sockets[1]}" for r in results],
        ),
        (
            "client procs CPU %",
            ["+".join(f"{c:.0f}" for c in r.client_cpu) for r in results],
        ),
    ]
    if args.probe:
        rows += [
            (
                "probe: GC pauses, ms; full ones, max ms",
                [r.probe.get("gc", "-") for r in results],
            ),
            (
                "probe: event loop lag p99 / max ms",
                [r.probe.get("lag", "-") for r in results],
            ),
        ]
    heads = [col(r) for r in results]
    first = max(len(label) for label, _ in rows)
    widths = [
        max(len(h), *(len(values[i]) for _, values in rows))
        for i, h in enumerate(heads)
    ]
    lines = [
        f"{args.clients} clients, {args.rate} deltas/s for {args.seconds:g} s, "
        f"payload pad {args.payload_bytes} B, {args.client_procs} client process(es), "
        f"grace {args.grace:g} s, queue max {args.queue_max or 'default'}",
        "  ".join(
            [" " * first, *(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
        ),
    ]
    for label, values in rows:
        cells = (v.rjust(w) for v, w in zip(values, widths, strict=True))
        lines.append("  ".join([label.ljust(first), *cells]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rate", type=int, default=50, help="deltas per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--stalled-percent",
        type=float,
        default=0,
        help="extra clients (%% of --clients) that never read, on tiny buffers",
    )
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--payload-bytes", type=int, default=200, help="padding in each payload"
    )
    parser.add_argument(
        "--grace", type=float, default=10, help="max seconds to drain after publishing"
    )
    parser.add_argument(
        "--queue-max",
        type=int,
        default=0,
        help="OPSCONSOLE_LIVE_QUEUE_MAX (default: settings)",
    )
    parser.add_argument(
        "--subjects",
        default=",".join(SUBJECTS),
        help=f"comma-separated, of {', '.join(SUBJECTS)}",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="record the app servers' GC pauses and event-loop lag",
    )
    args = parser.parse_args()
    subjects = [s.strip() for s in args.subjects.split(",") if s.strip()]
    unknown = set(subjects) - set(SUBJECTS)
    if unknown:
        parser.error(f"unknown subjects: {', '.join(sorted(unknown))}")
    stalled = round(args.clients * args.stalled_percent / 100)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    for key, value in RUN_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    root = Path(tempfile.mkdtemp(prefix="opsconsole-live-bench-"))
    root.chmod(0o755)
    results: list[Result] = []
    try:
        with backing_servers(root):
            cookie = prepare_database()
            for subject in subjects:
                for stuck in (0, stalled) if stalled else (0,):
                    result = run_subject(subject, args, cookie, root, stuck)
                    results.append(result)
                    print(
                        f"# {SUBJECTS[subject]} (+{stuck} stalled): "
                        f"{result.received:,}/{result.expected:,} delivered, "
                        f"p99 {result.p99_ms:,.0f} ms",
                        flush=True,
                    )
                    if result.error_sample:
                        print(f"#   connect errors: {result.error_sample}", flush=True)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if results:
        print(table(results, args))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-probed"]:
        serve_probed(sys.argv[2:])
    else:
        main()
