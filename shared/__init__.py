"""Keep Microsoft Entra provisioning connections authorized: the package behind the Azure Functions triggers.

Plain Python, no ``azure.functions``. The request and its outcome: ``request``, ``keys`` (Graph's
synchronizationSecret keys), ``outcome``, ``errors``. Getting there: ``references`` (Key Vault references and the
resolver), ``graph`` (one ``send`` and a function per synchronization endpoint), ``steps`` (the credential
lifecycle), ``pipeline`` (the runner). Remembering: ``store`` and ``connections``, ``rotation`` (Key Vault events),
``sweep`` (the daily health read). Around them: ``settings``, ``telemetry``, ``http_api`` and ``triggers`` (HTTP,
queue, Event Grid and timer semantics), ``openapi`` and ``swagger``, ``health``, ``runtime`` (process-wide
clients), ``cli`` and ``queueing``.
"""
