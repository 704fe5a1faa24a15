"""Healing actions, one module per kind, each ``async def run(config, ctx)``.

``action_run`` validates a policy's config again (settings may have changed since it
was saved), runs the action under its timeout and turns any failure into a result.
"""

import asyncio
from typing import Any

import structlog
from pydantic import ValidationError

from apps.healing.actions import celery, command, postgres, python, redis, webhook
from apps.healing.actions.base import ActionKind, ActionResult, HealContext, excerpt

log = structlog.get_logger(__name__)

KINDS: dict[str, ActionKind] = {
    module.KIND.name: module.KIND
    for module in (webhook, command, celery, postgres, redis, python)
}


def action_config_errors(action: str, config: dict[str, Any]) -> list[str]:
    """Why ``config`` is not usable for ``action`` (empty when it is)."""
    kind = KINDS.get(action)
    if kind is None:
        return [f"unknown action {action!r}"]
    try:
        kind.config_model.model_validate(config)
    except ValidationError as exc:
        return [_error_text(error) for error in exc.errors()]
    return []


def _error_text(error: Any) -> str:
    path = ".".join(str(part) for part in error["loc"])
    return f"{path}: {error['msg']}" if path else str(error["msg"])


def action_describe(action: str, config: dict[str, Any]) -> str:
    """What the action would do, in one line (dry runs show this)."""
    kind = KINDS[action]
    return kind.describe(kind.config_model.model_validate(config))


def action_run(action: str, config: dict[str, Any], ctx: HealContext) -> ActionResult:
    """Run the action; a refusal, error or timeout is a failed result, never raised."""
    errors = action_config_errors(action, config)
    if errors:
        return ActionResult(False, excerpt("refused: " + "; ".join(errors)))
    kind = KINDS[action]
    try:
        return asyncio.run(
            asyncio.wait_for(
                kind.run(kind.config_model.model_validate(config), ctx), ctx.timeout
            )
        )
    except TimeoutError:
        return ActionResult(False, f"timed out after {ctx.timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure of the action is a result
        log.info("heal.action_raised", slug=ctx.slug, error=type(exc).__name__)
        return ActionResult(False, excerpt(f"{type(exc).__name__}: {exc}"))


__all__ = ["KINDS", "ActionResult", "HealContext", "action_config_errors", "action_run"]
