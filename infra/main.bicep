// Entra provisioning authorizer: everything `azd up` creates, least privilege throughout.
//
// A resource group with: a user-assigned managed identity (the app's only identity), a storage account with
// shared-key access off (host storage, deployment package, the request and connection-work queues), a Key Vault in RBAC mode with
// purge protection (the provisioning secrets), Log Analytics + Application Insights with local auth off
// (telemetry, ingested with the identity) and the outcome workbook, an Event Grid topic for request events,
// and the Function App on the Flex Consumption plan (Python 3.13 with the worker runtime pinned, HTTPS only, TLS 1.2+).
// The identity gets: Storage Blob Data Owner + Queue Data Contributor on the storage account, Key Vault Secrets
// User on the vault, Monitoring Metrics Publisher on Application Insights, and one Microsoft Graph application
// permission (graph-permission.bicep). With callerAuth=entra also an app registration with the app roles
// Provisioning.Operator and Provisioning.Admin (caller-app.bicep) and App Service Authentication on the app.
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

@description('CALLER_AUTH: key (the function key is the only check) or entra (App Service Authentication with the Microsoft Entra provider and an app registration with the roles Provisioning.Operator and Provisioning.Admin; callers send a token for AZURE_CALLER_AUDIENCE).')
@allowed([
  'key'
  'entra'
])
param callerAuth string = 'key'

@description('SECRET_BINDING: required (a secret read from Key Vault goes only to the targets and endpoints its tags name) or off.')
@allowed([
  'required'
  'off'
])
param secretBinding string = 'required'

@minValue(1)
@description('RECOVERY_MIN_HOURS: at most one recovery per connection in this many hours.')
param recoveryMinHours int = 12

@minValue(40)
@maxValue(1000)
@description('Most instances the Flex Consumption plan may scale out to: Flex Consumption takes 40 to 1000.')
param maximumInstanceCount int = 40

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-${resourceToken}'
var requestQueueName = 'acquire-access-token'
var connectionQueueName = 'connection-work'
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
    connectionQueueName: connectionQueueName
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
    maximumInstanceCount: maximumInstanceCount
    connectionQueueName: storage.outputs.connectionQueueName
    callerAuth: callerAuth
    callerAppId: callerAuth == 'entra' ? callerApp.outputs.appId : ''
    secretBinding: secretBinding
    recoveryMinHours: recoveryMinHours
  }
}

module callerApp 'app/caller-app.bicep' = if (callerAuth == 'entra') {
  name: 'caller-app'
  scope: rg
  params: {
    uniqueName: 'entra-provisioning-authorizer-${resourceToken}'
    displayName: 'Entra provisioning authorizer (${environmentName})'
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
output AZURE_CONNECTION_QUEUE_NAME string = connectionQueueName
output AZURE_EVENTGRID_TOPIC_NAME string = eventGrid.outputs.name
output AZURE_EVENTGRID_TOPIC_ENDPOINT string = eventGrid.outputs.endpoint
output AZURE_KEYVAULT_EVENTS_TOPIC_NAME string = eventGrid.outputs.vaultTopicName
output AZURE_CONNECTIONS_TABLE_NAME string = connectionsTableName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output GRAPH_PERMISSION string = graphPermission
output GRAPH_PERMISSION_GRANTED bool = grantGraphPermission
output CALLER_AUTH string = callerAuth
// callerAuth=entra: what a caller needs. The audience a caller's token is for (az account get-access-token
// --resource <audience>; a Logic App's HTTP action: authentication.audience), the service principal to assign app
// roles on, and the two roles' ids. Empty with callerAuth=key.
output AZURE_CALLER_AUDIENCE string = callerAuth == 'entra' ? callerApp.outputs.appId : ''
output AZURE_CALLER_APP_SP_ID string = callerAuth == 'entra' ? callerApp.outputs.servicePrincipalId : ''
output AZURE_CALLER_OPERATOR_ROLE_ID string = callerAuth == 'entra' ? callerApp.outputs.operatorRoleId : ''
output AZURE_CALLER_ADMIN_ROLE_ID string = callerAuth == 'entra' ? callerApp.outputs.adminRoleId : ''
