import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { registerMigrations } from '../../src/postgres/migrations.js';
import type { SqlClient } from '../../src/postgres/sql.js';
import {
  CHANGES_CHANNEL,
  createTenancy,
  type Tenancy,
  type TenantChange,
} from '../../src/postgres/tenancy.js';
import type { MigrationProgress } from '../../src/postgres/tenancy-types.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

/** The code of the AuthSecError `promise` rejects with. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isAuthSecError(error)) return error.code;
    throw error;
  }
  throw new Error('expected a rejection');
}

/** `'OK'`, or the code of the AuthSecError `promise` rejects with. */
async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'OK',
    (error) => (isAuthSecError(error) ? error.code : Promise.reject(error)),
  );
}

/** Polls `check` until it is true; returns the time it took, or fails after `deadlineMs`. */
async function within(deadlineMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > deadlineMs) throw new Error(`condition not met within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A client that records every statement it is asked to run (and otherwise forwards). */
function recording(inner: SqlClient): SqlClient & { statements: string[] } {
  const statements: string[] = [];
  return {
    ...inner,
    statements,
    query(text, params) {
      statements.push(text);
      return inner.query(text, params);
    },
    transaction(fn) {
      statements.push('BEGIN');
      return inner.transaction((tx) =>
        fn({
          query(text, params) {
            statements.push(text);
            return tx.query(text, params);
          },
        }),
      );
    },
    exec(sql) {
      statements.push(sql);
      return inner.exec(sql);
    },
    notify(channel, payload) {
      statements.push(`NOTIFY ${channel}`);
      return inner.notify(channel, payload);
    },
  };
}

const HOSTILE_IDS = [
  '',
  "acme'corp",
  'acme"corp',
  'acme";drop schema authsec cascade;--',
  '..',
  '../acme',
  'a;drop',
  'tenänt',
  'a'.repeat(200),
  'a'.repeat(56),
  'Acme',
  'ACME-CORP',
  '-acme',
  'acme corp',
  'acme_corp',
  'acme\u0000',
  'acme\n',
  'acme/x',
];

// Unique per file (and run): tenant databases of parallel test files never collide. At most 8 characters.
const PREFIX = `t${randomBytes(3).toString('hex')}_`;

describe.each(TEST_DATABASES)('tenancy on $name', ({ name, create }) => {
  let db: TestDatabase;
  let master: SqlClient;
  let tenancy: Tenancy;
  const opened: Tenancy[] = [];

  const open = async (options: Partial<Parameters<typeof createTenancy>[0]> = {}): Promise<Tenancy> => {
    const t = await createTenancy({
      master,
      logger: silentLogger,
      databasePrefix: PREFIX,
      ...(db.url ? { connectionString: db.url } : {}),
      ...options,
    });
    opened.push(t);
    return t;
  };

  beforeAll(async () => {
    db = await create();
    master = await db.open();
    tenancy = await open();
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(opened.map((t) => t.close()));
    if (db?.url) {
      const r = await master.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
        [PREFIX],
      );
      for (const { datname } of r.rows)
        await master.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
    await db?.dispose();
  }, 60_000);

  const schemaExists = async (schema: string) =>
    (await master.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [schema])).rows
      .length > 0;

  it('migrates the master database, and a second run applies nothing', async () => {
    const first = await tenancy.migrate();
    expect(first.master).toBeGreaterThanOrEqual(1);
    expect(await tenancy.migrate()).toEqual({ master: 0, tenants: 0 });
    expect(await schemaExists('authsec')).toBe(true);
  });

  it('is CONFIG_INVALID when used before migration', async () => {
    const t = await open({ masterSchema: 'authsec_unmigrated' });
    expect(await codeOf(t.list())).toBe('CONFIG_INVALID');
    expect(await codeOf(t.create('never'))).toBe('CONFIG_INVALID');
  });

  it('creates, lists, gets, disables and enables a tenant (schema placement)', async () => {
    const created = await tenancy.create('alpha');
    expect(created).toMatchObject({ id: 'alpha', status: 'active', placement: 'schema' });
    expect(created.createdAt).toBeInstanceOf(Date);
    expect(await schemaExists('tenant_alpha')).toBe(true);

    expect((await tenancy.list()).map((t) => t.id)).toContain('alpha');
    expect(await tenancy.get('alpha')).toMatchObject({ id: 'alpha', status: 'active' });
    expect(await tenancy.get('nobody')).toBeUndefined();

    const handle = await tenancy.handle('alpha');
    expect(handle.schema).toBe('"tenant_alpha"');
    expect(handle.sql).toBe(master);
    const tables = await handle.sql.query(`SELECT count(*)::int AS n FROM ${handle.schema}.catalog`);
    expect(tables.rows[0]).toEqual({ n: 0 });

    expect(await tenancy.disable('alpha')).toMatchObject({ status: 'disabled' });
    expect(await codeOf(tenancy.handle('alpha'))).toBe('TENANT_UNKNOWN');
    expect((await tenancy.handle('alpha', { allowDisabled: true })).schema).toBe('"tenant_alpha"');
    expect(await tenancy.enable('alpha')).toMatchObject({ status: 'active' });
    expect((await tenancy.handle('alpha')).tenant.status).toBe('active');
  });

  it('refuses an existing tenant, and unknown tenants', async () => {
    await tenancy.create('beta');
    expect(await codeOf(tenancy.create('beta'))).toBe('BAD_REQUEST');
    expect(await codeOf(tenancy.handle('unknown-tenant'))).toBe('TENANT_UNKNOWN');
    expect(await codeOf(tenancy.disable('unknown-tenant'))).toBe('NOT_FOUND');
    expect(await codeOf(tenancy.enable('unknown-tenant'))).toBe('NOT_FOUND');
    expect(await codeOf(tenancy.create('gamma', { placement: 'elsewhere' as 'schema' }))).toBe('BAD_REQUEST');
  });

  it('names the tenant in errors', async () => {
    try {
      await tenancy.create('beta');
      expect.unreachable();
    } catch (error) {
      expect(isAuthSecError(error) && error.details.tenant).toBe('beta');
      expect(String((error as Error).message)).toContain('beta');
    }
  });

  it('refuses hostile tenant ids before any SQL, and creates nothing', async () => {
    const spy = recording(master);
    const t = await open({ master: spy });
    const schemasBefore = (await master.query('SELECT schema_name FROM information_schema.schemata')).rows
      .length;
    const dbsBefore = db.url ? (await master.query('SELECT datname FROM pg_database')).rows.length : 0;
    const before = spy.statements.length;
    for (const id of HOSTILE_IDS) {
      expect(await codeOf(t.create(id)), JSON.stringify(id)).toBe('BAD_REQUEST');
      if (name === 'postgres') {
        expect(await codeOf(t.create(id, { placement: 'database' })), JSON.stringify(id)).toBe('BAD_REQUEST');
      }
      expect(await codeOf(t.get(id))).toBe('BAD_REQUEST');
      expect(await codeOf(t.disable(id))).toBe('BAD_REQUEST');
      expect(await codeOf(t.enable(id))).toBe('BAD_REQUEST');
      expect(await codeOf(t.handle(id))).toBe('TENANT_UNKNOWN');
      expect(await codeOf(t.handle(id, { allowDisabled: true }))).toBe('TENANT_UNKNOWN');
    }
    expect(spy.statements.slice(before)).toEqual([]);
    expect((await master.query('SELECT schema_name FROM information_schema.schemata')).rows.length).toBe(
      schemasBefore,
    );
    if (db.url) expect((await master.query('SELECT datname FROM pg_database')).rows.length).toBe(dbsBefore);
  });

  it('accepts the longest valid id', async () => {
    const id = `z${'9'.repeat(54)}`;
    expect((await tenancy.create(id)).id).toBe(id);
    expect((await tenancy.handle(id)).schema).toBe(`"tenant_${id}"`);
  });

  it('migrates every tenant with progress, catching up migrations added later', async () => {
    await tenancy.create('delta');
    registerMigrations('tenant', [
      {
        // One component per engine: the registry is per process, and both engines run in this file.
        component: `zz-test-${name}`,
        version: 1,
        name: 'test table',
        sql: (s) => `CREATE TABLE ${s}.zz_test_${name} (id int PRIMARY KEY);`,
      },
    ]);
    const progress: MigrationProgress[] = [];
    const tenants = await tenancy.list();
    const result = await tenancy.migrate((p) => progress.push(p));
    expect(result).toEqual({ master: 0, tenants: tenants.length });
    expect(progress[0]).toEqual({ scope: 'master', done: 1, total: 1, applied: 0 });
    expect(progress.slice(1)).toEqual(
      tenants.map((t, i) => ({
        scope: 'tenant',
        tenantId: t.id,
        done: i + 1,
        total: tenants.length,
        applied: 1,
      })),
    );
    const h = await tenancy.handle('delta');
    await h.sql.query(`INSERT INTO ${h.schema}.zz_test_${name} (id) VALUES (1)`);
    expect(await tenancy.migrate()).toEqual({ master: 0, tenants: 0 });
  });

  it('survives concurrent migrations from two clients', async () => {
    const [c1, c2] = [await db.open(), await db.open()];
    const t1 = await open({ master: c1, masterSchema: 'authsec_concurrent' });
    const t2 = await open({ master: c2, masterSchema: 'authsec_concurrent' });
    const [r1, r2] = await Promise.all([t1.migrate(), t2.migrate()]);
    expect(r1.master + r2.master).toBeGreaterThanOrEqual(1);
    expect(Math.min(r1.master, r2.master)).toBe(0);
    await t1.create('conc-a');
    await Promise.all([t1.migrate(), t2.migrate(), t1.migrate()]);
    expect(await t2.migrate()).toEqual({ master: 0, tenants: 0 });
    expect((await t2.handle('conc-a')).tenant.id).toBe('conc-a');
    // Racing creates of one id: exactly one wins.
    const results = await Promise.allSettled([t1.create('conc-b'), t2.create('conc-b')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(isAuthSecError(lost.reason) && lost.reason.code).toBe('BAD_REQUEST');
    if (c1 !== master) await Promise.all([c1.close(), c2.close()]);
  });

  it('delivers change notifications to every replica, and a disable to the other replica at once', async () => {
    const other = await db.open();
    const replica = await open({ master: other, cacheTtlMs: 60_000 });
    await tenancy.create('epsilon');
    const heard: TenantChange[] = [];
    replica.subscribe((c) => heard.push(c));
    // Warm the replica's cache (60 s): only the notification can make it see the disable.
    expect((await replica.handle('epsilon')).tenant.status).toBe('active');
    await tenancy.publish({ tenantId: 'epsilon', subject: 'user-1', kind: 'binding' });
    await tenancy.disable('epsilon');
    await within(1000, async () => (await outcome(replica.handle('epsilon'))) === 'TENANT_UNKNOWN');
    expect(heard).toContainEqual({ tenantId: 'epsilon', subject: 'user-1', kind: 'binding' });
    expect(heard).toContainEqual({ tenantId: 'epsilon', subject: null, kind: 'tenant' });
    await tenancy.enable('epsilon');
    await within(1000, async () => (await outcome(replica.handle('epsilon'))) === 'OK');
    if (other !== master) await other.close();
  });

  it('drops caches on a malformed notification', async () => {
    let resets = 0;
    const stop = tenancy.subscribe(
      () => {},
      () => resets++,
    );
    await master.notify(CHANGES_CHANNEL, '{"t":"Bad Id","k":"tenant"}');
    await within(1000, async () => resets > 0);
    stop();
  });

  it('validates its options', async () => {
    expect(await codeOf(open({ masterSchema: 'Bad"Schema' }))).toBe('CONFIG_INVALID');
    expect(await codeOf(open({ databasePrefix: 'much_too_long_' }))).toBe('CONFIG_INVALID');
    expect(await codeOf(open({ maxTenantPools: 0 }))).toBe('CONFIG_INVALID');
    expect(await codeOf(open({ connectionString: 'not a url' }))).toBe('CONFIG_INVALID');
  });

  // Engine-specific cases are only defined for the engine they apply to, so nothing is reported as skipped.
  if (name === 'pglite')
    it('refuses database placement on PGlite', async () => {
      expect(await codeOf(tenancy.create('on-pglite', { placement: 'database' }))).toBe('CONFIG_INVALID');
      expect(await tenancy.get('on-pglite')).toBeUndefined();
    });

  if (name === 'postgres')
    describe('database placement', () => {
      const databaseExists = async (database: string) =>
        (await master.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rows.length > 0;

      it('creates a migrated database per tenant and routes to it', async () => {
        const created = await tenancy.create('db-one', { placement: 'database' });
        expect(created).toMatchObject({ id: 'db-one', placement: 'database', status: 'active' });
        expect(await databaseExists(`${PREFIX}db-one`)).toBe(true);
        expect(await schemaExists('tenant_db-one')).toBe(false);
        const h = await tenancy.handle('db-one');
        expect(h.schema).toBe('"authsec"');
        expect(h.sql).not.toBe(master);
        const r = await h.sql.query<{ db: string }>('SELECT current_database() AS db');
        expect(r.rows[0]?.db).toBe(`${PREFIX}db-one`);
        await h.sql.query(`INSERT INTO ${h.schema}.catalog (kind, name) VALUES ('role', 'admin')`);
        expect(await codeOf(tenancy.create('db-one', { placement: 'database' }))).toBe('BAD_REQUEST');
        expect(await tenancy.migrate()).toEqual({ master: 0, tenants: 0 });
      });

      it('is CONFIG_INVALID without a connectionString', async () => {
        const t = await createTenancy({ master, logger: silentLogger, databasePrefix: PREFIX });
        opened.push(t);
        expect(await codeOf(t.create('db-nourl', { placement: 'database' }))).toBe('CONFIG_INVALID');
        expect(await databaseExists(`${PREFIX}db-nourl`)).toBe(false);
        expect(await codeOf(t.handle('db-one'))).toBe('CONFIG_INVALID');
      });

      it('keeps tenant pools bounded, least recently used closed first', async () => {
        const t = await open({ maxTenantPools: 1, tenantPoolSize: 1 });
        await t.create('db-two', { placement: 'database' });
        await t.create('db-three', { placement: 'database' });
        for (let i = 0; i < 3; i++) {
          for (const id of ['db-one', 'db-two', 'db-three']) {
            const h = await t.handle(id);
            const r = await h.sql.query<{ db: string }>('SELECT current_database() AS db');
            expect(r.rows[0]?.db).toBe(`${PREFIX}${id}`);
          }
        }
        await t.close();
        // Closed means closed: no connection of this tenancy is left on the tenant databases.
        await within(3000, async () => {
          const r = await master.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ANY($1::text[]) AND pid <> pg_backend_pid()`,
            [[`${PREFIX}db-two`, `${PREFIX}db-three`]],
          );
          return r.rows[0]?.n === 0;
        });
      });

      it('disables a database-placed tenant', async () => {
        await tenancy.disable('db-one');
        expect(await codeOf(tenancy.handle('db-one'))).toBe('TENANT_UNKNOWN');
        await tenancy.enable('db-one');
        expect((await tenancy.handle('db-one')).tenant.placement).toBe('database');
      });
    });
});
