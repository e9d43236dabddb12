"""``python -m shared``: the operator's command line (docs/reference.md, "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .outcome import Outcome
from .request import STEP_NAMES
from .settings import Settings, SettingsError

__all__ = ["EXIT_CODES", "main", "request_from_args"]

EXIT_OK, EXIT_INVALID, EXIT_REJECTED, EXIT_FAILED = 0, 2, 3, 4


def exit_code(outcome: Outcome) -> int:
    """From the outcome's kind: succeeded or validated, an invalid request, rejected, failed."""
    if outcome.ok:
        return EXIT_OK
    if outcome.outcome == "failed":
        return EXIT_FAILED
    return EXIT_INVALID if outcome.invalid else EXIT_REJECTED


EXIT_CODES = {
    "succeeded or validated": EXIT_OK,
    "invalid": EXIT_INVALID,
    "rejected": EXIT_REJECTED,
    "failed": EXIT_FAILED,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared",
        description="Authorize Microsoft Entra provisioning connections (Graph synchronization/acquireAccessToken).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    acquire = commands.add_parser(
        "acquire",
        help="run the pipeline once with DefaultAzureCredential and print the outcome",
        description="Exit status: 0 succeeded or validated, 2 invalid, 3 rejected, 4 failed.",
    )
    source = acquire.add_mutually_exclusive_group(required=True)
    source.add_argument("--request", metavar="FILE", help="a request JSON file (docs/reference.md); - for stdin")
    source.add_argument("--service-principal", metavar="ID", help="service principal object id")
    source.add_argument("--application", metavar="ID", help="application object id (not the appId)")
    acquire.add_argument(
        "--credential",
        action="append",
        default=[],
        metavar="KEY=VALUE|KEY=@REF",
        help="a credential; @REF is a Key Vault reference (repeat for each key)",
    )
    acquire.add_argument("--correlation-id", help="echoed in the outcome and telemetry")
    acquire.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and resolve references; of the steps only validateCredentials runs",
    )
    acquire.add_argument(
        "--step",
        action="append",
        default=[],
        choices=STEP_NAMES,
        help="a lifecycle step, in the order to run (repeat); default acquireAccessToken",
    )
    acquire.add_argument("--job-id", help="the synchronization job (default: the service principal's only job)")
    acquire.add_argument("--reset-scope", help="restartJob's reset scope, e.g. QuarantineState or 'Watermark,Escrows'")
    acquire.add_argument(
        "--replace-secrets", action="store_true", help="saveSecrets replaces the whole stored set with the request's"
    )
    acquire.add_argument("--on-demand-rule", metavar="RULE_ID", help="provisionOnDemand's synchronization rule id")
    acquire.add_argument(
        "--on-demand-subject",
        action="append",
        default=[],
        metavar="OBJECT_ID[:User|Group]",
        help="an object for provisionOnDemand (repeat, 1 to 5; default type User)",
    )

    enqueue = commands.add_parser("enqueue", help="put a request on the request queue")
    enqueue.add_argument("--request", metavar="FILE", required=True, help="a request JSON file; - for stdin")
    enqueue.add_argument(
        "--connection-string",
        help="Storage connection string (default: AzureWebJobsStorage, or --account-url with DefaultAzureCredential)",
    )
    enqueue.add_argument("--account-url", help="https://<account>.queue.core.windows.net, signed in with Entra ID")

    connections = commands.add_parser(
        "connections",
        help="stored connections: put, get, list, delete, run",
        description="Exit status: 0 done, 2 invalid, 3 refused or not found, 4 failed (retry may help).",
    )
    verbs = connections.add_subparsers(dest="verb", required=True)
    put = verbs.add_parser("put", help="create or replace a connection from a request file")
    put.add_argument("name")
    put.add_argument("--request", metavar="FILE", required=True, help="the request JSON; - for stdin")
    put.add_argument("--if-match", metavar="ETAG", help="replace only if the connection still has this ETag")
    put.add_argument("--if-none-match", metavar="*", help="'*': create only, never replace")
    for verb, text in (("get", "show a connection"), ("run", "run a connection's steps now")):
        verbs.add_parser(verb, help=text).add_argument("name")
    remove = verbs.add_parser("delete", help="delete a connection")
    remove.add_argument("name")
    remove.add_argument("--if-match", metavar="ETAG", help="delete only if the connection still has this ETag")
    listing = verbs.add_parser("list", help="list connections, a page at a time")
    listing.add_argument("--top", default=None, help="page size, 1 to 100 (default 50)")
    listing.add_argument("--continuation-token", default=None, help="the token a previous page gave")

    commands.add_parser("demo", help="the whole pipeline offline against local stand-ins")
    return parser


def request_from_args(args: argparse.Namespace) -> Any:
    """The request JSON value the arguments describe (validated later by the pipeline, like any request)."""
    flags = (
        args.credential,
        args.correlation_id,
        args.dry_run,
        args.step,
        args.job_id,
        args.reset_scope,
        args.replace_secrets,
        args.on_demand_rule,
        args.on_demand_subject,
    )
    if args.request is not None:
        if any(flags):
            raise _UsageError("--request FILE takes the whole request; drop the other request flags")
        return _read(args.request)
    credentials = []
    for item in args.credential:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _UsageError(f"--credential {key or item!r}: expected KEY=VALUE or KEY=@REF")
        if value.startswith("@") and not value.startswith("@Microsoft.KeyVault("):
            credentials.append({"key": key, "secretRef": value[1:]})
        elif value.startswith("@"):
            credentials.append({"key": key, "secretRef": value})
        else:
            credentials.append({"key": key, "value": value})
    request: dict[str, Any] = {"credentials": credentials}
    if args.service_principal is not None:
        request["servicePrincipalId"] = args.service_principal
    else:
        request["applicationId"] = args.application
    if args.correlation_id is not None:
        request["correlationId"] = args.correlation_id
    if args.dry_run:
        request["dryRun"] = True
    if args.step:
        request["steps"] = list(args.step)
    if args.job_id is not None:
        request["jobId"] = args.job_id
    if args.reset_scope is not None:
        request["resetScope"] = args.reset_scope
    if args.replace_secrets:
        request["replaceSecrets"] = True
    if args.on_demand_rule is not None or args.on_demand_subject:
        subjects = []
        for item in args.on_demand_subject:
            object_id, _, kind = item.partition(":")
            subjects.append({"objectId": object_id, "objectTypeName": kind or "User"})
        request["onDemand"] = {"ruleId": args.on_demand_rule or "", "subjects": subjects}
    return request


class _UsageError(Exception):
    pass


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror}") from None


async def _acquire(raw: Any) -> Outcome:
    from .runtime import build_pipeline
    from .telemetry import flush

    pipeline = build_pipeline(Settings.from_env(), credential="default")
    try:
        return await pipeline.run(raw, trigger="cli")
    finally:
        await pipeline.close()
        flush()


async def _connections(args: argparse.Namespace) -> int:
    from . import connections as ops
    from .errors import ProvisioningError
    from .runtime import build_pipeline, build_store
    from .telemetry import flush

    pipeline = build_pipeline(Settings.from_env(), credential="default")
    store = build_store(pipeline)
    try:
        if args.verb == "run":
            outcome = await ops.run_connection(store, pipeline, args.name)
            print(json.dumps(outcome.to_dict(), indent=2))
            return exit_code(outcome)
        if args.verb == "put":
            record, _ = await ops.put_connection(
                store,
                pipeline.settings,
                args.name,
                _read(args.request),
                if_match=args.if_match,
                if_none_match=args.if_none_match,
            )
            print(json.dumps(record.to_dict(), indent=2))
        elif args.verb == "get":
            print(json.dumps((await ops.get_connection(store, args.name)).to_dict(), indent=2))
        elif args.verb == "delete":
            await ops.delete_connection(store, args.name, if_match=args.if_match)
            print(json.dumps({"deleted": args.name}))
        else:
            records, token = await ops.list_connections(store, top=args.top, continuation=args.continuation_token)
            print(json.dumps({"value": [r.to_dict() for r in records], "continuationToken": token}, indent=2))
        return EXIT_OK
    except ProvisioningError as error:
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        if error.retryable:
            return EXIT_FAILED
        return EXIT_INVALID if error.http_status == 400 else EXIT_REJECTED
    finally:
        await store.close()
        await pipeline.close()
        flush()


def _demo() -> int:
    """The offline demo lives with the stand-ins (``standins/``), which the deployed app does not ship."""
    try:
        from standins.demo import run_demo
    except ImportError:
        print("error: the demo needs the project's standins/ folder; run it from the project root", file=sys.stderr)
        return 1
    result: int = run_demo()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "acquire":
            outcome = asyncio.run(_acquire(request_from_args(args)))
            print(json.dumps(outcome.to_dict(), indent=2))
            return exit_code(outcome)
        if args.command == "connections":
            return asyncio.run(_connections(args))
        if args.command == "enqueue":
            from .queueing import enqueue_main

            return enqueue_main(_read(args.request), args)
        return _demo()
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
