import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit

import pytest

from apps.breakers.agent import Agent
from apps.breakers.engine import LocalBreaker
from apps.breakers.guard import Guard


class Down(Exception):
    """What a failing dependency raises in these tests."""


def fail(breaker: LocalBreaker, exc: Exception | None = None) -> None:
    exc = exc or Down("down")
    with pytest.raises(type(exc)), Guard(breaker, None):
        raise exc


def succeed(breaker: LocalBreaker) -> None:
    with Guard(breaker, None):
        pass


def fleet_state(agent: Agent, name: str = "dep") -> str:
    return agent.fleet.read_states([name])[name].get("state", "")


class GatedRedis:
    """A TCP relay to a real Redis that holds every request until ``open()``: a
    Redis that does not answer yet, without faking its answers."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._gate = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        port = self._server.getsockname()[1]
        self.url = parts._replace(netloc=f"127.0.0.1:{port}").geturl()
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        self._gate.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self._upstream)
            for src, dst, gated in (
                (client, upstream, True),
                (upstream, client, False),
            ):
                threading.Thread(
                    target=self._pump, args=(src, dst, gated), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, gated: bool) -> None:
        try:
            while data := src.recv(65536):
                if gated:
                    self._gate.wait()
                dst.sendall(data)
        except OSError:
            pass  # either side went away
        finally:
            src.close()
            dst.close()

    def __enter__(self) -> "GatedRedis":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.close()
        self._gate.set()
