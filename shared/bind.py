"""``python -m shared bind``: a secret's owner binds it to its targets and endpoints, by tags on its current version.

Key Vault keeps tags per version, and a new version starts with only the tags its writer gave it: after a rotation,
bind the new version (or write it with the tags, ``az keyvault secret set --tags ...``). The operator's own
credential (``DefaultAzureCredential``) needs the right to update the secret (Key Vault Secrets Officer); the
secret's other tags are kept. Nothing here reads or prints the secret's value beyond what Key Vault's read returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import IdentityNotAllowed, InvalidRequest, ReferenceUnresolvable, ServiceUnavailable
from .policy import ENDPOINTS_TAG, MAX_TAG_CHARS, TARGETS_TAG, parse_endpoints, parse_targets
from .references import parse_reference

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from .settings import Settings

__all__ = ["bind_secret", "binding_tags"]


def binding_tags(targets: Sequence[str], endpoints: Sequence[str]) -> dict[str, str]:
    """The two tags, checked as the app will read them; 400 naming the problem (a tag value is at most 256 chars)."""
    tags = {TARGETS_TAG: ",".join(t.strip().lower() for t in targets)}
    problem = parse_targets(tags[TARGETS_TAG] if targets else None)
    if isinstance(problem, str):
        raise InvalidRequest(f"--target: {problem.replace('its tag', 'the tag').replace('it has no tag', 'no')}")
    if endpoints:
        tags[ENDPOINTS_TAG] = " ".join(e.strip() for e in endpoints)
        parsed = parse_endpoints(tags[ENDPOINTS_TAG])
        if isinstance(parsed, str) or parsed is None:
            raise InvalidRequest(
                "--endpoint: each is an https://host[:port][/path] prefix (no user, query or fragment)"
            )
    for name, value in tags.items():
        if len(value) > MAX_TAG_CHARS:
            raise InvalidRequest(
                f"the tag {name} would be {len(value)} characters; Key Vault takes at most {MAX_TAG_CHARS} "
                "(about six object ids): bind fewer targets or shorter endpoints"
            )
    return tags


async def bind_secret(
    reference_text: str,
    targets: Sequence[str],
    endpoints: Sequence[str],
    *,
    settings: Settings,
    credential: AsyncTokenCredential,
) -> dict[str, object]:
    """Tag the secret's current version (or the version the reference names); returns what Key Vault now holds."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
    from azure.keyvault.secrets.aio import SecretClient

    tags = binding_tags(targets, endpoints)
    reference = parse_reference(reference_text, settings, key="--secret")
    where = f"secret {reference.name!r} in {reference.host}"
    async with SecretClient(reference.vault_url, credential) as client:
        try:
            current = await client.get_secret(reference.name, reference.version)
            version = current.properties.version
            kept = {k: v for k, v in (current.properties.tags or {}).items() if k not in (TARGETS_TAG, ENDPOINTS_TAG)}
            del current  # the value is not needed: only the version and its tags
            updated = await client.update_secret_properties(reference.name, version, tags={**kept, **tags})
        except ResourceNotFoundError:
            raise ReferenceUnresolvable(f"{where} does not exist", code="SecretNotFound") from None
        except ClientAuthenticationError as exc:
            raise IdentityNotAllowed(f"your credential could not get a Key Vault token for {where} ({exc})") from None
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status in (401, 403):
                raise IdentityNotAllowed(
                    f"Key Vault refused your credential for {where} ({status}): updating tags needs Key Vault "
                    "Secrets Officer (or secrets set permission) on the vault",
                    code="keyVaultForbidden",
                ) from None
            raise ServiceUnavailable(f"Key Vault answered {status} for {where}", code="keyVaultUnavailable") from None
    return {"secret": f"{reference.vault_url}/secrets/{reference.name}", "version": version, "tags": updated.tags or {}}
