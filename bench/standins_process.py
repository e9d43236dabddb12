"""The stand-ins in a process of their own, so that their threads do not share the benchmark's GIL.

Prints one JSON line with the environment that points the app at them, then reads commands on stdin, one per
line, answering each with one JSON line: `latency <graph|keyvault> <seconds>`, `tokens` (Graph tokens issued),
`secret <name> <value>`. Stops when stdin closes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from standins import Stack, TestCA

SP_ID, SCIM_URL = sys.argv[1], sys.argv[2]
TOKEN = sys.argv[3]


def main() -> None:
    ca = TestCA(Path(tempfile.mkdtemp(prefix="bench-ca-")))
    stack = Stack(ca)
    # Every secret is bound, as its owner would bind it, to the benchmark's target and SCIM endpoint (the app refuses
    # an untagged secret: docs/security.md).
    stack.keyvault.default_tags = {"provisioning-targets": SP_ID, "provisioning-endpoints": SCIM_URL}
    stack.keyvault.set_secret("scim-token", TOKEN)
    stack.graph.service_principals[SP_ID] = {"BaseAddress": SCIM_URL, "SecretToken": TOKEN}
    print(json.dumps(stack.environment()), flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "latency":
            getattr(stack, args[0]).latency = float(args[1])
            answer: object = "ok"
        elif command == "tokens":
            answer = stack.identity.issued.count("https://graph.microsoft.com")
        elif command == "secret":
            stack.keyvault.set_secret(args[0], args[1])
            answer = "ok"
        else:
            answer = f"unknown command {command}"
        print(json.dumps(answer), flush=True)
    stack.stop()


if __name__ == "__main__":
    main()
