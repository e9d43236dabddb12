# azd postprovision (Windows, PowerShell 7): the same as postprovision.sh. Say what is left for a person to do about
# the Microsoft Graph permission and, with CALLER_AUTH=entra, about the callers' app roles.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

function Get-Required([string] $Name, [string] $Why) {
  $value = [Environment]::GetEnvironmentVariable($Name)
  if ([string]::IsNullOrEmpty($value)) { throw "${Name}: $Why" }
  return $value
}

function Get-OrDefault([string] $Name, [string] $Default) {
  $value = [Environment]::GetEnvironmentVariable($Name)
  if ([string]::IsNullOrEmpty($value)) { return $Default }
  return $value
}

$identity = Get-Required 'AZURE_IDENTITY_PRINCIPAL_ID' 'run through azd'
$permission = Get-OrDefault 'GRAPH_PERMISSION' 'Application.ReadWrite.OwnedBy'

if ((Get-OrDefault 'GRAPH_PERMISSION_GRANTED' 'false') -ne 'true') {
  Write-Output @"
The app's identity does not hold the Microsoft Graph permission yet. A Privileged Role Administrator runs:

  graph_sp=`$(az ad sp show --id 00000003-0000-0000-c000-000000000000 --query id -o tsv)
  role=`$(az ad sp show --id 00000003-0000-0000-c000-000000000000 \
          --query "appRoles[?value=='$permission'].id | [0]" -o tsv)
  az rest --method POST \
    --uri "https://graph.microsoft.com/v1.0/servicePrincipals/$identity/appRoleAssignments" \
    --body "{\"principalId\": \"$identity\", \"resourceId\": \"`$graph_sp\", \"appRoleId\": \"`$role\"}"
"@
}

if ($permission -eq 'Application.ReadWrite.OwnedBy') {
  Write-Output @"
With Application.ReadWrite.OwnedBy the identity may authorize only what it owns. For each target, an owner
of the application adds it (service principal object id `$SP_ID, application object id `$APP_ID):

  az rest --method POST --uri "https://graph.microsoft.com/v1.0/servicePrincipals/`$SP_ID/owners/\`$ref" \
    --body '{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/$identity"}'
  az rest --method POST --uri "https://graph.microsoft.com/v1.0/applications/`$APP_ID/owners/\`$ref" \
    --body '{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/$identity"}'
"@
}

if ((Get-OrDefault 'CALLER_AUTH' 'key') -eq 'entra') {
  $audience = Get-Required 'AZURE_CALLER_AUDIENCE' 'run through azd: the provision outputs name the caller audience'
  $appSp = Get-Required 'AZURE_CALLER_APP_SP_ID' "run through azd: the provision outputs name the app's service principal"
  $operator = Get-Required 'AZURE_CALLER_OPERATOR_ROLE_ID' 'run through azd'
  $admin = Get-Required 'AZURE_CALLER_ADMIN_ROLE_ID' 'run through azd'
  Write-Output @"
CALLER_AUTH=entra: callers send a Microsoft Entra token for $audience and hold an app role. To let a caller's
managed identity or service principal (object id `$CALLER_SP_ID) in, a Cloud Application Administrator assigns
it Provisioning.Operator ($operator) or Provisioning.Admin ($admin):

  az rest --method POST \
    --uri "https://graph.microsoft.com/v1.0/servicePrincipals/`$CALLER_SP_ID/appRoleAssignments" \
    --body "{\"principalId\": \"`$CALLER_SP_ID\", \"resourceId\": \"$appSp\", \"appRoleId\": \"$operator\"}"

The caller then gets its token with:

  az account get-access-token --resource $audience --query accessToken -o tsv
"@
}
