/**
 * The one-time guarantee of sealed `requestState` across replicas: a state's id is consumed in the master
 * database, so a state echoed back twice is refused whichever replica sees it (an in-memory store only knows its
 * own process). Expired ids are purged as new ones arrive.
 */

import { AuthSecError } from '../errors.js';
import type { RequestStateStore } from '../request-state.js';
import { type Migration, migrateSchema, registerMigrations } from './migrations.js';
import { quoteIdent, type SqlQueryable } from './sql.js';

/** The migrations of the `request-state` component (master scope). Registered on import. */
export const REQUEST_STATE_MIGRATIONS: readonly Migration[] = [
  {
    component: 'request-state',
    version: 1,
    name: 'used request states',
    sql: (schema) => `
CREATE TABLE IF NOT EXISTS ${schema}.request_states_used (
  id text PRIMARY KEY CHECK (id ~ '^[0-9a-f-]{36}$'),
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS request_states_used_expiry ON ${schema}.request_states_used (expires_at);`,
  },
];

registerMigrations('master', REQUEST_STATE_MIGRATIONS);

/** Applies the request-state migrations to `schema` (what `openStorage` does for the master schema). */
export async function ensureRequestStateSchema(
  sql: Parameters<typeof migrateSchema>[0],
  schema = 'authsec',
): Promise<void> {
  quoteIdent(schema);
  await migrateSchema(sql, 'master', schema, REQUEST_STATE_MIGRATIONS);
}

/** Options of {@link createPostgresRequestStateStore}. */
export interface PostgresRequestStateStoreOptions {
  /** The master database (`storage.master` of `openStorage`). */
  readonly sql: SqlQueryable;
  /** Schema of the master tables. Default `'authsec'`. */
  readonly schema?: string;
  /** Purge expired ids once every this many new ones. Default 256. */
  readonly purgeEvery?: number;
}

/**
 * A {@link RequestStateStore} on PostgreSQL (or PGlite): `consume` inserts the id and reports whether it was new,
 * in one statement, so two replicas racing on one state cannot both accept it. A database that does not answer is
 * `SERVICE_UNAVAILABLE`: the state is refused, never accepted twice.
 */
export function createPostgresRequestStateStore(
  options: PostgresRequestStateStoreOptions,
): RequestStateStore {
  if (typeof options?.sql?.query !== 'function')
    throw new TypeError('createPostgresRequestStateStore: sql is required');
  const table = `${quoteIdent(options.schema ?? 'authsec')}.request_states_used`;
  const purgeEvery = options.purgeEvery ?? 256;
  if (!Number.isInteger(purgeEvery) || purgeEvery <= 0)
    throw new TypeError('purgeEvery must be a positive integer');
  let inserted = 0;
  return {
    async consume(id, expiresAt) {
      let fresh: boolean;
      try {
        const result = await options.sql.query(
          `INSERT INTO ${table} (id, expires_at) VALUES ($1, to_timestamp($2::double precision / 1000)) ON CONFLICT (id) DO NOTHING RETURNING id`,
          [id, expiresAt],
        );
        fresh = result.rows.length === 1;
      } catch (cause) {
        throw new AuthSecError('SERVICE_UNAVAILABLE', 'Used request states cannot be recorded', { cause });
      }
      if (fresh && ++inserted % purgeEvery === 0) {
        options.sql.query(`DELETE FROM ${table} WHERE expires_at < now()`).catch(() => {
          // A purge that fails is retried with the next batch; expired ids are harmless meanwhile.
        });
      }
      return fresh;
    },
  };
}
