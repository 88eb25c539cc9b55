"""The baseline for `fanout.py`: a bare ASGI app that sends one payload straight to every socket.

No Django, no Channels, no channel layer: when a client sends
`{"go": {"rate": R, "count": N, "payload": "<frame json>"}}`, the app sends N frames at R per
second to every connected socket, each `{"sent_at": <unix time>, "seq": i, "frame": payload}`.
What it costs per delivery is the floor any application code is measured against.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

clients: set[Any] = set()
_tasks: set[asyncio.Task] = set()


async def broadcast(rate: float, count: int, payload: str) -> None:
    started = time.monotonic()
    for seq in range(count):
        delay = started + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        text = f'{{"sent_at":{time.time()!r},"seq":{seq},"frame":{payload}}}'
        message = {"type": "websocket.send", "text": text}
        for send in list(clients):
            await send(message)


async def application(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
            clients.add(send)
        elif message["type"] == "websocket.disconnect":
            clients.discard(send)
            return
        elif message.get("text"):
            go = json.loads(message["text"]).get("go")
            if go:
                task = asyncio.get_running_loop().create_task(
                    broadcast(go["rate"], go["count"], go["payload"]))
                _tasks.add(task)
                task.add_done_callback(_tasks.discard)
