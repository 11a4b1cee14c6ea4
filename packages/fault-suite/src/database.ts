/**
 * The database a run uses: a fresh database on the shared `PG_URL` server (dropped at the end), or a
 * PostgreSQL server of the run's own from `AUTHSEC_TEST_PGBIN`.
 */
import { randomBytes } from 'node:crypto';
import { createPgClient } from '@authsec/core/postgres';
import { startOwnPostgres, testPgBin } from './own-postgres.js';

/** A database for one run. */
export interface RunDatabase {
  /** Its URL (the master database of the storage). */
  readonly url: string;
  /** Drops it (or stops and deletes the server of our own). Never throws. */
  dispose(): Promise<void>;
}

/** A fresh database `<prefix>_<random>` on the server at `serverUrl`. */
export async function freshDatabase(serverUrl: string, prefix: string): Promise<RunDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = await createPgClient({ connectionString: serverUrl, max: 1 });
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async dispose() {
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
      await admin.close().catch(() => {});
    },
  };
}

/** A fresh database on `PG_URL` when it is set, else a server of our own; throws naming both when neither is. */
export async function runDatabase(
  prefix: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunDatabase> {
  if (env.PG_URL) return freshDatabase(env.PG_URL, prefix);
  const pgbin = testPgBin(env);
  if (!pgbin) throw new Error('set PG_URL (a PostgreSQL server) or AUTHSEC_TEST_PGBIN (its bin folder)');
  const own = await startOwnPostgres(pgbin);
  return { url: own.url, dispose: () => own.dispose() };
}
