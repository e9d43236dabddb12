// The topic that request events are published to (CloudEvents 1.0, Entra ID publishers only). Its subscription
// to the function is event-subscription.bicep, deployed after the code (azd postdeploy hook): Event Grid checks
// that the function exists when the subscription is created.
param name string
param location string
param tags object
@description('The Key Vault whose secret events (new version, near expiry, expired) the app reacts to.')
param keyVaultName string

resource topic 'Microsoft.EventGrid/topics@2024-06-01-preview' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned' // writes undeliverable events to the dead-letter container
  }
  // checkov:skip=CKV_AZURE_193: publishers reach the topic over its public endpoint, authenticated with Entra ID only (local auth off, EventGrid Data Sender role); a private endpoint needs a virtual network, left out on purpose
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    minimumTlsVersionAllowed: '1.2'
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// Key Vault publishes its events to a system topic; the subscription (SecretNewVersionCreated, SecretNearExpiry,
// SecretExpired, dead-lettered) is made by the postdeploy hook, once the function exists.
resource vaultTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: '${name}-kv'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned' // writes undeliverable events to the dead-letter container
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

output name string = topic.name
output id string = topic.id
output endpoint string = topic.properties.endpoint
output principalId string = topic.identity.principalId
output vaultTopicName string = vaultTopic.name
output vaultTopicPrincipalId string = vaultTopic.identity.principalId
