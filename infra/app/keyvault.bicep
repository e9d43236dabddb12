// The provisioning secrets. RBAC mode (no access policies), soft delete and purge protection on. The app's
// identity reads secrets (Key Vault Secrets User, rbac.bicep); people and pipelines write them.
param name string
param location string
param tags object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_109: Flex Consumption without a virtual network reaches the vault over its public endpoint; every call is Entra ID authorized (RBAC mode), see README Security
  // checkov:skip=CKV_AZURE_189: same as CKV_AZURE_109
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
