"""Celery beat that refuses to run while another beat holds the fleet-wide lock.

Exactly one beat may schedule (ARCHITECTURE "Processes"). The lock is a Redis key with
a TTL that the running beat renews on every tick; a second beat finds it held and exits
with a clear message, and a beat that loses its lock (Redis flushed, a long pause)
stops rather than schedule twice.
"""

import os
import socket
import sys
from typing import Any

import redis
import structlog
from celery.beat import PersistentScheduler
from django.conf import settings

log = structlog.get_logger("opsconsole.beat")

LOCK_TTL_SECONDS = 30
RENEW_EVERY_SECONDS = 5.0
# Renew only while we still own the key.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def beat_lock_key() -> str:
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}beat:lock"


class LockedScheduler(PersistentScheduler):
    """A PersistentScheduler guarded by a renewed Redis lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._renewed_at = 0.0
        self._holds_lock = False
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        # Beat also builds a lazy scheduler just to print its banner; only the one
        # that really schedules (setup_schedule runs) takes the lock.
        self._acquire()
        super().setup_schedule()

    def _acquire(self) -> None:
        if not self._redis.set(
            beat_lock_key(), self._owner, nx=True, ex=LOCK_TTL_SECONDS
        ):
            holder = self._redis.get(beat_lock_key())
            who = holder.decode() if isinstance(holder, bytes) else "another beat"
            log.error("beat.lock_held", holder=who)
            sys.exit(
                f"celery beat: another beat ({who}) holds {beat_lock_key()}; exiting"
            )
        self._holds_lock = True
        log.info("beat.lock_acquired", owner=self._owner)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = self.app.now().timestamp()
        if now - self._renewed_at >= RENEW_EVERY_SECONDS:
            try:
                renewed = self._redis.eval(
                    _RENEW, 1, beat_lock_key(), self._owner, LOCK_TTL_SECONDS * 1000
                )
            except redis.RedisError as exc:
                # Redis is also the broker: nothing can be sent until it returns. Keep
                # ticking; if another beat took the lock meanwhile the next renew fails.
                log.warning("beat.lock_unreachable", error=str(exc))
                renewed = 1
            if not renewed:
                log.error("beat.lock_lost", owner=self._owner)
                # Celery's beat loop turns SystemExit into a clean exit 0; a lost lock
                # must look like a failure to the supervisor, and the schedule file now
                # belongs to the other beat, so leave at once.
                sys.stderr.write(
                    "celery beat: lost the beat lock to another beat; exiting\n"
                )
                sys.stderr.flush()
                os._exit(3)
            self._renewed_at = now
        interval: float = super().tick(*args, **kwargs)
        return min(interval, RENEW_EVERY_SECONDS)

    def close(self) -> None:
        super().close()
        # Celery calls close() once from the loop and again at exit.
        if self._holds_lock:
            self._holds_lock = False
            self._redis.eval(_RELEASE, 1, beat_lock_key(), self._owner)
            log.info("beat.lock_released", owner=self._owner)
