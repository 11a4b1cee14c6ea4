import type { SqlClient } from './sql.js';

/** Where a tenant's data lives. */
export type TenantPlacement = 'schema' | 'database';

/** A row of the tenant registry (master database). */
export interface TenantRecord {
  readonly id: string;
  readonly status: 'active' | 'disabled';
  readonly placement: TenantPlacement;
  readonly createdAt: Date;
  /**
   * The issuers allowed to speak for this tenant, sorted. Empty: any trusted issuer may (a token naming the
   * tenant is accepted from every issuer the engine trusts). Otherwise a token from another issuer is refused
   * with `TENANT_UNKNOWN`, exactly like a token naming a tenant that does not exist. Always set on the records
   * the tenancy returns; absent reads as empty.
   */
  readonly issuers?: readonly string[];
}

/**
 * A route to one tenant's data: the client to use and the quoted schema its tables live in. For `schema`
 * placement the client is the master pool and the schema `"tenant_<id>"`; for `database` placement the client
 * is a pool on database `tenant_<id>` and the schema `"authsec"`. Code that touches tenant tables writes
 * `${handle.schema}.table` and never builds a name of its own.
 */
export interface TenantHandle {
  readonly tenant: TenantRecord;
  readonly sql: SqlClient;
  /** Quoted schema identifier, e.g. `"tenant_acme-corp"`. */
  readonly schema: string;
}

/** Progress of a migration over many tenants. */
export interface MigrationProgress {
  readonly scope: 'master' | 'tenant';
  readonly tenantId?: string;
  readonly done: number;
  readonly total: number;
  readonly applied: number;
}
