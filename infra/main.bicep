// Entra provisioning authorizer: everything `azd up` creates, least privilege throughout.
//
// A resource group with: a user-assigned managed identity (the app's only identity), a storage account with
// shared-key access off (host storage, deployment package, the request queue), a Key Vault in RBAC mode with
// purge protection (the provisioning secrets), Log Analytics + Application Insights with local auth off
// (telemetry, ingested with the identity) and the outcome workbook, an Event Grid topic for request events,
// and the Function App on the Flex Consumption plan (Python 3.13 with the worker runtime pinned, HTTPS only, TLS 1.2+).
// The identity gets: Storage Blob Data Owner + Queue Data Contributor on the storage account, Key Vault Secrets
// User on the vault, Monitoring Metrics Publisher on Application Insights, and one Microsoft Graph application
// permission (graph-permission.bicep).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to name the resource group and derive unique resource names.')
param environmentName string

@minLength(1)
@description('Region for all resources. It must offer the Flex Consumption plan.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the principal running azd; gets Key Vault Secrets Officer to put the first secrets in. Empty: none.')
param principalId string = ''

@description('Kind of principal running azd: User when signed in as a person, ServicePrincipal from a pipeline (azd sets AZURE_PRINCIPAL_TYPE).')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Microsoft Graph application permission for acquireAccessToken. Application.ReadWrite.OwnedBy is the least privileged (the identity must own each target application and service principal); Synchronization.ReadWrite.All covers every target in the tenant.')
@allowed([
  'Application.ReadWrite.OwnedBy'
  'Synchronization.ReadWrite.All'
])
param graphPermission string = 'Application.ReadWrite.OwnedBy'

@description('Grant the Graph permission in this deployment. Off by default: granting a tenant-wide application permission needs a Privileged Role Administrator (or Global Administrator), and a deployment should not do it silently. Off: the postprovision hook prints the exact grant for an administrator, who may instead opt in with GRANT_GRAPH_PERMISSION=true.')
param grantGraphPermission bool = false

@description('ALLOWED_TARGETS app setting: comma-separated object ids that may be authorized. Empty: any.')
param allowedTargets string = ''

@description('REQUIRED_APP_ROLE app setting: app role HTTP callers must hold (with App Service Authentication). Empty: function keys only.')
param requiredAppRole string = ''

@minValue(40)
@maxValue(1000)
@description('Most instances the Flex Consumption plan may scale out to: Flex Consumption takes 40 to 1000.')
param maximumInstanceCount int = 40

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-${resourceToken}'
var requestQueueName = 'acquire-access-token'
var connectionsTableName = 'connections'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${take(functionAppName, 32)}'
    requestQueueName: requestQueueName
    connectionsTableName: connectionsTableName
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    workbookDisplayName: 'Entra provisioning authorizer (${environmentName})'
    location: location
    tags: tags
  }
}

module eventGrid 'app/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    name: 'evgt-${resourceToken}'
    location: location
    tags: tags
    keyVaultName: keyVault.outputs.name
  }
}

module function 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: keyVault.outputs.uri
    requestQueueName: requestQueueName
    connectionsTableName: connectionsTableName
    allowedTargets: allowedTargets
    requiredAppRole: requiredAppRole
    maximumInstanceCount: maximumInstanceCount
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    eventGridTopicName: eventGrid.outputs.name
    eventGridPrincipalId: eventGrid.outputs.principalId
    vaultTopicPrincipalId: eventGrid.outputs.vaultTopicPrincipalId
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

module graphRole 'app/graph-permission.bicep' = if (grantGraphPermission) {
  name: 'graph-permission'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    graphPermission: graphPermission
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = function.outputs.name
output AZURE_FUNCTION_URL string = function.outputs.url
output SERVICE_API_NAME string = function.outputs.name
output AZURE_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_REQUEST_QUEUE_NAME string = requestQueueName
output AZURE_EVENTGRID_TOPIC_NAME string = eventGrid.outputs.name
output AZURE_EVENTGRID_TOPIC_ENDPOINT string = eventGrid.outputs.endpoint
output AZURE_KEYVAULT_EVENTS_TOPIC_NAME string = eventGrid.outputs.vaultTopicName
output AZURE_CONNECTIONS_TABLE_NAME string = connectionsTableName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output GRAPH_PERMISSION string = graphPermission
output GRAPH_PERMISSION_GRANTED bool = grantGraphPermission
