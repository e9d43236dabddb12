"""Azurite, the real Storage emulator (npm), started on a free loopback port for the queue tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Azurite:
    def __init__(self) -> None:
        binary = ROOT / "node_modules" / ".bin" / "azurite-queue"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: `make test` runs `npm ci` first")
        self.port = _free_port()
        self._dir = tempfile.mkdtemp(prefix="azurite-")
        self._log = open(Path(self._dir) / "azurite.log", "w")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [
                str(binary),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                str(self.port),
                "--location",
                self._dir,
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Azurite exited: {(Path(self._dir) / 'azurite.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Azurite did not start in 30 s")

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};QueueEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;"
        )

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)
