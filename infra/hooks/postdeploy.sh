#!/bin/sh
# azd postdeploy: subscribe the Event Grid trigger to the topic, now that the function exists.
set -eu
az deployment group create \
  --resource-group "${AZURE_RESOURCE_GROUP:?run through azd}" \
  --name event-subscription \
  --template-file "$(dirname "$0")/../event-subscription.bicep" \
  --parameters topicName="$AZURE_EVENTGRID_TOPIC_NAME" \
               functionAppName="$AZURE_FUNCTION_NAME" \
               storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" \
  --output none
echo "Event Grid topic $AZURE_EVENTGRID_TOPIC_NAME now delivers Provisioning.AcquireAccessTokenRequested to $AZURE_FUNCTION_NAME."
