"""Azurite, the real Storage emulator (npm): its queue and table services on free loopback ports."""

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
        self._dir = tempfile.mkdtemp(prefix="azurite-")
        self._processes: list[tuple[subprocess.Popen[bytes], object]] = []
        self.port = self._start("queue")
        self.table_port = self._start("table")

    def _start(self, service: str) -> int:
        binary = ROOT / "node_modules" / ".bin" / f"azurite-{service}"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: `make test` runs `npm ci` first")
        port = _free_port()
        log_path = Path(self._dir) / f"azurite-{service}.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen(
            [
                str(binary),
                f"--{service}Host",
                "127.0.0.1",
                f"--{service}Port",
                str(port),
                "--location",
                str(Path(self._dir) / service),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",  # Azurite's own usage telemetry: no files in the temporary folder, nothing sent
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._processes.append((process, log))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.stop()
                raise RuntimeError(f"Azurite {service} exited: {log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Azurite {service} did not start in 30 s")

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};QueueEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/devstoreaccount1;"
        )

    def stop(self) -> None:
        for process, log in self._processes:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()  # type: ignore[attr-defined]
        self._processes.clear()
        shutil.rmtree(self._dir, ignore_errors=True)
