"""``python -m shared enqueue``: put a request on the request queue with azure-storage-queue.

The message is the request JSON, base64-encoded as the Functions host expects by default (the queue trigger also
takes plain JSON). The request is validated first: an invalid one is never queued.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

from .errors import InvalidRequest, PolicyRefused
from .request import parse_request
from .settings import Settings
from .storage import AZURITE_CONNECTION_STRING, storage_account

__all__ = ["AZURITE_CONNECTION_STRING", "encode_message", "enqueue", "enqueue_main", "queue_client"]

MAX_MESSAGE_BYTES = 64 * 1024


def encode_message(raw: bytes | str) -> str:
    """Validate a request and return the queue message text (base64 of compact JSON)."""
    parse_request(raw)  # an invalid request is never queued
    data = json.loads(raw)
    compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    message = base64.b64encode(compact).decode("ascii")
    if len(message) > MAX_MESSAGE_BYTES:
        raise InvalidRequest("the request is too large for a queue message (64 KiB after base64, about 48 KiB of JSON)")
    return message


def queue_client(queue_name: str, *, connection_string: str | None, account_url: str | None) -> Any:
    """A QueueClient from a connection string or, with an account URL, Entra ID (DefaultAzureCredential)."""
    from azure.storage.queue import QueueClient

    source = "--connection-string" if connection_string is not None else "--account-url"
    if connection_string is None and account_url is None:
        account = storage_account("queue")
        if account is not None:
            connection_string, account_url, source = account.connection_string, account.endpoint, account.setting
    try:
        if connection_string is not None:
            if connection_string.strip().lower() == "usedevelopmentstorage=true":
                connection_string = AZURITE_CONNECTION_STRING
            return QueueClient.from_connection_string(connection_string, queue_name)
        if account_url is not None:
            from azure.identity import DefaultAzureCredential

            return QueueClient(account_url, queue_name, credential=DefaultAzureCredential())
    except (ValueError, TypeError) as exc:  # what azure-storage-queue says of a string or an address it cannot parse
        reason = "not an address the SDK can parse" if isinstance(exc, TypeError) else str(exc).rstrip(".")
        raise _NoQueue(f"{source} cannot be used: {reason or type(exc).__name__}", setting=source) from None
    raise _NoQueue("no queue given: use --connection-string, --account-url, or set AzureWebJobsStorage")


class _NoQueue(Exception):
    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting  # an app setting (exit 4) rather than a flag or no queue at all (exit 2)


def enqueue(raw: bytes | str, *, connection_string: str | None = None, account_url: str | None = None) -> Any:
    """Validate, apply the app's policy, encode and send one request to ``REQUEST_QUEUE_NAME``; returns the sent
    message. What the app would refuse before any network call (a sensitive value inline, a target not in
    ALLOWED_TARGETS, a vault host not allowed, an address with user information) is refused here, and never queued:
    a secret value must never sit in a queue."""
    from . import policy

    settings = Settings.from_env()
    policy.plan(parse_request(raw), settings)
    message = encode_message(raw)
    client = queue_client(settings.request_queue_name, connection_string=connection_string, account_url=account_url)
    with client:
        return client.send_message(message)


def enqueue_main(raw: bytes, args: argparse.Namespace) -> int:
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    queue_name = Settings.from_env().request_queue_name
    try:
        sent = enqueue(raw, connection_string=args.connection_string, account_url=args.account_url)
    except InvalidRequest as exc:
        print(f"error: invalid request: {exc.message}", file=sys.stderr)
        return 2
    except PolicyRefused as exc:
        print(f"error: refused: {exc.code}: {exc.message}", file=sys.stderr)
        return 3
    except _NoQueue as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4 if exc.setting is not None and not exc.setting.startswith("--") else 2
    except ResourceNotFoundError:
        print(f"error: queue {queue_name!r} does not exist in that account (the infra creates it)", file=sys.stderr)
        return 4
    except (AzureError, ValueError) as exc:
        print(f"error: could not enqueue: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", file=sys.stderr)
        return 4
    print(json.dumps({"queue": queue_name, "messageId": sent.id, "insertedOn": str(sent.inserted_on)}))
    return 0
