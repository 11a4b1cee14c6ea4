import { protect } from '../../src/index.js';

// OR: admin or manager or analyst.
export const viewReports = protect(
  'view_reports',
  { roles: ['admin', 'manager', 'analyst'] },
  () => 'Business reports',
);

// AND across categories: (admin or deployer) and write and production.
export const deployProduction = protect(
  'deploy_production',
  { roles: ['admin', 'deployer'], scopes: ['write'], resources: ['production'], requireAll: true },
  () => 'Deployment initiated',
);

// Groups.
export const engineeringTools = protect(
  'engineering_tools',
  { groups: ['engineering', 'devops'] },
  () => 'Engineering dashboard',
);

// Every value of a category: production AND sensitive-data.
export const sensitiveOperations = protect(
  'sensitive_operations',
  {
    roles: ['admin', 'superuser'],
    groups: ['security-team'],
    scopes: ['write', 'admin'],
    resources: { allOf: ['production', 'sensitive-data'] },
    requireAll: true,
  },
  () => 'Sensitive operation completed',
);
