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
 * name). Returns how many ran. Safe to call concurrently from several processes.
 */
export async function migrateSchema(
  sql: SqlClient,
  scope: MigrationScope,
  schemaName: string,
  migrations: readonly Migration[] = registeredMigrations(scope),
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
