import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthSec, createAuthSec } from '../../src/engine.js';
import { isAuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { createPostgresDirectory, type PostgresDirectory } from '../../src/postgres/directory.js';
import { legacyIssuer, migrateSchema, registeredMigrations } from '../../src/postgres/migrations.js';
import { quoteIdent, type SqlClient } from '../../src/postgres/sql.js';
import { createTenancy, formatChange, parseChange, type Tenancy } from '../../src/postgres/tenancy.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

/**
 * Subjects bound to their issuer: a person is (issuer, subject). Two trusted issuers that both hand out the
 * same `sub` are two people; a tenant may name the issuers allowed to speak for it; grants stored before the
 * issuer was recorded migrate to the single configured issuer, and the migration refuses to guess between
 * several.
 */

const ISS_A = 'https://idp-a.test';
const ISS_B = 'https://idp-b.test';
const AUDIENCE = 'urn:authsec:issuers-test';

interface Signer {
  readonly issuer: string;
  readonly jwk: JWK;
  sign(claims: Record<string, unknown>): Promise<string>;
}

async function signer(issuer: string, kid: string): Promise<Signer> {
  const pair = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256' };
  return {
    issuer,
    jwk,
    sign: (claims) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid })
        .setIssuer(issuer)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(pair.privateKey),
  };
}

/** `'OK'`, or the code of the AuthSecError `promise` rejects with. */
async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'OK',
    (error) => (isAuthSecError(error) ? error.code : Promise.reject(error)),
  );
}

async function within(deadlineMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > deadlineMs) throw new Error(`condition not met within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const PREFIX = `i${randomBytes(3).toString('hex')}_`;

describe.each(TEST_DATABASES)('subjects bound to their issuer on $name', ({ create }) => {
  let db: TestDatabase;
  let master: SqlClient;
  let tenancy: Tenancy;
  let directory: PostgresDirectory;
  let engine: AuthSec;
  let a: Signer;
  let b: Signer;
  const closers: (() => Promise<void>)[] = [];
  const T = 'twins';

  const openTenancy = async (client: SqlClient, masterSchema?: string) => {
    const t = await createTenancy({
      master: client,
      logger: silentLogger,
      databasePrefix: PREFIX,
      ...(masterSchema ? { masterSchema } : {}),
      ...(db.url ? { connectionString: db.url } : {}),
    });
    closers.push(() => t.close());
    return t;
  };

  beforeAll(async () => {
    [a, b] = [await signer(ISS_A, 'ka'), await signer(ISS_B, 'kb')];
    db = await create();
    master = await db.open();
    tenancy = await openTenancy(master);
    await tenancy.migrate();
    directory = createPostgresDirectory({ tenancy, logger: silentLogger });
    closers.push(() => directory.close());
    engine = createAuthSec({
      issuers: [
        { issuer: ISS_A, keys: [a.jwk] },
        { issuer: ISS_B, keys: [b.jwk] },
      ],
      audience: AUDIENCE,
      directory,
      logger: silentLogger,
    });
    closers.push(() => engine.close());
    await tenancy.create(T);
    for (const role of ['admin', 'developer', 'viewer']) await directory.admin.addCatalog(T, 'role', role);
    await directory.admin.addCatalog(T, 'group', 'staff');
  }, 60_000);

  afterAll(async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    await db?.dispose();
  }, 60_000);

  it("the same sub from a second issuer does not inherit the first issuer's grants", async () => {
    expect(await directory.admin.grant(T, 'alice', { roles: ['admin'] }, { issuer: ISS_A })).toBe(1);
    const fromA = await engine.authenticate(await a.sign({ sub: 'alice', tenant_id: T }));
    const fromB = await engine.authenticate(await b.sign({ sub: 'alice', tenant_id: T }));
    expect(fromA.issuer).toBe(ISS_A);
    expect(fromA.roles).toEqual(['admin']);
    expect(fromB.issuer).toBe(ISS_B);
    expect(fromB.roles).toEqual([]);

    // Each issuer's alice holds only her own grants, and revoking one leaves the other alone.
    expect(await directory.admin.grant(T, 'alice', { roles: ['developer'] }, { issuer: ISS_B })).toBe(1);
    expect((await engine.authenticate(await b.sign({ sub: 'alice', tenant_id: T }))).roles).toEqual([
      'developer',
    ]);
    expect(await directory.admin.revoke(T, 'alice', { roles: ['admin'] }, { issuer: ISS_B })).toBe(0);
    expect((await engine.authenticate(await a.sign({ sub: 'alice', tenant_id: T }))).roles).toEqual([
      'admin',
    ]);

    const listed = await directory.admin.listBindings(T, 'alice');
    expect(listed.map((x) => [x.issuer, x.kind, x.value])).toEqual([
      [ISS_A, 'role', 'admin'],
      [ISS_B, 'role', 'developer'],
    ]);
    expect((await directory.admin.listBindings(T, 'alice', { issuer: ISS_B })).map((x) => x.value)).toEqual([
      'developer',
    ]);
  });

  it('group grants hold whatever the issuer', async () => {
    await directory.admin.grant(T, 'group:staff', { roles: ['viewer'] });
    for (const s of [a, b]) {
      const p = await engine.authenticate(await s.sign({ sub: 'carol', tenant_id: T, groups: ['staff'] }));
      expect(p.roles).toEqual(['viewer']);
    }
    const [groupBinding] = await directory.admin.listBindings(T, 'group:staff');
    expect(groupBinding?.issuer).toBeUndefined();
  });

  it('requires the issuer of a person, refuses one for a group, and checks its form', async () => {
    const admin = directory.admin;
    expect(await outcome(admin.grant(T, 'dave', { roles: ['admin'] }))).toBe('BAD_REQUEST');
    expect(await outcome(admin.revoke(T, 'dave', { roles: ['admin'] }))).toBe('BAD_REQUEST');
    expect(await outcome(admin.grant(T, 'group:staff', { roles: ['admin'] }, { issuer: ISS_A }))).toBe(
      'BAD_REQUEST',
    );
    for (const issuer of [
      'not a url',
      'ftp://idp.test',
      '',
      'https://idp.test/\u0000',
      `https://${'x'.repeat(2048)}`,
    ]) {
      expect(
        await outcome(admin.grant(T, 'dave', { roles: ['admin'] }, { issuer })),
        issuer.slice(0, 20),
      ).toBe('BAD_REQUEST');
    }
    expect(await admin.listBindings(T, 'dave')).toEqual([]);
  });

  it('a binding change names its issuer on the wire, and old payloads still parse', () => {
    const change = { tenantId: T, subject: 'alice', kind: 'binding' as const, issuer: ISS_A };
    expect(parseChange(formatChange(change))).toEqual(change);
    expect(parseChange('{"t":"twins","s":"alice","k":"binding"}')).toEqual({
      tenantId: T,
      subject: 'alice',
      kind: 'binding',
    });
    expect(parseChange('{"t":"twins","s":"alice","k":"binding","i":7}')).toBeUndefined();
  });

  describe('issuers allowed per tenant', () => {
    it("refuses a foreign issuer's token with TENANT_UNKNOWN once the tenant names its issuers", async () => {
      const id = 'only-a';
      await tenancy.create(id);
      expect((await tenancy.get(id))?.issuers).toEqual([]);
      // Empty list: any trusted issuer may speak for the tenant.
      expect(await outcome(engine.authenticate(await b.sign({ sub: 'eve', tenant_id: id })))).toBe('OK');

      expect(await tenancy.addIssuer(id, ISS_A)).toBe(true);
      expect(await tenancy.addIssuer(id, ISS_A)).toBe(false);
      expect((await tenancy.get(id))?.issuers).toEqual([ISS_A]);
      expect((await tenancy.list()).find((t) => t.id === id)?.issuers).toEqual([ISS_A]);
      expect(await outcome(engine.authenticate(await a.sign({ sub: 'eve', tenant_id: id })))).toBe('OK');
      expect(await outcome(engine.authenticate(await b.sign({ sub: 'eve', tenant_id: id })))).toBe(
        'TENANT_UNKNOWN',
      );
      // Other tenants are not concerned.
      expect(await outcome(engine.authenticate(await b.sign({ sub: 'eve', tenant_id: T })))).toBe('OK');

      expect(await tenancy.addIssuer(id, ISS_B)).toBe(true);
      expect((await tenancy.get(id))?.issuers).toEqual([ISS_A, ISS_B]);
      expect(await outcome(engine.authenticate(await b.sign({ sub: 'eve', tenant_id: id })))).toBe('OK');

      expect(await tenancy.removeIssuer(id, ISS_A)).toBe(true);
      expect(await tenancy.removeIssuer(id, ISS_A)).toBe(false);
      expect(await outcome(engine.authenticate(await a.sign({ sub: 'eve', tenant_id: id })))).toBe(
        'TENANT_UNKNOWN',
      );
      expect(await tenancy.removeIssuer(id, ISS_B)).toBe(true);
      expect(await outcome(engine.authenticate(await a.sign({ sub: 'eve', tenant_id: id })))).toBe('OK');
    });

    it('refuses unknown tenants and malformed issuers', async () => {
      expect(await outcome(tenancy.addIssuer('nobody-here', ISS_A))).toBe('NOT_FOUND');
      expect(await outcome(tenancy.removeIssuer('nobody-here', ISS_A))).toBe('NOT_FOUND');
      expect(await outcome(tenancy.addIssuer(T, 'not a url'))).toBe('BAD_REQUEST');
      expect(await outcome(tenancy.addIssuer(T, 'mailto:idp@test'))).toBe('BAD_REQUEST');
      expect(await outcome(tenancy.addIssuer('Bad Tenant', ISS_A))).toBe('BAD_REQUEST');
      expect((await tenancy.get(T))?.issuers).toEqual([]);
    });

    it('reaches the other replica through the change feed within 1 s, cached until then', async () => {
      const id = 'replicated';
      const [c1, c2] = [await db.open(), await db.open()];
      if (c1 !== master)
        closers.push(
          () => c1.close(),
          () => c2.close(),
        );
      const t1 = await openTenancy(c1);
      const t2 = await openTenancy(c2);
      const r2 = createPostgresDirectory({ tenancy: t2, logger: silentLogger });
      closers.push(() => r2.close());
      await t1.create(id);
      const fromB = Object.freeze({
        ...(await engine.authenticate(await b.sign({ sub: 'frank', tenant_id: T }))),
        tenantId: id,
      });
      expect(await outcome(r2.resolve(fromB))).toBe('OK');
      await t1.addIssuer(id, ISS_A);
      expect(
        await within(1000, async () => (await outcome(r2.resolve(fromB))) === 'TENANT_UNKNOWN'),
      ).toBeLessThanOrEqual(1000);
      await t1.removeIssuer(id, ISS_A);
      await within(1000, async () => (await outcome(r2.resolve(fromB))) === 'OK');
    });
  });

  describe('migration of grants stored without an issuer', () => {
    // A registry and a tenant schema as the release before issuers left them: directory migration 1 only.
    const legacy = async (label: string) => {
      const masterSchema = `legacy_${label}_${randomBytes(2).toString('hex')}`;
      const tenantId = `old-${label}-${randomBytes(2).toString('hex')}`;
      const t = await openTenancy(master, masterSchema);
      await t.migrate();
      const schemaName = `tenant_${tenantId}`;
      const before = registeredMigrations('tenant').filter(
        (m) => m.component !== 'directory' || m.version === 1,
      );
      await migrateSchema(master, 'tenant', schemaName, before);
      await master.query(
        `INSERT INTO ${quoteIdent(masterSchema)}.tenants (id, placement) VALUES ($1, 'schema')`,
        [tenantId],
      );
      const s = quoteIdent(schemaName);
      await master.query(`INSERT INTO ${s}.catalog (kind, name) VALUES ('role', 'admin'), ('group', 'ops')`);
      await master.query(
        `INSERT INTO ${s}.bindings (subject, kind, value) VALUES ('alice', 'role', 'admin'), ('group:ops', 'role', 'admin')`,
      );
      return { t, tenantId, schema: s };
    };

    it('gives rows without an issuer to the single configured issuer', async () => {
      const { t, tenantId } = await legacy('one');
      const result = await t.migrate({ issuers: [ISS_A] });
      expect(result.tenants).toBeGreaterThanOrEqual(2);
      const d = createPostgresDirectory({ tenancy: t, logger: silentLogger });
      closers.push(() => d.close());
      expect((await d.admin.listBindings(tenantId)).map((x) => [x.subject, x.issuer])).toEqual([
        ['alice', ISS_A],
        ['group:ops', undefined],
      ]);
      // The migrated grant is alice-of-A's, and no one else's.
      const fromA = await engine.authenticate(await a.sign({ sub: 'alice', tenant_id: T }));
      const fromB = await engine.authenticate(await b.sign({ sub: 'alice', tenant_id: T }));
      expect((await d.resolve(Object.freeze({ ...fromA, tenantId, roles: [] }))).roles).toEqual(['admin']);
      expect((await d.resolve(Object.freeze({ ...fromB, tenantId, roles: [] }))).roles).toEqual([]);
      expect((await t.migrate({ issuers: [ISS_A, ISS_B] })).tenants).toBe(0);
    });

    it('refuses to guess between several issuers, naming the command, and migrates once told', async () => {
      const { t, tenantId, schema } = await legacy('two');
      const refusal = await t.migrate({ issuers: [ISS_A, ISS_B] }).catch((e: unknown) => e);
      expect(isAuthSecError(refusal) && refusal.code).toBe('CONFIG_INVALID');
      expect(isAuthSecError(refusal) && refusal.message).toContain('authsec migrate --issuer <url>');
      expect(isAuthSecError(refusal) && refusal.message).toContain(`tenant '${tenantId}'`);
      expect(isAuthSecError(refusal) && refusal.details.command).toBe('authsec migrate --issuer <url>');
      // Nothing of the refused migration stayed: the column is not there, the rows are as they were.
      const columns = await master.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'bindings' AND column_name = 'issuer'`,
        [`tenant_${tenantId}`],
      );
      expect(columns.rows[0]?.n).toBe(0);
      expect(await outcome(t.migrate())).toBe('CONFIG_INVALID');

      await t.migrate({ issuers: [ISS_B] });
      const r = await master.query<{ subject: string; issuer: string }>(
        `SELECT subject, issuer FROM ${schema}.bindings ORDER BY subject`,
      );
      expect(r.rows).toEqual([
        { subject: 'alice', issuer: ISS_B },
        { subject: 'group:ops', issuer: '' },
      ]);
    });

    it('needs no issuer when no row lacks one', async () => {
      const fresh = await openTenancy(master, `fresh_${randomBytes(2).toString('hex')}`);
      await fresh.migrate();
      await fresh.create(`fresh-${randomBytes(2).toString('hex')}`);
      expect((await fresh.migrate({ issuers: [ISS_A, ISS_B] })).tenants).toBe(0);
    });

    it('legacyIssuer names the command whether none or several issuers are configured', () => {
      expect(legacyIssuer({ issuers: [ISS_A, ISS_A] }, 'grant(s)', 1)).toBe(ISS_A);
      for (const issuers of [[], [ISS_A, ISS_B]]) {
        let code: string | undefined;
        try {
          legacyIssuer({ issuers, label: "tenant 'x'" }, 'grant(s)', 3);
        } catch (error) {
          code = isAuthSecError(error) ? error.code : undefined;
          expect(String((error as Error).message)).toContain('authsec migrate --issuer <url>');
        }
        expect(code).toBe('CONFIG_INVALID');
      }
    });
  });
});
