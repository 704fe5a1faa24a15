"""``publish_many``: a batch of deltas in order, consecutive seqs, two round trips."""

import json

import redis
from django.conf import settings

from apps.live import publish, publish_many
from apps.live.publisher import channel
from tests.procs import wait_until


def test_publish_many__batch__in_order_with_consecutive_seqs_after_the_last():
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel())
    wait_until(
        lambda: client.pubsub_numsub(channel())[0][1] >= 1, timeout=5, what="subscribed"
    )
    try:
        before = publish("components", {"slug": "first"}, key="first")
        items = [(f"c{n}", {"slug": f"c{n}", "state": "healthy"}) for n in range(50)]
        sent = publish_many("components", items)

        got: list[dict] = []

        def all_received() -> bool:
            while message := pubsub.get_message(timeout=0.1):
                got.append(json.loads(message["data"]))
            return len(got) >= 51

        wait_until(all_received, timeout=5, what="51 messages")
    finally:
        pubsub.close()
        client.close()
    assert before is not None
    assert [m.seq for m in sent] == list(range(before.seq + 1, before.seq + 51))
    assert [(m["key"], m["seq"]) for m in got[1:]] == [(m.key, m.seq) for m in sent]
    assert got[1]["payload"] == {"slug": "c0", "state": "healthy"}


def test_publish_many__nothing__no_round_trip_no_seq_used():
    assert publish_many("components", []) == []
