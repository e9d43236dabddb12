"""Plays the Azure Functions host's side of the language worker protocol, in process, against the real worker runtime.

What Azure runs on Python 3.13+ is the host's proxy worker, which holds the gRPC stream and hands every message to
the worker runtime package the app pins (``azure_functions_runtime``): ``worker_init_request`` (which indexes the
app), ``functions_metadata_request``, ``function_environment_reload_request``, ``function_load_request`` and
``invocation_request``. Each takes an object whose ``request`` is the protocol's ``StreamingMessage`` and whose
``properties`` carry ``"host"`` and ``"protos"``, the module of message classes. This harness does the proxy's part:

- message classes are compiled from ``function_rpc.proto`` (the protocol's messages, see its header) with
  grpcio-tools, so every message is a real protobuf message;
- every request is serialized to its wire form and parsed back before the runtime sees it, and every reply is
  wrapped in a ``StreamingMessage`` and round-tripped the same way, as the gRPC stream would do;
- the root logger is set to INFO with a handler that turns each record into an ``RpcLog`` message, as the worker
  streams logs to the host, tagged with the invocation they belong to.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

PROTO = Path(__file__).with_name("function_rpc.proto")
_invocation: contextvars.ContextVar[str | None] = contextvars.ContextVar("invocation", default=None)
# Loggers of the worker itself (the proxy marks these as System logs; everything else is User).
_SYSTEM_PREFIXES = ("azure.functions", "azure_functions_worker", "azure_functions_runtime")


@cache
def protos() -> ModuleType:
    """The protocol's message classes, compiled from function_rpc.proto into a temporary folder."""
    import grpc_tools
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="function-rpc-")
    includes = Path(grpc_tools.__file__).parent / "_proto"
    status = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{includes}", f"--python_out={out}", str(PROTO.name)])
    if status != 0:
        raise RuntimeError(f"protoc failed on {PROTO} ({status})")
    sys.path.insert(0, out)
    try:
        return importlib.import_module("function_rpc_pb2")
    finally:
        sys.path.remove(out)


class RpcLogHandler(logging.Handler):
    """Every log record as the ``RpcLog`` message the worker streams to the host."""

    def __init__(self, pb: ModuleType) -> None:
        super().__init__(logging.NOTSET)
        self.pb = pb
        self.messages: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        pb = self.pb
        if record.levelno >= logging.CRITICAL:
            level = pb.RpcLog.Critical
        elif record.levelno >= logging.ERROR:
            level = pb.RpcLog.Error
        elif record.levelno >= logging.WARNING:
            level = pb.RpcLog.Warning
        elif record.levelno >= logging.INFO:
            level = pb.RpcLog.Information
        else:
            level = pb.RpcLog.Debug
        system = record.name.startswith(_SYSTEM_PREFIXES)
        message = self.format(record)
        log = pb.RpcLog(
            level=level,
            message=message,
            category=record.name,
            log_category=pb.RpcLog.System if system else pb.RpcLog.User,
            invocation_id=_current_invocation() or "",
        )
        wire = pb.StreamingMessage(request_id="worker", rpc_log=log).SerializeToString()
        self.messages.append(pb.StreamingMessage.FromString(wire).rpc_log)


def _current_invocation() -> str | None:
    found = _invocation.get()
    if found:
        return found
    try:  # sync functions run in the runtime's thread pool, which tags the thread's context itself
        from azure_functions_runtime.utils.executor import invocation_id_cv

        return invocation_id_cv.get()
    except ImportError:
        return None


@dataclass
class Invocation:
    invocation_id: str
    response: Any
    logs: list[Any] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.response.result.status == protos().StatusResult.Success

    @property
    def http(self) -> Any:
        return self.response.return_value.http


class WorkerHost:
    """One worker process's life as the host drives it: init (indexing), metadata, load, invocations."""

    def __init__(self, app_directory: Path) -> None:
        from azure_functions_runtime import handle_event

        self.pb = protos()
        self.events = handle_event
        self.app_directory = app_directory
        self.request_id = str(uuid.uuid4())
        self.logs = RpcLogHandler(self.pb)
        self.metadata: dict[str, Any] = {}  # function name -> RpcFunctionMetadata
        self.init_response: Any = None

    def start_logging(self) -> None:
        """As the worker does once the stream is up: the root logger at INFO, every record streamed to the host."""
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        root.addHandler(self.logs)

    def stop_logging(self) -> None:
        logging.getLogger().removeHandler(self.logs)

    async def _send(self, name: str, message: Any, reply: str) -> Any:
        pb = self.pb
        envelope = pb.StreamingMessage(request_id=self.request_id, **{name: message})
        received = pb.StreamingMessage.FromString(envelope.SerializeToString())
        handler = getattr(self.events, name)
        response = await handler(SimpleNamespace(request=received, properties={"host": "127.0.0.1", "protos": pb}))
        sent = pb.StreamingMessage(request_id=self.request_id, **{reply: response})
        return getattr(pb.StreamingMessage.FromString(sent.SerializeToString()), reply)

    async def init(self, capabilities: dict[str, str] | None = None) -> Any:
        pb = self.pb
        request = pb.WorkerInitRequest(
            host_version="4.1040.0",
            capabilities=capabilities or {},
            worker_directory=str(self.app_directory),
            function_app_directory=str(self.app_directory),
        )
        self.init_response = await self._send("worker_init_request", request, "worker_init_response")
        return self.init_response

    async def function_metadata(self) -> Any:
        request = self.pb.FunctionsMetadataRequest(function_app_directory=str(self.app_directory))
        response = await self._send("functions_metadata_request", request, "function_metadata_response")
        self.metadata = {m.name: m for m in response.function_metadata_results}
        return response

    async def environment_reload(self, environment: dict[str, str]) -> Any:
        request = self.pb.FunctionEnvironmentReloadRequest(
            environment_variables=environment, function_app_directory=str(self.app_directory)
        )
        return await self._send("function_environment_reload_request", request, "function_environment_reload_response")

    async def load_all(self) -> dict[str, Any]:
        loaded = {}
        for name, metadata in self.metadata.items():
            request = self.pb.FunctionLoadRequest(function_id=metadata.function_id, metadata=metadata)
            loaded[name] = await self._send("function_load_request", request, "function_load_response")
        return loaded

    async def invoke(
        self,
        function: str,
        inputs: dict[str, Any],
        trigger_metadata: dict[str, Any] | None = None,
        *,
        trace_parent: str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ) -> Invocation:
        pb = self.pb
        invocation_id = str(uuid.uuid4())
        request = pb.InvocationRequest(
            invocation_id=invocation_id,
            function_id=self.metadata[function].function_id,
            input_data=[pb.ParameterBinding(name=name, data=data) for name, data in inputs.items()],
            trigger_metadata=trigger_metadata or {},
            trace_context=pb.RpcTraceContext(trace_parent=trace_parent),
            retry_context=pb.RetryContext(retry_count=0, max_retry_count=0),
        )
        before = len(self.logs.messages)
        token = _invocation.set(invocation_id)
        try:
            response = await self._send("invocation_request", request, "invocation_response")
        finally:
            _invocation.reset(token)
        logs = [log for log in self.logs.messages[before:] if log.invocation_id == invocation_id]
        assert response.invocation_id == invocation_id
        return Invocation(invocation_id, response, logs)

    # ---- payloads as the host sends them -----------------------------------------------------------------

    def http(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """An ``RpcHttp`` input: header names lower-cased, the body as bytes or as a string, route params."""
        pb = self.pb
        typed_body = None
        if isinstance(body, bytes):
            typed_body = pb.TypedData(bytes=body)
        elif isinstance(body, str):
            typed_body = pb.TypedData(string=body)
        http = pb.RpcHttp(
            method=method,
            url=f"https://app.azurewebsites.net/api/{path}",
            headers={k.lower(): v for k, v in (headers or {}).items()},
            params=params or {},
        )
        if typed_body is not None:
            http.body.CopyFrom(typed_body)
            http.rawBody.CopyFrom(typed_body)
        return pb.TypedData(http=http)


def environment_for_worker(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}
