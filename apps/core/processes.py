"""Run an argv (never through a shell) within a deadline, leaving no child behind."""

import asyncio
import contextlib
from collections.abc import Sequence


async def argv_run(argv: Sequence[str], timeout: float) -> tuple[int, bytes]:
    """Run ``argv`` (stdin from /dev/null, stderr into stdout): its exit code and
    output, or TimeoutError after ``timeout`` seconds.

    However the wait ends (this deadline, or a caller's own deadline cancelling
    it first), the child is killed and reaped before the exception goes on: a
    timed-out check must not leave its command running.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(timeout):
            output, _ = await process.communicate()
            code = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return code, output
