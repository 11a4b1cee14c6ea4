import { AuthSecError } from '../errors.js';
import type { SqlClient, SqlQueryable } from './sql.js';
import { quoteIdent } from './sql.js';

/**
 * Versioned, idempotent migrations, grouped by component (tenancy, directory, sessions, audit, secrets...) so
 * that each module owns its tables. A migration runs once per schema, inside a transaction holding an advisory
 * lock on that schema, so several processes migrating at once never race.
 */

/** One migration of one component. */
export interface Migration {
  /** Component that owns it, e.g. `'directory'`. */
  readonly component: string;
  /** Increasing within the component, from 1. */
  readonly version: number;
  /** Short description, shown in progress output. */
  readonly name: string;
  /**
   * The statements, given the quoted schema the tables live in (`"authsec"` for the master database,
   * `"tenant_acme-corp"` or `"authsec"` inside a per-tenant database). Plain DDL only, no parameters.
   */
  sql(schema: string): string;
  /**
   * An optional data step, run after {@link Migration.sql} in the same transaction: for rows that need values
   * only the deployment knows (the issuer that rows written before subjects were bound to their issuer belong
   * to). Throwing rolls the whole migration of that schema back.
   */
  data?(tx: SqlQueryable, schema: string, context: MigrationContext): Promise<void>;
}

/** What a migration's data step may need from the deployment. */
export interface MigrationContext {
  /**
   * The trusted issuers (`AUTHSEC_ISSUER`), or the one `authsec migrate --issuer <url>` names. Rows that
   * identify a person but were stored without an issuer are given the issuer when there is exactly one;
   * otherwise such rows make the migration fail (`CONFIG_INVALID`). Default: none.
   */
  readonly issuers?: readonly string[];
  /** Whose schema this is, for messages, e.g. `tenant 'acme-corp'`. Default: the schema name. */
  readonly label?: string;
}

/**
 * The issuer that `count` rows stored without one (`what`, e.g. `grants`) belong to: the only issuer of the
 * context. With none or several, `CONFIG_INVALID` naming the command that says which.
 */
export function legacyIssuer(context: MigrationContext, what: string, count: number): string {
  const issuers = [...new Set(context.issuers ?? [])];
  if (issuers.length === 1) return issuers[0] as string;
  const where = context.label ?? 'the database';
  const known =
    issuers.length === 0
      ? 'no issuer is configured (AUTHSEC_ISSUER)'
      : `several issuers are configured (${issuers.join(', ')})`;
  throw new AuthSecError(
    'CONFIG_INVALID',
    `${count} ${what} in ${where} were stored before subjects were bound to their issuer, and ${known}: run \`authsec migrate --issuer <url>\` with the issuer they belong to`,
    { details: { command: 'authsec migrate --issuer <url>', count, issuers } },
  );
}

/** Where a set of migrations applies. */
export type MigrationScope = 'master' | 'tenant';

const registry: Record<MigrationScope, Migration[]> = { master: [], tenant: [] };

/**
 * Registers migrations for a scope. Modules call this at import time; registering the same component and
 * version twice is a `TypeError` unless it is the very same object (modules imported twice).
 */
export function registerMigrations(scope: MigrationScope, migrations: readonly Migration[]): void {
  for (const m of migrations) {
    const existing = registry[scope].find((x) => x.component === m.component && x.version === m.version);
    if (existing === m) continue;
    if (existing) throw new TypeError(`Migration ${scope}/${m.component}@${m.version} registered twice`);
    registry[scope].push(m);
  }
}

/** The migrations registered for `scope`, ordered by component then version. */
export function registeredMigrations(scope: MigrationScope): readonly Migration[] {
  return [...registry[scope]].sort((a, b) => a.component.localeCompare(b.component) || a.version - b.version);
}

async function ensureLedger(tx: SqlQueryable, schema: string): Promise<void> {
  await tx.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await tx.query(
    `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (
       component text NOT NULL, version integer NOT NULL, name text NOT NULL,
       applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))`,
  );
}

/**
 * Applies every registered migration of `scope` not yet applied in `schemaName` (an unquoted, validated
 * name). Returns how many ran. Safe to call concurrently from several processes. `context` feeds the data
 * steps (see {@link MigrationContext}).
 */
export async function migrateSchema(
  sql: SqlClient,
  scope: MigrationScope,
  schemaName: string,
  migrations: readonly Migration[] = registeredMigrations(scope),
  context: MigrationContext = {},
): Promise<number> {
  const schema = quoteIdent(schemaName);
  return sql.transaction(async (tx) => {
    // Transaction-scoped advisory lock keyed by schema: concurrent migrators wait instead of colliding.
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`authsec-migrate:${schemaName}`]);
    await ensureLedger(tx, schema);
    const done = await tx.query<{ component: string; version: number }>(
      `SELECT component, version FROM ${schema}.schema_migrations`,
    );
    const applied = new Set(done.rows.map((r) => `${r.component}@${r.version}`));
    let count = 0;
    for (const m of migrations) {
      if (applied.has(`${m.component}@${m.version}`)) continue;
      for (const statement of splitStatements(m.sql(schema))) await tx.query(statement);
      if (m.data) await m.data(tx, schema, context);
      await tx.query(
        `INSERT INTO ${schema}.schema_migrations (component, version, name) VALUES ($1, $2, $3)`,
        [m.component, m.version, m.name],
      );
      count++;
    }
    return count;
  });
}

// Migrations are plain DDL written by us; splitting on ';' at line ends keeps each statement a single
// parameterless query, which both drivers accept inside a transaction. Dollar-quoted bodies must end a line
// with '$$;' and are kept whole.
function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let current = '';
  let inDollar = false;
  for (const line of sql.split('\n')) {
    current += `${line}\n`;
    const dollars = line.match(/\$\$/g)?.length ?? 0;
    if (dollars % 2 === 1) inDollar = !inDollar;
    if (!inDollar && /;\s*$/.test(line)) {
      out.push(current.trim().replace(/;\s*$/, ''));
      current = '';
    }
  }
  if (current.trim()) out.push(current.trim());
  return out.filter(Boolean);
}
