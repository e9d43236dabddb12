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
param maximumInstanceCount int
param connectionQueueName string
@allowed([
  'key'
  'entra'
])
@description('CALLER_AUTH: key (function keys only) or entra (App Service Authentication below, with app roles).')
param callerAuth string
@description('With callerAuth=entra: client id of the app registration callers get tokens for (caller-app.bicep).')
param callerAppId string = ''
@allowed([
  'required'
  'off'
])
param secretBinding string
@minValue(1)
param recoveryMinHours int

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
    // checkov:skip=CKV_AZURE_17: callers authenticate with function keys (and, with callerAuth=entra, Microsoft Entra tokens through App Service Authentication), not client certificates; Logic Apps and Event Grid do not present client certificates
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
        { name: 'ALLOW_INLINE_SECRETS', value: 'false' }
        { name: 'SECRET_BINDING', value: secretBinding }
        // WEBSITE_AUTH_ENABLED is not set here: the platform sets it when App Service Authentication is on, and
        // the app trusts X-MS-CLIENT-PRINCIPAL only then.
        { name: 'CALLER_AUTH', value: callerAuth }
        { name: 'CONNECTION_QUEUE_NAME', value: connectionQueueName }
        { name: 'RECOVERY_MIN_HOURS', value: string(recoveryMinHours) }
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
        triggers: {
          http: {
            // `make bench` (bench/RESULTS.md) measured one process at 92% of ideal throughput with 16 requests in
            // flight and 58% with 64. Flex Consumption scales out by instances, so each instance takes 16 at a time
            // (the platform's default for 2048 MB, now pinned to the measurement) and the 17th request goes to
            // another instance.
            perInstanceConcurrency: 16
          }
        }
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

// callerAuth=entra: App Service Authentication with the Microsoft Entra provider. Requests without a valid token
// for the app registration are answered 401 before they reach the app; health and the two API documents stay
// anonymous. The app then trusts X-MS-CLIENT-PRINCIPAL (which the platform sets and strips from callers) and reads
// its `roles` claims.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (callerAuth == 'entra') {
  parent: site
  // checkov:skip=CKV_AZURE_13: this is App Service Authentication, in the V2 format checkov does not read (properties.platform.enabled, not properties.enabled)
  // checkov:skip=CKV_AZURE_63: HTTP logging is a siteConfig setting of the site, not of authsettingsV2; the app's telemetry goes to Application Insights
  // checkov:skip=CKV_AZURE_65: detailed error messages are a siteConfig setting of the site, not of authsettingsV2
  name: 'authsettingsV2'
  // checkov:skip=CKV_AZURE_66: failed request tracing is a siteConfig setting of the site, not of authsettingsV2
  // checkov:skip=CKV_AZURE_80: .NET Framework versions do not apply to a Python app, nor to authsettingsV2
  // checkov:skip=CKV_AZURE_88: Azure Files mounts are a site setting, not one of authsettingsV2; the app keeps no files
  // checkov:skip=CKV_AZURE_222: public network access is the site's (see the skip there), not a property of authsettingsV2
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // The anonymous routes, and Event Grid's delivery webhook: Event Grid sends no Entra token (a required login
      // answers its deliveries 401 and rotation stops); the Functions host checks that path's system key itself.
      excludedPaths: [
        '/api/health'
        '/api/openapi.json'
        '/api/swagger.json'
        '/runtime/webhooks/eventgrid'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: callerAppId
          // The registration asks for v2.0 access tokens (caller-app.bicep), whose issuer this is.
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          // A v2.0 token's audience is the app id; api://<app id> too, should an identifier URI be added later.
          allowedAudiences: [
            callerAppId
            'api://${callerAppId}'
          ]
        }
      }
    }
    login: {
      // An API for callers with bearer tokens: no sign-in sessions, nothing to store.
      tokenStore: {
        enabled: false
      }
    }
  }
}

output name string = site.name
output id string = site.id
output url string = 'https://${site.properties.defaultHostName}'
