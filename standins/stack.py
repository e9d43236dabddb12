"""All stand-ins together, with the environment that points the app at them."""

from __future__ import annotations

from pathlib import Path

from .graph import GraphStandIn
from .identity import IdentityStandIn
from .ingestion import IngestionStandIn
from .keyvault import KeyVaultStandIn
from .tls import TestCA


class Stack:
    def __init__(self, ca: TestCA, *, client_id: str | None = None) -> None:
        self.ca = ca
        tls = ca.server_context()
        self.identity = IdentityStandIn(client_id=client_id).start()
        self.keyvault = KeyVaultStandIn(self.identity, tls).start()
        self.graph = GraphStandIn(self.identity, tls).start()
        self.ingestion = IngestionStandIn(self.identity, tls).start()

    @property
    def standins(self) -> list:
        return [self.identity, self.keyvault, self.graph, self.ingestion]

    def environment(self) -> dict[str, str]:
        """App settings and the standard variables azure-identity and the TLS stack read."""
        return {
            **self.identity.environment(),
            "GRAPH_ENDPOINT": self.graph.url,
            "GRAPH_SCOPE": "https://graph.microsoft.com/.default",
            "KEY_VAULT_URI": self.keyvault.url,
            "REQUEST_QUEUE_NAME": "acquire-access-token",
            "SWEEP_SCHEDULE": "0 0 6 * * *",
            "CONNECTION_QUEUE_NAME": "connection-work",
            "GRAPH_MAX_ATTEMPTS": "4",
            "GRAPH_TIMEOUT_SECONDS": "5",
            "SSL_CERT_FILE": str(Path(self.ca.bundle)),
            "REQUESTS_CA_BUNDLE": str(Path(self.ca.bundle)),
            "APPLICATIONINSIGHTS_CONNECTION_STRING": self.ingestion.connection_string,
            # Offline: no statsbeat to Microsoft's endpoints, no cloud metadata (IMDS) lookups, and no SDK stats (the
            # exporter's own metrics about its sends, a second meter provider that exports once more at exit).
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
            # Every trace, so that the dependency tests do not depend on the default rate-limited sampler.
            "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
        }

    def reset(self) -> None:
        for standin in self.standins:
            standin.reset()
        self.identity.issued.clear()
        self.graph.authorized.clear()

    def stop(self) -> None:
        for standin in self.standins:
            standin.stop()
