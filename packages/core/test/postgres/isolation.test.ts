import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { createPostgresDirectory, type PostgresDirectory } from '../../src/postgres/directory.js';
import type { SqlClient } from '../../src/postgres/sql.js';
import { createTenancy, type Tenancy } from '../../src/postgres/tenancy.js';
import type { TenantPlacement } from '../../src/postgres/tenancy-types.js';
import type { Principal } from '../../src/types.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

/**
 * Tenant isolation: a principal of one tenant reads no catalog entry or binding of another through any public
 * API, even with the same subject in both, and no crafted tenant id routes anywhere but to a registered tenant.
 */

interface Claims {
  readonly roles?: readonly string[];
  readonly groups?: readonly string[];
  readonly scopes?: readonly string[];
  readonly resources?: readonly string[];
  readonly permissions?: readonly string[];
}

function principal(tenantId: string, subject: string, claims: Claims = {}): Principal {
  return Object.freeze({
    subject,
    email: undefined,
    tenantId,
    clientId: undefined,
    issuer: 'https://idp.test',
    roles: Object.freeze([...(claims.roles ?? [])]),
    groups: Object.freeze([...(claims.groups ?? [])]),
    scopes: Object.freeze([...(claims.scopes ?? [])]),
    resources: Object.freeze([...(claims.resources ?? [])]),
    permissions: Object.freeze([...(claims.permissions ?? [])]),
    expiresAt: 4_102_444_800,
    claims: Object.freeze({ sub: subject }),
  });
}

async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'OK',
    (error) => (isAuthSecError(error) ? error.code : Promise.reject(error)),
  );
}

/** Every claim a token might carry in either tenant. */
const EVERYTHING: Claims = {
  roles: ['reader', 'admin', 'root'],
  groups: ['staff', 'ops'],
  scopes: ['read', 'write', 'admin'],
  resources: ['docs', 'billing', 'vault'],
  permissions: ['docs:read', 'billing:refund', 'vault:open'],
};

const PREFIX = `i${randomBytes(3).toString('hex')}_`;

describe.each(TEST_DATABASES)('tenant isolation on $name', ({ name, create }) => {
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
  }, 60_000);

  afterAll(async () => {
    await directory?.close();
    await tenancy?.close();
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

  // Schema + schema always; on real PostgreSQL also database + database and schema + database.
  const pairs: [TenantPlacement, TenantPlacement][] =
    name === 'postgres'
      ? [
          ['schema', 'schema'],
          ['database', 'database'],
          ['schema', 'database'],
        ]
      : [['schema', 'schema']];

  describe.each(pairs)('tenant A (%s) and tenant B (%s)', (placementA, placementB) => {
    const A = `a-${placementA}-${placementB}`;
    const B = `b-${placementA}-${placementB}`;

    beforeAll(async () => {
      await tenancy.create(A, { placement: placementA });
      await tenancy.create(B, { placement: placementB });
      const admin = directory.admin;
      // A: a modest catalog. B: a powerful one, with the same subject bound in both.
      await admin.addCatalog(A, 'role', 'reader');
      await admin.addCatalog(A, 'group', 'staff');
      await admin.addCatalog(A, 'scope', 'read');
      await admin.addCatalog(A, 'resource', 'docs');
      await admin.addCatalog(A, 'permission', 'docs:read');
      for (const [kind, value] of [
        ['role', 'admin'],
        ['role', 'root'],
        ['group', 'ops'],
        ['group', 'staff'],
        ['scope', 'write'],
        ['scope', 'admin'],
        ['resource', 'billing'],
        ['resource', 'vault'],
        ['permission', 'billing:refund'],
        ['permission', 'vault:open'],
      ] as const) {
        await admin.addCatalog(B, kind, value);
      }
      await admin.grant(A, 'alice', { roles: ['reader'] }, { issuer: 'https://idp.test' });
      await admin.grant(
        B,
        'alice',
        {
          roles: ['admin', 'root'],
          scopes: ['admin'],
          permissions: ['vault:open'],
        },
        { issuer: 'https://idp.test' },
      );
      await admin.grant(B, 'group:staff', { resources: ['vault'], scopes: ['write'] });
      await admin.grant(B, 'group:ops', { roles: ['root'] });
    }, 60_000);

    it("resolves a principal of A with A's catalog and bindings only", async () => {
      const out = await directory.resolve(principal(A, 'alice', EVERYTHING));
      expect(out).toMatchObject({
        tenantId: A,
        roles: ['reader'],
        groups: ['staff'],
        scopes: ['read'],
        resources: ['docs'],
        permissions: ['docs:read'],
      });
      // Same subject, same group name, nothing of B.
      const bare = await directory.resolve(principal(A, 'alice', { groups: ['staff'] }));
      expect(bare).toMatchObject({
        roles: ['reader'],
        groups: ['staff'],
        scopes: [],
        resources: [],
        permissions: [],
      });
    });

    it("resolves the same subject in B with B's data only", async () => {
      const out = await directory.resolve(principal(B, 'alice', { groups: ['staff'], roles: ['reader'] }));
      expect(out).toMatchObject({
        tenantId: B,
        roles: ['admin', 'root'],
        groups: ['staff'],
        scopes: ['admin', 'write'],
        resources: ['vault'],
        permissions: ['vault:open'],
      });
    });

    it("lists no catalog entry or binding of B through A's administration", async () => {
      const catalogA = await directory.admin.listCatalog(A);
      expect(catalogA.map((e) => `${e.kind}:${e.name}`)).toEqual([
        'group:staff',
        'permission:docs:read',
        'resource:docs',
        'role:reader',
        'scope:read',
      ]);
      const bindingsA = await directory.admin.listBindings(A);
      expect(bindingsA.map((b) => `${b.subject} ${b.kind}:${b.value}`)).toEqual(['alice role:reader']);
      expect(await directory.admin.listBindings(A, 'group:staff')).toEqual([]);
      expect(await directory.admin.listBindings(A, 'group:ops')).toEqual([]);
    });

    it("refuses to grant in A what exists only in B's catalog", async () => {
      expect(
        await outcome(
          directory.admin.grant(A, 'alice', { roles: ['admin'] }, { issuer: 'https://idp.test' }),
        ),
      ).toBe('BAD_REQUEST');
      expect(await outcome(directory.admin.grant(A, 'group:ops', { roles: ['reader'] }))).toBe('BAD_REQUEST');
      expect(
        await outcome(
          directory.admin.grant(A, 'bob', { permissions: ['vault:open'] }, { issuer: 'https://idp.test' }),
        ),
      ).toBe('BAD_REQUEST');
      expect((await directory.resolve(principal(A, 'alice'))).roles).toEqual(['reader']);
    });

    it('keeps changes in one tenant out of the other', async () => {
      await directory.admin.revoke(B, 'alice', { roles: ['admin'] }, { issuer: 'https://idp.test' });
      expect((await directory.resolve(principal(A, 'alice'))).roles).toEqual(['reader']);
      await directory.admin.removeCatalog(A, 'group', 'staff');
      const inB = await directory.resolve(principal(B, 'alice', { groups: ['staff'] }));
      expect(inB.groups).toEqual(['staff']);
      expect(inB.resources).toEqual(['vault']);
      await directory.admin.grant(B, 'alice', { roles: ['admin'] }, { issuer: 'https://idp.test' });
      await directory.admin.addCatalog(A, 'group', 'staff');
    });

    it('routes each tenant to its own schema or database', async () => {
      const [ha, hb] = [await tenancy.handle(A), await tenancy.handle(B)];
      expect(ha.tenant.id).toBe(A);
      expect(hb.tenant.id).toBe(B);
      expect(ha.sql === hb.sql && ha.schema === hb.schema).toBe(false);
    });
  });

  it('routes no crafted tenant id anywhere', async () => {
    await tenancy.create('victim');
    await directory.admin.addCatalog('victim', 'role', 'admin');
    await directory.admin.grant('victim', 'mallory', { roles: ['admin'] }, { issuer: 'https://idp.test' });
    const crafted = [
      'tenant_victim',
      '"tenant_victim"',
      'victim"',
      "victim'",
      'victim;',
      'victim; --',
      'VICTIM',
      'Victim',
      ' victim',
      'victim ',
      'victim\u0000',
      'victim\n',
      '../victim',
      'x/../victim',
      'vıctim',
      'victim'.padEnd(200, 'x'),
      '',
    ];
    for (const id of crafted) {
      expect(
        await outcome(directory.resolve(principal(id, 'mallory', { roles: ['admin'] }))),
        JSON.stringify(id),
      ).toBe('TENANT_UNKNOWN');
      expect(await outcome(directory.admin.listBindings(id)), JSON.stringify(id)).toBe('TENANT_UNKNOWN');
      expect(await outcome(directory.admin.listCatalog(id)), JSON.stringify(id)).toBe('TENANT_UNKNOWN');
    }
    expect((await directory.resolve(principal('victim', 'mallory'))).roles).toEqual(['admin']);
  });

  it('never changes the tenant of a principal', async () => {
    const out = await directory.resolve(principal('victim', 'mallory'));
    expect(out.tenantId).toBe('victim');
  });
});
