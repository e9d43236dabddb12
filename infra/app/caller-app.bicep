// callerAuth=entra: the app registration HTTP callers get their tokens for, with the app's two app roles, and its
// service principal (the resource that app role assignments name). Deployed with the Microsoft Graph Bicep extension,
// as graph-permission.bicep is. App Service Authentication on the function app (function.bicep) validates the tokens
// against this registration; the app reads the `roles` claim of the principal it passes on.
extension 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0'

@description('Alternate key of the app registration: the same name updates the same registration on every deployment.')
param uniqueName string
param displayName string

// Stable ids: derived from the registration's unique name, so a redeployment keeps each role's id and every
// app role assignment already made for it.
var operatorRoleId = guid(uniqueName, 'Provisioning.Operator')
var adminRoleId = guid(uniqueName, 'Provisioning.Admin')

resource app 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  api: {
    // v2.0 access tokens whatever endpoint the caller asks: audience is the app id, the issuer is the tenant's
    // v2.0 issuer that App Service Authentication is configured with.
    requestedAccessTokenVersion: 2
  }
  appRoles: [
    {
      id: operatorRoleId
      value: 'Provisioning.Operator'
      displayName: 'Provisioning operator'
      description: 'Ad-hoc acquire requests, run a stored connection, read and list connections.'
      allowedMemberTypes: [
        'Application'
        'User'
      ]
      isEnabled: true
    }
    {
      id: adminRoleId
      value: 'Provisioning.Admin'
      displayName: 'Provisioning administrator'
      description: 'Everything an operator may do, and create, replace and delete stored connections.'
      allowedMemberTypes: [
        'Application'
        'User'
      ]
      isEnabled: true
    }
  ]
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: app.appId
  // Entra issues tokens for the app only to callers holding one of its app roles.
  appRoleAssignmentRequired: true
}

@description('Client id of the registration: the audience callers request tokens for (az account get-access-token --resource <this>).')
output appId string = app.appId
@description('Object id of the service principal: the resourceId of every app role assignment to a caller.')
output servicePrincipalId string = servicePrincipal.id
output operatorRoleId string = operatorRoleId
output adminRoleId string = adminRoleId
