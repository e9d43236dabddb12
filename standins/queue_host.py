"""What the Functions host does with a queue-triggered function, so the trigger can be driven against Azurite.

The host (Core Tools) cannot run here. This plays its documented part and nothing more, reading the same
``host.json``: fetch messages (``batchSize``), hand each to the function as a real ``azure.functions.QueueMessage``
(``messageEncoding: none``: the text as stored), delete it when the function returns, make it visible again after
``visibilityTimeout`` when it raises, and move it to ``<queue>-poison`` when it raises on the ``maxDequeueCount``-th
dequeue.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage  # the class the Python worker hands to functions
from azure.storage.queue import QueueClient

HOST_JSON = json.loads((Path(__file__).resolve().parent.parent / "host.json").read_text())
QUEUES = HOST_JSON["extensions"]["queues"]


class QueueHost:
    def __init__(
        self,
        connection_string: str,
        queue_name: str,
        function: Callable[[func.QueueMessage], Awaitable[None]],
        *,
        retry_visibility_seconds: int = 0,  # host.json says 2 minutes; the tests do not wait
    ) -> None:
        self.queue = QueueClient.from_connection_string(connection_string, queue_name)
        self.poison = QueueClient.from_connection_string(connection_string, f"{queue_name}-poison")
        self.function = function
        self.max_dequeue_count = int(QUEUES["maxDequeueCount"])
        self.batch_size = int(QUEUES["batchSize"])
        self.retry_visibility_seconds = retry_visibility_seconds
        self.errors: list[BaseException] = []

    def create(self) -> None:
        for client in (self.queue, self.poison):
            try:
                client.create_queue()
            except Exception:  # noqa: S110 - already there
                pass

    async def poll_once(self) -> int:
        """Process what is visible now; returns how many messages were handed to the function."""
        handled = 0
        # One fetch of up to batchSize messages (iterating the pager would fetch again and again).
        pages = self.queue.receive_messages(messages_per_page=self.batch_size, visibility_timeout=30).by_page()
        for message in list(next(pages, [])):
            handled += 1
            body: Any = message.content
            queue_message = QueueMessage(
                id=message.id,
                body=body.encode("utf-8") if isinstance(body, str) else body,
                dequeue_count=message.dequeue_count,
                expiration_time=message.expires_on,
                insertion_time=message.inserted_on,
                time_next_visible=message.next_visible_on,
                pop_receipt=message.pop_receipt,
            )
            try:
                await self.function(queue_message)
            except Exception as exc:
                self.errors.append(exc)
                if message.dequeue_count >= self.max_dequeue_count:
                    self.poison.send_message(message.content)
                    self.queue.delete_message(message)
                else:
                    self.queue.update_message(message, visibility_timeout=self.retry_visibility_seconds)
            else:
                self.queue.delete_message(message)
        return handled

    async def drain(self, *, rounds: int = 20) -> None:
        for _ in range(rounds):
            if not await self.poll_once() and not self.queue.peek_messages(max_messages=1):
                return

    def remaining(self) -> list[str]:
        return [m.content for m in self.queue.peek_messages(max_messages=32)]

    def poisoned(self) -> list[str]:
        return [m.content for m in self.poison.peek_messages(max_messages=32)]
