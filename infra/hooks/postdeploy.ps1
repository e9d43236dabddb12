# azd postdeploy (Windows, PowerShell 7): the same as postdeploy.sh. Subscribe the Event Grid trigger to the topic,
# now that the function exists (Event Grid checks the function endpoint when the subscription is made, so this cannot
# be part of `azd provision`). It uses the Azure CLI, always against azd's own subscription, never the CLI's default one.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

foreach ($name in 'AZURE_RESOURCE_GROUP', 'AZURE_SUBSCRIPTION_ID') {
  if ([string]::IsNullOrEmpty([Environment]::GetEnvironmentVariable($name))) {
    throw "${name}: run through azd (azd up or azd deploy)"
  }
}
$tenant = $env:AZURE_TENANT_ID
if ([string]::IsNullOrEmpty($tenant)) { $tenant = '<your tenant id>' }

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
  [Console]::Error.WriteLine(@"
postdeploy: the Azure CLI (az) is needed to subscribe the Event Grid trigger, and it is not installed.
Install it, then run:
  az login --tenant $tenant
  azd hooks run postdeploy
"@)
  exit 1
}

az account show --subscription "$env:AZURE_SUBSCRIPTION_ID" --output none *> $null
if ($LASTEXITCODE -ne 0) {
  [Console]::Error.WriteLine(@"
postdeploy: the Azure CLI is not signed in with access to subscription $env:AZURE_SUBSCRIPTION_ID (the one azd
deploys to). 'azd auth login' does not sign the Azure CLI in. Run:
  az login --tenant $tenant
  azd hooks run postdeploy
"@)
  exit 1
}

az deployment group create `
  --subscription "$env:AZURE_SUBSCRIPTION_ID" `
  --resource-group "$env:AZURE_RESOURCE_GROUP" `
  --name event-subscription `
  --template-file (Join-Path $PSScriptRoot '..' 'event-subscription.bicep') `
  --parameters topicName="$env:AZURE_EVENTGRID_TOPIC_NAME" `
               vaultTopicName="$env:AZURE_KEYVAULT_EVENTS_TOPIC_NAME" `
               functionAppName="$env:AZURE_FUNCTION_NAME" `
               storageAccountName="$env:AZURE_STORAGE_ACCOUNT_NAME" `
  --output none
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Write-Output "Event Grid topic $env:AZURE_EVENTGRID_TOPIC_NAME now delivers Provisioning.AcquireAccessTokenRequested to $env:AZURE_FUNCTION_NAME."
Write-Output "Key Vault events (new secret version, near expiry, expired) now reach $env:AZURE_FUNCTION_NAME through $env:AZURE_KEYVAULT_EVENTS_TOPIC_NAME."
