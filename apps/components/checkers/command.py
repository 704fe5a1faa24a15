"""Command: run an argv list (never through a shell) and judge its exit code."""

from pydantic import Field

from apps.components.checkers.base import (
    HEALTHY,
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
)
from apps.core.processes import argv_run

_OUTPUT_LIMIT = 2000


class Config(CheckConfig):
    argv: list[str] = Field(min_length=1)
    expected_exit_codes: list[int] = Field(default=[0], min_length=1)


async def check(config: Config, timeout: float) -> CheckOutcome:
    watch = Stopwatch()
    code, output = await argv_run(config.argv, timeout)
    details = {
        "exit_code": code,
        "output": output.decode(errors="replace")[-_OUTPUT_LIMIT:],
    }
    status = HEALTHY if code in config.expected_exit_codes else UNHEALTHY
    return CheckOutcome(status, watch.ms(), f"exit code {code}", details)


KIND = CheckerKind("command", Config, check)
