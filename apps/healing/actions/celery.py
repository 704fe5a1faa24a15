"""Celery remediation through Celery control: restart worker pools, purge a queue."""

import asyncio
from typing import Any, Literal

from pydantic import model_validator

from apps.healing.actions.base import (
    ActionConfig,
    ActionKind,
    ActionResult,
    HealContext,
)


class Config(ActionConfig):
    operation: Literal["pool_restart", "purge"]
    # pool_restart: these worker hostnames only (all when empty).
    workers: list[str] = []
    # purge: the queue emptied.
    queue: str | None = None

    @model_validator(mode="after")
    def _queue_for_purge(self) -> "Config":
        if (self.operation == "purge") != (self.queue is not None):
            raise ValueError("purge needs a queue, and only purge takes one")
        return self


def _pool_restart(config: Config, timeout: float) -> ActionResult:
    from opsconsole.celery import app

    # Celery waits the whole reply timeout when a named worker is silent: keep it
    # inside the action's own timeout so the answers that did come are reported.
    replies = app.control.pool_restart(
        destination=config.workers or None, reply=True, timeout=timeout * 0.8
    )
    answers = {
        host: answer for reply in replies or [] for host, answer in reply.items()
    }
    lines = [
        f"{host}: {answer.get('ok') or answer.get('error') or answer}"
        for host, answer in sorted(answers.items())
    ]
    silent = sorted(set(config.workers) - set(answers))
    lines += [f"{host}: no reply" for host in silent]
    # A worker without worker_pool_restarts answers with an error, not "ok".
    ok = bool(answers) and not silent and all("ok" in a for a in answers.values())
    return ActionResult(
        ok, "pool restart: " + ("; ".join(lines) or "no worker replied")
    )


def _purge(queue: str) -> ActionResult:
    from opsconsole.celery import app

    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel  # kombu's virtual channel
        count = channel.queue_purge(queue)
    return ActionResult(True, f"purged {count or 0} message(s) from {queue}")


async def run(config: Config, ctx: HealContext) -> ActionResult:
    if config.operation == "purge" and config.queue is not None:
        return await asyncio.to_thread(_purge, config.queue)
    return await asyncio.to_thread(_pool_restart, config, ctx.timeout)


def describe(config: Config) -> str:
    if config.operation == "purge":
        return f"purge queue {config.queue}"
    return f"restart the pools of {', '.join(config.workers) or 'every worker'}"


KIND = ActionKind("celery", Config, run, describe)
