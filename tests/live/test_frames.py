"""Delta frames stay under the WebSocket server's frame limit, and every item arrives."""

import json

import pytest

from apps.live import publish
from apps.live.connection import Delta, delta_frames
from apps.live.publisher import MAX_PAYLOAD_BYTES


def _delta(seq: int, size: int) -> Delta:
    return Delta("events", seq, str(seq), {"blob": "x" * size}, "", 0.0)


def test_delta_frames__tick_over_limit__split_in_order_under_limit():
    items = [_delta(seq, 60_000) for seq in range(1, 41)]

    frames = delta_frames(items, limit=512 * 1024)

    assert len(frames) > 1
    assert all(len(frame.text) <= 512 * 1024 for frame in frames)
    decoded = [json.loads(frame.text) for frame in frames]
    assert {message["type"] for message in decoded} == {"deltas"}
    seqs = [item["seq"] for message in decoded for item in message["items"]]
    assert seqs == list(range(1, 41))
    assert [d.seq for frame in frames for d in frame.items] == seqs


def test_delta_frames__small_tick__one_frame():
    frames = delta_frames([_delta(1, 10), _delta(2, 10)])

    assert len(frames) == 1
    assert [item["seq"] for item in json.loads(frames[0].text)["items"]] == [1, 2]


def test_publish__payload_over_limit__refused_before_sequence_used():
    with pytest.raises(ValueError, match="exceeds"):
        publish("events", {"blob": "x" * MAX_PAYLOAD_BYTES})
