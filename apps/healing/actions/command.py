"""Command: an allow-listed argv (OPSCONSOLE_HEALING_COMMANDS), never a shell."""

from django.conf import settings
from pydantic import Field, field_validator

from apps.core.processes import argv_run
from apps.healing.actions.base import (
    ActionConfig,
    ActionKind,
    ActionResult,
    HealContext,
    excerpt,
)


def allowed(argv: list[str]) -> bool:
    """Whether ``argv`` is exactly one of the commands the settings allow."""
    return argv in settings.OPSCONSOLE_HEALING_COMMANDS


class Config(ActionConfig):
    argv: list[str] = Field(min_length=1)
    expected_exit_codes: list[int] = Field(default=[0], min_length=1)

    # Configs are validated again before every run: the list may have shrunk.
    @field_validator("argv")
    @classmethod
    def _allowed(cls, argv: list[str]) -> list[str]:
        if not allowed(argv):
            raise ValueError("not in OPSCONSOLE_HEALING_COMMANDS")
        return argv


async def run(config: Config, ctx: HealContext) -> ActionResult:
    code, output = await argv_run(config.argv, ctx.timeout)
    text = output.decode(errors="replace")
    return ActionResult(
        code in config.expected_exit_codes, excerpt(f"exit {code}\n{text}")
    )


def describe(config: Config) -> str:
    return f"run {config.argv!r}"


KIND = ActionKind("command", Config, run, describe)
