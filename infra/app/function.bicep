// The Function App on the Flex Consumption plan: Python 3.13 (the worker runtime pinned in requirements.txt), the user-assigned identity for everything
// (deployment package, host storage, Key Vault, Graph, Application Insights), HTTPS only, TLS 1.2+, FTP off.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsConnectionString string
param keyVaultUri string
param requestQueueName string
param connectionsTableName string
param allowedTargets string
param requiredAppRole string
param maximumInstanceCount int

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  // checkov:skip=CKV_AZURE_225: zone redundancy is a plan option the deployer turns on where the region supports it for Flex Consumption; not every region does
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  // checkov:skip=CKV_AZURE_222: a public endpoint is the point of the app (Logic Apps, Event Grid and services call it); restrict it with access restrictions or a virtual network where wanted
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per execution from zero; a minimum instance count for failover does not apply to the FC1 plan
  // checkov:skip=CKV_AZURE_213: App Service health check evicts unhealthy instances of long-running plans, while Flex Consumption instances are per execution; the anonymous health route serves external probes
  properties: {
    serverFarmId: plan.id
    // checkov:skip=CKV_AZURE_17: callers authenticate with function keys (and, with REQUIRED_APP_ROLE, App Service Authentication), not client certificates; Logic Apps and Event Grid do not present client certificates
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // No ftpsState: FTP does not exist on Flex Consumption, which refuses the property (ARM error 51021)
    // checkov:skip=CKV_AZURE_78: FTP does not exist on Flex Consumption, and setting siteConfig.ftpsState there is refused
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      remoteDebuggingEnabled: false
      cors: {
        allowedOrigins: []
      }
      appSettings: [
        // Host storage through the identity: no connection string, no key.
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        // azure-identity picks the user-assigned identity by this client id (Key Vault, Graph).
        { name: 'AZURE_CLIENT_ID', value: identityClientId }
        // Telemetry: the Python worker configures Azure Monitor and ingests with the identity (local auth is off).
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: applicationInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
        { name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY', value: 'true' }
        // Export only the app's own loggers: the root logger also carries the exporter's own HTTP logging,
        // and exporting that feeds itself.
        { name: 'PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME', value: 'shared' }
        // The app's own settings (docs/reference.md, "App settings").
        { name: 'KEY_VAULT_URI', value: keyVaultUri }
        { name: 'REQUEST_QUEUE_NAME', value: requestQueueName }
        { name: 'CONNECTIONS_TABLE', value: connectionsTableName }
        { name: 'SWEEP_SCHEDULE', value: '0 0 6 * * *' }
        { name: 'SWEEP_EXPIRY_DAYS', value: '30' }
        { name: 'ALLOWED_TARGETS', value: allowedTargets }
        { name: 'REQUIRED_APP_ROLE', value: requiredAppRole }
        { name: 'ALLOW_INLINE_SECRETS', value: 'false' }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: 2048
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        // 3.13: the app pins the worker runtime it runs on (azure-functions-runtime in requirements.txt)
        version: '3.13'
      }
    }
  }
}

resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output url string = 'https://${site.properties.defaultHostName}'
