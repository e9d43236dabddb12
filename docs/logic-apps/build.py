"""Write the Logic Apps files of docs/logic-apps/ from one source; tests keep the files in step.

- apiDefinition.swagger.json: the custom connector's definition, exactly what the app serves at GET /api/swagger.json,
  plus the host a connector needs (a placeholder to replace with your function app's host name).
- workflow.json and workflow-managed-identity.json: the sample Consumption workflow calling the app with the plain
  HTTP action, with a function key (CALLER_AUTH=key) or with the Logic App's managed identity (CALLER_AUTH=entra).

The workflows take the target, the SCIM address and the secret from their own parameters, which whoever deploys the
Logic App sets, never from the trigger: anyone who can call a Logic App's request trigger could otherwise send a
secret to an address of their choosing.
Run: python docs/logic-apps/build.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

HOST_PLACEHOLDER = "YOUR-FUNCTION-APP.azurewebsites.net"
CallerAuth = Literal["key", "entra"]
WORKFLOWS: dict[CallerAuth, str] = {"key": "workflow.json", "entra": "workflow-managed-identity.json"}


def api_definition() -> dict[str, Any]:
    from shared.swagger import swagger_document

    return {**swagger_document(), "host": HOST_PLACEHOLDER}


def _parameters(caller_auth: CallerAuth) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "functionAppHost": {
            "type": "String",
            "metadata": {"description": "The function app's host name, e.g. func-abc123.azurewebsites.net"},
        },
        "servicePrincipalId": {
            "type": "String",
            "metadata": {"description": "Object id of the service principal whose provisioning job this authorizes"},
        },
        "scimBaseAddress": {
            "type": "String",
            "metadata": {
                "description": "The SCIM endpoint (BaseAddress); the secret's provisioning-endpoints tag must name it"
            },
        },
        "tokenSecretName": {
            "type": "String",
            "metadata": {
                "description": "The Key Vault secret holding the SCIM token (a name or a reference); its "
                "provisioning-targets tag must name servicePrincipalId"
            },
        },
    }
    if caller_auth == "key":
        parameters["functionKey"] = {
            "type": "SecureString",
            "metadata": {
                "description": "A function key; from a Key Vault reference in the parameters file, never inline"
            },
        }
    else:
        parameters["audience"] = {
            "type": "String",
            "metadata": {
                "description": "AZURE_CALLER_AUDIENCE of the deployment (the app registration's client id); the "
                "Logic App's managed identity needs the app role Provisioning.Operator on it"
            },
        }
    return parameters


def _authorize(caller_auth: CallerAuth) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    inputs: dict[str, Any] = {
        "method": "POST",
        "uri": "https://@{parameters('functionAppHost')}/api/servicePrincipals/"
        "@{parameters('servicePrincipalId')}/synchronization/acquireAccessToken",
        "headers": headers,
        "body": {
            "credentials": [
                {"key": "BaseAddress", "value": "@{parameters('scimBaseAddress')}"},
                {"key": "SecretToken", "secretRef": "@{parameters('tokenSecretName')}"},
            ],
            "steps": ["validateCredentials", "acquireAccessToken"],
            "correlationId": "@{workflow()?['run']?['name']}",
        },
    }
    if caller_auth == "key":
        headers["x-functions-key"] = "@{parameters('functionKey')}"
    else:
        # The Logic App's system-assigned identity; for a user-assigned one add "identity": "<its resource id>".
        inputs["authentication"] = {"type": "ManagedServiceIdentity", "audience": "@{parameters('audience')}"}
    # Logic Apps resends the request on a timeout or a 408, 429 or 5xx answer, at exponential intervals in these bounds.
    inputs["retryPolicy"] = {
        "type": "exponential",
        "count": 4,
        "interval": "PT15S",
        "minimumInterval": "PT10S",
        "maximumInterval": "PT10M",
    }
    return {
        "type": "Http",
        "runAfter": {},
        "inputs": inputs,
        # Inputs and outputs are secure: the run history shows neither the key or token nor the app's answer.
        "runtimeConfiguration": {"secureData": {"properties": ["inputs", "outputs"]}},
    }


def workflow(caller_auth: CallerAuth) -> dict[str, Any]:
    """The sample workflow: a request trigger that carries nothing the call uses, the HTTP action, a branch on the
    outcome."""
    return {
        "definition": {
            "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/"
            "workflowdefinition.json#",
            "contentVersion": "1.0.0.0",
            "parameters": _parameters(caller_auth),
            "triggers": {
                "manual": {
                    "type": "Request",
                    "kind": "Http",
                    "inputs": {"schema": {"type": "object", "properties": {}}},
                }
            },
            "actions": {
                "Authorize_provisioning": _authorize(caller_auth),
                "Check_outcome": {
                    "type": "If",
                    "runAfter": {"Authorize_provisioning": ["Succeeded", "Failed"]},
                    "expression": {"and": [{"equals": ["@body('Authorize_provisioning')?['outcome']", "succeeded"]}]},
                    "actions": {
                        "Authorized": {
                            "type": "Compose",
                            "inputs": {
                                "outcome": "@body('Authorize_provisioning')?['outcome']",
                                "graphRequestId": "@body('Authorize_provisioning')?['graph']?['requestId']",
                            },
                        }
                    },
                    "else": {
                        "actions": {
                            "Not_authorized": {
                                "type": "Terminate",
                                "inputs": {
                                    "runStatus": "Failed",
                                    "runError": {
                                        "code": "@{coalesce(body('Authorize_provisioning')?['error']?['code'], "
                                        "'noOutcome')}",
                                        "message": "@{coalesce(body('Authorize_provisioning')?['error']?['message'], "
                                        "'the app gave no outcome')}",
                                    },
                                },
                            }
                        }
                    },
                },
            },
            "outputs": {},
        }
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    (HERE / "apiDefinition.swagger.json").write_text(render(api_definition()), encoding="utf-8")
    for caller_auth, name in WORKFLOWS.items():
        (HERE / name).write_text(render(workflow(caller_auth)), encoding="utf-8")
