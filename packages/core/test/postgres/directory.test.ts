import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/audit.js';
import { createAuthSec } from '../../src/engine.js';
import { isAuthSecError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { createPostgresDirectory, type PostgresDirectory } from '../../src/postgres/directory.js';
import { DEMO_CATALOG, DEMO_TENANT_ID, seedDemoTenant } from '../../src/postgres/seed.js';
import type { SqlClient } from '../../src/postgres/sql.js';
import { createTenancy, type Tenancy } from '../../src/postgres/tenancy.js';
import type { TenantPlacement } from '../../src/postgres/tenancy-types.js';
import type { Principal } from '../../src/types.js';
import { TEST_DATABASES, type TestDatabase } from '../helpers/databases.js';

interface Claims {
  readonly roles?: readonly string[];
  readonly groups?: readonly string[];
  readonly scopes?: readonly string[];
  readonly resources?: readonly string[];
  readonly permissions?: readonly string[];
}

/** The issuer of the principals below. */
const ISS = 'https://idp.test';

/** A frozen principal as the token verifier hands it over. */
function principal(tenantId: string, subject: string, claims: Claims = {}, issuer = ISS): Principal {
  return Object.freeze({
    subject,
    email: `${subject}@example.test`,
    tenantId,
    clientId: undefined,
    issuer,
    roles: Object.freeze([...(claims.roles ?? [])]),
    groups: Object.freeze([...(claims.groups ?? [])]),
    scopes: Object.freeze([...(claims.scopes ?? [])]),
    resources: Object.freeze([...(claims.resources ?? [])]),
    permissions: Object.freeze([...(claims.permissions ?? [])]),
    expiresAt: 4_102_444_800,
    claims: Object.freeze({ sub: subject }),
  });
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
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Waits until every notification published so far has been delivered to `tenancy`'s listener: changes made
 * just before would otherwise still invalidate entries a test warms afterwards.
 */
async function settle(tenancy: Tenancy, tenantId: string): Promise<void> {
  const marker = `settle-${Math.random()}`;
  let heard = false;
  const stop = tenancy.subscribe((change) => {
    if (change.subject === marker) heard = true;
  });
  await tenancy.publish({ tenantId, subject: marker, kind: 'binding' });
  await within(2000, async () => heard);
  stop();
}

const PREFIX = `d${randomBytes(3).toString('hex')}_`;

describe.each(TEST_DATABASES)('directory on $name', ({ name, create }) => {
  let db: TestDatabase;
  let master: SqlClient;
  let tenancy: Tenancy;
  let directory: PostgresDirectory;
  const closers: (() => Promise<void>)[] = [];
  const T = 'acme';

  const openTenancy = async (client: SqlClient, extra: Partial<Parameters<typeof createTenancy>[0]> = {}) => {
    const t = await createTenancy({
      master: client,
      logger: silentLogger,
      databasePrefix: PREFIX,
      ...(db.url ? { connectionString: db.url } : {}),
      ...extra,
    });
    closers.push(() => t.close());
    return t;
  };

  beforeAll(async () => {
    db = await create();
    master = await db.open();
    tenancy = await openTenancy(master);
    await tenancy.migrate();
    directory = createPostgresDirectory({ tenancy, logger: silentLogger });
    closers.push(() => directory.close());
    await tenancy.create(T);
    const catalog: [Parameters<typeof directory.admin.addCatalog>[1], string][] = [
      ['role', 'admin'],
      ['role', 'developer'],
      ['role', 'auditor'],
      ['group', 'engineering'],
      ['group', 'devops'],
      ['group', 'security-team'],
      ['scope', 'read'],
      ['scope', 'write'],
      ['resource', 'projects'],
      ['resource', 'production'],
      ['permission', 'projects:delete'],
    ];
    for (const [kind, value] of catalog) expect(await directory.admin.addCatalog(T, kind, value)).toBe(true);
  }, 60_000);

  afterAll(async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
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

  it('keeps only the token claims that exist in the tenant catalog', async () => {
    const input = principal(T, 'user-1', {
      roles: ['admin', 'ghost'],
      groups: ['engineering', 'nowhere'],
      scopes: ['read', 'openid', 'write'],
      resources: ['projects', 'mars'],
      permissions: ['projects:delete', 'mars:land'],
    });
    const out = await directory.resolve(input);
    expect(out).toMatchObject({
      subject: 'user-1',
      tenantId: T,
      roles: ['admin'],
      groups: ['engineering'],
      scopes: ['read', 'write'],
      resources: ['projects'],
      permissions: ['projects:delete'],
    });
    expect(out).not.toBe(input);
    expect(out.claims).toBe(input.claims);
    expect(Object.isFrozen(out)).toBe(true);
    for (const field of ['roles', 'groups', 'scopes', 'resources', 'permissions'] as const) {
      expect(Object.isFrozen(out[field])).toBe(true);
    }
    expect(input.roles).toEqual(['admin', 'ghost']);
  });

  it('adds the bindings of the subject and of its groups (transitively, cycles included)', async () => {
    expect(
      await directory.admin.grant(T, 'user-2', { roles: ['developer'], scopes: ['read'] }, { issuer: ISS }),
    ).toBe(2);
    expect(await directory.admin.grant(T, 'user-2', { roles: ['developer'] }, { issuer: ISS })).toBe(0);
    expect((await directory.resolve(principal(T, 'user-2'))).roles).toEqual(['developer']);

    await directory.admin.grant(T, 'group:engineering', { scopes: ['write'], resources: ['production'] });
    const engineer = await directory.resolve(principal(T, 'user-3', { groups: ['engineering'] }));
    expect(engineer.scopes).toEqual(['write']);
    expect(engineer.resources).toEqual(['production']);
    expect((await directory.resolve(principal(T, 'user-3'))).scopes).toEqual([]);

    // A group granted in the database brings its own bindings; a cycle of groups terminates.
    await directory.admin.grant(T, 'user-4', { groups: ['devops'] }, { issuer: ISS });
    await directory.admin.grant(T, 'group:devops', { roles: ['auditor'], groups: ['engineering'] });
    await directory.admin.grant(T, 'group:engineering', { groups: ['devops'] });
    const devops = await directory.resolve(principal(T, 'user-4'));
    expect(devops.groups).toEqual(['devops', 'engineering']);
    expect(devops.roles).toEqual(['auditor']);
    expect(devops.scopes).toEqual(['write']);
  });

  it('gives a subject spelled like a group no subject bindings', async () => {
    const out = await directory.resolve(principal(T, 'group:engineering'));
    expect(out.scopes).toEqual([]);
    expect(out.groups).toEqual([]);
  });

  it('revokes, and removing a catalog entry removes its bindings', async () => {
    await directory.admin.grant(
      T,
      'user-5',
      {
        roles: ['admin', 'developer'],
        permissions: ['projects:delete'],
      },
      { issuer: ISS },
    );
    expect((await directory.resolve(principal(T, 'user-5'))).roles).toEqual(['admin', 'developer']);
    expect(await directory.admin.revoke(T, 'user-5', { roles: ['admin', 'auditor'] }, { issuer: ISS })).toBe(
      1,
    );
    expect((await directory.resolve(principal(T, 'user-5'))).roles).toEqual(['developer']);
    expect(await directory.admin.revoke(T, 'user-5', { roles: ['admin'] }, { issuer: ISS })).toBe(0);

    expect(await directory.admin.addCatalog(T, 'permission', 'projects:archive')).toBe(true);
    expect(await directory.admin.addCatalog(T, 'permission', 'projects:archive')).toBe(false);
    await directory.admin.grant(T, 'user-5', { permissions: ['projects:archive'] }, { issuer: ISS });
    expect((await directory.resolve(principal(T, 'user-5'))).permissions).toEqual([
      'projects:delete',
      'projects:archive',
    ]);
    expect(await directory.admin.removeCatalog(T, 'permission', 'projects:archive')).toBe(true);
    expect(await directory.admin.removeCatalog(T, 'permission', 'projects:archive')).toBe(false);
    expect((await directory.resolve(principal(T, 'user-5'))).permissions).toEqual(['projects:delete']);
    expect((await directory.admin.listBindings(T, 'user-5')).map((b) => `${b.kind}:${b.value}`)).toEqual([
      'permission:projects:delete',
      'role:developer',
    ]);
  });

  it('removing a group removes what was granted to it', async () => {
    await directory.admin.addCatalog(T, 'group', 'temp');
    await directory.admin.grant(T, 'group:temp', { roles: ['admin'] });
    expect((await directory.resolve(principal(T, 'user-6', { groups: ['temp'] }))).roles).toEqual(['admin']);
    await directory.admin.removeCatalog(T, 'group', 'temp');
    await directory.admin.addCatalog(T, 'group', 'temp');
    expect((await directory.resolve(principal(T, 'user-6', { groups: ['temp'] }))).roles).toEqual([]);
    expect(await directory.admin.listBindings(T, 'group:temp')).toEqual([]);
  });

  it('refuses grants of values not in the catalog, granting nothing', async () => {
    const before = await directory.admin.listBindings(T);
    const refusal = await directory.admin
      .grant(T, 'user-7', { roles: ['admin', 'ghost'], scopes: ['read'] }, { issuer: ISS })
      .catch((e: unknown) => e);
    expect(isAuthSecError(refusal) && refusal.code).toBe('BAD_REQUEST');
    expect(isAuthSecError(refusal) && refusal.details.missing).toEqual(['role ghost']);
    expect(await outcome(directory.admin.grant(T, 'group:ghosts', { roles: ['admin'] }))).toBe('BAD_REQUEST');
    expect(await directory.admin.listBindings(T)).toEqual(before);
  });

  it('refuses malformed names, kinds, subjects and grants', async () => {
    const a = directory.admin;
    expect(await outcome(a.addCatalog(T, 'role', ''))).toBe('BAD_REQUEST');
    expect(await outcome(a.addCatalog(T, 'role', 'two words'))).toBe('BAD_REQUEST');
    expect(await outcome(a.addCatalog(T, 'role', 'tab\there'))).toBe('BAD_REQUEST');
    expect(await outcome(a.addCatalog(T, 'role', 'x'.repeat(129)))).toBe('BAD_REQUEST');
    expect(await outcome(a.addCatalog(T, 'permission', 'nocolon'))).toBe('BAD_REQUEST');
    expect(await outcome(a.addCatalog(T, 'permission', 'a:b:c'))).toBe('BAD_REQUEST');
    expect(await outcome(a.addCatalog(T, 'wizard' as 'role', 'merlin'))).toBe('BAD_REQUEST');
    expect(await outcome(a.listCatalog(T, 'wizard' as 'role'))).toBe('BAD_REQUEST');
    expect(await outcome(a.grant(T, '', { roles: ['admin'] }, { issuer: ISS }))).toBe('BAD_REQUEST');
    expect(await outcome(a.grant(T, 'bad\u0000subject', { roles: ['admin'] }, { issuer: ISS }))).toBe(
      'BAD_REQUEST',
    );
    expect(await outcome(a.grant(T, 's'.repeat(256), { roles: ['admin'] }, { issuer: ISS }))).toBe(
      'BAD_REQUEST',
    );
    expect(await outcome(a.grant(T, 'user-8', {}, { issuer: ISS }))).toBe('BAD_REQUEST');
    expect(await outcome(a.grant(T, 'user-8', { wizards: ['x'] } as never, { issuer: ISS }))).toBe(
      'BAD_REQUEST',
    );
    expect(await outcome(a.revoke(T, 'user-8', { roles: ['bad name'] }, { issuer: ISS }))).toBe(
      'BAD_REQUEST',
    );
    expect(await a.addCatalog(T, 'role', 'ünïcode-röle')).toBe(true);
    expect((await a.listCatalog(T, 'role')).map((e) => e.name)).toEqual([
      'admin',
      'auditor',
      'developer',
      'ünïcode-röle',
    ]);
  });

  it('refuses unknown, disabled and malformed tenants with TENANT_UNKNOWN', async () => {
    expect(await outcome(directory.resolve(principal('nobody', 'user-1')))).toBe('TENANT_UNKNOWN');
    expect(await outcome(directory.resolve(principal('Bad Tenant', 'user-1')))).toBe('TENANT_UNKNOWN');
    expect(await outcome(directory.resolve(principal('acme"; --', 'user-1')))).toBe('TENANT_UNKNOWN');
    expect(await outcome(directory.admin.listCatalog('nobody'))).toBe('TENANT_UNKNOWN');
    expect(
      await outcome(directory.admin.grant('nobody', 'user-1', { roles: ['admin'] }, { issuer: ISS })),
    ).toBe('TENANT_UNKNOWN');

    await tenancy.create('sleepy');
    await directory.admin.addCatalog('sleepy', 'role', 'admin');
    expect((await directory.resolve(principal('sleepy', 'u', { roles: ['admin'] }))).roles).toEqual([
      'admin',
    ]);
    await tenancy.disable('sleepy');
    expect(await outcome(directory.resolve(principal('sleepy', 'u', { roles: ['admin'] })))).toBe(
      'TENANT_UNKNOWN',
    );
    // Administration still works on a disabled tenant.
    expect(await directory.admin.grant('sleepy', 'u', { roles: ['admin'] }, { issuer: ISS })).toBe(1);
    await tenancy.enable('sleepy');
    expect((await directory.resolve(principal('sleepy', 'u'))).roles).toEqual(['admin']);
  });

  it('serves from its cache until invalidated', async () => {
    await directory.admin.grant(T, 'user-9', { roles: ['admin'] }, { issuer: ISS });
    await settle(tenancy, T);
    expect((await directory.resolve(principal(T, 'user-9'))).roles).toEqual(['admin']);
    // A change behind the directory's back (no notification) is not seen until the entry is invalidated.
    const h = await tenancy.handle(T);
    await h.sql.query(`DELETE FROM ${h.schema}.bindings WHERE subject = $1`, ['user-9']);
    expect((await directory.resolve(principal(T, 'user-9'))).roles).toEqual(['admin']);
    directory.invalidate(T, 'user-9');
    expect((await directory.resolve(principal(T, 'user-9'))).roles).toEqual([]);
  });

  it('expires cached entries after cacheTtlMs', async () => {
    let now = 1_000_000;
    const clock = () => now;
    const d = createPostgresDirectory({ tenancy, cacheTtlMs: 5000, clock, logger: silentLogger });
    closers.push(() => d.close());
    await directory.admin.grant(T, 'user-10', { roles: ['admin'] }, { issuer: ISS });
    await settle(tenancy, T);
    expect((await d.resolve(principal(T, 'user-10'))).roles).toEqual(['admin']);
    const h = await tenancy.handle(T);
    await h.sql.query(`DELETE FROM ${h.schema}.bindings WHERE subject = $1`, ['user-10']);
    now += 4999;
    expect((await d.resolve(principal(T, 'user-10'))).roles).toEqual(['admin']);
    now += 2;
    expect((await d.resolve(principal(T, 'user-10'))).roles).toEqual([]);
  });

  it('validates its options', () => {
    expect(() => createPostgresDirectory({ tenancy, cacheTtlMs: -1 })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
    expect(() => createPostgresDirectory({ tenancy, maxSubjects: 0 })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });

  const placements: TenantPlacement[] = name === 'postgres' ? ['schema', 'database'] : ['schema'];
  describe.each(placements)('two replicas, %s placement', (placement) => {
    /** Two independent pools on the same database, each with its own tenancy and directory, and the tenant. */
    const twoReplicas = async (tenantId: string) => {
      const [c1, c2] = [await db.open(), await db.open()];
      if (c1 !== master)
        closers.push(
          () => c1.close(),
          () => c2.close(),
        );
      const t1 = await openTenancy(c1);
      const r1 = createPostgresDirectory({ tenancy: t1, logger: silentLogger });
      const r2 = createPostgresDirectory({ tenancy: await openTenancy(c2), logger: silentLogger });
      closers.push(
        () => r1.close(),
        () => r2.close(),
      );
      await t1.create(tenantId, { placement });
      return { r1, r2 };
    };

    it('a role revoked through one replica stops working on the other within 1 s', async () => {
      const tenantId = `replicas-${placement}`;
      const { r1, r2 } = await twoReplicas(tenantId);
      await r1.admin.addCatalog(tenantId, 'role', 'admin');
      await r1.admin.addCatalog(tenantId, 'group', 'ops');
      await r1.admin.grant(tenantId, 'alice', { roles: ['admin'] }, { issuer: ISS });

      const alice = principal(tenantId, 'alice');
      // Replica 2 has alice's role cached (30 s TTL): only the notification can take it away in time.
      expect((await r2.resolve(alice)).roles).toEqual(['admin']);
      expect(await r1.admin.revoke(tenantId, 'alice', { roles: ['admin'] }, { issuer: ISS })).toBe(1);
      const revokedIn = await within(1000, async () => (await r2.resolve(alice)).roles.length === 0);
      expect(revokedIn).toBeLessThanOrEqual(1000);

      // Group bindings and catalog changes travel the same way.
      const bob = principal(tenantId, 'bob', { groups: ['ops'], roles: ['admin'] });
      await r1.admin.grant(tenantId, 'group:ops', { roles: ['admin'] });
      expect((await r2.resolve(bob)).roles).toEqual(['admin']);
      await r1.admin.revoke(tenantId, 'group:ops', { roles: ['admin'] });
      await r1.admin.removeCatalog(tenantId, 'role', 'admin');
      await within(1000, async () => (await r2.resolve(bob)).roles.length === 0);

      // A disabled tenant is refused on the other replica within 1 s too.
      await tenancy.disable(tenantId);
      await within(1000, async () => (await outcome(r2.resolve(alice))) === 'TENANT_UNKNOWN');
    });

    it("a tenant's tool condition set through one replica takes effect on the other within 1 s, ANDed with the code's", async () => {
      const tenantId = `conditions-${placement}`;
      const { r1, r2 } = await twoReplicas(tenantId);
      const { publicKey } = await generateKeyPair('ES256');
      const sink = new MemoryAuditSink();
      // Replica 2's engine: the code allows refunds up to 1,000.
      const engine = createAuthSec({
        issuers: [{ issuer: ISS, keys: [{ ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' }] }],
        audience: 'https://mcp.test/mcp',
        logger: silentLogger,
        directory: r2,
        audit: { sinks: [sink] },
      });
      closers.push(() => engine.close());
      const alice = principal(tenantId, 'alice');
      const refund = { target: 'refund', requirement: { when: 'args.amount <= 1000' } };
      const call = (amount: number) =>
        outcome(engine.checkConditions(alice, { ...refund, args: { amount } }));
      expect(await call(800)).toBe('OK');
      expect((await r2.toolConditions(alice)).get('refund')).toBeUndefined(); // now cached on replica 2

      // The tenant tightens it to 500 through replica 1; replica 2 refuses 800 within a second.
      expect(await r1.admin.setToolConditions(tenantId, 'refund', ['args.amount <= 500'])).toBe(true);
      expect(await r1.admin.setToolConditions(tenantId, 'refund', ['args.amount <= 500'])).toBe(false);
      const tightenedIn = await within(1000, async () => (await call(800)) === 'CONDITION_FAILED');
      expect(tightenedIn).toBeLessThanOrEqual(1000);
      expect(await call(400)).toBe('OK');
      // Never loosened: a stored 5,000 does not lift the code's 1,000.
      await r1.admin.setToolConditions(tenantId, 'refund', ['args.amount <= 5000']);
      await within(1000, async () => (await call(800)) === 'OK');
      expect(await call(2000)).toBe('CONDITION_FAILED');
      const denial = sink.events.filter((e) => e.decision === 'deny').at(-1);
      expect(denial).toMatchObject({
        action: 'tool.condition',
        reason: 'CONDITION_FAILED',
        failed: ['args.amount <= 1000'],
      });
      // A tool without conditions in code gets the tenant's.
      await r1.admin.setToolConditions(tenantId, 'export', [
        'user.email.endsWith("@example.test")',
        'args.rows < 100',
      ]);
      const exportCall = (rows: number) =>
        outcome(engine.checkConditions(alice, { target: 'export', requirement: {}, args: { rows } }));
      await within(1000, async () => (await exportCall(500)) === 'CONDITION_FAILED');
      expect(await exportCall(50)).toBe('OK');
      expect((await r1.admin.listToolConditions(tenantId)).map((p) => [p.tool, p.conditions])).toEqual([
        ['export', ['user.email.endsWith("@example.test")', 'args.rows < 100']],
        ['refund', ['args.amount <= 5000']],
      ]);
      // Removed: back to the code's conditions only, and none for export.
      expect(await r1.admin.removeToolConditions(tenantId, 'export')).toBe(true);
      expect(await r1.admin.removeToolConditions(tenantId, 'export')).toBe(false);
      await within(1000, async () => (await exportCall(500)) === 'OK');

      // What cannot run is never stored, and names what is wrong.
      const bad = await r1.admin.setToolConditions(tenantId, 'refund', ['args.amount <=']).catch((e) => e);
      expect(bad).toMatchObject({ code: 'BAD_REQUEST' });
      expect(bad.message).toMatch(/Conditions of tool 'refund' in tenant '.*': .*is not valid CEL/);
      expect(await outcome(r1.admin.setToolConditions(tenantId, 'refund', []))).toBe('BAD_REQUEST');
      expect(await outcome(r1.admin.setToolConditions(tenantId, 'bad tool', ['true']))).toBe('BAD_REQUEST');
      expect((await r1.admin.listToolConditions(tenantId, 'refund'))[0]?.conditions).toEqual([
        'args.amount <= 5000',
      ]);
    });
  });

  describe('demo tenant', () => {
    it('seeds an empty registry once, and never one that has tenants', async () => {
      const empty = await openTenancy(master, { masterSchema: 'authsec_seed' });
      await empty.migrate();
      const d = createPostgresDirectory({ tenancy: empty, logger: silentLogger });
      closers.push(() => d.close());
      expect(await seedDemoTenant(empty, d)).toBe(true);
      expect(await seedDemoTenant(empty, d)).toBe(false);
      expect((await empty.list()).map((t) => t.id)).toEqual([DEMO_TENANT_ID]);
      const catalog = await d.admin.listCatalog(DEMO_TENANT_ID);
      expect(catalog).toHaveLength(Object.values(DEMO_CATALOG).flat().length);
      expect((await d.admin.listCatalog(DEMO_TENANT_ID, 'role')).map((e) => e.name).sort()).toEqual(
        [...DEMO_CATALOG.role].sort(),
      );
      expect(await seedDemoTenant(tenancy, directory)).toBe(false);
      expect(await tenancy.get(DEMO_TENANT_ID)).toBeUndefined();
    });
  });
});
