"""Keep Microsoft Entra provisioning connections authorized: the package behind the Azure Functions triggers.

Plain Python, no ``azure.functions``. The request and its outcome: ``request``, ``keys`` (Graph's
synchronizationSecret keys), ``outcome``, ``errors``. Getting there: ``references`` (Key Vault references and the
resolver), ``graph`` (one ``send`` and a function per synchronization endpoint), ``stepnames`` (the step table)
and ``steps`` (the credential lifecycle), ``pipeline`` (the runner). Remembering: ``store`` and ``connections``,
``rotation`` (Key Vault events), ``sweep`` (the daily health read). Around them: ``settings``, ``telemetry``,
``http_api`` and ``triggers`` (HTTP, queue, Event Grid and timer semantics), ``openapi`` and ``swagger``,
``health``, ``runtime`` (builds the process's ``container`` of clients), ``storage`` (the app's storage account),
``cli`` and ``queueing``.
"""
