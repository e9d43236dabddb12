"""A small threaded HTTP/1.1 server with a per-request hook, recording what it receives."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """One request a stand-in received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    note: str = ""
    peer: str = ""  # the client's address and port: one per connection
    at: float = field(default_factory=time.monotonic)  # when it arrived, comparable across stand-ins

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list -> JSON, bytes -> as is, None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False  # close the connection without answering
    trickle: float = 0.0  # seconds between the body's bytes (an answer that never stops arriving)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 16 clients connecting at once must not overflow the listen backlog


class StandIn:
    """Subclasses implement :meth:`handle`; :attr:`seen` lists every request, in order."""

    name = "stand-in"

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[Seen] = []
        self.latency = 0.0  # seconds added to every answer (benchmarks)
        self._lock = threading.Lock()
        self._faults: list[Reply] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK (~40 ms).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(
                    method=self.command,
                    path=parts.path,
                    query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    peer=f"{self.client_address[0]}:{self.client_address[1]}",
                )
                with stand_in._lock:
                    stand_in.seen.append(seen)
                    fault = stand_in._faults.pop(0) if stand_in._faults else None
                reply = fault or stand_in.handle(seen)
                seen.status = reply.status
                if reply.delay or stand_in.latency:
                    time.sleep(reply.delay or stand_in.latency)
                if reply.reset:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if isinstance(reply.body, bytes):
                    payload = reply.body
                elif reply.body is None:
                    payload = b""
                else:
                    payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json; charset=utf-8"} if payload else {}
                headers.update(reply.headers)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD" and reply.trickle:
                    for index in range(len(payload)):
                        try:
                            self.wfile.write(payload[index : index + 1])
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(reply.trickle)
                elif self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815

        self._server = _Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            # The handshake happens in the connection's own thread, not in the accept loop.
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self.scheme = "https" if tls is not None else "http"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> StandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, seen: Seen) -> Reply:
        raise NotImplementedError

    def fail_next(self, *replies: Reply) -> None:
        """The next requests get these replies, in order, before normal service resumes."""
        with self._lock:
            self._faults.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()
            self._faults.clear()


@contextlib.contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """One temporary folder for a run, the process's temporary folder while it lasts, removed at the end: what the
    SDKs (the exporter's offline storage) and Azurite put there goes with it."""
    work = tempfile.mkdtemp(prefix=prefix)
    previous = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = work
    try:
        yield Path(work)
    finally:
        tempfile.tempdir = previous[0]
        if previous[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous[1]
        shutil.rmtree(work, ignore_errors=True)
