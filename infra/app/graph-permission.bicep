// The one Microsoft Graph application permission the app needs for synchronization/acquireAccessToken,
// granted to the app's identity with the Microsoft Graph Bicep extension.
// Graph documents Application.ReadWrite.OwnedBy as the least privileged application permission for this API
// (the identity must then own each target application and service principal) and Synchronization.ReadWrite.All
// as the higher privileged one (every target in the tenant).
extension 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0'

param identityPrincipalId string
@allowed([
  'Application.ReadWrite.OwnedBy'
  'Synchronization.ReadWrite.All'
])
param graphPermission string

resource graph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: '00000003-0000-0000-c000-000000000000'
}

resource grant 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  appRoleId: filter(graph.appRoles, role => role.value == graphPermission)[0].id
  principalId: identityPrincipalId
  resourceId: graph.id
}

output appRoleAssignmentId string = grant.id
