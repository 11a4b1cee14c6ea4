import { isAuthSecError } from '../errors.js';
import type { CatalogKind, DirectoryAdmin } from './directory.js';
import type { Tenancy } from './tenancy.js';

/** Id of the demo tenant the sample apps seed. */
export const DEMO_TENANT_ID = 'acme-corp';

/** The demo tenant's catalog: what the sample tool set needs (architecture.md, "The demo tenant"). */
export const DEMO_CATALOG: Readonly<Record<Exclude<CatalogKind, 'permission'>, readonly string[]>> =
  Object.freeze({
    role: Object.freeze(['admin', 'developer', 'manager', 'analyst', 'deployer', 'superuser']),
    group: Object.freeze(['engineering', 'devops', 'security-team']),
    scope: Object.freeze(['read', 'write', 'admin']),
    resource: Object.freeze(['projects', 'analytics', 'production', 'sensitive-data']),
  });

/**
 * Seeds the demo tenant `acme-corp` with {@link DEMO_CATALOG}, only into a database that has no tenant at all:
 * it never touches a database that already has tenants. Run `tenancy.migrate()` first. Returns whether it
 * seeded. Several processes seeding at once is safe: one creates the tenant, the others return `false`.
 */
export async function seedDemoTenant(
  tenancy: Tenancy,
  directory: { readonly admin: DirectoryAdmin },
): Promise<boolean> {
  if ((await tenancy.list()).length > 0) return false;
  try {
    await tenancy.create(DEMO_TENANT_ID);
  } catch (error) {
    // Another process won the race.
    if (isAuthSecError(error) && error.code === 'BAD_REQUEST') return false;
    throw error;
  }
  for (const [kind, names] of Object.entries(DEMO_CATALOG) as [CatalogKind, readonly string[]][]) {
    for (const name of names) await directory.admin.addCatalog(DEMO_TENANT_ID, kind, name);
  }
  return true;
}
