"""infra/: checkov's Bicep checks pass, every skipped check is written down, and the pieces fit the app.

Bicep cannot be compiled here (its CLI downloads a binary), so this parses and scans the files with checkov
(installed by `make test` into .venv-infra) and reads them for what the app relies on.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".venv-infra" / "bin" / "checkov"))
# checkov's Bicep parser does not know the `extension` keyword (the Microsoft Graph Bicep extension), and it has
# no checks for Microsoft.Graph resources; this file is read by test_the_graph_permission_is_least_privileged.
UNPARSEABLE = {"app/graph-permission.bicep"}


@pytest.fixture(scope="module")
def scan() -> dict:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: `make test` installs requirements-infra.txt into .venv-infra"
    result = subprocess.run(
        [str(CHECKOV), "-d", str(INFRA), "--framework", "bicep", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    report = json.loads(result.stdout)
    return report


def test_checkov_reports_no_failed_check(scan):
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in scan["results"]["failed_checks"]]
    assert failed == []
    assert scan["summary"]["passed"] >= 20


def test_every_bicep_file_is_scanned(scan):
    parsed_with_errors = {str(Path(p).relative_to(INFRA)) for p in scan["results"].get("parsing_errors", [])}
    assert parsed_with_errors == UNPARSEABLE
    scanned = {
        c["file_path"].lstrip("/") for kind in ("passed_checks", "skipped_checks") for c in scan["results"][kind]
    }
    for expected in ("app/function.bicep", "app/storage.bicep", "app/keyvault.bicep", "app/eventgrid.bicep"):
        assert expected in scanned


def test_every_skip_names_a_check_that_fires_and_gives_a_reason(scan):
    skipped = {(c["check_id"], Path(c["file_path"].lstrip("/")).name) for c in scan["results"]["skipped_checks"]}
    written = set()
    for path in INFRA.rglob("*.bicep"):
        for check, reason in re.findall(r"//\s*checkov:skip=([A-Z0-9_]+):\s*(.*)", path.read_text()):
            assert len(reason) > 20, f"{path.name} {check}: the reason is too thin"
            written.add((check, path.name))
    assert written == skipped, "a skip comment that no check uses is stale; a skip with no comment is silent"


def text(name: str) -> str:
    return (INFRA / name).read_text()


def test_the_app_settings_match_the_contract():
    function = text("app/function.bicep")
    settings = set(re.findall(r"name: '([A-Za-z_]+)'", function))
    assert {
        "AZURE_CLIENT_ID",
        "KEY_VAULT_URI",
        "REQUEST_QUEUE_NAME",
        "ALLOWED_TARGETS",
        "REQUIRED_APP_ROLE",
        "ALLOW_INLINE_SECRETS",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
    } <= settings
    assert (
        "FUNCTIONS_WORKER_RUNTIME" not in settings
    )  # Flex Consumption refuses it: the runtime is in functionAppConfig
    assert "name: 'python'" in function
    assert "version: '3.13'" in function
    assert "{ name: 'PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME', value: 'shared' }" in function
    assert "httpsOnly: true" in function
    assert "minTlsVersion: '1.2'" in function


def test_no_keys_anywhere():
    storage = text("app/storage.bicep")
    assert "allowSharedKeyAccess: false" in storage
    assert "DisableLocalAuth: true" in text("app/monitoring.bicep")
    assert "disableLocalAuth: true" in text("app/eventgrid.bicep")
    for path in INFRA.rglob("*.bicep"):
        assert "listKeys(" not in path.read_text(), path.name
        assert "AccountKey=" not in path.read_text(), path.name


def test_key_vault_is_rbac_mode_with_purge_protection():
    vault = text("app/keyvault.bicep")
    assert "enableRbacAuthorization: true" in vault
    assert "enablePurgeProtection: true" in vault


def test_the_identity_gets_exactly_the_roles_it_needs():
    rbac = text("app/rbac.bicep")
    for role in (
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
        "4633458b-17de-408a-b874-0445c86b69e6",  # Key Vault Secrets User
        "3913510d-42f4-4e42-8a64-420c390055eb",
    ):  # Monitoring Metrics Publisher
        assert role in rbac
    assert "8e3af657-a8ff-443c-a75c-2fe8c4bcb635" not in rbac  # the subscription Owner role, never
    assert "b24988ac-6180-42a0-ab88-20f7382dd24c" not in rbac  # Contributor, never


def test_the_request_queue_and_its_poison_queue_exist():
    storage = text("app/storage.bicep")
    assert "name: requestQueueName" in storage
    assert "name: '${requestQueueName}-poison'" in storage
    assert "var requestQueueName = 'acquire-access-token'" in text("main.bicep")


def test_the_graph_permission_is_least_privileged():
    graph = text("app/graph-permission.bicep")
    assert "extension 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:" in graph
    assert "appId: '00000003-0000-0000-c000-000000000000'" in graph
    assert re.findall(r"'(\w+\.\w+(?:\.\w+)?)'\n", graph.split("@allowed([")[1].split("])")[0]) == [
        "Application.ReadWrite.OwnedBy",
        "Synchronization.ReadWrite.All",
    ]
    assert "param graphPermission string = 'Application.ReadWrite.OwnedBy'" in text("main.bicep")


def test_the_workbook_deployed_is_the_one_in_docs():
    assert "loadTextContent('../../docs/workbook.json')" in text("app/monitoring.bicep")
    assert (ROOT / "docs" / "workbook.json").exists()


def test_the_event_subscription_targets_the_event_grid_function(app_functions):
    subscription = text("event-subscription.bicep")
    [function] = [f for f in app_functions if f.get_trigger().type == "eventGridTrigger"]
    assert f"/functions/{function.get_function_name()}'" in subscription
    assert "'Provisioning.AcquireAccessTokenRequested'" in subscription


def test_main_parameters_cover_the_parameters_without_defaults():
    main = text("main.bicep")
    params = json.loads(text("main.parameters.json"))["parameters"]
    declared = re.findall(r"^param (\w+) \w+( =)?", main, flags=re.M)
    required = {name for name, default in declared if not default}
    assert required <= set(params)
    assert set(params) <= {name for name, _ in declared}


def test_flex_consumption_gets_no_ftps_state():
    # Flex Consumption refuses siteConfig.ftpsState (ARM error 51021): FTP does not exist there.
    for path in INFRA.rglob("*.bicep"):
        assert not re.search(r"^\s*ftpsState\s*:", path.read_text(), flags=re.M), path.name


def test_the_instance_count_is_bounded_as_flex_consumption_takes_it():
    main = text("main.bicep")
    declaration = main.split("param maximumInstanceCount int")[0].rsplit("\n\n", 1)[-1]
    assert "@minValue(40)" in declaration
    assert "@maxValue(1000)" in declaration
    default = int(re.search(r"param maximumInstanceCount int = (\d+)", main).group(1))
    assert 40 <= default <= 1000
    assert "MAXIMUM_INSTANCE_COUNT=40}" in text("main.parameters.json")


def test_the_graph_permission_is_not_granted_unless_an_administrator_opts_in():
    assert "param grantGraphPermission bool = false" in text("main.bicep")
    assert '"${GRANT_GRAPH_PERMISSION=false}"' in text("main.parameters.json")
    assert "GRAPH_PERMISSION_GRANTED:-false" in text("hooks/postprovision.sh")


def test_the_postprovision_hook_prints_the_exact_grant_when_not_granted(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "AZURE_IDENTITY_PRINCIPAL_ID": "11111111-2222-3333-4444-555555555555",
        "GRAPH_PERMISSION": "Synchronization.ReadWrite.All",
        "GRAPH_PERMISSION_GRANTED": "false",
    }
    result = subprocess.run(
        ["sh", str(INFRA / "hooks" / "postprovision.sh")], env=env, capture_output=True, text=True, check=True
    )
    assert "Privileged Role Administrator" in result.stdout
    assert "appRoles[?value=='Synchronization.ReadWrite.All']" in result.stdout
    assert "/servicePrincipals/11111111-2222-3333-4444-555555555555/appRoleAssignments" in result.stdout


def test_role_assignments_for_the_deployer_take_the_principal_type_azd_supplies():
    rbac = text("app/rbac.bicep")
    assert "principalType: 'User'" not in rbac
    assert rbac.count("principalType: deployerPrincipalType") == 3
    assert "deployerPrincipalType: principalType" in text("main.bicep")
    assert '"principalType": { "value": "${AZURE_PRINCIPAL_TYPE=User}" }' in text("main.parameters.json")


def run_postdeploy(tmp_path: Path, az_script: str | None) -> tuple[subprocess.CompletedProcess[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "dirname", "cat"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    calls = tmp_path / "az-calls"
    if az_script is not None:
        az = bin_dir / "az"
        az.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n{az_script}\n')
        az.chmod(0o755)
    env = {
        "PATH": str(bin_dir),
        "AZURE_RESOURCE_GROUP": "rg-dev",
        "AZURE_SUBSCRIPTION_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "AZURE_TENANT_ID": "tttttttt-0000-0000-0000-000000000000",
        "AZURE_EVENTGRID_TOPIC_NAME": "evgt-x",
        "AZURE_FUNCTION_NAME": "func-x",
        "AZURE_STORAGE_ACCOUNT_NAME": "stx",
        "AZURE_KEYVAULT_EVENTS_TOPIC_NAME": "evgt-x-kv",
    }
    result = subprocess.run(
        [str(bin_dir / "sh"), str(INFRA / "hooks" / "postdeploy.sh")], env=env, capture_output=True, text=True
    )
    return result, calls


def test_the_postdeploy_hook_fails_clearly_without_the_azure_cli(tmp_path):
    result, _ = run_postdeploy(tmp_path, None)
    assert result.returncode != 0
    assert "Azure CLI (az) is needed" in result.stderr
    assert "az login --tenant tttttttt-0000-0000-0000-000000000000" in result.stderr


def test_the_postdeploy_hook_fails_clearly_when_az_is_not_signed_in(tmp_path):
    result, calls = run_postdeploy(tmp_path, 'case "$1 $2" in "account show") exit 1;; esac')
    assert result.returncode != 0
    assert "not signed in" in result.stderr
    assert "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" in result.stderr
    assert "azd hooks run postdeploy" in result.stderr
    assert "deployment" not in calls.read_text()


def test_the_postdeploy_hook_deploys_into_azds_subscription(tmp_path):
    result, calls = run_postdeploy(tmp_path, "exit 0")
    assert result.returncode == 0, result.stderr
    account, deployment = calls.read_text().splitlines()
    assert account.startswith("account show --subscription aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    assert deployment.startswith("deployment group create --subscription aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    assert "--resource-group rg-dev" in deployment


def test_connections_get_their_table_and_the_table_role():
    storage = text("app/storage.bicep")
    assert "Microsoft.Storage/storageAccounts/tableServices/tables@" in storage
    assert "var connectionsTableName = 'connections'" in text("main.bicep")
    rbac = text("app/rbac.bicep")
    assert "storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'" in rbac
    table_role = rbac.split("resource tableContributor")[1].split("\n}\n")[0]
    assert "scope: storage" in table_role
    assert "principalId: identityPrincipalId" in table_role
    function = text("app/function.bicep")
    for setting in ("CONNECTIONS_TABLE", "SWEEP_SCHEDULE", "SWEEP_EXPIRY_DAYS"):
        assert f"name: '{setting}'" in function


def test_key_vault_secret_events_reach_the_function_with_dead_lettering(app_functions):
    eventgrid = text("app/eventgrid.bicep")
    assert "Microsoft.EventGrid/systemTopics@" in eventgrid
    assert "topicType: 'Microsoft.KeyVault.vaults'" in eventgrid
    assert "source: vault.id" in eventgrid
    subscription = text("event-subscription.bicep").split("resource secretEvents")[1]
    for event_type in ("SecretNewVersionCreated", "SecretNearExpiry", "SecretExpired"):
        assert f"'Microsoft.KeyVault.{event_type}'" in subscription
    assert "deadLetterWithResourceIdentity" in subscription
    [function] = [f for f in app_functions if f.get_trigger().type == "eventGridTrigger"]
    assert f"/functions/{function.get_function_name()}'" in subscription
    assert "vaultTopicPrincipalId" in text("app/rbac.bicep")
    assert 'vaultTopicName="$AZURE_KEYVAULT_EVENTS_TOPIC_NAME"' in text("hooks/postdeploy.sh")


def test_azd_hooks_are_valid_shell():
    for hook in ("postprovision.sh", "postdeploy.sh"):
        path = INFRA / "hooks" / hook
        assert os.access(path, os.X_OK), hook
        subprocess.run(["sh", "-n", str(path)], check=True)
