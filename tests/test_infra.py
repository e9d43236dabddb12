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
# no checks for Microsoft.Graph resources; these files are read by test_the_graph_permission_is_least_privileged and
# the caller app registration tests.
UNPARSEABLE = {"app/graph-permission.bicep", "app/caller-app.bicep"}


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
        "ALLOW_INLINE_SECRETS",
        "SECRET_BINDING",
        "CALLER_AUTH",
        "CONNECTION_QUEUE_NAME",
        "RECOVERY_MIN_HOURS",
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


# ---- settings of the bindings, the callers and the fleet ------------------------------------------------------------


def declaration(source: str, name: str) -> str:
    """A Bicep parameter's decorators and declaration line."""
    line = re.search(rf"^param {name} .*$", source, flags=re.M)
    assert line, name
    return source[: line.end()].rsplit("\n\n", 1)[-1]


def test_required_app_role_is_gone_from_the_infrastructure():
    for path in [*INFRA.rglob("*"), ROOT / "azure.yaml"]:
        if path.is_file():
            text_ = path.read_text()
            assert "REQUIRED_APP_ROLE" not in text_, path.name
            assert "requiredAppRole" not in text_, path.name


def test_the_new_settings_come_from_parameters_with_the_contracts_defaults():
    main = text("main.bicep")
    function = text("app/function.bicep")
    params = json.loads(text("main.parameters.json"))["parameters"]
    assert "param callerAuth string = 'key'" in main
    assert "'key'\n  'entra'\n])" in declaration(main, "callerAuth")
    assert params["callerAuth"] == {"value": "${CALLER_AUTH=key}"}
    assert "param secretBinding string = 'required'" in main
    assert "'required'\n  'off'\n])" in declaration(main, "secretBinding")
    assert params["secretBinding"] == {"value": "${SECRET_BINDING=required}"}
    assert "param recoveryMinHours int = 12" in main
    assert "@minValue(1)" in declaration(main, "recoveryMinHours")
    assert params["recoveryMinHours"] == {"value": "${RECOVERY_MIN_HOURS=12}"}
    assert "var connectionQueueName = 'connection-work'" in main
    for setting, value in (
        ("CALLER_AUTH", "callerAuth"),
        ("SECRET_BINDING", "secretBinding"),
        ("CONNECTION_QUEUE_NAME", "connectionQueueName"),
        ("RECOVERY_MIN_HOURS", "string(recoveryMinHours)"),
    ):
        assert f"{{ name: '{setting}', value: {value} }}" in function, setting
    module = main.split("module function 'app/function.bicep'")[1].split("\n}\n")[0]
    for wiring in (
        "callerAuth: callerAuth",
        "secretBinding: secretBinding",
        "recoveryMinHours: recoveryMinHours",
        "connectionQueueName: storage.outputs.connectionQueueName",
        "callerAppId: callerAuth == 'entra' ? callerApp.outputs.appId : ''",
    ):
        assert wiring in module, wiring


def test_website_auth_enabled_is_left_to_the_platform():
    # The app trusts X-MS-CLIENT-PRINCIPAL only when the platform says authentication is on; setting the variable
    # ourselves would make that check worthless.
    for path in INFRA.rglob("*.bicep"):
        assert "name: 'WEBSITE_AUTH_ENABLED'" not in path.read_text(), path.name


def test_the_connection_queue_and_its_poison_queue_exist_and_the_identity_may_use_them():
    storage = text("app/storage.bicep")
    assert "param connectionQueueName string" in storage
    queue = r"'Microsoft\.Storage/storageAccounts/queueServices/queues@[\d-]+' = \{\n(.*?)\n\}"
    queues = re.findall(queue, storage, re.S)
    names = {re.search(r"name: (.*)", q).group(1).strip() for q in queues}
    assert names == {
        "requestQueueName",
        "'${requestQueueName}-poison'",
        "connectionQueueName",
        "'${connectionQueueName}-poison'",
    }
    assert "output connectionQueueName string = connectionQueue.name" in storage
    assert "connectionQueueName: connectionQueueName" in text("main.bicep").split("module storage")[1].split("\n}\n")[0]
    assert "output AZURE_CONNECTION_QUEUE_NAME string = connectionQueueName" in text("main.bicep")
    # The queue triggers read, delete and poison messages; the sweep and rotations enqueue: one role on the account.
    queue_role = text("app/rbac.bicep").split("resource queueContributor")[1].split("\n}\n")[0]
    assert "roles.storageQueueDataContributor" in queue_role
    assert "scope: storage" in queue_role
    assert "principalId: identityPrincipalId" in queue_role


def bench_efficiency(in_flight: int) -> int:
    """The share of ideal throughput bench/RESULTS.md reports at that many requests in flight (telemetry on)."""
    results = (ROOT / "bench" / "RESULTS.md").read_text()
    found = re.search(
        rf"throughput, telemetry on: {in_flight} concurrent, Graph 100 ms \| \d+ req/s of \d+ \((\d+)%\)", results
    )
    assert found, f"bench/RESULTS.md no longer reports {in_flight} in flight"
    return int(found.group(1))


def test_http_concurrency_per_instance_is_where_the_bench_keeps_90_percent():
    function = text("app/function.bicep")
    scale = function.split("scaleAndConcurrency: {")[1].split("\n      runtime:")[0]
    assert re.search(r"triggers: \{\s*http: \{", scale)
    concurrency = int(re.search(r"perInstanceConcurrency: (\d+)", scale).group(1))
    assert concurrency == 16
    assert bench_efficiency(concurrency) >= 90
    assert bench_efficiency(64) < 90
    # The comment gives the figures it rests on, as the bench reports them.
    comment = scale.split("perInstanceConcurrency")[0]
    assert f"{bench_efficiency(concurrency)}% of ideal throughput with {concurrency}" in comment
    assert f"{bench_efficiency(64)}% with 64" in comment
    assert "bench/RESULTS.md" in comment


# ---- callerAuth=entra: App Service Authentication and the app registration ------------------------------------------


def auth_settings() -> str:
    function = text("app/function.bicep")
    assert "resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (callerAuth == 'entra') {" in function
    return function.split("resource auth 'Microsoft.Web/sites/config@2024-04-01'")[1].split("\n}\n")[0]


def test_entra_callers_get_app_service_authentication_with_the_entra_provider():
    auth = auth_settings()
    assert "parent: site" in auth
    assert "name: 'authsettingsV2'" in auth
    assert re.search(r"platform: \{\s*enabled: true\s*\}", auth)
    assert "requireAuthentication: true" in auth
    assert "unauthenticatedClientAction: 'Return401'" in auth
    excluded = re.search(r"excludedPaths: \[(.*?)\]", auth, re.S).group(1).split()
    assert excluded == ["'/api/health'", "'/api/openapi.json'", "'/api/swagger.json'", "'/runtime/webhooks/eventgrid'"]
    assert "requireHttps: true" in auth
    provider = auth.split("azureActiveDirectory: {")[1]
    assert "enabled: true" in provider
    assert "clientId: callerAppId" in provider
    assert "openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'" in provider
    audiences = re.search(r"allowedAudiences: \[(.*?)\]", provider, re.S).group(1).split()
    assert audiences == ["callerAppId", "'api://${callerAppId}'"]
    assert "clientSecret" not in auth  # bearer tokens only: the app has no secret to validate them
    assert re.search(r"tokenStore: \{\s*enabled: false\s*\}", auth)


def test_the_excluded_paths_are_the_anonymous_routes_of_the_app_and_event_grids_webhook(app_functions):
    excluded = {p.strip("'") for p in re.search(r"excludedPaths: \[(.*?)\]", auth_settings(), re.S).group(1).split()}
    anonymous = {
        "/api/" + f.get_trigger().route
        for f in app_functions
        if f.get_trigger().type == "httpTrigger" and str(f.get_trigger().auth_level).upper().endswith("ANONYMOUS")
    }
    # Event Grid delivers to the host's webhook with the system key and no Entra token.
    assert excluded == anonymous | {"/runtime/webhooks/eventgrid"}


def test_the_app_registration_has_the_two_app_roles_with_stable_ids():
    app = text("app/caller-app.bicep")
    assert "extension 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0'" in app
    assert (
        app.split("extension ")[1].split("\n")[0]
        == text("app/graph-permission.bicep").split("extension ")[1].split("\n")[0]
    ), "one version of the Graph extension"
    registration = app.split("resource app 'Microsoft.Graph/applications@v1.0' = {")[1].split("\n}\n")[0]
    assert "uniqueName: uniqueName" in registration
    assert "signInAudience: 'AzureADMyOrg'" in registration
    assert re.search(r"api: \{.*requestedAccessTokenVersion: 2\s*\}", registration, re.S)
    roles = re.findall(r"\{\s*id: (\w+)\s*value: '([\w.]+)'(.*?)isEnabled: true\s*\}", registration, re.S)
    assert [(role_id, value) for role_id, value, _ in roles] == [
        ("operatorRoleId", "Provisioning.Operator"),
        ("adminRoleId", "Provisioning.Admin"),
    ]
    for _, _, body in roles:
        assert re.search(r"allowedMemberTypes: \[\s*'Application'\s*'User'\s*\]", body)
    assert "var operatorRoleId = guid(uniqueName, 'Provisioning.Operator')" in app
    assert "var adminRoleId = guid(uniqueName, 'Provisioning.Admin')" in app
    principal = app.split("resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {")[1].split("\n}\n")[0]
    assert "appId: app.appId" in principal
    assert "appRoleAssignmentRequired: true" in principal


def test_the_app_registration_is_deployed_only_for_entra_and_its_audience_is_an_output():
    main = text("main.bicep")
    module = main.split("module callerApp 'app/caller-app.bicep' = if (callerAuth == 'entra') {")[1].split("\n}\n")[0]
    assert "scope: rg" in module
    assert "uniqueName: 'entra-provisioning-authorizer-${resourceToken}'" in module
    app = text("app/caller-app.bicep")
    for output, value in (
        ("AZURE_CALLER_AUDIENCE", "appId"),
        ("AZURE_CALLER_APP_SP_ID", "servicePrincipalId"),
        ("AZURE_CALLER_OPERATOR_ROLE_ID", "operatorRoleId"),
        ("AZURE_CALLER_ADMIN_ROLE_ID", "adminRoleId"),
    ):
        assert f"output {output} string = callerAuth == 'entra' ? callerApp.outputs.{value} : ''" in main
        assert f"output {value} string = " in app
    assert "output appId string = app.appId" in app
    assert "output servicePrincipalId string = servicePrincipal.id" in app
    assert "output CALLER_AUTH string = callerAuth" in main


def postprovision_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "AZURE_IDENTITY_PRINCIPAL_ID": "11111111-2222-3333-4444-555555555555",
        "GRAPH_PERMISSION": "Synchronization.ReadWrite.All",
        "GRAPH_PERMISSION_GRANTED": "true",
        **extra,
    }


ENTRA_OUTPUTS = {
    "CALLER_AUTH": "entra",
    "AZURE_CALLER_AUDIENCE": "99999999-0000-0000-0000-000000000001",
    "AZURE_CALLER_APP_SP_ID": "99999999-0000-0000-0000-000000000002",
    "AZURE_CALLER_OPERATOR_ROLE_ID": "99999999-0000-0000-0000-000000000003",
    "AZURE_CALLER_ADMIN_ROLE_ID": "99999999-0000-0000-0000-000000000004",
}


def test_the_postprovision_hook_prints_the_caller_role_assignment_with_entra():
    result = subprocess.run(
        ["sh", str(INFRA / "hooks" / "postprovision.sh")],
        env=postprovision_env(**ENTRA_OUTPUTS),
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    assert "https://graph.microsoft.com/v1.0/servicePrincipals/$CALLER_SP_ID/appRoleAssignments" in out
    assert '\\"resourceId\\": \\"99999999-0000-0000-0000-000000000002\\"' in out
    assert '\\"appRoleId\\": \\"99999999-0000-0000-0000-000000000003\\"' in out
    assert "Provisioning.Admin (99999999-0000-0000-0000-000000000004)" in out
    assert "az account get-access-token --resource 99999999-0000-0000-0000-000000000001" in out


def test_the_postprovision_hook_says_nothing_about_callers_with_function_keys():
    result = subprocess.run(
        ["sh", str(INFRA / "hooks" / "postprovision.sh")],
        env=postprovision_env(CALLER_AUTH="key"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "appRoleAssignments" not in result.stdout
    assert result.stdout == ""


# ---- azd hooks on Windows: PowerShell twins of the sh hooks ---------------------------------------------------------
# pwsh cannot be installed here, so the twins are read: the same environment variables, the same az commands with the
# same arguments, and the same messages, word for word, as the sh hooks print.

HOOKS = INFRA / "hooks"
HERE_STRING = re.compile(r'@"\n(.*?)\n"@', re.S)
HEREDOC = re.compile(r"<<MSG\n(.*?)\nMSG\n", re.S)


def test_azure_yaml_runs_the_powershell_twins_on_windows():
    import yaml

    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text())["hooks"]
    assert set(hooks) == {"postprovision", "postdeploy"}  # prepackage is the service's own hook
    for name, hook in hooks.items():
        posix, windows = hook["posix"], hook["windows"]
        assert posix == {**windows, "shell": "sh", "run": f"./infra/hooks/{name}.sh"}
        assert windows["shell"] == "pwsh"
        assert windows["run"] == f"./infra/hooks/{name}.ps1"
        assert (HOOKS / f"{name}.ps1").is_file()


def ps_variables(script: str, env: dict[str, str]) -> dict[str, str]:
    """What the PowerShell hook's `$name = Get-Required 'VAR' ...` / `Get-OrDefault 'VAR' 'default'` lines assign."""
    values = {}
    for name, kind, var, default in re.findall(
        r"^\s*\$(\w+) = Get-(Required|OrDefault) '(\w+)'(?: '([^']*)')?", script, re.M
    ):
        values[name] = env.get(var) or (default if kind == "OrDefault" else "")
    return values


def render_here_string(body: str, variables: dict[str, str], env: dict[str, str]) -> str:
    """An expandable PowerShell here-string as PowerShell prints it: `$ is a dollar, $env:X and $x are expanded."""
    body = body.replace("`$", "\0")
    body = re.sub(r"\$env:(\w+)", lambda m: env.get(m.group(1), ""), body)
    body = re.sub(r"\$\{?(\w+)\}?", lambda m: variables[m.group(1)], body)
    assert "`" not in body, "an escape the renderer does not know"
    return body.replace("\0", "$")


def sh_variables_read(script: str) -> set[str]:
    return set(re.findall(r"(?<!\\)\$\{?([A-Z][A-Z0-9_]+)", script))  # not `\$X`, which a message prints


def ps_variables_read(script: str) -> set[str]:
    named = re.findall(r"Get-(?:Required|OrDefault) '([A-Z][A-Z0-9_]+)'", script)
    listed = re.findall(r"foreach \(\$name in ([^)]*)\)", script)
    names = set(named) | set(re.findall(r"(?<!`)\$env:([A-Z][A-Z0-9_]+)", script))
    for group in listed:
        names |= set(re.findall(r"'([A-Z][A-Z0-9_]+)'", group))
    return names


@pytest.mark.parametrize("hook", ["postprovision", "postdeploy"])
def test_the_powershell_hook_reads_the_same_environment_as_the_sh_hook(hook):
    sh = (HOOKS / f"{hook}.sh").read_text()
    ps = (HOOKS / f"{hook}.ps1").read_text()
    assert sh_variables_read(sh) == ps_variables_read(ps)
    assert "$ErrorActionPreference = 'Stop'" in ps  # as `set -e`
    assert "Set-StrictMode -Version Latest" in ps  # as `set -u`


def test_the_powershell_postprovision_prints_what_the_sh_one_prints():
    env = postprovision_env(
        **ENTRA_OUTPUTS, GRAPH_PERMISSION="Application.ReadWrite.OwnedBy", GRAPH_PERMISSION_GRANTED="false"
    )
    printed = subprocess.run(
        ["sh", str(HOOKS / "postprovision.sh")], env=env, capture_output=True, text=True, check=True
    ).stdout
    ps = (HOOKS / "postprovision.ps1").read_text()
    variables = ps_variables(ps, env)
    blocks = [render_here_string(body, variables, env) + "\n" for body in HERE_STRING.findall(ps)]
    assert len(blocks) == 3
    assert "".join(blocks) == printed
    # Each block is printed under the same condition as its sh twin.
    sh = (HOOKS / "postprovision.sh").read_text()
    conditions = [
        (
            '[ "${GRAPH_PERMISSION_GRANTED:-false}" != "true" ]',
            "if ((Get-OrDefault 'GRAPH_PERMISSION_GRANTED' 'false') -ne 'true')",
        ),
        ('[ "$permission" = "Application.ReadWrite.OwnedBy" ]', "if ($permission -eq 'Application.ReadWrite.OwnedBy')"),
        ('[ "${CALLER_AUTH:-key}" = "entra" ]', "if ((Get-OrDefault 'CALLER_AUTH' 'key') -eq 'entra')"),
    ]
    for sh_condition, ps_condition in conditions:
        assert sh.count(f"if {sh_condition}; then") == 1, sh_condition
        assert ps.count(ps_condition) == 1, ps_condition
    assert ps.index(conditions[0][1]) < ps.index(conditions[1][1]) < ps.index(conditions[2][1])


def az_commands_sh(script: str) -> list[list[str]]:
    joined = HEREDOC.sub("", script).replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.strip().removeprefix("if ! ").removesuffix("; then")
        if line.startswith("az "):
            line = line.replace('"$(dirname "$0")/../event-subscription.bicep"', "HOOKS/../event-subscription.bicep")
            line = line.replace(">/dev/null 2>&1", "")
            commands.append([token.strip('"') for token in line.split()])
    return commands


def az_commands_ps(script: str) -> list[list[str]]:
    joined = HERE_STRING.sub("", script).replace("`\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("az "):
            line = line.replace(
                "(Join-Path $PSScriptRoot '..' 'event-subscription.bicep')", "HOOKS/../event-subscription.bicep"
            )
            line = line.replace("*> $null", "").replace("$env:", "$")
            commands.append([token.strip('"') for token in line.split()])
    return commands


def test_the_powershell_postdeploy_runs_the_same_az_commands():
    sh = az_commands_sh((HOOKS / "postdeploy.sh").read_text())
    ps = az_commands_ps((HOOKS / "postdeploy.ps1").read_text())
    assert [c[:3] for c in sh] == [["az", "account", "show"], ["az", "deployment", "group"]]
    assert ps == sh
    assert sh[1][sh[1].index("--subscription") + 1] == "$AZURE_SUBSCRIPTION_ID"


def test_the_powershell_postdeploy_says_what_the_sh_one_says():
    sh = (HOOKS / "postdeploy.sh").read_text()
    ps = (HOOKS / "postdeploy.ps1").read_text()
    assert [b.replace("$env:", "$") for b in HERE_STRING.findall(ps)] == HEREDOC.findall(sh)
    assert ps.count('[Console]::Error.WriteLine(@"') == sh.count("cat >&2 <<MSG") == 2
    assert ps.count("exit 1") == sh.count("exit 1") == 2
    echoes = [line.removeprefix("echo ").strip('"') for line in sh.splitlines() if line.startswith("echo ")]
    writes = [
        line.removeprefix("Write-Output ").strip('"').replace("$env:", "$")
        for line in ps.splitlines()
        if line.startswith("Write-Output ")
    ]
    assert writes == echoes
    # `set -e` stops the sh hook when the deployment fails; PowerShell does not stop on a native command's failure.
    assert "if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }" in ps


def test_azd_compiles_the_apps_bytecode_before_packaging_on_both_systems(tmp_path):
    import shutil
    import sys

    import yaml

    service = yaml.safe_load((ROOT / "azure.yaml").read_text())["services"]["api"]
    hook = service["hooks"]["prepackage"]
    assert hook["posix"] == {**hook["windows"], "shell": "sh", "run": "./infra/hooks/prepackage.sh"}
    assert hook["windows"]["run"] == "./infra/hooks/prepackage.ps1"
    sh, ps = (HOOKS / "prepackage.sh").read_text(), (HOOKS / "prepackage.ps1").read_text()
    command = "-m compileall -q -f --invalidation-mode checked-hash function_app.py shared"
    assert command in sh
    assert command in ps
    assert sh_variables_read(sh) == ps_variables_read(ps) == {"PYTHON313"}
    # Run the sh hook on a copy of the app with this Python standing in for 3.13.
    (tmp_path / "infra" / "hooks").mkdir(parents=True)
    shutil.copy(HOOKS / "prepackage.sh", tmp_path / "infra" / "hooks")
    shutil.copytree(ROOT / "shared", tmp_path / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "function_app.py", tmp_path)
    env = {"PATH": "/usr/bin:/bin", "PYTHON313": sys.executable}
    done = subprocess.run(["sh", str(tmp_path / "infra" / "hooks" / "prepackage.sh")], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    tag = sys.implementation.cache_tag
    assert f"compiled the app's modules for {tag}" in done.stdout
    assert (tmp_path / "shared" / "__pycache__" / f"policy.{tag}.pyc").is_file()
    # Without any Python 3.13 it deploys anyway, and says what that costs.
    assert shutil.which("python3.13", path="/usr/bin:/bin") is None
    skipped = subprocess.run(["/bin/sh", str(tmp_path / "infra" / "hooks" / "prepackage.sh")],
                             env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)  # fmt: skip
    assert "without compiled bytecode" in skipped.stderr
