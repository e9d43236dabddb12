#!/bin/sh
# azd postdeploy: subscribe the Event Grid trigger to the topic, now that the function exists (Event Grid checks
# the function endpoint when the subscription is made, so this cannot be part of `azd provision`).
# It uses the Azure CLI, always against azd's own subscription, never the CLI's default one.
set -eu
: "${AZURE_RESOURCE_GROUP:?run through azd (azd up or azd deploy)}"
: "${AZURE_SUBSCRIPTION_ID:?run through azd (azd up or azd deploy)}"
tenant="${AZURE_TENANT_ID:-<your tenant id>}"

if ! command -v az >/dev/null 2>&1; then
  cat >&2 <<MSG
postdeploy: the Azure CLI (az) is needed to subscribe the Event Grid trigger, and it is not installed.
Install it, then run:
  az login --tenant $tenant
  azd hooks run postdeploy
MSG
  exit 1
fi

if ! az account show --subscription "$AZURE_SUBSCRIPTION_ID" --output none >/dev/null 2>&1; then
  cat >&2 <<MSG
postdeploy: the Azure CLI is not signed in with access to subscription $AZURE_SUBSCRIPTION_ID (the one azd
deploys to). 'azd auth login' does not sign the Azure CLI in. Run:
  az login --tenant $tenant
  azd hooks run postdeploy
MSG
  exit 1
fi

az deployment group create \
  --subscription "$AZURE_SUBSCRIPTION_ID" \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name event-subscription \
  --template-file "$(dirname "$0")/../event-subscription.bicep" \
  --parameters topicName="$AZURE_EVENTGRID_TOPIC_NAME" \
               vaultTopicName="$AZURE_KEYVAULT_EVENTS_TOPIC_NAME" \
               functionAppName="$AZURE_FUNCTION_NAME" \
               storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" \
  --output none
echo "Event Grid topic $AZURE_EVENTGRID_TOPIC_NAME now delivers Provisioning.AcquireAccessTokenRequested to $AZURE_FUNCTION_NAME."
echo "Key Vault events (new secret version, near expiry, expired) now reach $AZURE_FUNCTION_NAME through $AZURE_KEYVAULT_EVENTS_TOPIC_NAME."
