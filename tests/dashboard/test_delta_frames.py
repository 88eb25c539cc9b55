"""A frame of many changes goes out in parts small enough for daphne to send."""

from __future__ import annotations

import json

from dashboard import hub
from dashboard.hub import delta_frames


def events(count: int) -> list[dict]:
    return [{"id": f"run-{i}", "version": i, "run": {"name": "x" * 500}} for i in range(count)]


def encoded(count: int) -> list[str]:
    return [json.dumps(event) for event in events(count)]


def test_a_small_frame_is_one_message_with_position_and_counts():
    frames = delta_frames("7.42", encoded(3), {"ready": 2})

    assert [json.loads(frame) for frame in frames] == [
        {"type": "deltas", "position": "7.42", "deltas": events(3), "counts": {"ready": 2}}]


def test_a_large_frame_is_split_and_only_its_last_part_carries_position_and_counts(monkeypatch):
    monkeypatch.setattr(hub, "MAX_FRAME_BYTES", 4096)

    frames = delta_frames("7.42", encoded(40), {"ready": 2})
    parts = [json.loads(frame) for frame in frames]

    assert len(parts) > 1
    assert all(len(frame) <= 4096 + 600 for frame in frames)  # the limit, plus one event
    assert [event for part in parts for event in part["deltas"]] == events(40)
    assert all("position" not in part and "counts" not in part for part in parts[:-1])
    assert parts[-1]["position"] == "7.42"
    assert parts[-1]["counts"] == {"ready": 2}
