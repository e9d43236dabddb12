"""A throw-away certificate authority for the HTTPS stand-ins (trustme)."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


class TestCA:
    __test__ = False  # not a pytest class

    def __init__(self, directory: Path) -> None:
        self._ca = trustme.CA()
        self._server = self._ca.issue_cert("127.0.0.1", "localhost", "::1")
        directory.mkdir(parents=True, exist_ok=True)
        self.bundle = directory / "test-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.bundle))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._server.configure_cert(context)
        return context
