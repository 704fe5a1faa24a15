"""Redis access for breakers: keys, the Lua scripts and their replies."""

import json
from dataclasses import dataclass
from typing import Any

import redis

from apps.breakers import lua
from apps.breakers.config import BreakerConfig, State

# Short timeouts: a hung Redis must degrade breakers, not hang callers.
TIMEOUT = 0.5


@dataclass(frozen=True, slots=True)
class Reply:
    """The fleet's view of one breaker after a script ran (or a transition message)."""

    state: State
    gen: int
    remaining_s: float
    wait_ms: int
    from_state: str
    reason: str
    calls: int
    failures: int
    slow: int
    extra: int

    @classmethod
    def parse(cls, raw: list[Any]) -> "Reply":
        state, gen, opened_at, wait_ms, now, from_, why, c, f, s, extra = raw
        state = State(state.decode())
        remaining = max(0, int(opened_at) + int(wait_ms) - int(now)) / 1000
        return cls(
            state,
            int(gen),
            remaining if state is State.OPEN else 0.0,
            int(wait_ms),
            from_.decode(),
            why.decode(),
            int(c),
            int(f),
            int(s),
            int(extra),
        )

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> "Reply":
        """A transition as the scripts publish it on the channel."""
        state = State(data["state"])
        remaining = max(0, data["opened_at"] + data["wait_ms"] - data["now"]) / 1000
        return cls(
            state,
            int(data["gen"]),
            remaining if state is State.OPEN else 0.0,
            int(data["wait_ms"]),
            data["from"],
            data["reason"],
            0,
            0,
            0,
            0,
        )


class Fleet:
    """One Redis (URL and key prefix) holding the state of every breaker."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT
        )
        self._record = self.client.register_script(lua.RECORD)
        self._permit = self.client.register_script(lua.PERMIT)
        self._set = self.client.register_script(lua.SET)

    @property
    def channel(self) -> str:
        return f"{self.prefix}breakers"

    def keys(self, name: str) -> list[str]:
        base = f"{self.prefix}breaker:{name}"
        return [base, base + ":w"]

    def _args(self, name: str, config: BreakerConfig, *rest: object) -> list[Any]:
        return [name, self.channel, config.to_json(), *rest]

    def record_many(
        self, batches: list[tuple[str, BreakerConfig, tuple[int, ...], str]]
    ) -> list[Reply]:
        """Merge ``(name, config, (gen, calls, failures, slow, released), proposal)``
        batches into the fleet windows in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for name, config, batch, proposal in batches:
            self._record(
                keys=self.keys(name),
                args=self._args(name, config, *batch, proposal),
                client=pipe,
            )
        return [Reply.parse(raw) for raw in pipe.execute()]

    def permit(self, name: str, config: BreakerConfig) -> Reply:
        """Take a half-open permit (moving OPEN to HALF_OPEN when its wait is over)."""
        raw = self._permit(keys=self.keys(name), args=self._args(name, config))
        return Reply.parse(raw)

    def set_state(
        self, name: str, config: BreakerConfig, to: State, reason: str
    ) -> Reply:
        """Move the breaker to ``to`` whatever its state (operators' actions)."""
        raw = self._set(
            keys=self.keys(name), args=self._args(name, config, to.value, reason)
        )
        return Reply.parse(raw)

    def load_config(self, name: str) -> BreakerConfig | None:
        raw = self.client.hget(self.keys(name)[0], "config")
        return BreakerConfig.from_json(raw) if raw else None

    def load_configs(self, names: list[str]) -> dict[str, BreakerConfig | None]:
        """``load_config`` of each name, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.keys(name)[0], "config")
        raws = pipe.execute()
        return {
            name: BreakerConfig.from_json(raw) if raw else None
            for name, raw in zip(names, raws, strict=True)
        }

    def store_configs(self, configs: dict[str, BreakerConfig]) -> None:
        """``store_config`` of each, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for name, config in configs.items():
            pipe.hset(self.keys(name)[0], "config", config.to_json())
            message = {"name": name, "config": config.as_dict()}
            pipe.publish(self.channel, json.dumps(message))
        pipe.execute()

    def store_config(self, name: str, config: BreakerConfig) -> None:
        """Keep the config beside the state, so a first use needs no database,
        and push it to every process."""
        self.client.hset(self.keys(name)[0], "config", config.to_json())
        message = {"name": name, "config": config.as_dict()}
        self.client.publish(self.channel, json.dumps(message))

    def read_states(self, names: list[str]) -> dict[str, dict[str, str]]:
        """Read-only view of the fleet hashes (no transition is made)."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys(name)[0])
        rows = pipe.execute()
        return {
            name: {k.decode(): v.decode() for k, v in row.items()}
            for name, row in zip(names, rows, strict=True)
        }
