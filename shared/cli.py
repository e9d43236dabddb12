"""``python -m shared``: the operator's command line (docs/reference.md, "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .outcome import Outcome
from .request import STEP_NAMES
from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from .errors import ProvisioningError
    from .pipeline import Pipeline

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
    # --verbose before or after the command; SUPPRESS keeps a command's parser from resetting the other one's value
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also log the details (retries, token and storage messages, the outcome record) to stderr",
    )
    parser = argparse.ArgumentParser(
        prog="python -m shared",
        description="Authorize Microsoft Entra provisioning connections (Graph synchronization/acquireAccessToken).",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True)

    acquire = commands.add_parser(
        "acquire",
        parents=[common],
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

    enqueue = commands.add_parser("enqueue", help="put a request on the request queue", parents=[common])
    enqueue.add_argument("--request", metavar="FILE", required=True, help="a request JSON file; - for stdin")
    enqueue.add_argument(
        "--connection-string",
        help="Storage connection string (default: AzureWebJobsStorage, or --account-url with DefaultAzureCredential)",
    )
    enqueue.add_argument("--account-url", help="https://<account>.queue.core.windows.net, signed in with Entra ID")

    bind = commands.add_parser(
        "bind",
        help="bind a Key Vault secret to its targets and endpoints (tags on its current version)",
        description="Sets the tags provisioning-targets and provisioning-endpoints on the secret's current version, "
        "keeping its other tags, with your own credential (DefaultAzureCredential; needs Key Vault Secrets Officer). "
        "The app sends the secret only to those targets, with only addresses under those endpoints. "
        "Exit status: 0 bound, 2 invalid, 3 secret not found, 4 failed.",
        parents=[common],
    )
    bind.add_argument("--secret", required=True, metavar="REF", help="a secretRef in any of the app's forms")
    bind.add_argument(
        "--target",
        action="append",
        default=[],
        required=True,
        metavar="OBJECT_ID",
        help="a service principal's or application's object id (repeat; about six fit in a tag)",
    )
    bind.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="URL",
        help="an https://host[:port][/path] prefix the secret's addresses must match (repeat); none: no address",
    )

    commands.add_parser(
        "verify",
        help="preflight: Graph permission, Key Vault, the connections table and both queues, each with its fix",
        description="Exit status: 0 every check passed, 4 a check failed (each failed check says its fix).",
        parents=[common],
    )

    connections = commands.add_parser(
        "connections",
        help="stored connections: put, get, list, delete, run",
        description="Exit status: 0 done, 2 invalid, 3 refused or not found, 4 failed (retry may help).",
        parents=[common],
    )
    verbs = connections.add_subparsers(dest="verb", required=True)
    put = verbs.add_parser("put", help="create or replace a connection from a request file", parents=[common])
    put.add_argument("name")
    put.add_argument("--request", metavar="FILE", required=True, help="the request JSON; - for stdin")
    put.add_argument("--if-match", metavar="ETAG", help="needed to replace: the ETag you read (get shows it), or '*'")
    put.add_argument("--if-none-match", metavar="*", help="'*': create only, never replace")
    for verb, text in (("get", "show a connection"), ("run", "run a connection's steps now")):
        verbs.add_parser(verb, help=text, parents=[common]).add_argument("name")
    remove = verbs.add_parser("delete", help="delete a connection", parents=[common])
    remove.add_argument("name")
    remove.add_argument(
        "--if-match", metavar="ETAG", help="needed: the ETag you read (get shows it), or '*' for whatever it is now"
    )
    listing = verbs.add_parser("list", help="list connections, a page at a time", parents=[common])
    listing.add_argument("--top", default=None, help="page size, 1 to 100 (default 50)")
    listing.add_argument("--continuation-token", default=None, help="the token a previous page gave")
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
    from .pipeline import Invocation
    from .telemetry import flush

    pipeline = _build_pipeline()
    try:
        return await pipeline.run(raw, Invocation(trigger="cli"))
    finally:
        await pipeline.close()
        flush()


class _SettingUnusable(Exception):
    """An SDK refused a setting's value with a ValueError that does not say which setting (exit 4, one line)."""

    def __init__(self, setting: str, error: Exception) -> None:
        reason = "not an address the SDK can parse" if isinstance(error, TypeError) else str(error).rstrip(".")
        super().__init__(f"{setting} cannot be used: {reason or type(error).__name__}")


def _build_pipeline() -> Pipeline:
    from .runtime import build_pipeline

    try:
        return build_pipeline(Settings.from_env(), credential="default")
    except ValueError as exc:
        if os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING") and "connection string" in str(exc).lower():
            raise _SettingUnusable("APPLICATIONINSIGHTS_CONNECTION_STRING", exc) from None
        raise


def _refused(error: ProvisioningError) -> int:
    """One ``error:`` line, and the exit status of the error's kind (as ``acquire``'s outcome would have)."""
    print(f"error: {error.code}: {error.message}", file=sys.stderr)
    if error.retryable:
        return EXIT_FAILED
    return EXIT_INVALID if error.http_status == 400 else EXIT_REJECTED


async def _verify() -> int:
    from .preflight import preflight

    pipeline = _build_pipeline()
    try:
        checks = await preflight(pipeline)
    finally:
        await pipeline.close()
    print(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}, indent=2))
    for check in checks:
        if not check.ok:
            print(
                f"error: {check.name}: {check.detail}" + (f"; fix: {check.fix}" if check.fix else ""), file=sys.stderr
            )
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED


async def _bind(args: argparse.Namespace) -> int:
    from azure.identity.aio import DefaultAzureCredential

    from .bind import bind_secret
    from .errors import ProvisioningError

    settings = Settings.from_env()
    credential = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
    try:
        result = await bind_secret(args.secret, args.target, args.endpoint, settings=settings, credential=credential)
    except ProvisioningError as error:
        return _refused(error)
    finally:
        await credential.close()
    print(json.dumps(result, indent=2))
    return EXIT_OK


async def _connections(args: argparse.Namespace) -> int:
    from . import connections as ops
    from .errors import ProvisioningError
    from .runtime import build_store
    from .telemetry import flush

    pipeline = _build_pipeline()
    store = None
    try:
        store = build_store(pipeline)  # a setting the SDK cannot use is a ConfigurationError naming it
        if args.verb == "run":
            outcome = await ops.run_connection(store, pipeline, args.name)
            _print_outcome(outcome)
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
        return _refused(error)
    finally:
        if store is not None:
            await store.close()
        await pipeline.close()
        flush()


def _print_outcome(outcome: Outcome) -> None:
    """The outcome JSON on stdout; on stderr, where it helps, one line on what to do next."""
    print(json.dumps(outcome.to_dict(), indent=2))
    if outcome.error_code == "tokenUnavailable":
        print(
            "note: the command line signs in with DefaultAzureCredential (az login, azd auth login, environment "
            "variables, or a managed identity where it runs), not with the function app's managed identity; "
            "--verbose shows what each way said",
            file=sys.stderr,
        )
    elif outcome.error_code == "internalError":
        print("note: run again with --verbose for the details", file=sys.stderr)


# ---- logging: one readable outcome, the details with --verbose -------------------------------------------------


class _Details(logging.Formatter):
    """``LEVEL logger: message``; stamina's retry records, whose message is only their event name, spelled out."""

    def format(self, record: logging.LogRecord) -> str:
        if record.getMessage() == "stamina.retry_scheduled":
            fields = record.__dict__
            cause = str(fields.get("stamina.caused_by", "")).split("(", 1)[0]  # the type only: no server text
            text = (
                f"retry {fields.get('stamina.retry_num')} of {fields.get('stamina.callable')} in "
                f"{fields.get('stamina.wait_for')} s after {cause or 'a retryable answer'}"
            )
            return f"{record.levelname} {record.name}: {text}"
        return super().format(record)


def _log_to_stderr(verbose: bool) -> None:
    """Without --verbose nothing is logged to the terminal (stamina's retries, the outcome's log record, the SDKs'
    warnings: the outcome JSON says what happened); with it, INFO and above go to stderr. Telemetry's own handler,
    when Application Insights is configured, is not affected. It stays for the rest of the process: the exporter
    still logs while it shuts down, after :func:`main` returned."""
    root = logging.getLogger()
    for previous in [h for h in root.handlers if getattr(h, "_shared_cli", False)]:
        root.removeHandler(previous)
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Details("%(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
    else:
        handler = logging.NullHandler()  # a handler, so that logging's last resort never prints a bare record
    setattr(handler, "_shared_cli", True)  # noqa: B010 - a mark on a stdlib handler
    root.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _log_to_stderr(verbose)
    try:
        if args.command == "acquire":
            outcome = asyncio.run(_acquire(request_from_args(args)))
            _print_outcome(outcome)
            return exit_code(outcome)
        if args.command == "connections":
            return asyncio.run(_connections(args))
        if args.command == "bind":
            return asyncio.run(_bind(args))
        if args.command == "verify":
            return asyncio.run(_verify())
        from .queueing import enqueue_main

        return enqueue_main(_read(args.request), args)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (SettingsError, _SettingUnusable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug or an SDK surprise: one line, the traceback only with --verbose
        if verbose:
            logging.getLogger(__name__).error("unexpected error", exc_info=True)
        print(f"error: unexpected {type(exc).__name__}; run again with --verbose for the details", file=sys.stderr)
        return EXIT_FAILED
