"""The hub reads snapshot seqs over a bounded set of Redis connections (#8)."""

import asyncio

from django.conf import settings

from apps.live import publish
from apps.live.hub import SEQ_READ_CONNECTIONS, Hub


async def test_read_seqs__200_snapshots_at_once__share_a_bounded_pool():
    # Given a hub (subscribed) and a topic with a known seq
    hub = Hub(redis_url=settings.REDIS_URL, queue_max=16)
    hub.subscribed.set()
    message = await asyncio.to_thread(publish, "flags", {"key": "f"}, key="f")
    assert message is not None

    # When 200 sockets subscribe at once (a reconnect storm)
    seqs = await asyncio.gather(
        *(hub.read_seqs(frozenset({"flags"})) for _ in range(200))
    )

    # Then every one reads the seq, over at most SEQ_READ_CONNECTIONS connections
    assert {s["flags"] for s in seqs} == {message.seq}
    assert hub._commands is not None
    # (idle count, attributes) and (in-use count, attributes)
    counts = hub._commands.connection_pool.get_connection_count()
    made = sum(count for count, _ in counts)
    assert 1 <= made <= SEQ_READ_CONNECTIONS
    await hub._commands.aclose()
