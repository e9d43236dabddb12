"""The managed-identity endpoint as App Service and Azure Functions expose it (``IDENTITY_ENDPOINT``).

azure-identity sends ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...[&client_id=...]`` with the
``X-IDENTITY-HEADER`` secret; the answer is ``access_token``, ``expires_on``, ``resource``, ``token_type``.
Tokens are HS256 JWTs signed with :attr:`signing_key`, which the Key Vault and Graph stand-ins verify.
"""

from __future__ import annotations

import secrets
import time
import uuid

import jwt

from .base import Reply, Seen, StandIn

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
GRAPH_RESOURCE = "https://graph.microsoft.com"


class IdentityStandIn(StandIn):
    name = "managed-identity"

    def __init__(
        self, *, client_id: str | None = None, graph_roles: tuple[str, ...] = ("Synchronization.ReadWrite.All",)
    ) -> None:
        super().__init__()
        self.header_secret = secrets.token_hex(16)
        self.signing_key = secrets.token_bytes(32)
        self.client_id = client_id or str(uuid.uuid4())
        self.object_id = str(uuid.uuid4())
        self.user_assigned = client_id is not None
        self.graph_roles = list(graph_roles)
        self.issued: list[str] = []  # resources of the tokens issued, in order

    @property
    def endpoint(self) -> str:
        return f"{self.url}/msi/token"

    def environment(self) -> dict[str, str]:
        env = {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header_secret}
        if self.user_assigned:
            env["AZURE_CLIENT_ID"] = self.client_id
        return env

    def handle(self, seen: Seen) -> Reply:
        if seen.method != "GET" or seen.path != "/msi/token":
            return Reply(404, {"error": "not_found"})
        if seen.headers.get("x-identity-header") != self.header_secret:
            return Reply(401, {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong"})
        if seen.query.get("api-version") != "2019-08-01":
            return Reply(400, {"statusCode": 400, "message": "unsupported api-version"})
        resource = seen.query.get("resource", "")
        if not resource.startswith("https://") or resource.endswith("/.default"):
            return Reply(400, {"statusCode": 400, "message": "resource must be an AAD v1 resource URI"})
        asked = seen.query.get("client_id")
        if asked != (self.client_id if self.user_assigned else None):
            return Reply(
                400,
                {
                    "statusCode": 400,
                    "message": "No User Assigned or Delegated Managed Identity found for specified ClientId",
                },
            )
        expires_on = int(time.time()) + 3600
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{TENANT_ID}/",
            "tid": TENANT_ID,
            "oid": self.object_id,
            "appid": self.client_id,
            "idtyp": "app",
            "iat": int(time.time()),
            "exp": expires_on,
        }
        if resource.rstrip("/") == GRAPH_RESOURCE:
            claims["roles"] = self.graph_roles
        self.issued.append(resource)
        token = jwt.encode(claims, self.signing_key, algorithm="HS256")
        return Reply(
            200,
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": self.client_id,
            },
        )

    def verify(self, authorization: str | None, audience: str | list[str]) -> dict[str, object] | str:
        """The token's claims, or why it is refused (as the resource server would say)."""
        if not authorization or not authorization.startswith("Bearer "):
            return "missing bearer token"
        try:
            return jwt.decode(authorization[7:], self.signing_key, algorithms=["HS256"], audience=audience)
        except jwt.InvalidAudienceError:
            return f"token audience is not {audience}"
        except jwt.PyJWTError as exc:
            return f"invalid token: {type(exc).__name__}"
