// Deployed by infra/hooks/postdeploy.sh once the code is up (Event Grid validates the function endpoint).
// Two subscriptions to acquire_from_event_grid, each dead-lettered to storage with its topic's own identity after
// Event Grid's retries: Provisioning.AcquireAccessTokenRequested from the request topic (CloudEvents 1.0), and the
// Key Vault system topic's SecretNewVersionCreated, SecretNearExpiry and SecretExpired (rotation and expiry).
param topicName string
param vaultTopicName string
param functionAppName string
param storageAccountName string
param deadLetterContainerName string = 'eventgrid-deadletter'

resource topic 'Microsoft.EventGrid/topics@2024-06-01-preview' existing = {
  name: topicName
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource subscription 'Microsoft.EventGrid/topics/eventSubscriptions@2024-06-01-preview' = {
  parent: topic
  name: 'acquire-access-token'
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${site.id}/functions/acquire_from_event_grid'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Provisioning.AcquireAccessTokenRequested'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 10
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

resource vaultTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' existing = {
  name: vaultTopicName
}

resource secretEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {
  parent: vaultTopic
  name: 'secret-rotation'
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${site.id}/functions/acquire_from_event_grid'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNewVersionCreated'
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}
