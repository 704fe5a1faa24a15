import pytest
import redis
from django.conf import settings

from opsconsole.beat import beat_lock_key
from tests.procs import celery_beat, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_beat__second_beat_while_first_holds_lock__exits_nonzero_with_reason(tmp_path):
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(beat_lock_key())
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = celery_beat(tmp_path / "one")
    try:
        wait_until(
            lambda: client.get(beat_lock_key()),
            timeout=30,
            what=f"first beat to take the lock; log:\n{first.output()}",
        )
        holder = client.get(beat_lock_key())
        second = celery_beat(tmp_path / "two")
        wait_until(
            lambda: second.popen.poll() is not None,
            timeout=30,
            what="second beat to exit",
        )
        assert second.popen.returncode != 0
        assert "another beat" in second.output()
        assert client.get(beat_lock_key()) == holder
        assert first.popen.poll() is None
    finally:
        first.stop()
    assert client.get(beat_lock_key()) is None


def test_beat__lock_lost__first_beat_stops(tmp_path):
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(beat_lock_key())
    beat = celery_beat(tmp_path)
    try:
        wait_until(lambda: client.get(beat_lock_key()), timeout=30, what="lock taken")
        client.set(beat_lock_key(), "someone-else:1")
        wait_until(
            lambda: beat.popen.poll() is not None,
            timeout=30,
            what="beat to notice it lost the lock",
        )
        assert beat.popen.returncode != 0
        assert "lost the beat lock" in beat.output()
    finally:
        beat.stop()
        client.delete(beat_lock_key())
