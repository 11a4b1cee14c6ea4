/**
 * Test support: runs the `authsec` command in-process and provides the database engines every group runs
 * against: PGlite in a temporary data folder always, and a fresh database on the PG_URL server when PG_URL is
 * set (each test file its own, dropped at the end).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createPGliteClient, createPgClient, type SqlClient } from '@authsec/core/postgres';
import { type CliIo, type InputStream, run } from '../src/main.js';

/** The PostgreSQL server URL, or undefined (then the PostgreSQL variants are not registered). */
export const PG_URL = process.env.PG_URL || undefined;

if (!PG_URL) {
  process.stderr.write('skip: PG_URL not set: the real PostgreSQL variants of the CLI tests are skipped\n');
}

/** The issuer every engine's environment trusts (`AUTHSEC_ISSUER`). */
export const TEST_ISSUER = 'https://idp.test';

/** What one run of the command printed and returned. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A string sink that also reports what it has received so far. */
export function collector(): { write(chunk: string): boolean; readonly text: string } {
  let text = '';
  return {
    write(chunk: string) {
      text += chunk;
      return true;
    },
    get text() {
      return text;
    },
  };
}

/** Runs `authsec <args>` in-process with exactly `env` (nothing inherited from the test process). */
export async function cli(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  extra: { signal?: AbortSignal; stdin?: InputStream; stdout?: ReturnType<typeof collector> } = {},
): Promise<CliResult> {
  const stdout = extra.stdout ?? collector();
  const stderr = collector();
  const io: CliIo = {
    stdout,
    stderr,
    env,
    ...(extra.signal ? { signal: extra.signal } : {}),
    ...(extra.stdin ? { stdin: extra.stdin } : {}),
  };
  const code = await run(args, io);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** A stdin that yields `text` (as bytes), then ends. */
export function input(text: string | Buffer): InputStream {
  return Readable.from([typeof text === 'string' ? Buffer.from(text, 'utf8') : text]);
}

/** Parses a `--json` result's stdout: exactly one JSON document. */
export function json<T = Record<string, unknown>>(result: CliResult): T {
  return JSON.parse(result.stdout) as T;
}

/** A random, valid tenant id, unique to this run (database placement shares one server between runs). */
export function uniqueTenant(prefix = 't'): string {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}

/** A fresh temporary folder. */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'authsec-cli-'));
}

/** A database engine a test group runs against. */
export interface Engine {
  readonly name: 'pglite' | 'postgres';
  /** The environment the command runs with: the data folder, a master key and, for PostgreSQL, the URL. */
  readonly env: Readonly<Record<string, string>>;
  readonly dataDir: string;
  /**
   * Opens a SQL client on the master database, for what the command cannot do (editing audit rows). PGlite
   * serves one instance per folder: close it before the next command runs.
   */
  openSql(): Promise<SqlClient>;
  /** Opens a SQL client on a tenant's own database (database placement; PostgreSQL only). */
  openTenantDatabase(tenantId: string): Promise<SqlClient>;
  /** Drops the database (and the tenant databases the tests registered) and the data folder. */
  dispose(): Promise<void>;
  /** Registers `tenant_<id>` to be dropped by {@link Engine.dispose}. */
  dropLater(tenantId: string): void;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function baseEnv(dataDir: string): Record<string, string> {
  return {
    AUTHSEC_DATA_DIR: dataDir,
    AUTHSEC_MASTER_KEY: randomBytes(32).toString('base64'),
    // The one trusted issuer: the default --issuer of grant, revoke, check and migrate.
    AUTHSEC_ISSUER: TEST_ISSUER,
  };
}

async function pgliteEngine(): Promise<Engine> {
  const dataDir = tempDir();
  return {
    name: 'pglite',
    env: baseEnv(dataDir),
    dataDir,
    openSql: () => createPGliteClient({ dataDir: join(dataDir, 'pglite') }),
    openTenantDatabase: () => Promise.reject(new Error('PGlite has one database')),
    dropLater() {},
    async dispose() {
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function postgresEngine(): Promise<Engine> {
  if (!PG_URL) throw new Error('PG_URL is not set');
  const dataDir = tempDir();
  const database = `cli_${randomBytes(6).toString('hex')}`;
  const admin = await createPgClient({ connectionString: PG_URL, max: 1 });
  await admin.query(`CREATE DATABASE "${database}"`);
  const url = withDatabase(PG_URL, database);
  const tenantDatabases: string[] = [];
  return {
    name: 'postgres',
    env: { ...baseEnv(dataDir), AUTHSEC_DATABASE_URL: url },
    dataDir,
    openSql: () => createPgClient({ connectionString: url, max: 2 }),
    openTenantDatabase: (tenantId) =>
      createPgClient({ connectionString: withDatabase(PG_URL, `tenant_${tenantId}`), max: 2 }),
    dropLater(tenantId) {
      tenantDatabases.push(`tenant_${tenantId}`);
    },
    async dispose() {
      for (const name of [database, ...tenantDatabases]) {
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
      }
      await admin.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The engines each group runs against: PGlite always, PostgreSQL when PG_URL is set. */
export const ENGINES: readonly { readonly name: 'pglite' | 'postgres'; create(): Promise<Engine> }[] = [
  { name: 'pglite', create: pgliteEngine },
  ...(PG_URL ? [{ name: 'postgres' as const, create: postgresEngine }] : []),
];
