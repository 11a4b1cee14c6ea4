import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { createPostgresDirectory, type PostgresDirectory } from '../../src/postgres/directory.js';
import type { SqlClient } from '../../src/postgres/sql.js';
import { createTenancy, type Tenancy } from '../../src/postgres/tenancy.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

const ISS = 'https://idp.test';
const PREFIX = `v${randomBytes(3).toString('hex')}_`;
const T = 'acme';

async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'OK',
    (error) => (isAuthSecError(error) ? error.code : Promise.reject(error)),
  );
}

describe.each(TEST_DATABASES)('directory identifiers on $name', ({ create }) => {
  let db: TestDatabase;
  let master: SqlClient;
  let tenancy: Tenancy;
  let directory: PostgresDirectory;

  beforeAll(async () => {
    db = await create();
    master = await db.open();
    tenancy = await createTenancy({
      master,
      logger: silentLogger,
      databasePrefix: PREFIX,
      ...(db.url ? { connectionString: db.url } : {}),
    });
    await tenancy.migrate();
    directory = createPostgresDirectory({ tenancy, logger: silentLogger });
    await tenancy.create(T);
    await directory.admin.addCatalog(T, 'role', 'admin');
  }, 60_000);

  afterAll(async () => {
    await directory?.close().catch(() => {});
    await tenancy?.close().catch(() => {});
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

  it('refuses catalog names with a bidirectional control or a zero-width character (BAD_REQUEST)', async () => {
    for (const name of ['ad\u202emin', 'ad\u2066min', 'ad\u200bmin', 'ad\ufeffmin']) {
      expect(await outcome(directory.admin.addCatalog(T, 'role', name))).toBe('BAD_REQUEST');
    }
    expect(await outcome(directory.admin.addCatalog(T, 'group', 'eng\u200dineering'))).toBe('BAD_REQUEST');
    expect((await directory.admin.listCatalog(T, 'role')).map((e) => e.name)).toEqual(['admin']);
  });

  it('refuses such subjects in a grant (BAD_REQUEST)', async () => {
    for (const subject of ['user\u202e1', 'user\u2069', '\u200buser']) {
      expect(await outcome(directory.admin.grant(T, subject, { roles: ['admin'] }, { issuer: ISS }))).toBe(
        'BAD_REQUEST',
      );
    }
    expect(await directory.admin.grant(T, 'user-1', { roles: ['admin'] }, { issuer: ISS })).toBe(1);
  });

  it('still removes a catalog entry stored before the rule (written below the API)', async () => {
    const h = await tenancy.handle(T);
    await h.sql.query(`INSERT INTO ${h.schema}.catalog (kind, name) VALUES ('role', $1)`, ['old\u202erole']);
    expect((await directory.admin.listCatalog(T, 'role')).map((e) => e.name)).toContain('old\u202erole');
    expect(await directory.admin.removeCatalog(T, 'role', 'old\u202erole')).toBe(true);
  });
});
