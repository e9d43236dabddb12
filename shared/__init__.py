"""Authorize Microsoft Entra provisioning connections: the pipeline behind the Azure Functions triggers.

Plain Python, no ``azure.functions``: ``request`` (the request model), ``keys`` (Graph's synchronizationSecret
keys), ``references`` (Key Vault references), ``graph`` (the Graph call), ``pipeline``, ``outcome``,
``telemetry``, ``settings``, ``http_api`` (HTTP semantics), ``runtime`` (process-wide clients) and ``cli``.
"""
