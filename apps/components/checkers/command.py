"""Command: run an argv list (never through a shell) and judge its exit code."""

import asyncio
import contextlib

from pydantic import Field

from apps.components.checkers.base import (
    HEALTHY,
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
)

_OUTPUT_LIMIT = 2000


class Config(CheckConfig):
    argv: list[str] = Field(min_length=1)
    expected_exit_codes: list[int] = Field(default=[0], min_length=1)


async def check(config: Config, timeout: float) -> CheckOutcome:
    watch = Stopwatch()
    process = await asyncio.create_subprocess_exec(
        *config.argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    code = process.returncode
    details = {
        "exit_code": code,
        "output": output.decode(errors="replace")[-_OUTPUT_LIMIT:],
    }
    status = HEALTHY if code in config.expected_exit_codes else UNHEALTHY
    return CheckOutcome(status, watch.ms(), f"exit code {code}", details)


KIND = CheckerKind("command", Config, check)
