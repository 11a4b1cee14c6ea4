/**
 * Test databases: every suite that touches SQL runs against PGlite always, and against real PostgreSQL when
 * PG_URL is set (.ci/run sets it). Each test file gets its own fresh database on the PostgreSQL server, so
 * files run in parallel without seeing each other's rows, and drops it at the end.
 */
import { randomBytes } from 'node:crypto';
import { createPGliteClient, createPgClient, type SqlClient } from '../../src/postgres/sql.js';

/** The PostgreSQL server URL, or undefined (then real-PostgreSQL suites are skipped with a printed reason). */
export const PG_URL = process.env.PG_URL || undefined;

/** Why real-PostgreSQL tests are skipped, printed once per file. */
export const PG_SKIP_REASON =
  'PG_URL is not set: real PostgreSQL tests skipped (.ci/run starts one and sets it)';

if (!PG_URL) process.stderr.write(`skip: ${PG_SKIP_REASON}\n`);

/** A database engine a suite runs against. */
export interface TestDatabase {
  readonly name: 'pglite' | 'postgres';
  /** Opens a client on this file's database (several clients = several "replicas" for PostgreSQL). */
  open(): Promise<SqlClient>;
  /** URL of this file's database (PostgreSQL only). */
  readonly url: string | undefined;
  /** URL of the server's maintenance database, for creating per-tenant databases (PostgreSQL only). */
  readonly serverUrl: string | undefined;
  /** Drops what was created. */
  dispose(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A fresh PGlite (in memory) shared by the file: PGlite takes seconds to start. */
export async function pgliteDatabase(): Promise<TestDatabase> {
  const client = await createPGliteClient();
  // Every open() returns the same instance: PGlite is one process, one connection.
  const shared: SqlClient = { ...client, close: async () => {} };
  return {
    name: 'pglite',
    url: undefined,
    serverUrl: undefined,
    open: async () => shared,
    dispose: () => client.close(),
  };
}

/** A fresh database on the PG_URL server, named uniquely for this file. */
export async function postgresDatabase(prefix = 't'): Promise<TestDatabase> {
  if (!PG_URL) throw new Error(PG_SKIP_REASON);
  const database = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = await createPgClient({ connectionString: PG_URL, max: 1 });
  await admin.query(`CREATE DATABASE "${database}"`);
  const url = withDatabase(PG_URL, database);
  const opened: SqlClient[] = [];
  return {
    name: 'postgres',
    url,
    serverUrl: PG_URL,
    async open() {
      const c = await createPgClient({ connectionString: url, max: 5 });
      opened.push(c);
      return c;
    },
    async dispose() {
      await Promise.allSettled(opened.map((c) => c.close()));
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`).catch(() => {});
      await admin.close();
    },
  };
}

/**
 * The engines a suite runs against: PGlite always, PostgreSQL when PG_URL is set. Use with
 * `describe.each(TEST_DATABASES)` and open the database in `beforeAll`.
 */
export const TEST_DATABASES: readonly {
  readonly name: 'pglite' | 'postgres';
  create(): Promise<TestDatabase>;
}[] = [
  { name: 'pglite', create: pgliteDatabase },
  ...(PG_URL ? [{ name: 'postgres' as const, create: () => postgresDatabase() }] : []),
];
